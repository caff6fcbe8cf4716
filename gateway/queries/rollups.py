"""SQL of the rollups kept past the raw readings' retention (`ingest.retention`): where raw
readings begin, a home's day summary and hourly activity per room, and readings rolled up
per bucket from the hourly rollups before the raw window and from raw readings inside it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from gateway.queries.base import Conn
from gateway.queries.readings import Bucket


async def raw_since(conn: Conn) -> datetime | None:
    """Raw readings before this instant are gone, rollups hold them (None: none dropped)."""
    cur = await conn.execute("SELECT raw_since FROM readings_retention WHERE id = 1")
    row = await cur.fetchone()
    return None if row is None else row[0]


@dataclass(frozen=True, slots=True)
class DayRow:
    """A home's local day as rolled up (`home_days`)."""

    first_activity: datetime | None
    last_activity: datetime | None
    motion_events: int
    rooms_visited: int
    door_openings: int
    bed_seconds: float
    temperature_min: float | None
    temperature_max: float | None


async def day(conn: Conn, home_id: str, on: date) -> DayRow | None:
    """The rolled-up summary of the home's local day `on` (None: not rolled up)."""
    cur = await conn.execute(
        "SELECT first_activity, last_activity, motion_events, rooms_visited, door_openings,"
        " bed_seconds, temperature_min, temperature_max FROM home_days"
        " WHERE home_id = %s AND day = %s",
        (home_id, on),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    first, last, motion, rooms, doors, bed, tmin, tmax = row
    return DayRow(first, last, int(motion), int(rooms), int(doors), float(bed), tmin, tmax)


@dataclass(frozen=True, slots=True)
class ActivityHour:
    """A home's activity in one room over one UTC hour."""

    hour: datetime
    room: str
    events: int
    motion_events: int
    door_openings: int
    bed_events: int
    first_event: datetime | None
    last_event: datetime | None


async def activity(conn: Conn, home_id: str, start: datetime, end: datetime) -> list[ActivityHour]:
    """The rolled-up hourly activity per room of a home for the hours in [start, end)."""
    cur = await conn.execute(
        "SELECT hour, room, events, motion_events, door_openings, bed_events, first_event,"
        " last_event FROM activity_hourly WHERE home_id = %s AND hour >= %s AND hour < %s"
        " ORDER BY hour, room",
        (home_id, start, end),
    )
    return [
        ActivityHour(h, str(room), int(n), int(m), int(d), int(b), first, last)
        for h, room, n, m, d, b, first, last in await cur.fetchall()
    ]


_BUCKETS = """
WITH hourly AS (
    SELECT hour, device_id, metric, n, vmin, vmax, vsum FROM readings_hourly
    WHERE home_id = %(home)s AND hour >= %(origin)s AND hour < least(%(end)s, %(raw)s)
      AND (%(metric)s::text IS NULL OR metric = %(metric)s)
      AND (%(device)s::text IS NULL OR device_id = %(device)s)
    UNION ALL
    SELECT date_bin('1 hour', ts, %(origin)s), device_id, metric, count(*), min(value),
           max(value), sum(value)
    FROM readings
    WHERE home_id = %(home)s AND ts >= greatest(%(start)s, %(raw)s) AND ts < %(end)s
      AND (%(metric)s::text IS NULL OR metric = %(metric)s)
      AND (%(device)s::text IS NULL OR device_id = %(device)s)
    GROUP BY 1, 2, 3
)
SELECT date_bin(%(bucket)s, hour, %(origin)s) AS b, device_id, metric, sum(n)::bigint,
       min(vmin), max(vmax), sum(vsum) / sum(n)
FROM hourly GROUP BY b, device_id, metric ORDER BY b, device_id, metric
"""


async def buckets(
    conn: Conn,
    home_id: str,
    start: datetime,
    end: datetime,
    bucket: timedelta,
    raw: datetime,
    *,
    metric: str | None,
    device_id: str | None,
) -> list[Bucket]:
    """Readings of a home rolled up per `bucket` (whole hours), device and metric, over
    [start, end) with `start` taken down to its UTC hour: before `raw` from the hourly rollups,
    from `raw` on from the raw readings."""
    origin = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    cur = await conn.execute(
        _BUCKETS,
        {
            "home": home_id,
            "origin": origin,
            "start": start,
            "end": end,
            "raw": raw,
            "bucket": bucket,
            "metric": metric,
            "device": device_id,
        },
    )
    return [
        Bucket(b, str(d), str(m), int(n), float(lo), float(hi), float(avg))
        for b, d, m, n, lo, hi, avg in await cur.fetchall()
    ]
