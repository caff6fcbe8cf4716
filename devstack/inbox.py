"""The demo's local inbox: a real SMTP server and a webhook receiver, so that the
notifications the service sends in the demo can be seen arriving (at /demo/inbox)."""

from __future__ import annotations

import html
import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse

from alerts.notify.channels import SIGNATURE_HEADER, verify
from devstack.ports import free_port


@dataclass(slots=True, frozen=True)
class Received:
    """One notification that reached the inbox."""

    at: datetime
    channel: str
    to: str
    subject: str
    verified: bool


class _Handler:
    def __init__(self, inbox: DemoInbox) -> None:
        self._inbox = inbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg: Message = message_from_bytes(envelope.content)
        for rcpt in envelope.rcpt_tos:
            self._inbox.add(
                Received(datetime.now(UTC), "email", rcpt, str(msg.get("Subject", "")), True)
            )
        return "250 Message accepted for delivery"


class DemoInbox:
    """Local receivers for the demo; keeps the last `keep` notifications in memory."""

    def __init__(self, secret: bytes, keep: int = 200) -> None:
        self._secret = secret
        self._keep = keep
        self._items: list[Received] = []
        self._lock = threading.Lock()
        self._smtp: Controller | None = None
        self.smtp_port = 0
        self.router = APIRouter()
        self.router.add_api_route("/demo/webhook/{name}", self._webhook, methods=["POST"])
        self.router.add_api_route(
            "/demo/inbox", self._page, methods=["GET"], response_class=HTMLResponse
        )

    def add(self, item: Received) -> None:
        """Record a received notification."""
        with self._lock:
            self._items.append(item)
            del self._items[: -self._keep]

    def items(self) -> list[Received]:
        """Newest first."""
        with self._lock:
            return list(reversed(self._items))

    def start(self) -> int:
        """Start the SMTP server on a free local port; returns the port."""
        port = free_port()
        self._smtp = Controller(_Handler(self), hostname="127.0.0.1", port=port)
        self._smtp.start()
        self.smtp_port = port
        return port

    def stop(self) -> None:
        """Stop the SMTP server."""
        if self._smtp is not None:
            self._smtp.stop()
            self._smtp = None

    async def _webhook(self, name: str, request: Request) -> JSONResponse:
        body = await request.body()
        ok = verify(self._secret, request.headers.get(SIGNATURE_HEADER, ""), body, time.time())
        try:
            doc = json.loads(body)
            headline = doc.get("headline") or doc["alert"]["summary"]
            subject = f"{headline} (alert #{doc['alert']['id']}, round {doc['round']})"
        except (ValueError, KeyError, TypeError):
            subject = "unreadable body"
        self.add(Received(datetime.now(UTC), "webhook", name, subject, ok))
        return JSONResponse({"ok": ok}, status_code=200 if ok else 401)

    async def _page(self) -> HTMLResponse:
        rows = "".join(
            f"<tr><td>{i.at:%H:%M:%S}</td><td>{i.channel}</td><td>{html.escape(i.to)}</td>"
            f"<td>{html.escape(i.subject)}</td><td>{'yes' if i.verified else 'NO'}</td></tr>"
            for i in self.items()
        )
        return HTMLResponse(
            "<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=3>"
            "<title>Demo inbox</title><style>body{font-family:sans-serif;margin:2em}"
            "td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}</style>"
            "<h1>Demo inbox</h1><p>Notifications the service sent to the demo's local SMTP"
            " server and webhook receiver (newest first; refreshes every 3 s).</p>"
            "<table><tr><th>time (UTC)</th><th>channel</th><th>to</th><th>subject</th>"
            f"<th>signature ok</th></tr>{rows}</table>"
        )
