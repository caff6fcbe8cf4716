"""The REST API beyond sign-in and alerts: regions, homes, elders' files, devices, readings,
rota, care visits, and resolving alerts. Every object is found through the caller's scope."""

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Response
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field, model_validator

from alerts import mutes, store
from alerts.care import VISITS_PER_WEEK, week_start
from alerts.model import Status
from gateway import access, family, queries
from gateway.access import Area
from gateway.auth import Principal, scope_for
from gateway.errors import ApiError
from gateway.i18n import LOCALES, translator

# Where a deployment is by default (homes carry their own zone): "this week" of a request.
DEPLOYMENT_TZ = ZoneInfo("Asia/Shanghai")

Conn = queries.Conn
AlertJson = Callable[[Any], dict[str, Any]]
MAX_RANGE = timedelta(days=31)
MAX_RAW = 5000


class ElderUpdate(BaseModel):
    """Editable fields of an elder's file (staff only); absent fields are left alone."""

    phone: str | None = Field(default=None, max_length=40)
    notes: str | None = Field(default=None, max_length=4000)
    lives_alone: bool | None = None
    conditions: list[Annotated[str, Field(min_length=1, max_length=80)]] | None = Field(
        default=None, max_length=40
    )
    thresholds: dict[str, float] | None = Field(default=None, max_length=40)


class AwayMode(BaseModel):
    """Away / hospital mode of the elder's home: which, from when, until when (open-ended
    when absent), and why. Stored as the home's mode (`alerts.mutes.set_home_mode`), which
    mutes its wellbeing alerts and care-visit targets while it lasts."""

    mode: Literal["away", "hospital"] = "away"
    away_from: datetime
    away_until: datetime | None = None
    reason: str = Field(default="", max_length=200)

    @model_validator(mode="after")
    def _ordered(self) -> "AwayMode":
        if self.away_from.tzinfo is None or (
            self.away_until is not None and self.away_until.tzinfo is None
        ):
            raise ValueError("times need a time zone, e.g. 2026-01-31T08:00:00+08:00")
        if self.away_until is not None and self.away_until <= self.away_from:
            raise ValueError("away_until must be after away_from")
        return self


class VisitIn(BaseModel):
    """A care visit to record (by the signed-in staff member unless `user_id` says who)."""

    visited_at: datetime | None = None
    source: Literal["console", "phone"] = "console"
    note: str = Field(default="", max_length=2000)

    @model_validator(mode="after")
    def _aware(self) -> "VisitIn":
        if self.visited_at is not None and self.visited_at.tzinfo is None:
            raise ValueError("visited_at needs a time zone")
        return self


class LocaleIn(BaseModel):
    """The language the signed-in person wants."""

    locale: Literal["en", "zh"]


def page(items: list[Any], total: int, limit: int, offset: int) -> dict[str, Any]:
    """One page of a list, with where the next one starts (None at the end)."""
    return {
        "items": items,
        "total": total,
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if offset + limit < total else None,
    }


def need(principal: Principal, area: Area) -> None:
    """403 unless `principal`'s role may touch `area` at all."""
    if not access.may(principal, area):
        raise ApiError(403, "forbidden", f"a {principal.role} may not use {area.value} here")


def _range(
    start: datetime | None, end: datetime | None, now: datetime, default: timedelta
) -> tuple[datetime, datetime]:
    end = end or now
    start = start or end - default
    for name, value in (("start", start), ("end", end)):
        if value.tzinfo is None:
            raise ApiError(422, "invalid_request", f"{name} needs a time zone (e.g. ...Z)")
    if end <= start:
        raise ApiError(422, "invalid_request", "end must be after start")
    if end - start > MAX_RANGE:
        raise ApiError(422, "invalid_request", f"ask for at most {MAX_RANGE.days} days at once")
    return start, end


def local_day(tz_name: str, day: date | None, now: datetime) -> tuple[datetime, datetime, date]:
    """[start, end) of `day` (default: today) in the home's time zone, and the date."""
    tz = ZoneInfo(tz_name)
    day = day or now.astimezone(tz).date()
    start = datetime.combine(day, time(), tzinfo=tz)
    return start, start + timedelta(days=1), day


@dataclasses.dataclass(frozen=True, slots=True)
class ElderStatus:
    """What the family page shows at a glance."""

    elder_id: str
    name: str
    presence: str
    last_activity: family.LastActivity | None
    temperature: float | None
    day: date
    summary: family.DaySummary
    devices: list[queries.Device]
    as_of: datetime


async def elder_status(
    conn: Conn, principal: Principal, elder: queries.Elder, now: datetime
) -> ElderStatus:
    """Presence, last activity, temperature, today's summary and devices of an elder."""
    start, end, day = local_day(elder.timezone, None, now)
    latest = await queries.latest_events(conn, elder.home_id, now - family.STALE_AFTER)
    todays = await queries.events(conn, elder.home_id, start, end)
    devs = await queries.devices(conn, access.home_filter(principal), now, home_id=elder.home_id)
    return ElderStatus(
        elder_id=elder.id,
        name=elder.full_name,
        presence=family.presence(latest, now).value,
        last_activity=family.last_activity(latest),
        temperature=family.temperature(latest),
        day=day,
        summary=family.summarise(todays, start, end),
        devices=devs,
        as_of=now,
    )


def build_router(
    pool: AsyncConnectionPool[Any],
    principal_dep: Callable[..., Awaitable[Principal]],
    alert_json: AlertJson,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    local_tz: ZoneInfo = DEPLOYMENT_TZ,
) -> APIRouter:
    """The `/api/v1` routes other than auth and the alert list/stream/ack. `local_tz` is
    the deployment's time zone, where "this week" is taken when a request names none."""
    router = APIRouter(prefix="/api/v1")
    User = Annotated[Principal, Depends(principal_dep)]
    Limit = Annotated[int, Query(ge=1, le=500)]
    Offset = Annotated[int, Query(ge=0)]

    async def elder_or_404(conn: Conn, principal: Principal, elder_id: str) -> queries.Elder:
        need(principal, Area.HEALTH)
        found = await queries.elder(conn, access.home_filter(principal), elder_id)
        if found is None:
            raise ApiError(404, "not_found", f"no elder {elder_id}")
        return found

    async def audited(
        conn: Conn, principal: Principal, elder_id: str, what: str, **detail: Any
    ) -> queries.Elder:
        found = await elder_or_404(conn, principal, elder_id)
        await queries.audit_health_read(conn, principal.user_id, elder_id, what, detail)
        return found

    # ------------------------------------------------------------------ me

    @router.put("/me/locale", tags=["auth"])
    async def set_locale(body: LocaleIn, principal: User) -> dict[str, str]:
        """Choose the language of the pages: `en` (English) or `zh` (Simplified Chinese)."""
        assert body.locale in LOCALES
        async with pool.connection() as conn:
            await queries.set_locale(conn, principal.user_id, body.locale)
        return {"locale": body.locale}

    # ------------------------------------------------------------------ regions

    @router.get("/regions", tags=["regions"])
    async def list_regions(principal: User) -> dict[str, Any]:
        """The region tree (district → town → village) the caller may see, nested."""
        need(principal, Area.REGIONS)
        async with pool.connection() as conn:
            rows = await queries.regions(conn, access.region_filter(principal))
        nodes = {r.id: {**dataclasses.asdict(r), "children": []} for r in rows}
        roots: list[dict[str, Any]] = []
        for r in rows:
            parent = nodes.get(r.parent_id) if r.parent_id else None
            (parent["children"] if parent else roots).append(nodes[r.id])
        return {"items": roots}

    @router.get("/regions/{region_id}", tags=["regions"])
    async def get_region(region_id: str, principal: User) -> dict[str, Any]:
        """One region and its children."""
        need(principal, Area.REGIONS)
        async with pool.connection() as conn:
            rows = await queries.regions(conn, access.region_filter(principal))
        found = next((r for r in rows if r.id == region_id), None)
        if found is None:
            raise ApiError(404, "not_found", f"no region {region_id}")
        children = [dataclasses.asdict(r) for r in rows if r.parent_id == region_id]
        return {**dataclasses.asdict(found), "children": children}

    # ------------------------------------------------------------------ homes

    def home_json(principal: Principal, h: queries.Home) -> dict[str, Any]:
        out = dataclasses.asdict(h)
        if not access.may(principal, Area.HEALTH):  # the operator: no personal data
            out["elder_name"] = None
        return out

    @router.get("/homes", tags=["homes"])
    async def list_homes(
        principal: User,
        region: str | None = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        """Homes the caller may see, by id; `region` narrows to a district, town or village."""
        need(principal, Area.HOMES)
        async with pool.connection() as conn:
            rows, total = await queries.homes(
                conn, access.home_filter(principal), region, limit, offset
            )
        return page([home_json(principal, h) for h in rows], total, limit, offset)

    @router.get("/homes/{home_id}", tags=["homes"])
    async def get_home(home_id: str, principal: User) -> dict[str, Any]:
        """One home."""
        need(principal, Area.HOMES)
        async with pool.connection() as conn:
            found = await queries.home(conn, access.home_filter(principal), home_id)
        if found is None:
            raise ApiError(404, "not_found", f"no home {home_id}")
        return home_json(principal, found)

    # ------------------------------------------------------------------ elders

    @router.get("/elders", tags=["elders"])
    async def list_elders(
        principal: User,
        village: str | None = None,
        q: Annotated[str | None, Query(max_length=80)] = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        """Elders the caller looks after (names and homes only), by name; `q` searches names."""
        need(principal, Area.HEALTH)
        async with pool.connection() as conn:
            rows, total = await queries.elders(
                conn, access.home_filter(principal), village, q, limit, offset
            )
        return page([dataclasses.asdict(h) for h in rows], total, limit, offset)

    @router.get("/elders/{elder_id}", tags=["elders"])
    async def get_elder(elder_id: str, principal: User) -> dict[str, Any]:
        """The elder's file: profile, conditions, contacts, thresholds, away mode (`away_mode`
        away / hospital / null, its window, and `away_now`), devices, open alerts. Audited."""
        now = clock()
        async with pool.connection() as conn:
            found = await audited(conn, principal, elder_id, "file")
            devs = await queries.devices(
                conn, access.home_filter(principal), now, home_id=found.home_id
            )
            scope = dataclasses.replace(scope_for(principal), home_ids=(found.home_id,))
            open_alerts = await store.list_alerts(
                conn, scope, [Status.OPEN, Status.ACKNOWLEDGED], 50
            )
        away = (
            found.away_from is not None
            and found.away_from <= now
            and (found.away_until is None or found.away_until > now)
        )
        return {
            **dataclasses.asdict(found),
            "away_now": away,
            "devices": [dataclasses.asdict(d) for d in devs],
            "open_alerts": [alert_json(a) for a in open_alerts],
        }

    @router.patch("/elders/{elder_id}", tags=["elders"])
    async def update_elder(elder_id: str, body: ElderUpdate, principal: User) -> dict[str, Any]:
        """Change the elder's phone, notes, conditions, thresholds or living alone (staff)."""
        need(principal, Area.EDIT_ELDER)
        async with pool.connection() as conn:
            await elder_or_404(conn, principal, elder_id)
            await queries.update_elder(conn, elder_id, body.model_dump(exclude_none=True))
        return await get_elder(elder_id, principal)

    @router.put("/elders/{elder_id}/away", tags=["elders"])
    async def set_away(elder_id: str, body: AwayMode, principal: User) -> dict[str, Any]:
        """Put the elder's home in away / hospital mode from `away_from` until `away_until`
        (open-ended when absent), replacing any mode it had (staff). While it lasts, the
        home's wellbeing alerts are muted (never emergencies) and care visits not due."""
        need(principal, Area.EDIT_ELDER)
        async with pool.connection() as conn:
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
        return await get_elder(elder_id, principal)

    @router.delete("/elders/{elder_id}/away", tags=["elders"])
    async def clear_away(elder_id: str, principal: User) -> dict[str, Any]:
        """End away / hospital mode: the elder's home is back to normal now (staff)."""
        need(principal, Area.EDIT_ELDER)
        async with pool.connection() as conn:
            found = await elder_or_404(conn, principal, elder_id)
            await mutes.set_home_mode(conn, found.home_id, None, since=clock())
        return await get_elder(elder_id, principal)

    @router.get("/elders/{elder_id}/readings", tags=["readings"])
    async def elder_readings(
        elder_id: str,
        principal: User,
        start: datetime | None = None,
        end: datetime | None = None,
        metric: Annotated[str | None, Query(max_length=40)] = None,
        device: Annotated[str | None, Query(max_length=100)] = None,
        bucket_s: Annotated[int | None, Query(ge=60, le=86400)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_RAW)] = 1000,
        after: datetime | None = None,
    ) -> dict[str, Any]:
        """Readings of the elder's home in [start, end) (default: the last 24 h, at most 31
        days). Raw, oldest first and paged with `after=<next_after>`; or, with `bucket_s`,
        rolled up (count, min, max, avg) per bucket, device and metric. Audited."""
        start, end = _range(start, end, clock(), timedelta(days=1))
        async with pool.connection() as conn:
            found = await audited(
                conn, principal, elder_id, "readings", start=start, end=end, metric=metric
            )
            if bucket_s is not None:
                buckets = await queries.rollup(
                    conn,
                    found.home_id,
                    start,
                    end,
                    timedelta(seconds=bucket_s),
                    metric=metric,
                    device_id=device,
                )
                return {"bucket_s": bucket_s, "items": [dataclasses.asdict(b) for b in buckets]}
            rows = await queries.readings(
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
        return {
            "items": [dataclasses.asdict(r) for r in items],
            "next_after": items[-1].ts.isoformat() if len(rows) > limit else None,
        }

    @router.get("/elders/{elder_id}/status", tags=["readings"])
    async def get_status(elder_id: str, principal: User) -> dict[str, Any]:
        """At a glance: home / out / asleep, last activity and where, indoor temperature,
        today's summary and the devices. Audited."""
        async with pool.connection() as conn:
            found = await audited(conn, principal, elder_id, "status")
            status = await elder_status(conn, principal, found, clock())
        return dataclasses.asdict(status)

    @router.get(
        "/elders/{elder_id}/timeline.svg",
        tags=["readings"],
        response_class=Response,
        responses={200: {"content": {"image/svg+xml": {}}}},
    )
    async def timeline(
        elder_id: str,
        principal: User,
        day: date | None = None,
        width: Annotated[int, Query(ge=320, le=1600)] = 560,
    ) -> Response:
        """The elder's day (default today, home time) as an SVG timeline `width` units wide
        (narrow for phones). Audited."""
        async with pool.connection() as conn:
            found = await audited(conn, principal, elder_id, "timeline", day=day)
            start, end, _ = local_day(found.timezone, day, clock())
            evts = await queries.events(conn, found.home_id, start, end)
        svg = family.timeline_svg(evts, start, translator(principal.locale), width=width)
        return Response(svg, media_type="image/svg+xml")

    @router.get("/elders/{elder_id}/alerts", tags=["alerts"])
    async def elder_alerts(
        elder_id: str,
        principal: User,
        status: Annotated[list[Status] | None, Query()] = None,
        limit: Limit = 50,
        before: Annotated[int | None, Query(ge=1)] = None,
    ) -> dict[str, Any]:
        """The elder's alerts (default: all statuses), newest first; page with `before`."""
        statuses = status or list(Status)
        async with pool.connection() as conn:
            found = await audited(conn, principal, elder_id, "alerts")
            scope = dataclasses.replace(scope_for(principal), home_ids=(found.home_id,))
            rows = await store.list_alerts(conn, scope, statuses, limit + 1, before)
        items = rows[:limit]
        return {
            "items": [alert_json(a) for a in items],
            "next_before": items[-1].id if len(rows) > limit else None,
        }

    @router.get("/elders/{elder_id}/audit", tags=["elders"])
    async def elder_audit(elder_id: str, principal: User, limit: Limit = 100) -> dict[str, Any]:
        """Who read this elder's health data, newest first (staff)."""
        need(principal, Area.EDIT_ELDER)
        async with pool.connection() as conn:
            await elder_or_404(conn, principal, elder_id)
            rows = await queries.health_reads(conn, elder_id, limit)
        return {"items": rows}

    # ------------------------------------------------------------------ visits

    @router.get("/elders/{elder_id}/visits", tags=["visits"])
    async def elder_visits(
        elder_id: str,
        principal: User,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        """Care visits to the elder in [start, end) (default: last 31 days), newest first."""
        start, end = _range(start, end, clock(), MAX_RANGE)
        async with pool.connection() as conn:
            await audited(conn, principal, elder_id, "visits")
            rows, total = await queries.visits(
                conn,
                access.home_filter(principal),
                start,
                end,
                elder_id=elder_id,
                limit=limit,
                offset=offset,
            )
        return page([dataclasses.asdict(v) for v in rows], total, limit, offset)

    @router.post("/elders/{elder_id}/visits", status_code=201, tags=["visits"])
    async def record_visit(elder_id: str, body: VisitIn, principal: User) -> dict[str, Any]:
        """Record a care visit by the signed-in staff member (default: now)."""
        need(principal, Area.CARE)
        now = clock()
        at = body.visited_at or now
        if at > now + timedelta(minutes=5):
            raise ApiError(422, "invalid_request", "visited_at is in the future")
        async with pool.connection() as conn:
            await elder_or_404(conn, principal, elder_id)
            visit_id = await queries.add_visit(
                conn, elder_id, principal.user_id, at, body.source, body.note, principal.user_id
            )
            found = await queries.visit(conn, access.home_filter(principal), visit_id)
        assert found is not None
        return dataclasses.asdict(found)

    @router.get("/visits", tags=["visits"])
    async def list_visits(
        principal: User,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        """Care visits in the caller's region in [start, end) (default: last 7 days) (staff)."""
        need(principal, Area.CARE)
        start, end = _range(start, end, clock(), timedelta(days=7))
        async with pool.connection() as conn:
            rows, total = await queries.visits(
                conn,
                access.home_filter(principal),
                start,
                end,
                elder_id=None,
                limit=limit,
                offset=offset,
            )
        return page([dataclasses.asdict(v) for v in rows], total, limit, offset)

    @router.get("/visits/compliance", tags=["visits"])
    async def compliance(
        principal: User,
        week: date | None = None,
        village: str | None = None,
        all_elders: bool = False,
    ) -> dict[str, Any]:
        """Elders living alone below the target of visits in the week (Monday; default this
        week), grouped by village; `all_elders=true` lists everyone (staff)."""
        need(principal, Area.CARE)
        start = week_start(week or clock().astimezone(local_tz).date())
        async with pool.connection() as conn:
            rows = await queries.compliance(conn, access.home_filter(principal), start, village)
        villages: dict[str, dict[str, Any]] = {}
        for r in rows:
            v = villages.setdefault(
                r.village_id,
                {"village_id": r.village_id, "village": r.village, "elders": 0, "below": []},
            )
            v["elders"] += 1
            if all_elders or (r.visits < VISITS_PER_WEEK and not r.away):
                v["below"].append(dataclasses.asdict(r))
        return {
            "week_start": start.isoformat(),
            "target": VISITS_PER_WEEK,
            "villages": list(villages.values()),
        }

    # ------------------------------------------------------------------ devices

    @router.get("/devices", tags=["devices"])
    async def list_devices(
        principal: User,
        home: str | None = None,
        region: str | None = None,
        state: Literal["online", "offline"] | None = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        """Devices and their health (last seen, online, battery) the caller may see."""
        need(principal, Area.DEVICES)
        async with pool.connection() as conn:
            rows = await queries.devices(
                conn, access.home_filter(principal), clock(), home_id=home, region=region
            )
        if state is not None:
            rows = [d for d in rows if d.online == (state == "online")]
        items = [dataclasses.asdict(d) for d in rows[offset : offset + limit]]
        if not access.may(principal, Area.HEALTH):
            for d in items:
                d["elder_name"] = None
        return page(items, len(rows), limit, offset)

    @router.get("/devices/{device_id}", tags=["devices"])
    async def get_device(device_id: str, principal: User) -> dict[str, Any]:
        """One device and its health."""
        need(principal, Area.DEVICES)
        async with pool.connection() as conn:
            rows = await queries.devices(
                conn, access.home_filter(principal), clock(), device_id=device_id
            )
        if not rows:
            raise ApiError(404, "not_found", f"no device {device_id}")
        out = dataclasses.asdict(rows[0])
        if not access.may(principal, Area.HEALTH):
            out["elder_name"] = None
        return out

    # ------------------------------------------------------------------ rota

    @router.get("/rota", tags=["rota"])
    async def get_rota(
        principal: User,
        start: datetime | None = None,
        end: datetime | None = None,
        region: str | None = None,
    ) -> dict[str, Any]:
        """Shifts overlapping [start, end) (default: the next 7 days) in the caller's regions
        and the tiers above them (staff)."""
        need(principal, Area.CARE)
        now = clock()
        start, end = _range(start or now, end or (start or now) + timedelta(days=7), now, MAX_RANGE)
        async with pool.connection() as conn:
            rows = await queries.rota(conn, access.rota_filter(principal), start, end, region)
        return {
            "items": [
                {**dataclasses.asdict(s), "on_duty_now": s.starts_at <= now < s.ends_at}
                for s in rows
            ]
        }

    return router
