"""Web push: the public key and a signed-in person's browser subscriptions."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from alerts.notify.webpush import MAX_ENDPOINT_LENGTH
from gateway.schemas.common import Schema


class PushKeys(BaseModel):
    """The subscription's encryption keys (base64url)."""

    model_config = ConfigDict(extra="forbid")
    p256dh: str = Field(min_length=1, max_length=200)
    auth: str = Field(min_length=1, max_length=100)


class PushSubscriptionBody(BaseModel):
    """A browser's `PushSubscription.toJSON()`."""

    model_config = ConfigDict(extra="forbid")
    endpoint: str = Field(min_length=1, max_length=MAX_ENDPOINT_LENGTH)
    keys: PushKeys
    expirationTime: float | None = None


class PushKey(Schema):
    """The VAPID public key a browser subscribes with (`applicationServerKey`)."""

    public_key: str


class PushSubscription(Schema):
    """One browser subscription (its endpoint; the keys stay on the server) and its place
    in the person's contact order."""

    id: int
    endpoint: str
    position: int


class PushSubscriptions(Schema):
    """The caller's browser subscriptions."""

    subscriptions: list[PushSubscription]


class PushSubscribed(Schema):
    """The contact channel a subscription was stored as."""

    id: int
    endpoint: str
