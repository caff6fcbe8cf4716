"""Notification channels: one interface, one class per way of reaching a person.

A channel raises `DeliveryError` when a message could not be handed over; the dispatcher
records the attempt and retries with backoff.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Protocol

import aiosmtplib
import httpx

from alerts.notify import messages
from alerts.notify.notice import Notice as Notice  # re-exported: the channels' value
from alerts.notify.webpush import parse_target
from alerts.vapid import VapidKeys

SIGNATURE_HEADER = "X-Eldercare-Signature"


class DeliveryError(Exception):
    """A message could not be delivered over a channel."""

    final = False
    """True when retrying the same target cannot help (the fallback channel still runs)."""


class SubscriptionGone(DeliveryError):
    """The push service says the subscription no longer exists (HTTP 404/410)."""

    final = True


def headline(notice: Notice) -> str:
    """One line saying what happened: the alert, or the follow-up (in the notice's locale)."""
    return messages.headline(notice)


class Channel(Protocol):
    """One way of reaching a person."""

    name: str

    async def send(self, target: str, notice: Notice) -> None:
        """Deliver `notice` to `target` (a URL, an address...) or raise DeliveryError."""
        ...


def notice_body(notice: Notice) -> dict[str, Any]:
    """The JSON document a webhook receives (contract version 1)."""
    a = notice.alert
    return {
        "version": 1,
        "type": "alert",
        "notice": notice.notice,
        "locale": notice.locale,
        "headline": headline(notice),
        "text": message_text(notice),
        "round": notice.round,
        "recipient": notice.user_id,
        "alert": {
            "id": a.id,
            "home_id": a.home_id,
            "elder": a.elder_name,
            "village": a.village,
            "address": notice.address,
            "kind": a.kind,
            "what": messages.what(notice.locale, a.kind),
            "category": a.category.value,
            "severity": a.severity.value,
            "status": a.status.value,
            "summary": a.summary,
            "event_at": a.event_at.isoformat(),
            "opened_at": a.opened_at.isoformat(),
            "evidence_count": a.evidence_count,
            "acknowledged_by": a.acknowledged_by_name,
        },
        "console_url": notice.console_url,
        "ack_url": notice.ack_url,
    }


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The signature header value: ``t=<unix>,v1=<hex HMAC-SHA256 of "t." + body>``."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: bytes, header: str, body: bytes, now: float, tolerance_s: int = 300) -> bool:
    """Check a webhook signature (what a receiver should do), including its freshness."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
        given = fields["v1"]
        stale = abs(now - timestamp) > tolerance_s
    except (ValueError, KeyError, OverflowError):
        return False
    if stale or not given.isascii():  # compare_digest raises TypeError on non-ASCII str
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)


class WebhookChannel:
    """HTTP POST of a signed JSON document."""

    name = "webhook"

    def __init__(self, client: httpx.AsyncClient, secret: bytes) -> None:
        self._client = client
        self._secret = secret

    async def send(self, target: str, notice: Notice) -> None:
        """POST the notice; any non-2xx answer or transport error is a DeliveryError."""
        body = json.dumps(notice_body(notice), separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secret, int(time.time()), body),
            "User-Agent": "eldercare-notifier/1",
        }
        try:
            response = await self._client.post(target, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webhook {target}: {exc!r}") from exc
        if not 200 <= response.status_code < 300:
            raise DeliveryError(f"webhook {target}: HTTP {response.status_code}")


@dataclass(slots=True, frozen=True)
class SmtpConfig:
    """Where e-mail is handed over."""

    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout_s: float = 10.0


def message_text(notice: Notice) -> str:
    """The plain-text body of a notification (e-mail, chat), in the notice's locale."""
    return messages.message_text(notice)


class EmailChannel:
    """Plain-text e-mail over SMTP."""

    name = "email"

    def __init__(self, config: SmtpConfig) -> None:
        self._config = config

    async def send(self, target: str, notice: Notice) -> None:
        """Send one e-mail; SMTP or connection errors are a DeliveryError."""
        a = notice.alert
        msg = EmailMessage()
        msg["From"] = self._config.sender
        msg["To"] = target
        msg["Subject"] = headline(notice)
        msg["X-Eldercare-Alert"] = str(a.id)
        msg["X-Eldercare-Notice"] = notice.notice
        msg.set_content(message_text(notice))
        try:
            await aiosmtplib.send(
                msg,
                hostname=self._config.host,
                port=self._config.port,
                username=self._config.username,
                password=self._config.password,
                start_tls=self._config.starttls,
                timeout=self._config.timeout_s,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"email to {target}: {exc!r}") from exc


class AppriseChannel:
    """Chat apps (WeCom, DingTalk, Feishu, Telegram...) and other services through an apprise
    URL, e.g. ``dingtalk://token/`` or ``tgram://bottoken/chatid`` (China's SMS and voice
    calls are the `sms` and `voice` channels, alerts/notify/cn_cloud.py)."""

    name = "apprise"

    async def send(self, target: str, notice: Notice) -> None:
        """Hand the message to apprise; a refused URL or a failed send is a DeliveryError."""
        import apprise  # imported lazily: it loads many plug-ins

        sender = apprise.Apprise()
        if not sender.add(target):
            raise DeliveryError("apprise: URL not understood (check the scheme and fields)")
        ok = await sender.async_notify(body=message_text(notice), title=headline(notice))
        if not ok:
            raise DeliveryError("apprise: the service did not accept the message")


class ConsoleChannel:
    """The live console stream: a change event every open console receives (PostgreSQL
    NOTIFY on the alert stream channel). The target is ignored."""

    name = "console"

    def __init__(self, notify: Callable[[int], Awaitable[None]]) -> None:
        self._notify = notify

    async def send(self, target: str, notice: Notice) -> None:
        """Publish the alert on the console stream."""
        try:
            await self._notify(notice.alert.id)
        except Exception as exc:
            raise DeliveryError(f"console stream: {exc!r}") from exc


def push_payload(notice: Notice) -> dict[str, Any]:
    """The short JSON notice a browser's service worker receives (kept well under the 4 KB
    push payload limit)."""
    a = notice.alert
    when = messages.when(a.event_at, notice.timezone, notice.locale)
    return {
        "v": 1,
        "notice": notice.notice,
        "locale": notice.locale,
        "title": headline(notice)[:200],
        "alert_id": a.id,
        "kind": a.kind,
        "severity": a.severity.value,
        "elder": (a.elder_name or "")[:100],
        "village": (a.village or "")[:100],
        # The service worker shows `summary` as the body: what happened and when, localized;
        # the detector's own words follow as `detail`.
        "summary": f"{messages.what(notice.locale, a.kind)} · {when}"[:300],
        "detail": a.summary[:300],
        "round": notice.round,
        "console_url": notice.console_url,
        "ack_url": notice.ack_url,
        "ack_label": messages.say(notice.locale, "ack.button"),
    }


class WebPushChannel:
    """Web push (RFC 8030/8291/8292) to a browser subscription: the payload is encrypted for
    the subscriber with pywebpush (aes128gcm), signed with the server's VAPID key, and POSTed to
    the subscription's push service. The target is the stored subscription JSON.

    A push service answering 404/410 means the subscription is gone: `on_gone(target)` is
    awaited (the caller deletes the contact channel) and SubscriptionGone is raised, so the
    person's next channel is used."""

    name = "webpush"

    def __init__(
        self,
        client: httpx.AsyncClient,
        keys: VapidKeys,
        on_gone: Callable[[str], Awaitable[None]],
        ttl_s: int = 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from py_vapid import Vapid02

        self._client = client
        self._keys = keys
        self._vapid = Vapid02.from_raw(keys.private_key.encode())
        self._on_gone = on_gone
        self._ttl_s = ttl_s
        self._clock = clock

    def vapid_headers(self, endpoint: str) -> dict[str, str]:
        """The VAPID Authorization header for one push service (12 h token)."""
        parts = httpx.URL(endpoint)
        port = "" if parts.port is None else f":{parts.port}"
        claims = {
            "aud": f"{parts.scheme}://{parts.host}{port}",
            "sub": self._keys.subject,
            "exp": int(self._clock()) + 12 * 3600,
        }
        signed: dict[str, str] = self._vapid.sign(claims)
        return {"Authorization": signed["Authorization"]}

    async def send(self, target: str, notice: Notice) -> None:
        """Encrypt, sign and POST; 404/410 removes the subscription; any other non-2xx answer
        or transport error is a DeliveryError."""
        from pywebpush import WebPusher, WebPushException

        try:
            sub = parse_target(target)
        except ValueError as exc:
            raise DeliveryError(f"webpush: stored subscription unusable: {exc}") from exc
        data = json.dumps(push_payload(notice), separators=(",", ":")).encode()
        try:
            body: bytes = WebPusher(sub.info()).encode(data, "aes128gcm")["body"]
            auth = self.vapid_headers(sub.endpoint)
        except (WebPushException, ValueError) as exc:
            raise DeliveryError(f"webpush: could not encrypt or sign: {exc!r}") from exc
        headers = {
            **auth,
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(self._ttl_s),
            "Urgency": "high" if notice.alert.severity.value == "critical" else "normal",
            "Topic": f"alert-{notice.alert.id}",
        }
        host = httpx.URL(sub.endpoint).host
        try:
            response = await self._client.post(sub.endpoint, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webpush to {host}: {exc!r}") from exc
        if response.status_code in (404, 410):
            await self._on_gone(target)
            raise SubscriptionGone(
                f"webpush to {host}: HTTP {response.status_code}, subscription gone (removed)"
            )
        if not 200 <= response.status_code < 300:
            raise DeliveryError(f"webpush to {host}: HTTP {response.status_code}")
