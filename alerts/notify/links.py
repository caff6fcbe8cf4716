"""Signed one-click acknowledge links: the token names the alert and the recipient, expires,
and is signed with HMAC-SHA256, so following it needs no password."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime


@dataclass(slots=True, frozen=True)
class AckGrant:
    """What a valid token allows: `user_id` may acknowledge `alert_id` until `expires`."""

    alert_id: int
    user_id: int
    expires: int


def _mac(secret: bytes, payload: str) -> str:
    digest = hmac.new(secret, b"ack." + payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:20]).decode().rstrip("=")


def ack_token(secret: bytes, alert_id: int, user_id: int, expires: datetime) -> str:
    """A URL-safe token: ``<alert>.<user>.<expiry unix>.<signature>``."""
    payload = f"{alert_id}.{user_id}.{int(expires.timestamp())}"
    return f"{payload}.{_mac(secret, payload)}"


def check_ack_token(secret: bytes, token: str, now: datetime) -> AckGrant | None:
    """The grant of a token, or None when it is malformed, forged or expired."""
    parts = token.split(".")
    if len(parts) != 4 or not all(p.isascii() for p in parts):
        return None
    payload = ".".join(parts[:3])
    if not hmac.compare_digest(_mac(secret, payload), parts[3]):
        return None
    try:
        alert_id, user_id, expires = (int(p) for p in parts[:3])
    except ValueError:
        return None
    if expires < now.timestamp():
        return None
    return AckGrant(alert_id, user_id, expires)
