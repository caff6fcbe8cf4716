"""HTTP routes of web push: the VAPID public key, a signed-in user's browser subscriptions,
and the service worker. Included by `gateway.app.create_app`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from alerts.config import AlertSettings
from alerts.notify import push_store
from alerts.notify.webpush import MAX_ENDPOINT_LENGTH, subscription
from gateway.app import ApiUser
from gateway.errors import ApiError

router = APIRouter()
_WORKER = Path(__file__).resolve().parent / "static" / "sw.js"


def _public_key(request: Request) -> str:
    found = getattr(request.app.state, "vapid_public_key", None)
    if not isinstance(found, str):
        raise ApiError(503, "unavailable", "web push is not configured here")
    return found


def _allow_loopback(request: Request) -> bool:
    found = getattr(request.app.state, "alert_settings", None)
    return isinstance(found, AlertSettings) and found.webpush_allow_loopback


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


@router.get("/api/v1/push/key", tags=["push"])
async def push_key(request: Request, principal: ApiUser) -> dict[str, str]:
    """The VAPID public key a browser subscribes with (`applicationServerKey`)."""
    return {"public_key": _public_key(request)}


@router.get("/api/v1/push/subscriptions", tags=["push"])
async def list_subscriptions(request: Request, principal: ApiUser) -> dict[str, Any]:
    """The caller's browser subscriptions (endpoints only; keys stay on the server)."""
    async with request.app.state.gateway.ctx.pool.connection() as conn:
        rows = await push_store.subscriptions(conn, principal.user_id)
    return {
        "subscriptions": [{"id": i, "endpoint": e, "position": p} for i, e, p in rows],
    }


@router.post("/api/v1/push/subscriptions", status_code=201, tags=["push"])
async def add_subscription(
    body: PushSubscriptionBody, request: Request, principal: ApiUser
) -> dict[str, Any]:
    """Store the caller's browser subscription as their first contact channel."""
    _public_key(request)
    try:
        sub = subscription(
            body.endpoint, body.keys.p256dh, body.keys.auth, _allow_loopback(request)
        )
    except ValueError as exc:
        raise ApiError(422, "invalid_subscription", str(exc)) from None
    async with request.app.state.gateway.ctx.pool.connection() as conn:
        channel_id = await push_store.subscribe(conn, principal.user_id, sub)
    return {"id": channel_id, "endpoint": sub.endpoint}


@router.delete("/api/v1/push/subscriptions", status_code=204, tags=["push"])
async def remove_subscription(
    request: Request,
    principal: ApiUser,
    endpoint: Annotated[str, Query(min_length=1, max_length=MAX_ENDPOINT_LENGTH)],
) -> None:
    """Stop pushing to this browser (the caller's own subscription only)."""
    async with request.app.state.gateway.ctx.pool.connection() as conn:
        removed = await push_store.unsubscribe(conn, principal.user_id, endpoint)
    if not removed:
        raise ApiError(404, "not_found", "you have no push subscription with this endpoint")


@router.get("/sw.js", include_in_schema=False)
async def service_worker() -> FileResponse:
    """The service worker, served from the root so it may control the whole console."""
    return FileResponse(
        _WORKER, media_type="text/javascript", headers={"Cache-Control": "no-cache"}
    )
