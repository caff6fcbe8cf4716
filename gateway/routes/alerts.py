"""Alerts: the caller's list, the live stream, one alert with its audit trail, and taking
(acknowledging) and resolving an alert."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from alerts import store, views
from alerts.escalate.state import escalations
from alerts.model import HUMAN_OUTCOMES, Status
from gateway.auth import scope_for
from gateway.deps import ApiUser, Auth, Ctx, Db
from gateway.errors import ApiError
from gateway.params import Before, Limit, Statuses
from gateway.privacy.reads import audit_list_read
from gateway.queries import users
from gateway.schemas.alerts import (
    Alert,
    AlertDetail,
    AlertEvent,
    AlertList,
    EscalationList,
    EscalationSchema,
    ResolveBody,
    ToldSchema,
    alert_json,
)
from gateway.sessions import credentials

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

SSE_PING_S = 15


@router.get("")
async def list_alerts(
    principal: ApiUser,
    conn: Db,
    status: Statuses = None,
    limit: Limit = 50,
    before: Before = None,
) -> AlertList:
    """Alerts the caller may see, newest first; page with `before=<next_before>`."""
    statuses = status or [Status.OPEN, Status.ACKNOWLEDGED]
    rows = await views.list_alerts(conn, scope_for(principal), statuses, limit + 1, before)
    await audit_list_read(
        conn, principal.user_id, "alerts", (a.elder_id for a in rows[:limit]), len(rows[:limit])
    )
    return AlertList.of(rows, limit)


# Before /{alert_id}, which would take "escalation" for an id.
@router.get("/escalation")
async def escalation(
    principal: ApiUser,
    conn: Db,
    ids: Annotated[str, Query(max_length=2000, description="alert ids, comma-separated")],
) -> EscalationList:
    """Where each alert's escalation stands: tiers reached, who was told over which
    channel with what result, next round and its new tiers (staff and operators)."""
    if not (principal.is_staff or principal.role == "operator"):
        raise ApiError(403, "forbidden", "only staff and operators see who was told")
    try:
        wanted = sorted({int(part) for part in ids.split(",") if part.strip()})
    except ValueError:
        raise ApiError(422, "invalid_request", "ids: comma-separated alert ids") from None
    if len(wanted) > 200:
        raise ApiError(422, "invalid_request", "ids: at most 200 alerts at a time")
    visible = await views.visible_ids(conn, scope_for(principal), wanted)
    found = await escalations(conn, visible)
    return EscalationList(
        items=[
            EscalationSchema(
                alert_id=e.alert_id,
                round=e.round,
                tiers=list(e.tiers),
                told=[ToldSchema(**dataclasses.asdict(t)) for t in e.told],
                next_at=e.next_at,
                next_tiers=list(e.next_tiers),
            )
            for e in (found[i] for i in visible if i in found)
        ]
    )


# Before /{alert_id}, which would take "stream" for an id.
@router.get(
    "/stream",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def alert_stream(
    request: Request, principal: ApiUser, ctx: Ctx, auth: Auth
) -> EventSourceResponse:
    """Server-sent events: `hello` on connect, then `alert` (the alert's JSON) whenever
    an alert the caller may see changes. `resync` then end of stream: reconnect and
    re-read the list (some changes may have been missed); `signed_out` then end of stream
    when the session ends. Holds a database connection only while reading a change."""
    token, _ = credentials(request)
    assert token is not None  # the principal came from it
    # One audit row per connection (the alerts it will carry are not known yet), never one
    # per event.
    async with ctx.pool.connection() as conn:
        await audit_list_read(conn, principal.user_id, "alert_stream", (), 0)

    async def events() -> AsyncIterator[ServerSentEvent]:
        async with ctx.broadcaster.subscribe() as feed:
            hello = {"user": principal.username, "role": principal.role}
            yield ServerSentEvent(json.dumps(hello), event="hello", retry=3000)
            while True:
                alert_id = await feed.get()
                if alert_id is None:
                    yield ServerSentEvent("{}", event="resync")
                    return
                async with ctx.pool.connection() as conn:
                    current = await auth.principal(conn, token)
                    if current is None:
                        yield ServerSentEvent("{}", event="signed_out")
                        return
                    alert = await views.get_alert(conn, scope_for(current), alert_id)
                if alert is not None:
                    yield ServerSentEvent(
                        json.dumps(alert_json(alert)), event="alert", id=str(alert.id)
                    )

    return EventSourceResponse(events(), ping=SSE_PING_S, send_timeout=30)


@router.get("/{alert_id}")
async def get_alert(alert_id: int, principal: ApiUser, conn: Db) -> AlertDetail:
    """One alert and its audit trail; 404 when it is not the caller's to see."""
    alert = await views.get_alert(conn, scope_for(principal), alert_id)
    if alert is None:
        raise ApiError(404, "not_found", f"no alert {alert_id}")
    events = await views.alert_events(conn, alert_id)
    names = await users.display_names(conn, (e.actor_id for e in events if e.actor_id is not None))
    return AlertDetail(
        **Alert.of(alert).model_dump(),
        events=[
            AlertEvent(
                at=e.at,
                action=e.action,
                actor_id=e.actor_id,
                actor=names.get(e.actor_id) if e.actor_id is not None else None,
                detail=e.detail,
            )
            for e in events
        ],
    )


@router.post("/{alert_id}/ack")
async def acknowledge(alert_id: int, principal: ApiUser, conn: Db) -> Alert:
    """Take ownership of an open alert: stops escalation and tells the others."""
    if not principal.is_staff:
        raise ApiError(
            403, "forbidden", "only village, town and district staff may acknowledge alerts"
        )
    scope = scope_for(principal)
    alert = await views.get_alert(conn, scope, alert_id)
    if alert is None:
        raise ApiError(404, "not_found", f"no alert {alert_id}")
    if alert.status is Status.OPEN and await store.acknowledge(
        conn, alert_id, principal.user_id, "api"
    ):
        alert = await views.get_alert(conn, scope, alert_id)
        assert alert is not None
        return Alert.of(alert)
    alert = await views.get_alert(conn, scope, alert_id) or alert
    by = f" by {alert.acknowledged_by_name}" if alert.acknowledged_by_name else ""
    raise ApiError(409, "not_open", f"alert {alert_id} is already {alert.status.value}{by}")


async def _progress(alert_id: int, principal: ApiUser, conn: Db, step: str) -> Alert:
    if not principal.is_staff:
        raise ApiError(403, "forbidden", "only village, town and district staff may do this")
    scope = scope_for(principal)
    if await views.get_alert(conn, scope, alert_id) is None:
        raise ApiError(404, "not_found", f"no alert {alert_id}")
    result = await store.mark_progress(conn, alert_id, principal.user_id, step)
    if result == "resolved":
        raise ApiError(409, "resolved", f"alert {alert_id} is already resolved")
    alert = await views.get_alert(conn, scope, alert_id)
    assert alert is not None
    return Alert.of(alert)


@router.post("/{alert_id}/en-route")
async def en_route(alert_id: int, principal: ApiUser, conn: Db) -> Alert:
    """ "On my way": the caller is going to the elder (acknowledges an open alert first).
    Said twice, the first time stands."""
    return await _progress(alert_id, principal, conn, "en_route")


@router.post("/{alert_id}/arrived")
async def arrived(alert_id: int, principal: ApiUser, conn: Db) -> Alert:
    """ "Arrived": a worker is with the elder (acknowledges an open alert first). Said
    twice, the first time stands."""
    return await _progress(alert_id, principal, conn, "arrived")


@router.post("/{alert_id}/resolve")
async def resolve(alert_id: int, body: ResolveBody, principal: ApiUser, conn: Db) -> Alert:
    """Close an alert with an outcome (false alarm, visited and fine, ambulance...)."""
    if not principal.is_staff:
        raise ApiError(403, "forbidden", "only village, town and district staff may resolve")
    if body.outcome not in HUMAN_OUTCOMES:
        raise ApiError(422, "invalid_request", f"choose one of {[o.value for o in HUMAN_OUTCOMES]}")
    scope = scope_for(principal)
    alert = await views.get_alert(conn, scope, alert_id)
    if alert is None:
        raise ApiError(404, "not_found", f"no alert {alert_id}")
    if not await store.resolve(conn, alert_id, principal.user_id, body.outcome, body.note):
        raise ApiError(409, "not_open", f"alert {alert_id} is already resolved")
    alert = await views.get_alert(conn, scope, alert_id)
    assert alert is not None
    return Alert.of(alert)
