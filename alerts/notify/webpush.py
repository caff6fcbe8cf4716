"""Web push plumbing: browser push subscriptions (where a push service accepts messages for
one browser), validated. The server's own identity towards push services, its VAPID keys, is
`alerts.vapid`.

A subscription is stored as a contact channel ``webpush`` whose target is the subscription's
canonical JSON: ``{"endpoint": ..., "keys": {"auth": ..., "p256dh": ...}}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec

from alerts.vapid import b64url_decode

MAX_ENDPOINT_LENGTH = 2048


@dataclass(slots=True, frozen=True)
class Subscription:
    """A browser's push subscription (the JSON of `PushSubscription.toJSON()`)."""

    endpoint: str
    p256dh: str
    auth: str

    def target(self) -> str:
        """The canonical JSON stored as the contact channel's target."""
        return json.dumps(
            {"endpoint": self.endpoint, "keys": {"auth": self.auth, "p256dh": self.p256dh}},
            separators=(",", ":"),
            sort_keys=True,
        )

    def info(self) -> dict[str, object]:
        """The dict pywebpush takes as `subscription_info`."""
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}


def check_endpoint(endpoint: str, allow_loopback: bool) -> str:
    """An endpoint must be https (or http://127.0.0.1 when `allow_loopback`, for tests)."""
    if len(endpoint) > MAX_ENDPOINT_LENGTH:
        raise ValueError(f"endpoint longer than {MAX_ENDPOINT_LENGTH} characters")
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"endpoint is not a URL ({exc})") from exc
    del port
    if not parts.hostname or parts.username or parts.password:
        raise ValueError("endpoint must be an absolute URL with a host and no credentials")
    if parts.scheme == "https":
        return endpoint
    if parts.scheme == "http" and allow_loopback and parts.hostname == "127.0.0.1":
        return endpoint
    raise ValueError("endpoint must be an https URL")


def check_keys(p256dh: str, auth: str) -> None:
    """`p256dh` must be a P-256 public point, `auth` a 16-byte secret, both base64url."""
    try:
        point = b64url_decode(p256dh)
    except ValueError:
        raise ValueError("keys.p256dh is not base64url") from None
    if len(point) != 65 or point[0] != 4:
        raise ValueError("keys.p256dh must be an uncompressed P-256 point (65 bytes)")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        raise ValueError("keys.p256dh is not a point on P-256") from None
    try:
        secret = b64url_decode(auth)
    except ValueError:
        raise ValueError("keys.auth is not base64url") from None
    if len(secret) != 16:
        raise ValueError("keys.auth must be 16 bytes")


def subscription(
    endpoint: str, p256dh: str, auth: str, allow_loopback: bool = False
) -> Subscription:
    """A validated subscription; ValueError says what is wrong."""
    check_endpoint(endpoint, allow_loopback)
    check_keys(p256dh, auth)
    return Subscription(endpoint, p256dh.rstrip("="), auth.rstrip("="))


def parse_target(target: str) -> Subscription:
    """A stored target back into a subscription; ValueError if it is damaged."""
    try:
        doc = json.loads(target)
        endpoint, keys = doc["endpoint"], doc["keys"]
        p256dh, auth = keys["p256dh"], keys["auth"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not a push subscription: {exc!r}") from exc
    if not all(isinstance(v, str) for v in (endpoint, p256dh, auth)):
        raise ValueError("not a push subscription: fields must be strings")
    check_keys(p256dh, auth)
    return Subscription(endpoint, p256dh, auth)
