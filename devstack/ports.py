"""Ports on 127.0.0.1 for the embedded servers, the demo inbox and the tests: a free one,
whether one is free, and the port a server had last time."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

__all__ = ["free_port", "port_is_free", "remembered_port"]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    """Whether 127.0.0.1:`port` can be bound (nobody listens on it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def remembered_port(port_file: Path, requested: int | None) -> int:
    """`requested`, else the port remembered in `port_file` if free, else a new free port."""
    if requested is not None:
        return requested
    with contextlib.suppress(OSError, ValueError):
        remembered = int(port_file.read_text().strip())
        if 0 < remembered < 65536 and port_is_free(remembered):
            return remembered
    return free_port()
