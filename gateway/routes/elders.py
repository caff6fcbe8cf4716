"""Elders' files: the list, the file and its changes, away / hospital mode, readings, the
status at a glance, a day's summary (from rollups past the raw window), the day's timeline,
the elder's alerts and the audit of health reads.
Every read of health data is audited (`gateway.lookup.audited_elder`)."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Response

from alerts import mutes, views
from alerts.model import Status
from gateway import access, family
from gateway.access import Area
from gateway.admin.common import Actor, audit
from gateway.auth import Principal, scope_for
from gateway.deps import ApiUser, Clock, Db
from gateway.errors import ApiError
from gateway.i18n import translator
from gateway.lookup import audited_elder, elder_or_404
from gateway.params import Before, Limit, Offset, Statuses, time_range
from gateway.privacy.reads import audit_list_read
from gateway.queries import devices, elders, readings, rollups
from gateway.queries.base import Conn
from gateway.schemas.alerts import Alert, AlertList
from gateway.schemas.common import Page
from gateway.schemas.elders import (
    AwayMode,
    DayHistory,
    ElderFile,
    ElderStatus,
    ElderUpdate,
    HealthRead,
    HealthReads,
    RawReadings,
    Reading,
    ReadingBucket,
    Readings,
    RolledUpReadings,
)
from gateway.schemas.places import Device, Home
from gateway.status import day_history, elder_status, local_day
from gateway.timeline import EVENING_BEFORE

router = APIRouter(prefix="/api/v1/elders")

MAX_RAW = 5000
"""The most raw readings one page may hold."""


@router.get("", tags=["elders"])
async def list_elders(
    principal: ApiUser,
    conn: Db,
    village: str | None = None,
    q: Annotated[str | None, Query(max_length=80)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[Home]:
    """Elders the caller looks after (names and homes only), by name; `q` searches names."""
    access.need(principal, Area.HEALTH)
    rows, total = await elders.elders(
        conn, access.home_filter(principal), village, q, limit, offset
    )
    await audit_list_read(
        conn, principal.user_id, "elders", (h.elder_id for h in rows), detail={"searched": bool(q)}
    )
    return Page[Home].of([Home.model_validate(h) for h in rows], total, limit, offset)


async def _elder_file(conn: Conn, principal: Principal, elder_id: str, now: datetime) -> ElderFile:
    found = await audited_elder(conn, principal, elder_id, "file")
    devs = await devices.devices(conn, access.home_filter(principal), now, home_id=found.home_id)
    scope = dataclasses.replace(scope_for(principal), home_ids=(found.home_id,))
    open_alerts = await views.list_alerts(conn, scope, [Status.OPEN, Status.ACKNOWLEDGED], 50)
    away = (
        found.away_from is not None
        and found.away_from <= now
        and (found.away_until is None or found.away_until > now)
    )
    return ElderFile(
        **{f.name: getattr(found, f.name) for f in dataclasses.fields(found)},
        away_now=away,
        devices=[Device.model_validate(d) for d in devs],
        open_alerts=[Alert.of(a) for a in open_alerts],
    )


@router.get("/{elder_id}", tags=["elders"])
async def get_elder(elder_id: str, principal: ApiUser, conn: Db, clock: Clock) -> ElderFile:
    """The elder's file: profile, conditions, contacts, thresholds, away mode (`away_mode`
    away / hospital / null, its window, and `away_now`), devices, open alerts. Audited."""
    return await _elder_file(conn, principal, elder_id, clock())


@router.patch("/{elder_id}", tags=["elders"])
async def update_elder(
    elder_id: str, body: ElderUpdate, principal: ApiUser, conn: Db, clock: Clock
) -> ElderFile:
    """Change the elder's phone, notes, conditions, thresholds or living alone (staff).
    Audited in `admin_audit`: who, and the changed fields before and after."""
    access.need(principal, Area.EDIT_ELDER)
    await elder_or_404(conn, principal, elder_id)
    async with conn.transaction():
        before, after = await elders.update_elder(
            conn, elder_id, body.model_dump(exclude_none=True)
        )
        if after:
            await audit(conn, Actor.of(principal), "elder", elder_id, "update", before, after)
    return await _elder_file(conn, principal, elder_id, clock())


@router.put("/{elder_id}/away", tags=["elders"])
async def set_away(
    elder_id: str, body: AwayMode, principal: ApiUser, conn: Db, clock: Clock
) -> ElderFile:
    """Put the elder's home in away / hospital mode from `away_from` until `away_until`
    (open-ended when absent), replacing any mode it had (staff). While it lasts, the
    home's wellbeing alerts are muted (never emergencies) and care visits not due."""
    access.need(principal, Area.EDIT_ELDER)
    found = await elder_or_404(conn, principal, elder_id)
    await mutes.set_home_mode(
        conn,
        found.home_id,
        body.mode,
        since=body.away_from,
        until=body.away_until,
        reason=body.reason,
        user_id=principal.user_id,
    )
    return await _elder_file(conn, principal, elder_id, clock())


@router.delete("/{elder_id}/away", tags=["elders"])
async def clear_away(elder_id: str, principal: ApiUser, conn: Db, clock: Clock) -> ElderFile:
    """End away / hospital mode: the elder's home is back to normal now (staff)."""
    access.need(principal, Area.EDIT_ELDER)
    found = await elder_or_404(conn, principal, elder_id)
    await mutes.set_home_mode(conn, found.home_id, None, since=clock())
    return await _elder_file(conn, principal, elder_id, clock())


@router.get("/{elder_id}/readings", tags=["readings"], response_model=Readings)
async def elder_readings(
    elder_id: str,
    principal: ApiUser,
    conn: Db,
    clock: Clock,
    start: datetime | None = None,
    end: datetime | None = None,
    metric: Annotated[str | None, Query(max_length=40)] = None,
    device: Annotated[str | None, Query(max_length=100)] = None,
    bucket_s: Annotated[int | None, Query(ge=60, le=86400)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_RAW)] = 1000,
    after: datetime | None = None,
) -> RawReadings | RolledUpReadings:
    """Readings of the elder's home in [start, end) (default: the last 24 h, at most 31
    days). Raw, oldest first and paged with `after=<next_after>`; or, with `bucket_s`,
    rolled up (count, min, max, avg) per bucket, device and metric. Raw readings are kept
    for the retention (`raw_since` in the answer says where they begin); before it, ask with
    `bucket_s` a multiple of 3600: those buckets come from the hourly rollups. Audited."""
    start, end = time_range(start, end, clock(), timedelta(days=1))
    found = await audited_elder(
        conn, principal, elder_id, "readings", start=start, end=end, metric=metric
    )
    since = await rollups.raw_since(conn)
    if bucket_s is not None:
        if since is not None and start < since:
            if bucket_s % 3600:
                raise ApiError(
                    422,
                    "invalid_request",
                    f"readings before {since.isoformat()} are kept as hourly rollups only:"
                    " ask with bucket_s a multiple of 3600",
                )
            buckets = await rollups.buckets(
                conn,
                found.home_id,
                start,
                end,
                timedelta(seconds=bucket_s),
                since,
                metric=metric,
                device_id=device,
            )
        else:
            buckets = await readings.rollup(
                conn,
                found.home_id,
                start,
                end,
                timedelta(seconds=bucket_s),
                metric=metric,
                device_id=device,
            )
        return RolledUpReadings(
            bucket_s=bucket_s,
            items=[ReadingBucket.model_validate(b) for b in buckets],
            raw_since=since,
        )
    rows = await readings.readings(
        conn,
        found.home_id,
        start,
        end,
        metric=metric,
        device_id=device,
        limit=limit + 1,
        after=after,
    )
    items = rows[:limit]
    return RawReadings(
        items=[Reading.model_validate(r) for r in items],
        next_after=items[-1].ts.isoformat() if len(rows) > limit else None,
        raw_since=since,
    )


@router.get("/{elder_id}/status", tags=["readings"])
async def get_status(elder_id: str, principal: ApiUser, conn: Db, clock: Clock) -> ElderStatus:
    """At a glance: home / out / asleep, last activity and where, indoor temperature,
    today's summary and the devices. Audited."""
    found = await audited_elder(conn, principal, elder_id, "status")
    return ElderStatus.model_validate(await elder_status(conn, principal, found, clock()))


@router.get("/{elder_id}/days/{day}", tags=["readings"])
async def get_day(
    elder_id: str, day: date, principal: ApiUser, conn: Db, clock: Clock
) -> DayHistory:
    """The elder's local `day` (home time): the day summary and the activity per UTC hour
    and room, from the raw readings while they are kept, from the rollups before
    `raw_since` (`source` says which). Audited."""
    found = await audited_elder(conn, principal, elder_id, "day", day=day)
    return DayHistory.model_validate(await day_history(conn, found, day, clock()))


@router.get(
    "/{elder_id}/timeline.svg",
    tags=["readings"],
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}},
)
async def timeline(
    elder_id: str,
    principal: ApiUser,
    conn: Db,
    clock: Clock,
    day: date | None = None,
    width: Annotated[int, Query(ge=320, le=1600)] = 560,
) -> Response:
    """The elder's day (default today, home time) as an SVG timeline `width` units wide
    (narrow for phones). Audited."""
    found = await audited_elder(conn, principal, elder_id, "timeline", day=day)
    start, end, _ = local_day(found.timezone, day, clock())
    evts = await readings.events(conn, found.home_id, start - EVENING_BEFORE, end)
    t = translator(principal.locale)
    svg = family.timeline_svg(evts, start, t, width=width, now=clock())
    return Response(svg, media_type="image/svg+xml")


@router.get("/{elder_id}/alerts", tags=["alerts"])
async def elder_alerts(
    elder_id: str,
    principal: ApiUser,
    conn: Db,
    status: Statuses = None,
    limit: Limit = 50,
    before: Before = None,
) -> AlertList:
    """The elder's alerts (default: all statuses), newest first; page with `before`."""
    statuses = status or list(Status)
    found = await audited_elder(conn, principal, elder_id, "alerts")
    scope = dataclasses.replace(scope_for(principal), home_ids=(found.home_id,))
    rows = await views.list_alerts(conn, scope, statuses, limit + 1, before)
    return AlertList.of(rows, limit)


@router.get("/{elder_id}/audit", tags=["elders"])
async def elder_audit(
    elder_id: str, principal: ApiUser, conn: Db, limit: Limit = 100
) -> HealthReads:
    """Who read this elder's health data, newest first (staff)."""
    access.need(principal, Area.EDIT_ELDER)
    await elder_or_404(conn, principal, elder_id)
    rows = await elders.health_reads(conn, elder_id, limit)
    return HealthReads(items=[HealthRead.model_validate(r) for r in rows])
