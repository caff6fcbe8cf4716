"""SQL of the readings of a home: raw, rolled up, and with their device's kind and room."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from devices.catalogue import BATTERY, HEARTBEAT
from gateway.queries.base import Conn

HOUSEKEEPING = [HEARTBEAT, BATTERY]
"""A device's own upkeep, no sign of the elder: left out of the family page's events."""


@dataclass(frozen=True, slots=True)
class ReadingRow:
    """One stored reading."""

    ts: datetime
    device_id: str
    metric: str
    value: float


@dataclass(frozen=True, slots=True)
class Bucket:
    """A rollup of one metric of one device over one time bucket."""

    start: datetime
    device_id: str
    metric: str
    count: int
    min: float
    max: float
    avg: float


async def readings(
    conn: Conn,
    home_id: str,
    start: datetime,
    end: datetime,
    *,
    metric: str | None,
    device_id: str | None,
    limit: int,
    after: datetime | None = None,
) -> list[ReadingRow]:
    """Raw readings of a home in [start, end), oldest first, keyset-paginated by ts."""
    cur = await conn.execute(
        "SELECT ts, device_id, metric, value FROM readings WHERE home_id = %(home)s"
        " AND ts >= %(start)s AND ts < %(end)s"
        " AND (%(after)s::timestamptz IS NULL OR ts > %(after)s)"
        " AND (%(metric)s::text IS NULL OR metric = %(metric)s)"
        " AND (%(device)s::text IS NULL OR device_id = %(device)s)"
        " ORDER BY ts, device_id LIMIT %(limit)s",
        {
            "home": home_id,
            "start": start,
            "end": end,
            "after": after,
            "metric": metric,
            "device": device_id,
            "limit": limit,
        },
    )
    return [ReadingRow(ts, str(d), str(m), float(v)) for ts, d, m, v in await cur.fetchall()]


async def rollup(
    conn: Conn,
    home_id: str,
    start: datetime,
    end: datetime,
    bucket: timedelta,
    *,
    metric: str | None,
    device_id: str | None,
) -> list[Bucket]:
    """Readings of a home in [start, end) rolled up per `bucket`, device and metric."""
    cur = await conn.execute(
        "SELECT date_bin(%(bucket)s, ts, %(start)s) AS b, device_id, metric, count(*),"
        " min(value), max(value), avg(value) FROM readings WHERE home_id = %(home)s"
        " AND ts >= %(start)s AND ts < %(end)s"
        " AND (%(metric)s::text IS NULL OR metric = %(metric)s)"
        " AND (%(device)s::text IS NULL OR device_id = %(device)s)"
        " GROUP BY b, device_id, metric ORDER BY b, device_id, metric",
        {
            "bucket": bucket,
            "home": home_id,
            "start": start,
            "end": end,
            "metric": metric,
            "device": device_id,
        },
    )
    return [
        Bucket(b, str(d), str(m), int(n), float(lo), float(hi), float(avg))
        for b, d, m, n, lo, hi, avg in await cur.fetchall()
    ]


@dataclass(frozen=True, slots=True)
class Event:
    """A reading with the kind and room of its device (for the family page)."""

    ts: datetime
    device_id: str
    kind: str
    room: str
    metric: str
    value: float


async def events(conn: Conn, home_id: str, start: datetime, end: datetime) -> list[Event]:
    """Readings of a home in [start, end) with their device's kind and room, oldest first;
    not heartbeats nor battery levels."""
    cur = await conn.execute(
        "SELECT r.ts, r.device_id, d.kind, d.room, r.metric, r.value FROM readings r"
        " JOIN devices d ON d.id = r.device_id"
        " WHERE r.home_id = %s AND r.ts >= %s AND r.ts < %s AND r.metric <> ALL(%s)"
        " ORDER BY r.ts, r.device_id",
        (home_id, start, end, HOUSEKEEPING),
    )
    return [
        Event(ts, str(d), str(k), str(room), str(m), float(v))
        for ts, d, k, room, m, v in await cur.fetchall()
    ]


async def latest_events(conn: Conn, home_id: str, since: datetime) -> list[Event]:
    """The latest reading since `since` of each device and metric of a home (not heartbeats
    nor battery levels)."""
    cur = await conn.execute(
        "SELECT DISTINCT ON (r.device_id, r.metric) r.ts, r.device_id, d.kind, d.room,"
        " r.metric, r.value FROM readings r JOIN devices d ON d.id = r.device_id"
        " WHERE r.home_id = %s AND r.ts >= %s AND r.metric <> ALL(%s)"
        " ORDER BY r.device_id, r.metric, r.ts DESC",
        (home_id, since, HOUSEKEEPING),
    )
    return [
        Event(ts, str(d), str(k), str(room), str(m), float(v))
        for ts, d, k, room, m, v in await cur.fetchall()
    ]
