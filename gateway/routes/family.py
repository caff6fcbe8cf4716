"""The family pages: "is Mum all right" for a family member's elder (or the list of their
elders). Cookie sessions; without one a page redirects to sign-in."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from alerts import usual, views
from alerts.model import Status
from gateway import access
from gateway.access import Area
from gateway.auth import scope_for
from gateway.deps import Clock, Db, PageUser
from gateway.headline import clock_time, headline, what
from gateway.i18n import messages, translator
from gateway.privacy.reads import audit_list_read
from gateway.queries import elders, readings
from gateway.queries.devices import Device
from gateway.rendering import age_text, local_time, not_found, render
from gateway.routes import daily_summary
from gateway.status import elder_status, local_day
from gateway.timeline import EVENING_BEFORE, LEGEND, day_timeline

router = APIRouter(prefix="/family", include_in_schema=False)
_JS_KEYS = ("family_live", "family_offline", "digest_saved", "digest_failed")


@dataclasses.dataclass(frozen=True, slots=True)
class DeviceLine:
    """A device described in plain words."""

    ok: bool
    text: str


def device_line(d: Device, tz: str, t: Callable[..., str]) -> DeviceLine:
    """How device `d` is doing, in words (times in time zone `tz`)."""
    title, room = t(d.kind), t(d.room) if d.room else ""
    if d.last_seen is None:
        text = t("device_never", title=title, room=room)
    elif d.online:
        text = t("device_ok", title=title, room=room)
    else:
        text = t("device_line_silent", title=title, room=room, since=local_time(d.last_seen, tz))
    low = d.battery is not None and d.battery < 20
    if low:
        text += "; " + t("battery_low", level=round(d.battery or 0))
    return DeviceLine(d.online and not low, text)


@router.get("")
async def family_home(request: Request, principal: PageUser, clock: Clock, conn: Db) -> Response:
    """The family member's elder (or the list of them; the console for staff)."""
    if principal.role != "family":
        return RedirectResponse("/console", 303)
    rows, _ = await elders.elders(conn, access.home_filter(principal), None, None, 50, 0)
    if len(rows) == 1 and rows[0].elder_id:
        return RedirectResponse(f"/family/{rows[0].elder_id}", 303)
    await audit_list_read(conn, principal.user_id, "family_list", (h.elder_id for h in rows))
    return render(request, "family_list.html", principal, clock(), elders=rows)


async def _live(
    conn: Db, principal: PageUser, elder: elders.Elder, now: datetime
) -> dict[str, Any]:
    """What the live parts of the page show (the headline, the alerts): read for the page
    and again for every refresh of `/family/{id}/live`."""
    status = await elder_status(conn, principal, elder, now)
    scope = dataclasses.replace(scope_for(principal), home_ids=(elder.home_id,))
    open_alerts = await views.list_alerts(conn, scope, [Status.OPEN, Status.ACKNOWLEDGED], 20)
    past = await views.list_alerts(conn, scope, [Status.RESOLVED], 10)
    t = translator(principal.locale)
    tz = elder.timezone
    return {
        "elder": elder,
        "status": status,
        "open_alerts": open_alerts,
        "past_alerts": past,
        "hl": headline(
            open_alerts,
            status.presence,
            status.last_activity,
            tz,
            now,
            t,
            lambda at: age_text(at, now, t),
        ),
        "now": now,
        "clock": lambda at: clock_time(at, tz, now, t),
        "what": lambda a: what(a, t),
    }


async def _elder(conn: Db, principal: PageUser, elder_id: str) -> elders.Elder | None:
    if not access.may(principal, Area.HEALTH):
        return None
    return await elders.elder(conn, access.home_filter(principal), elder_id)


@router.get("/{elder_id}")
async def family_page(
    request: Request, elder_id: str, principal: PageUser, clock: Clock, conn: Db
) -> Response:
    """The elder at a glance (an open alert replaces the headline), today's timeline,
    devices in plain words and their alerts (audited); `family.js` keeps it live."""
    now = clock()
    elder = await _elder(conn, principal, elder_id)
    if elder is None:
        return not_found(request, principal, clock())
    await elders.audit_health_read(conn, principal.user_id, elder_id, "status", {})
    live = await _live(conn, principal, elder, now)
    t = translator(principal.locale)
    start, end, _ = local_day(elder.timezone, None, now)
    # From the evening before: a bed taken before midnight is slept in after it.
    todays = await readings.events(conn, elder.home_id, start - EVENING_BEFORE, end)
    devices = live["status"].devices
    rooms = sorted({d.room for d in devices if d.kind in usual.KINDS and d.room})
    cmp = await usual.compare(conn, elder.home_id, elder.timezone, now)
    digest = await daily_summary.read(conn, principal.user_id)
    return render(
        request,
        "family.html",
        principal,
        now,
        **live,
        device_lines=[device_line(d, elder.timezone, t) for d in live["status"].devices],
        tl=day_timeline(todays, start, now, t, rooms),
        legend=LEGEND,
        cmp=cmp,
        usual_sentence=usual.sentence(cmp, now, principal.locale),
        hhmm=usual.hhmm,
        digest=digest,
        js_messages=messages(principal.locale, _JS_KEYS),
    )


@router.get("/{elder_id}/live")
async def family_live(
    request: Request, elder_id: str, principal: PageUser, clock: Clock, conn: Db
) -> Response:
    """The page's live parts as HTML (`#family-now`, `#family-alerts`), for `family.js`
    to swap in after an alert changes and every minute (audited like the page)."""
    now = clock()
    elder = await _elder(conn, principal, elder_id)
    if elder is None:
        return not_found(request, principal, now)
    await elders.audit_health_read(conn, principal.user_id, elder_id, "status", {})
    response = render(
        request, "family_live.html", principal, now, **await _live(conn, principal, elder, now)
    )
    response.headers["Cache-Control"] = "no-store"
    return response
