"""Web push plumbing: VAPID keys (the server's identity towards push services) and browser
push subscriptions (where a push service accepts messages for one browser).

A subscription is stored as a contact channel ``webpush`` whose target is the subscription's
canonical JSON: ``{"endpoint": ..., "keys": {"auth": ..., "p256dh": ...}}``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

DEFAULT_SUBJECT = "mailto:eldercare@localhost"
MAX_ENDPOINT_LENGTH = 2048


def b64url(data: bytes) -> str:
    """Unpadded base64url, as the Push API writes keys."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding; ValueError when it is not base64url."""
    if not text or any(c not in _B64URL for c in text.rstrip("=")):
        raise ValueError("not base64url")
    stripped = text.rstrip("=")
    try:
        return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(slots=True, frozen=True)
class VapidKeys:
    """The server's VAPID key pair and contact (RFC 8292)."""

    private_key: str
    """base64url of the raw 32-byte P-256 private scalar."""
    public_key: str
    """base64url of the uncompressed public point: the browser's `applicationServerKey`."""
    subject: str
    """A ``mailto:`` or ``https:`` contact for the push services' operators."""


def _private_from_text(text: str) -> ec.EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = load_pem_private_key(text.encode(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
                key.curve, ec.SECP256R1
            ):
                raise ValueError("the PEM key is not a P-256 EC key")
            return key
        raw = b64url_decode(text)
        if len(raw) != 32:
            raise ValueError(f"expected 32 bytes, got {len(raw)}")
        return ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"VAPID private key not usable ({exc}); give the base64url raw key or a PEM"
        ) from exc


def raw_private(key: ec.EllipticCurvePrivateKey) -> str:
    """The base64url raw form of a private key."""
    return b64url(key.private_numbers().private_value.to_bytes(32, "big"))


def public_key_of(private_key: str) -> str:
    """The base64url public key (applicationServerKey) of a private key; ValueError if bad."""
    key = _private_from_text(private_key)
    return b64url(key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint))


def generate_private_key() -> str:
    """A new VAPID private key, base64url raw."""
    return raw_private(ec.generate_private_key(ec.SECP256R1()))


def check_subject(subject: str) -> str:
    """A VAPID subject must be a mailto: or https: URL; returns it or raises ValueError."""
    if not (subject.startswith("mailto:") and "@" in subject) and not subject.startswith(
        "https://"
    ):
        raise ValueError("the VAPID subject must be 'mailto:someone@example.org' or https://...")
    return subject


def load_keys(
    private_key: str | None, public_key: str | None, subject: str, key_file: Path | None
) -> VapidKeys:
    """The VAPID keys from settings; without a private key, from `key_file` (created once,
    mode 0600, for development). A public key that does not match the private one is refused."""
    if private_key is None:
        if key_file is None:
            raise ValueError("no VAPID private key configured")
        if key_file.exists():
            private_key = key_file.read_text().strip()
        else:
            key_file.parent.mkdir(parents=True, exist_ok=True)
            private_key = generate_private_key()
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(private_key + "\n")
    key = _private_from_text(private_key)
    derived = public_key_of(private_key)
    if public_key is not None and public_key.strip().rstrip("=") != derived:
        raise ValueError("the VAPID public key does not belong to the private key")
    return VapidKeys(raw_private(key), derived, check_subject(subject))


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
