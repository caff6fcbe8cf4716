"""An elder at a glance, for the API and the pages: presence, last activity, temperature,
today's summary and the devices, from the home's readings; and a past day's summary, from
the rollups once its raw readings are gone."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from alerts.detect.layout import classify, is_activity
from gateway import access, family
from gateway.auth import Principal
from gateway.queries import devices, readings, rollups
from gateway.queries.base import Conn
from gateway.queries.devices import Device
from gateway.queries.elders import Elder


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
    devices: list[Device]
    as_of: datetime


async def elder_status(
    conn: Conn, principal: Principal, elder: Elder, now: datetime
) -> ElderStatus:
    """Presence, last activity, temperature, today's summary and devices of an elder."""
    start, end, day = local_day(elder.timezone, None, now)
    latest = await readings.latest_events(conn, elder.home_id, now - family.STALE_AFTER)
    todays = await readings.events(conn, elder.home_id, start, end)
    devs = await devices.devices(conn, access.home_filter(principal), now, home_id=elder.home_id)
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


@dataclasses.dataclass(frozen=True, slots=True)
class DayHistory:
    """One past (or the current) local day of an elder: from the raw readings inside the raw
    window, from the rollups (`ingest.retention`) before it."""

    elder_id: str
    day: date
    source: str
    """'raw' or 'rollup'."""
    raw_since: datetime | None
    """Raw readings before this are gone (None: none dropped yet)."""
    summary: family.DaySummary | None
    """None: a day before the raw window that has no rollup (no data was kept)."""
    hours: list[rollups.ActivityHour]


def activity_hours(events: Sequence[readings.Event]) -> list[rollups.ActivityHour]:
    """The events' activity per UTC hour and room, as `activity_hourly` rolls it up."""
    found: dict[tuple[datetime, str], list[readings.Event]] = {}
    for e in events:
        hour = e.ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        found.setdefault((hour, e.room), []).append(e)
    out: list[rollups.ActivityHour] = []
    for (hour, room), evs in sorted(found.items()):
        active = [e.ts for e in evs if is_activity(classify(e.kind, e.room).role, e.metric)]
        out.append(
            rollups.ActivityHour(
                hour,
                room,
                len(active),
                sum(1 for e in evs if e.kind == "pir_motion" and e.value >= 1.0),
                sum(1 for e in evs if e.kind == "door_contact" and e.value >= 1.0),
                sum(1 for e in evs if e.kind == "bed_mat" and e.value >= 1.0),
                min(active, default=None),
                max(active, default=None),
            )
        )
    return out


def rolled_up_summary(row: rollups.DayRow) -> family.DaySummary:
    """A `home_days` row as the family page's day summary."""
    return family.DaySummary(
        first_activity=row.first_activity,
        last_activity=row.last_activity,
        motion_events=row.motion_events,
        rooms_visited=row.rooms_visited,
        door_openings=row.door_openings,
        hours_in_bed=round(row.bed_seconds / 3600, 1),
        temperature_min=row.temperature_min,
        temperature_max=row.temperature_max,
    )


async def day_history(conn: Conn, elder: Elder, day: date, now: datetime) -> DayHistory:
    """The elder's local `day`: summary and hourly activity per room, from raw readings
    when they are all still kept, from the rollups otherwise."""
    start, end, day = local_day(elder.timezone, day, now)
    since = await rollups.raw_since(conn)
    if since is None or start >= since:
        evts = await readings.events(conn, elder.home_id, start, end)
        raw = family.summarise(evts, start, end)
        return DayHistory(elder.id, day, "raw", since, raw, activity_hours(evts))
    row = await rollups.day(conn, elder.home_id, day)
    hours = await rollups.activity(conn, elder.home_id, start, min(end, since))
    if end > since:  # the day across the start of the raw window: its later hours are raw
        hours += activity_hours(await readings.events(conn, elder.home_id, since, end))
    summary = None if row is None else rolled_up_summary(row)
    return DayHistory(elder.id, day, "rollup", since, summary, hours)
