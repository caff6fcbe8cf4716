"""The demo's local inbox: a real SMTP server and a webhook receiver, so that the
notifications the service sends in the demo can be seen arriving (at /demo/inbox): each with
its body (links clickable, so the acknowledge link of a notification can be followed), newest
first, times in the deployment's time zone, labelled."""

from __future__ import annotations

import html
import json
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

from aiosmtpd.controller import Controller
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

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
    body: str = ""
    """The message as the person reads it (plain text; an HTML-only e-mail as its source)."""


_URL = re.compile(r"https?://[^\s<>\"']+")
_TRAILING = ".,;:!?)]}。，；："


def linkify(text: str) -> str:
    """`text` as HTML: everything escaped, http(s) URLs as links (trailing punctuation not
    part of them)."""
    out: list[str] = []
    pos = 0
    for m in _URL.finditer(text):
        url = m.group(0).rstrip(_TRAILING)
        out.append(html.escape(text[pos : m.start()]))
        out.append(f'<a href="{html.escape(url, quote=True)}">{html.escape(url)}</a>')
        pos = m.start() + len(url)
    out.append(html.escape(text[pos:]))
    return "".join(out)


def email_body(msg: EmailMessage) -> str:
    """The text part of an e-mail (else its HTML part as source), or ''."""
    part = msg.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        return str(part.get_content())
    except (LookupError, ValueError):  # an unknown charset or a broken encoding
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""


class _Handler:
    def __init__(self, inbox: DemoInbox) -> None:
        self._inbox = inbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        subject, body = str(msg.get("Subject", "")), email_body(msg)
        for rcpt in envelope.rcpt_tos:
            self._inbox.add(Received(datetime.now(UTC), "email", rcpt, subject, True, body))
        return "250 Message accepted for delivery"


_CSS = """body{font-family:sans-serif;margin:1.5em;max-width:60em;color:#1d2330}
.msg{border:1px solid #d0d5dd;border-radius:6px;padding:.6em 1em;margin:.8em 0}
.meta{color:#5c6575;font-size:.9em}.subject{font-weight:bold;margin:.3em 0}
.bad{color:#b42318;font-weight:bold}
pre{white-space:pre-wrap;word-break:break-word;font:inherit;margin:.4em 0 0}
"""


class DemoInbox:
    """Local receivers for the demo; keeps the last `keep` notifications in memory. Times
    are shown in `tz`, the deployment's zone (`AlertSettings.zone()`)."""

    def __init__(self, secret: bytes, keep: int = 200, *, tz: ZoneInfo | None = None) -> None:
        self._secret = secret
        self._keep = keep
        self._tz = tz or ZoneInfo("Asia/Shanghai")
        self._items: list[Received] = []
        self._lock = threading.Lock()
        self._smtp: Controller | None = None
        self.smtp_port = 0
        self.router = APIRouter()
        self.router.add_api_route("/demo/webhook/{name}", self._webhook, methods=["POST"])
        self.router.add_api_route(
            "/demo/inbox", self._page, methods=["GET"], response_class=HTMLResponse
        )
        self.router.add_api_route("/demo/inbox.css", self._css, methods=["GET"])

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
            text = str(doc.get("text") or "")
            ack = doc.get("ack_url")
            if isinstance(ack, str) and ack and ack not in text:
                text = f"{text}\n{ack}".strip()
        except (ValueError, KeyError, TypeError, AttributeError):
            subject = "unreadable body"
            text = body.decode("utf-8", "replace")
        self.add(Received(datetime.now(UTC), "webhook", name, subject, ok, text))
        return JSONResponse({"ok": ok}, status_code=200 if ok else 401)

    async def _css(self) -> Response:
        # A file of its own: the pages' Content-Security-Policy refuses inline styles.
        return Response(_CSS, media_type="text/css")

    async def _page(self) -> HTMLResponse:
        zone = self._tz.key
        now = datetime.now(self._tz)
        offset = now.strftime("%z")
        label = f"{zone}, UTC{offset[:3]}:{offset[3:]}"
        cards = []
        for i in self.items():
            local = i.at.astimezone(self._tz)
            signed = "" if i.verified else ' · <span class="bad">signature NOT valid</span>'
            cards.append(
                '<div class="msg"><div class="meta">'
                f'<time datetime="{i.at.isoformat()}">{local:%Y-%m-%d %H:%M:%S}</time>'
                f" ({html.escape(zone)}) · {html.escape(i.channel)} to"
                f" {html.escape(i.to)}{signed}</div>"
                f'<div class="subject">{html.escape(i.subject)}</div>'
                f"<pre>{linkify(i.body)}</pre></div>"
            )
        empty = "<p>Nothing received yet.</p>" if not cards else ""
        return HTMLResponse(
            '<!doctype html><html lang="en"><meta charset=utf-8>'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            "<meta http-equiv=refresh content=10>"
            '<title>Demo inbox</title><link rel="stylesheet" href="/demo/inbox.css">'
            "<h1>Demo inbox</h1><p>Notifications the service sent to the demo's local SMTP"
            " server and webhook receiver, newest first, with their text (links open them;"
            f" refreshes every 10 s). Times in {html.escape(label)}.</p>"
            f"{empty}{''.join(cards)}"
        )
