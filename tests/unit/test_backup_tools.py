"""Finding pg_dump / pg_restore of the server's major version (programs that only print a
version stand in for the real ones: which one is chosen is all that is tested here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.backup import BackupError, find_tool, tool_version


def fake_tool(directory: Path, name: str, version: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\necho '{name} (PostgreSQL) {version}'\n")
    path.chmod(0o755)
    return path


def test_the_version_is_read_from_the_program(tmp_path: Path) -> None:
    assert tool_version(fake_tool(tmp_path, "pg_dump", "18.6")) == (18, "18.6")
    assert (
        tool_version(fake_tool(tmp_path / "b", "pg_dump", "15.14 (Debian 15.14-0+deb12u1)"))[0]
        == 15
    )


def test_the_matching_major_is_chosen(tmp_path: Path) -> None:
    path = fake_tool(tmp_path, "pg_dump", "18.2")
    tool = find_tool("pg_dump", 18, "18.6", tmp_path)
    assert tool.path == path
    assert tool.major == 18


def test_a_mismatch_names_both_versions(tmp_path: Path) -> None:
    fake_tool(tmp_path, "pg_restore", "15.14")
    with pytest.raises(BackupError) as caught:
        find_tool("pg_restore", 18, "18.6", tmp_path)
    message = str(caught.value)
    assert "version mismatch" in message
    assert "PostgreSQL 18.6" in message
    assert "pg_restore" in message
    assert "15.14" in message
    assert "postgresql-client-18" in message


def test_no_program_at_all_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match=r"no pg_dump found in .*postgresql-client-17"):
        find_tool("pg_dump", 17, "17.2", tmp_path)


def test_a_program_that_is_not_postgres_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pg_dump"
    path.write_text("#!/bin/sh\necho 'something else 1.0'\n")
    path.chmod(0o755)
    with pytest.raises(BackupError, match="not a PostgreSQL version"):
        find_tool("pg_dump", 18, "18.6", tmp_path)
