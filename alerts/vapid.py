"""The server's web push identity (VAPID, RFC 8292): its P-256 key pair and contact subject,
from settings or (development) created once in a key file; and the base64url encoding the
Push API writes keys in."""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

DEFAULT_SUBJECT = "mailto:eldercare@localhost"


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
