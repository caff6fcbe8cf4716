"""Web push: the VAPID public key, a signed-in person's browser subscriptions, and the
service worker."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from alerts.notify import push_store
from alerts.notify.webpush import MAX_ENDPOINT_LENGTH, subscription
from gateway.deps import ApiUser, Ctx, Db, push_public_key
from gateway.errors import ApiError
from gateway.schemas.push import (
    PushKey,
    PushSubscribed,
    PushSubscription,
    PushSubscriptionBody,
    PushSubscriptions,
)

router = APIRouter()
WORKER = Path(__file__).resolve().parent.parent / "static" / "sw.js"
"""The service worker script."""


@router.get("/api/v1/push/key", tags=["push"])
async def push_key(principal: ApiUser, ctx: Ctx) -> PushKey:
    """The VAPID public key a browser subscribes with (`applicationServerKey`)."""
    return PushKey(public_key=push_public_key(ctx))


@router.get("/api/v1/push/subscriptions", tags=["push"])
async def list_subscriptions(principal: ApiUser, conn: Db) -> PushSubscriptions:
    """The caller's browser subscriptions (endpoints only; keys stay on the server)."""
    rows = await push_store.subscriptions(conn, principal.user_id)
    return PushSubscriptions(
        subscriptions=[PushSubscription(id=i, endpoint=e, position=p) for i, e, p in rows]
    )


@router.post("/api/v1/push/subscriptions", status_code=201, tags=["push"])
async def add_subscription(
    body: PushSubscriptionBody, principal: ApiUser, ctx: Ctx
) -> PushSubscribed:
    """Store the caller's browser subscription as their first contact channel."""
    push_public_key(ctx)
    allow_loopback = ctx.alert_settings is not None and ctx.alert_settings.webpush_allow_loopback
    try:
        sub = subscription(body.endpoint, body.keys.p256dh, body.keys.auth, allow_loopback)
    except ValueError as exc:
        raise ApiError(422, "invalid_subscription", str(exc)) from None
    async with ctx.pool.connection() as conn:
        channel_id = await push_store.subscribe(conn, principal.user_id, sub)
    return PushSubscribed(id=channel_id, endpoint=sub.endpoint)


@router.delete("/api/v1/push/subscriptions", status_code=204, tags=["push"])
async def remove_subscription(
    principal: ApiUser,
    conn: Db,
    endpoint: Annotated[str, Query(min_length=1, max_length=MAX_ENDPOINT_LENGTH)],
) -> None:
    """Stop pushing to this browser (the caller's own subscription only)."""
    if not await push_store.unsubscribe(conn, principal.user_id, endpoint):
        raise ApiError(404, "not_found", "you have no push subscription with this endpoint")


@router.get("/sw.js", include_in_schema=False)
async def service_worker() -> FileResponse:
    """The service worker, served from the root so it may control the whole console."""
    return FileResponse(WORKER, media_type="text/javascript", headers={"Cache-Control": "no-cache"})
