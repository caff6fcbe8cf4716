"""The staff console pages: the live alert queue, the elders and an elder's file (with
recording a visit), device health, the rota and this week's care visits. Cookie sessions;
without one a page redirects to sign-in."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from alerts import views
from alerts.care import VISITS_PER_WEEK, week_start
from alerts.consent import Purpose
from alerts.model import Alert, Severity, Status
from alerts.notify.messages import KINDS
from gateway import access
from gateway.access import Area
from gateway.auth import scope_for
from gateway.deps import Clock, Db, PageUser, SameSite
from gateway.i18n import messages
from gateway.privacy import consents
from gateway.privacy.reads import audit_list_read
from gateway.queries import care, devices, elders, places
from gateway.queries.care import Compliance
from gateway.rendering import not_found, render
from gateway.routes.rota import page_gaps
from gateway.schemas.alerts import alert_json
from gateway.status import elder_status

router = APIRouter(prefix="/console", include_in_schema=False)

CONSOLE_LIMIT = 200
_SEVERITY_ORDER = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}
_STATUS_ORDER = {Status.OPEN: 0, Status.ACKNOWLEDGED: 1, Status.RESOLVED: 2}
_JS_KEYS = (
    "critical",
    "warning",
    "info",
    "open",
    "acknowledged",
    "resolved",
    "acknowledge",
    "resolve",
    "no_open_alerts",
    "live",
    "connecting",
    "reconnecting",
    "just_now",
    "min",
    "h",
    "d",
    "alerts_title",
    "error_outcome",
    "sos",
    "care_visits",
    "en_route",
    "arrived",
    "en_route_by",
    "arrived_by",
    "reached",
    "next_round",
    "repeat_at",
    "escalation_stopped",
    "told_sent",
    "told_pending",
    "told_failed",
    "told_cancelled",
    "nobody_told",
    "tier_village",
    "tier_town",
    "tier_district",
    "tier_family",
    "tier_operator",
    "sound_on",
    "sound_off",
    "severity",
    "elder",
    "place",
    "summary",
    "age",
    "status",
    "escalation",
    "call",
    *KINDS,
)


def console_order(alert: Alert) -> tuple[int, int, int]:
    """Sort key of the console: open first, then most severe, then newest."""
    return (_STATUS_ORDER[alert.status], _SEVERITY_ORDER[alert.severity], -alert.id)


@router.get("")
async def console(request: Request, principal: PageUser, clock: Clock, conn: Db) -> Response:
    """The live alert queue (the family page for family members)."""
    if principal.role == "family":
        return RedirectResponse("/family", 303)
    alerts = await views.list_alerts(
        conn, scope_for(principal), [Status.OPEN, Status.ACKNOWLEDGED], CONSOLE_LIMIT
    )
    alerts.sort(key=console_order)
    await audit_list_read(
        conn, principal.user_id, "console", (a.elder_id for a in alerts), len(alerts)
    )
    return render(
        request,
        "console.html",
        principal,
        clock(),
        alerts=alerts,
        alerts_json=[alert_json(a) for a in alerts],
        can_ack=principal.is_staff,
        open_count=sum(a.status is Status.OPEN for a in alerts),
        js_messages=messages(principal.locale, _JS_KEYS),
        outcomes=views.OUTCOMES,
        regions=await places.regions(conn, access.region_filter(principal)),
        can_file=access.may(principal, Area.HEALTH),
    )


@router.get("/elders")
async def elders_page(
    request: Request, principal: PageUser, clock: Clock, conn: Db, q: str | None = None
) -> Response:
    """The elders the staff member looks after, searchable by name."""
    if not access.may(principal, Area.HEALTH):
        return not_found(request, principal, clock())
    rows, _ = await elders.elders(
        conn, access.home_filter(principal), None, (q or "")[:80] or None, 500, 0
    )
    await audit_list_read(
        conn,
        principal.user_id,
        "elders_page",
        (h.elder_id for h in rows),
        detail={"searched": bool(q)},
    )
    return render(request, "elders.html", principal, clock(), elders=rows, q=q or "")


@router.get("/elders/{elder_id}")
async def elder_page(
    request: Request, elder_id: str, principal: PageUser, clock: Clock, conn: Db
) -> Response:
    """The elder's file, status, alert history and recent visits (audited)."""
    if not access.may(principal, Area.HEALTH):
        return not_found(request, principal, clock())
    now = clock()
    elder = await elders.elder(conn, access.home_filter(principal), elder_id)
    if elder is None:
        return not_found(request, principal, clock())
    await elders.audit_health_read(conn, principal.user_id, elder_id, "file", {})
    held = await consents.consents(conn, elder_id, now)
    current = {c.purpose for c in held if c.current}
    # Without a current monitoring consent the file shows no health data (status, timeline).
    status = (
        await elder_status(conn, principal, elder, now)
        if Purpose.MONITORING.value in current
        else None
    )
    scope = dataclasses.replace(scope_for(principal), home_ids=(elder.home_id,))
    history = await views.list_alerts(conn, scope, list(Status), 30)
    visits, _ = await care.visits(
        conn,
        access.home_filter(principal),
        now - timedelta(days=31),
        now + timedelta(minutes=5),
        elder_id=elder_id,
        limit=20,
        offset=0,
    )
    return render(
        request,
        "elder.html",
        principal,
        clock(),
        elder=elder,
        status=status,
        history=history,
        visits=visits,
        saved=request.query_params.get("saved") == "1",
        consents=[c for c in held if c.current],
        consent_missing=[p.value for p in Purpose if p.value not in current],
    )


@router.post("/elders/{elder_id}/visits")
async def record_visit_form(
    request: Request,
    elder_id: str,
    principal: PageUser,
    clock: Clock,
    conn: Db,
    same_site: SameSite,
    note: Annotated[str, Form(max_length=2000)] = "",
    source: Annotated[str, Form(max_length=10)] = "console",
) -> Response:
    """Record a visit from the elder's page (staff, from our own pages)."""
    if not same_site or not access.may(principal, Area.CARE):
        return render(request, "not_found.html", principal, clock(), 403)
    elder = await elders.elder(conn, access.home_filter(principal), elder_id)
    if elder is None:
        return not_found(request, principal, clock())
    await care.add_visit(
        conn,
        elder_id,
        principal.user_id,
        clock(),
        "phone" if source == "phone" else "console",
        note,
        principal.user_id,
    )
    return RedirectResponse(f"/console/elders/{elder_id}?saved=1", 303)


@router.get("/devices")
async def devices_page(
    request: Request, principal: PageUser, clock: Clock, conn: Db, offline: bool = False
) -> Response:
    """Device health in the region (`offline=true`: the silent ones only)."""
    if not access.may(principal, Area.DEVICES):
        return not_found(request, principal, clock())
    rows = await devices.devices(conn, access.home_filter(principal), clock())
    if offline:
        rows = [d for d in rows if not d.online]
    return render(
        request,
        "devices.html",
        principal,
        clock(),
        devices=rows,
        offline=offline,
        show_elder=access.may(principal, Area.HEALTH),
        offline_count=sum(not d.online for d in rows),
    )


@router.get("/rota")
async def rota_page(request: Request, principal: PageUser, clock: Clock, conn: Db) -> Response:
    """Who is on duty this week, and the stretches with nobody on duty (red boxes)."""
    if not access.may(principal, Area.CARE):
        return not_found(request, principal, clock())
    now = clock()
    end = now + timedelta(days=7)
    rows = await care.rota(conn, access.rota_filter(principal), now, end, None)
    gaps = await page_gaps(conn, principal, now, end)
    return render(request, "rota.html", principal, clock(), shifts=rows, now=now, gaps=gaps)


@router.get("/visits")
async def visits_page(request: Request, principal: PageUser, clock: Clock, conn: Db) -> Response:
    """Elders below the visit target this week, by village, and the recent visits."""
    if not access.may(principal, Area.CARE):
        return not_found(request, principal, clock())
    now = clock()
    week = week_start(now.date())
    rows = await care.compliance(conn, access.home_filter(principal), week, None)
    recent, _ = await care.visits(
        conn,
        access.home_filter(principal),
        now - timedelta(days=7),
        now + timedelta(minutes=5),
        elder_id=None,
        limit=50,
        offset=0,
    )
    below: dict[str, list[Compliance]] = {}
    for r in rows:
        if r.visits < VISITS_PER_WEEK and not r.away:
            below.setdefault(r.village, []).append(r)
    return render(
        request,
        "visits.html",
        principal,
        clock(),
        week=week,
        below=below,
        target=VISITS_PER_WEEK,
        recent=recent,
    )
