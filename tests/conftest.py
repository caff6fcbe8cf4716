"""Shared fixtures: real PostgreSQL, Mosquitto, SMTP and HTTP receivers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from aiosmtpd.controller import Controller

from devstack.broker import EmbeddedBroker, find_mosquitto
from devstack.ports import free_port
from devstack.postgres import EmbeddedPostgres

__all__ = [
    "HttpReceiver",
    "ReceivedMail",
    "RecordedRequest",
    "SmtpServer",
    "free_port",
]


# --------------------------------------------------------------------------- PostgreSQL / MQTT


EXTERNAL_DB = "ELDERCARE_TEST_DATABASE_URL"
"""Set to a postgresql:// URL (a role allowed to CREATE DATABASE) to run the integration tests
against that server instead of the embedded one, e.g. a TimescaleDB (docs/operations.md)."""


class ExternalPostgres:
    """A PostgreSQL the tests did not start (and so cannot stop)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def url_for(self, database: str) -> str:
        """The URL of another database on the same server."""
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def pg_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[EmbeddedPostgres | ExternalPostgres]:
    """One real PostgreSQL for the whole session (the database fixture adds migrations):
    the embedded one, or the server named by ELDERCARE_TEST_DATABASE_URL."""
    external = os.environ.get(EXTERNAL_DB)
    if external:
        yield ExternalPostgres(external)
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A started Mosquitto broker (MQTT 5) with its own state dir; fails if not installed."""
    if find_mosquitto() is None:
        pytest.fail(
            "mosquitto is not installed (looked on PATH and in /usr/sbin): "
            "install it, e.g. `apt-get install -y mosquitto`, then rerun the tests"
        )
    broker = EmbeddedBroker(tmp_path / "mosquitto", prefer="mosquitto")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


# --------------------------------------------------------------------------- SMTP


@dataclass(slots=True, frozen=True)
class ReceivedMail:
    """One mail as the SMTP server got it."""

    message: EmailMessage
    mail_from: str
    rcpt_tos: list[str]

    @property
    def subject(self) -> str:
        """The Subject header ('' if none)."""
        return str(self.message.get("Subject", ""))

    @property
    def text(self) -> str:
        """The plain-text body ('' if none)."""
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content() if isinstance(part, EmailMessage) else ""


async def _wait_until(predicate: Any, count: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while (n := predicate()) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {count} {what} within {timeout} s, got {n}")
        await asyncio.sleep(0.02)


class SmtpServer:
    """A real SMTP server (aiosmtpd) that keeps every mail it receives."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._messages: list[ReceivedMail] = []

    @property
    def messages(self) -> list[ReceivedMail]:
        """Snapshot of the mails received so far, oldest first."""
        with self._lock:
            return list(self._messages)

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedMail]:
        """Wait (without blocking the event loop) until `count` mails arrived; return them."""
        await _wait_until(lambda: len(self.messages), count, timeout, "mails")
        return self.messages

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """aiosmtpd hook: parse and keep the mail."""
        content = envelope.original_content or envelope.content
        raw = content if isinstance(content, bytes) else str(content).encode()
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        mail = ReceivedMail(message, str(envelope.mail_from), [str(r) for r in envelope.rcpt_tos])
        with self._lock:
            self._messages.append(mail)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server on 127.0.0.1; `.host`, `.port`, `.messages`."""
    port = free_port()
    server = SmtpServer("127.0.0.1", port)
    controller = Controller(server, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()


# --------------------------------------------------------------------------- HTTP (webhooks)


@dataclass(slots=True, frozen=True)
class RecordedRequest:
    """One POST the HTTP receiver got; header names are lower-cased."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """Records POSTs; answers with `status` (set it to 500 to simulate a failing webhook)."""

    url: str
    status: int = 200
    delay: float = 0.0
    """Seconds to wait before answering (to simulate a slow endpoint)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _requests: list[RecordedRequest] = field(default_factory=list, repr=False)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot of the POSTs received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def record(self, request: RecordedRequest) -> None:
        """Keep one request (called from the server threads)."""
        with self._lock:
            self._requests.append(request)

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[RecordedRequest]:
        """Wait (without blocking the event loop) until `count` POSTs arrived; return them."""
        await _wait_until(lambda: len(self.requests), count, timeout, "HTTP requests")
        return self.requests


def _handler_for(receiver: HttpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            receiver.record(RecordedRequest(self.path, headers, body))
            if receiver.delay:
                time.sleep(receiver.delay)
            status = receiver.status
            payload = b'{"ok": true}' if 200 <= status < 300 else b'{"ok": false}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    """A real HTTP server on 127.0.0.1 recording POSTs; `.url`, `.requests`, `.status`."""
    receiver = HttpReceiver(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(receiver))
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="http-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
