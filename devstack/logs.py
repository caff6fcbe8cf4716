"""The last lines of an embedded server's log, for the error that says why it did not start."""

from __future__ import annotations

from pathlib import Path


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of `path`, or why there are none."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:]) or f"(log {path} is empty)"
