"""The systems on the other side of a notification, for the SOS phases: a webhook receiver
that notes when each home's first notice arrived, a mail server that accepts everything, and a
listener that notes when each alert's commit became visible."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg


class _Receiver(BaseHTTPRequestHandler):
    """A webhook receiver that appends "home unix-time" per first alert notice to a file."""

    out: Path = Path("/dev/null")
    seen: set[int] = set()  # noqa: RUF012 - one receiver process per run

    def do_POST(self) -> None:
        now = time.time()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with contextlib.suppress(ValueError, KeyError, TypeError):
            home = int(json.loads(body)["alert"]["home_id"][1:])
            if home not in self.seen:
                self.seen.add(home)
                with self.out.open("a") as f:
                    f.write(f"{home} {now}\n")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _MailSink:
    """An SMTP server that accepts every message (and keeps none)."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 Message accepted for delivery"


def receive(port: int, out: Path, dsn: str, commits: Path, smtp_port: int) -> None:
    """Run the receiver (in its own process: the benchmark's load generator must not slow
    it down, as an external system would not be), and note when each alert's commit became
    visible (the store's pg_notify is delivered at commit). It also runs the mail server
    the family's e-mails go to: without one, every e-mail failed and was retried (the
    dispatcher's retries then shared the urgent process with the presses)."""
    from aiosmtpd.controller import Controller

    _Receiver.out = out
    if os.geteuid() == 0:
        os.nice(-10)  # before its threads start: they inherit it
    Controller(_MailSink(), hostname="127.0.0.1", port=smtp_port).start()

    def listen() -> None:
        from alerts.store import NOTIFY_CHANNEL

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}".encode())
            seen: set[str] = set()
            for note in conn.notifies():
                if note.payload not in seen:
                    seen.add(note.payload)
                    with commits.open("a") as f:
                        f.write(f"{note.payload} {time.time()}\n")

    threading.Thread(target=listen, daemon=True).start()
    ThreadingHTTPServer(("127.0.0.1", port), _Receiver).serve_forever()


def arrivals(out: Path) -> dict[int, float]:
    """When each home's first notice reached the receiver (unix time), from its file."""
    if not out.exists():
        return {}
    found: dict[int, float] = {}
    for line in out.read_text().splitlines():
        home, at = line.split()
        found.setdefault(int(home), float(at))
    return found
