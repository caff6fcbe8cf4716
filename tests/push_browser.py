"""A stand-in for a browser's push subscription: a real P-256 key pair and auth secret, so
tests can decrypt what the server pushed (RFC 8291 aes128gcm) and check its VAPID header."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import http_ece
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from py_vapid import Vapid02

from alerts.vapid import b64url, b64url_decode


@dataclass
class Browser:
    """One subscribed browser: keys stay here, the subscription JSON goes to the server."""

    endpoint: str
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth: bytes = field(default_factory=lambda: os.urandom(16))

    def subscription(self) -> dict[str, Any]:
        """What `PushSubscription.toJSON()` gives the page."""
        public = self.key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": b64url(public), "auth": b64url(self.auth)},
        }

    def decrypt(self, body: bytes) -> dict[str, Any]:
        """Decrypt a pushed message and parse its JSON."""
        plain: bytes = http_ece.decrypt(
            body, private_key=self.key, auth_secret=self.auth, version="aes128gcm"
        )
        doc: dict[str, Any] = json.loads(plain)
        return doc


def vapid_claims(authorization: str, public_key: str) -> dict[str, Any]:
    """Check a ``vapid t=<jwt>,k=<key>`` header: the key is `public_key` and the JWT's
    signature verifies against it. Returns the JWT claims."""
    assert authorization.startswith("vapid "), authorization
    parts = dict(p.split("=", 1) for p in authorization.removeprefix("vapid ").split(","))
    assert parts["k"] == public_key
    assert Vapid02.verify(authorization) is True
    payload = parts["t"].split(".")[1]
    claims: dict[str, Any] = json.loads(b64url_decode(payload))
    return claims
