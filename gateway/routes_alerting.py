"""HTTP routes of alerting: the signed one-click acknowledge link, alert resolution, the
on-duty rota, mutes and the monthly KPI report. Included by `gateway.app.create_app`."""

from __future__ import annotations

import dataclasses
import html
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from alerts import kpi, mutes, store
from alerts.config import AlertSettings
from alerts.escalate import rota
from alerts.model import HUMAN_OUTCOMES, Outcome, Scope, Status
from alerts.notify.links import check_ack_token
from gateway.app import ApiUser, alert_json
from gateway.auth import scope_for
from gateway.errors import ApiError

router = APIRouter()
EDITORS = frozenset({"district_staff", "operator"})


def _ctx(request: Request) -> Any:
    return request.app.state.gateway.ctx


def _alert_settings(request: Request) -> AlertSettings:
    found = getattr(request.app.state, "alert_settings", None)
    if not isinstance(found, AlertSettings):
        raise ApiError(503, "unavailable", "acknowledge links are not configured here")
    return found


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'>"
        f"<title>{html.escape(title)}</title><link rel=stylesheet href='/static/style.css'>"
        f"<main style='max-width:36em;margin:2em auto;font-family:sans-serif'>"
        f"<h1>{html.escape(title)}</h1>{body}</main>",
        status_code=status,
    )


# ---------------------------------------------------------------- one-click acknowledge


@router.get("/ack/{token}", include_in_schema=False)
async def ack_page(token: str, request: Request) -> HTMLResponse:
    """The link in a notification: shows the alert and one button to take it.

    Following the link changes nothing (mail scanners open links); the button does."""
    settings = _alert_settings(request)
    grant = check_ack_token(
        settings.ack_link_secret.get_secret_value().encode(), token, datetime.now(UTC)
    )
    if grant is None:
        return _page("Link not valid", "<p>This link is expired or damaged.</p>", 403)
    async with _ctx(request).pool.connection() as conn:
        alert = await store.get_alert(conn, Scope(everything=True), grant.alert_id)
    if alert is None:
        return _page("No such alert", "<p>The alert does not exist.</p>", 404)
    who = html.escape(alert.elder_name or alert.home_id or "the service")
    info = (
        f"<p><strong>{html.escape(alert.summary)}</strong> — {who}, "
        f"{html.escape(alert.village or '')}<br>since {alert.opened_at:%Y-%m-%d %H:%M} UTC</p>"
    )
    if alert.status is not Status.OPEN:
        by = html.escape(alert.acknowledged_by_name or "someone")
        return _page("Already taken", f"{info}<p>{by} owns this alert ({alert.status.value}).</p>")
    form = (
        f"<form method=post action='/ack/{html.escape(token)}'>"
        "<button type=submit style='font-size:1.4em;padding:.5em 1em'>I'll take it</button>"
        "</form>"
    )
    return _page("Acknowledge alert", info + form)


@router.post("/ack/{token}", include_in_schema=False)
async def ack_by_link(token: str, request: Request) -> HTMLResponse:
    """Acknowledge as the person the link was sent to."""
    settings = _alert_settings(request)
    grant = check_ack_token(
        settings.ack_link_secret.get_secret_value().encode(), token, datetime.now(UTC)
    )
    if grant is None:
        return _page("Link not valid", "<p>This link is expired or damaged.</p>", 403)
    async with _ctx(request).pool.connection() as conn:
        done = await store.acknowledge(conn, grant.alert_id, grant.user_id, "link")
        alert = await store.get_alert(conn, Scope(everything=True), grant.alert_id)
    if alert is None:
        return _page("No such alert", "<p>The alert does not exist.</p>", 404)
    if done:
        return _page(
            "You own this alert",
            f"<p>{html.escape(alert.summary)} — {html.escape(alert.elder_name or '')}.</p>"
            "<p>The others have been told, and the home unit says help is on the way.</p>",
        )
    by = html.escape(alert.acknowledged_by_name or "someone else")
    return _page("Already taken", f"<p>{by} already owns this alert.</p>", 409)


# ---------------------------------------------------------------- lifecycle


class ResolveBody(BaseModel):
    """How an alert ended."""

    outcome: Outcome
    note: str = Field(default="", max_length=2000)


@router.post("/api/v1/alerts/{alert_id}/resolve", tags=["alerts"])
async def resolve(
    alert_id: int, body: ResolveBody, principal: ApiUser, request: Request
) -> dict[str, Any]:
    """Close an alert with an outcome (false alarm, visited and fine, ambulance...)."""
    if not principal.is_staff:
        raise ApiError(403, "forbidden", "only village, town and district staff may resolve")
    if body.outcome not in HUMAN_OUTCOMES:
        raise ApiError(422, "invalid_request", f"choose one of {[o.value for o in HUMAN_OUTCOMES]}")
    scope = scope_for(principal)
    async with _ctx(request).pool.connection() as conn:
        alert = await store.get_alert(conn, scope, alert_id)
        if alert is None:
            raise ApiError(404, "not_found", f"no alert {alert_id}")
        if not await store.resolve(conn, alert_id, principal.user_id, body.outcome, body.note):
            raise ApiError(409, "not_open", f"alert {alert_id} is already resolved")
        alert = await store.get_alert(conn, scope, alert_id)
    assert alert is not None
    return alert_json(alert)


# ---------------------------------------------------------------- rota


def _shift_json(s: rota.Shift) -> dict[str, Any]:
    return {
        "id": s.id,
        "user": s.username,
        "name": s.display_name,
        "region_id": s.region_id,
        "tier": s.tier,
        "starts_at": s.starts_at.isoformat(),
        "ends_at": s.ends_at.isoformat(),
    }


@router.get("/api/v1/rota/coverage", tags=["rota"])
async def rota_coverage(
    principal: ApiUser,
    request: Request,
    region: str | None = None,
    hours: Annotated[float, Query(gt=0, le=24 * 62)] = 48,
) -> dict[str, Any]:
    """Shifts of every region from now for `hours`, who is on duty now, and the uncovered
    stretches (district staff and operators, who keep the whole rota; others read their own
    regions' shifts at GET /api/v1/rota)."""
    if principal.role not in EDITORS:
        raise ApiError(403, "forbidden", "rota coverage is for district staff and operators")
    now = datetime.now(UTC)
    async with _ctx(request).pool.connection() as conn:
        shifts = await rota.list_shifts(conn, now, now + timedelta(hours=hours), region)
        gaps = await rota.coverage_gaps(conn, now, now + timedelta(hours=hours))
    return {
        "shifts": [_shift_json(s) for s in shifts],
        "on_duty_now": [_shift_json(s) for s in shifts if s.starts_at <= now < s.ends_at],
        "gaps": [
            {
                "region_id": g.region_id,
                "tier": g.tier,
                "starts_at": g.starts_at.isoformat(),
                "ends_at": g.ends_at.isoformat(),
            }
            for g in gaps
            if region is None or g.region_id == region
        ],
    }


class ShiftBody(BaseModel):
    """A new shift."""

    user: str
    region_id: str
    starts_at: datetime
    ends_at: datetime


@router.post("/api/v1/rota", tags=["rota"], status_code=201)
async def add_shift(body: ShiftBody, principal: ApiUser, request: Request) -> dict[str, Any]:
    """Add a shift (district staff and operators)."""
    if principal.role not in EDITORS:
        raise ApiError(403, "forbidden", "only district staff and operators edit the rota")
    async with _ctx(request).pool.connection() as conn:
        try:
            shift_id = await rota.add_shift(
                conn, body.user, body.region_id, body.starts_at, body.ends_at
            )
        except rota.RotaError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
    return {"id": shift_id}


@router.delete("/api/v1/rota/{shift_id}", tags=["rota"])
async def remove_shift(shift_id: int, principal: ApiUser, request: Request) -> dict[str, Any]:
    """Remove a shift (district staff and operators)."""
    if principal.role not in EDITORS:
        raise ApiError(403, "forbidden", "only district staff and operators edit the rota")
    async with _ctx(request).pool.connection() as conn:
        if not await rota.remove_shift(conn, shift_id):
            raise ApiError(404, "not_found", f"no shift {shift_id}")
    return {"removed": shift_id}


# ---------------------------------------------------------------- mutes


class SilenceBody(BaseModel):
    """A silence: for one home or one region, some kinds or all, until an end time."""

    home_id: str | None = None
    region_id: str | None = None
    kinds: list[str] | None = None
    ends_at: datetime
    reason: str = Field(min_length=1, max_length=500)


_IN_SUBTREE = """
WITH RECURSIVE subtree(id) AS (
    SELECT id FROM regions WHERE id = %(root)s
    UNION ALL
    SELECT r.id FROM regions r JOIN subtree s ON r.parent_id = s.id
)
SELECT EXISTS (SELECT 1 FROM subtree WHERE id = %(region)s)
    OR EXISTS (SELECT 1 FROM homes WHERE id = %(home)s AND village_id IN (SELECT id FROM subtree))
"""


@router.post("/api/v1/silences", tags=["mutes"], status_code=201)
async def add_silence(body: SilenceBody, principal: ApiUser, request: Request) -> dict[str, Any]:
    """Silence non-emergency alerts of a home or region (in the caller's own part of the
    region tree) until `ends_at`, with a reason."""
    if not (principal.is_staff or principal.role == "operator"):
        raise ApiError(403, "forbidden", "only staff and operators may silence")
    if (body.home_id is None) == (body.region_id is None):
        raise ApiError(422, "invalid_request", "give exactly one of home_id and region_id")
    now = datetime.now(UTC)
    if body.ends_at.tzinfo is None or body.ends_at <= now:
        raise ApiError(422, "invalid_request", "ends_at must be a future time with a time zone")
    async with _ctx(request).pool.connection() as conn:
        if principal.role != "operator":
            cur = await conn.execute(
                _IN_SUBTREE,
                {"root": principal.region_id, "region": body.region_id, "home": body.home_id},
            )
            row = await cur.fetchone()
            if not (row and row[0]):
                target = body.home_id or body.region_id
                raise ApiError(404, "not_found", f"no home or region {target!r} in your area")
        try:
            silence_id = await mutes.add_silence(
                conn,
                starts_at=now,
                ends_at=body.ends_at,
                reason=body.reason,
                home_id=body.home_id,
                region_id=body.region_id,
                kinds=body.kinds,
                user_id=principal.user_id,
            )
        except ValueError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
        except psycopg.errors.IntegrityError:
            target = body.home_id or body.region_id
            raise ApiError(404, "not_found", f"no home or region {target!r}") from None
    return {"id": silence_id}


# ---------------------------------------------------------------- KPIs


@router.get("/api/v1/reports/alerts", tags=["reports"])
async def kpi_report(
    principal: ApiUser,
    request: Request,
    month: Annotated[str, Query(pattern=r"^\d{4}-\d{2}$")],
    region: str | None = None,
) -> dict[str, Any]:
    """The month's alert KPIs: total, per kind, per town, per village (staff: their region)."""
    if not principal.is_staff:
        raise ApiError(403, "forbidden", "reports are for staff")
    region = region or principal.region_id
    async with _ctx(request).pool.connection() as conn:
        if region != principal.region_id and principal.role != "district_staff":
            raise ApiError(403, "forbidden", "you may report on your own region only")
        try:
            rows = await kpi.report(conn, month, region)
        except ValueError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
    return {"month": month, "region": region, "rows": [dataclasses.asdict(r) for r in rows]}
