"""SQL of the gateway's API and pages: regions, homes, elders, devices, readings, rota,
care visits and the health-read audit. Every query takes the caller's `HomeFilter`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from devices.catalogue import CATALOGUE
from gateway.access import HomeFilter

Conn = psycopg.AsyncConnection[Any]

OFFLINE_AFTER_HEARTBEATS = 2
"""A device is offline when nothing came from it for this many heartbeat periods."""


@dataclass(frozen=True, slots=True)
class Region:
    """One node of the region tree."""

    id: str
    name: str
    tier: str
    parent_id: str | None
    homes: int


@dataclass(frozen=True, slots=True)
class Home:
    """A home and who lives there."""

    id: str
    village_id: str
    village: str
    town_id: str | None
    address: str
    timezone: str
    elder_id: str | None
    elder_name: str | None


@dataclass(frozen=True, slots=True)
class Contact:
    """Someone to call about an elder."""

    name: str
    relation: str
    phone: str
    is_user: bool


@dataclass(frozen=True, slots=True)
class Elder:
    """The elder's file (without devices and alerts, which have their own queries)."""

    id: str
    home_id: str
    full_name: str
    born: date | None
    sex: str
    phone: str
    lives_alone: bool
    notes: str
    conditions: list[str]
    thresholds: dict[str, Any]
    # Away / hospital mode, from the home's `home_modes` row (None / "" when it has none):
    # `away_from` and `away_until` are its window, which may be over or still to come.
    away_mode: str | None
    away_from: datetime | None
    away_until: datetime | None
    away_reason: str
    village_id: str
    village: str
    address: str
    timezone: str
    contacts: list[Contact]


@dataclass(frozen=True, slots=True)
class Device:
    """A device and its health, as seen from its readings."""

    id: str
    home_id: str
    elder_name: str | None
    village: str
    kind: str
    title: str
    room: str
    label: str
    last_seen: datetime | None
    online: bool
    battery: float | None


@dataclass(frozen=True, slots=True)
class Visit:
    """A care visit."""

    id: int
    elder_id: str
    elder_name: str
    village: str
    user_id: int | None
    staff: str | None
    visited_at: datetime
    source: str
    note: str


@dataclass(frozen=True, slots=True)
class Shift:
    """One on-duty shift."""

    id: int
    user_id: int
    staff: str
    role: str
    region_id: str
    region: str
    tier: str
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True, slots=True)
class Compliance:
    """One elder's visits in a week against the target."""

    elder_id: str
    elder_name: str
    home_id: str
    village_id: str
    village: str
    visits: int
    away: bool


def _compose(f: HomeFilter, *parts: str) -> sql.Composed:
    """The constant SQL `parts` after the filter's CTE, with `{where}` set to its clause."""
    text = " ".join(("{cte}", *parts))
    return sql.SQL(text).format(cte=f.cte, where=f.where)


async def _rows(conn: Conn, query: sql.Composed, params: dict[str, Any]) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return list(await cur.fetchall())


# --------------------------------------------------------------------------- regions


async def regions(conn: Conn, f: HomeFilter) -> list[Region]:
    """Regions the filter lets through (a region filter), with their number of homes."""
    query = _compose(
        f,
        """SELECT r.id, r.name, r.tier, r.parent_id,
                  (SELECT count(*) FROM homes h JOIN regions v ON v.id = h.village_id
                   WHERE h.village_id = r.id OR v.parent_id = r.id
                      OR v.parent_id IN (SELECT id FROM regions t WHERE t.parent_id = r.id))
                  AS homes
           FROM regions r WHERE {where} ORDER BY r.tier, r.name""",
    )
    return [Region(**r) for r in await _rows(conn, query, f.params)]


# --------------------------------------------------------------------------- homes


_HOME_SELECT = """
SELECT h.id, h.village_id, v.name AS village, v.parent_id AS town_id, h.address, h.timezone,
       e.id AS elder_id, e.full_name AS elder_name
FROM homes h JOIN regions v ON v.id = h.village_id LEFT JOIN elders e ON e.home_id = h.id
"""


async def homes(
    conn: Conn, f: HomeFilter, region: str | None, limit: int, offset: int
) -> tuple[list[Home], int]:
    """Homes in the filter (and under `region` when given), by id; and how many in all."""
    params = {**f.params, "region": region, "limit": limit, "offset": offset}
    query = _compose(
        f,
        _HOME_SELECT,
        """WHERE {where} AND (%(region)s::text IS NULL OR h.village_id = %(region)s
                OR v.parent_id = %(region)s
                OR v.parent_id IN (SELECT id FROM regions WHERE parent_id = %(region)s))
           ORDER BY h.id""",
    )
    rows = await _rows(conn, query, params)
    return [Home(**r) for r in rows[offset : offset + limit]], len(rows)


async def home(conn: Conn, f: HomeFilter, home_id: str) -> Home | None:
    """One home, if the filter lets it through."""
    query = _compose(f, _HOME_SELECT, " WHERE {where} AND h.id = %(id)s")
    rows = await _rows(conn, query, {**f.params, "id": home_id})
    return Home(**rows[0]) if rows else None


# --------------------------------------------------------------------------- elders


_ELDER_SELECT = """
SELECT e.id, e.home_id, e.full_name, e.born, e.sex, e.phone, e.lives_alone, e.notes,
       e.conditions, e.thresholds, m.mode AS away_mode, m.since AS away_from,
       m.until AS away_until, coalesce(m.reason, '') AS away_reason,
       h.village_id, v.name AS village, h.address, h.timezone
FROM elders e JOIN homes h ON h.id = e.home_id JOIN regions v ON v.id = h.village_id
LEFT JOIN home_modes m ON m.home_id = e.home_id
"""


async def elders(
    conn: Conn, f: HomeFilter, village: str | None, search: str | None, limit: int, offset: int
) -> tuple[list[Home], int]:
    """Elders in the filter as (home, elder) summaries, by name; and how many in all."""
    params = {
        **f.params,
        "village": village,
        "q": None if not search else f"%{search}%",
        "limit": limit,
        "offset": offset,
    }
    query = _compose(
        f,
        _HOME_SELECT,
        """WHERE {where} AND e.id IS NOT NULL
               AND (%(village)s::text IS NULL OR h.village_id = %(village)s)
               AND (%(q)s::text IS NULL OR e.full_name ILIKE %(q)s)
             ORDER BY e.full_name, e.id""",
    )
    rows = await _rows(conn, query, params)
    return [Home(**r) for r in rows[offset : offset + limit]], len(rows)


async def elder(conn: Conn, f: HomeFilter, elder_id: str) -> Elder | None:
    """The elder's file, if the filter lets it through."""
    query = _compose(f, _ELDER_SELECT, " WHERE {where} AND e.id = %(id)s")
    rows = await _rows(conn, query, {**f.params, "id": elder_id})
    if not rows:
        return None
    row = rows[0]
    cur = await conn.execute(
        "SELECT name, relation, phone, false FROM elder_contacts WHERE elder_id = %s"
        " UNION ALL"
        " SELECT u.display_name, l.relation, '', true FROM family_links l"
        " JOIN users u ON u.id = l.user_id WHERE l.elder_id = %s",
        (elder_id, elder_id),
    )
    contacts = [Contact(str(n), str(r), str(p), bool(u)) for n, r, p, u in await cur.fetchall()]
    return Elder(**row, contacts=contacts)


async def elder_for_home(conn: Conn, home_id: str) -> str | None:
    """The elder living in `home_id` (no scope: call after the home was checked)."""
    cur = await conn.execute("SELECT id FROM elders WHERE home_id = %s", (home_id,))
    row = await cur.fetchone()
    return None if row is None else str(row[0])


async def update_elder(conn: Conn, elder_id: str, changes: dict[str, Any]) -> None:
    """Set some of an elder's editable fields (names are checked by the caller's model)."""
    if not changes:
        return
    values = {k: json.dumps(v) if k == "thresholds" else v for k, v in changes.items()}
    query = sql.SQL("UPDATE elders SET {} WHERE id = %(id)s").format(
        sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in values
        )
    )
    await conn.execute(query, {**values, "id": elder_id})


# --------------------------------------------------------------------------- devices


async def devices(
    conn: Conn,
    f: HomeFilter,
    now: datetime,
    *,
    home_id: str | None = None,
    region: str | None = None,
    device_id: str | None = None,
) -> list[Device]:
    """Devices in the filter with their last reading and battery level, by home and id."""
    params = {**f.params, "home": home_id, "region": region, "device": device_id}
    query = _compose(
        f,
        """SELECT d.id, d.home_id, e.full_name AS elder_name, v.name AS village, d.kind,
                  d.room, d.label,
                  (SELECT max(r.ts) FROM readings r
                   WHERE r.home_id = d.home_id AND r.device_id = d.id) AS last_seen,
                  (SELECT r.value FROM readings r WHERE r.home_id = d.home_id
                     AND r.device_id = d.id AND r.metric = 'battery'
                   ORDER BY r.ts DESC LIMIT 1) AS battery
           FROM devices d JOIN homes h ON h.id = d.home_id
           JOIN regions v ON v.id = h.village_id LEFT JOIN elders e ON e.home_id = h.id
           WHERE {where} AND (%(home)s::text IS NULL OR d.home_id = %(home)s)
             AND (%(device)s::text IS NULL OR d.id = %(device)s)
             AND (%(region)s::text IS NULL OR h.village_id = %(region)s
                  OR v.parent_id = %(region)s
                  OR v.parent_id IN (SELECT id FROM regions WHERE parent_id = %(region)s))
           ORDER BY d.home_id, d.id""",
    )
    out = []
    for r in await _rows(conn, query, params):
        spec = CATALOGUE.get(r["kind"])
        heartbeat = timedelta(seconds=(spec.heartbeat_s if spec else 3600))
        seen = r["last_seen"]
        online = seen is not None and now - seen <= heartbeat * OFFLINE_AFTER_HEARTBEATS
        out.append(Device(**r, title=spec.title if spec else r["kind"], online=online))
    return out


# --------------------------------------------------------------------------- readings


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
    """Readings of a home in [start, end) with their device's kind and room, oldest first."""
    cur = await conn.execute(
        "SELECT r.ts, r.device_id, d.kind, d.room, r.metric, r.value FROM readings r"
        " JOIN devices d ON d.id = r.device_id"
        " WHERE r.home_id = %s AND r.ts >= %s AND r.ts < %s ORDER BY r.ts, r.device_id",
        (home_id, start, end),
    )
    return [
        Event(ts, str(d), str(k), str(room), str(m), float(v))
        for ts, d, k, room, m, v in await cur.fetchall()
    ]


async def latest_events(conn: Conn, home_id: str, since: datetime) -> list[Event]:
    """The latest reading since `since` of each device and metric of a home."""
    cur = await conn.execute(
        "SELECT DISTINCT ON (r.device_id, r.metric) r.ts, r.device_id, d.kind, d.room,"
        " r.metric, r.value FROM readings r JOIN devices d ON d.id = r.device_id"
        " WHERE r.home_id = %s AND r.ts >= %s ORDER BY r.device_id, r.metric, r.ts DESC",
        (home_id, since),
    )
    return [
        Event(ts, str(d), str(k), str(room), str(m), float(v))
        for ts, d, k, room, m, v in await cur.fetchall()
    ]


# --------------------------------------------------------------------------- rota


async def rota(
    conn: Conn, f: HomeFilter, start: datetime, end: datetime, region: str | None
) -> list[Shift]:
    """Shifts overlapping [start, end) in the regions the (region) filter lets through."""
    params = {**f.params, "start": start, "end": end, "region": region}
    query = _compose(
        f,
        """SELECT s.id, s.user_id, u.display_name AS staff, u.role, s.region_id,
                  r.name AS region, r.tier, s.starts_at, s.ends_at
           FROM duty_shifts s JOIN users u ON u.id = s.user_id JOIN regions r ON r.id = s.region_id
           WHERE {where} AND s.starts_at < %(end)s AND s.ends_at > %(start)s
             AND (%(region)s::text IS NULL OR s.region_id = %(region)s)
           ORDER BY r.tier, r.name, s.starts_at""",
    )
    return [Shift(**r) for r in await _rows(conn, query, params)]


# --------------------------------------------------------------------------- visits


_VISIT_SELECT = """
SELECT c.id, c.elder_id, e.full_name AS elder_name, v.name AS village, c.user_id,
       u.display_name AS staff, c.visited_at, c.source, c.note
FROM care_visits c JOIN elders e ON e.id = c.elder_id JOIN homes h ON h.id = e.home_id
JOIN regions v ON v.id = h.village_id LEFT JOIN users u ON u.id = c.user_id
"""


async def visits(
    conn: Conn,
    f: HomeFilter,
    start: datetime,
    end: datetime,
    *,
    elder_id: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Visit], int]:
    """Care visits in [start, end) in the filter, newest first; and how many in all."""
    params = {**f.params, "start": start, "end": end, "elder": elder_id}
    query = _compose(
        f,
        _VISIT_SELECT,
        """WHERE {where} AND c.visited_at >= %(start)s AND c.visited_at < %(end)s
               AND (%(elder)s::text IS NULL OR c.elder_id = %(elder)s)
             ORDER BY c.visited_at DESC, c.id DESC""",
    )
    rows = await _rows(conn, query, params)
    return [Visit(**r) for r in rows[offset : offset + limit]], len(rows)


async def add_visit(
    conn: Conn,
    elder_id: str,
    user_id: int,
    at: datetime,
    source: str,
    note: str,
    recorded_by: int,
) -> int:
    """Record a visit; returns its id."""
    cur = await conn.execute(
        "INSERT INTO care_visits (elder_id, user_id, visited_at, source, note, recorded_by)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (elder_id, user_id, at, source, note, recorded_by),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def visit(conn: Conn, f: HomeFilter, visit_id: int) -> Visit | None:
    """One visit, if the filter lets it through."""
    query = _compose(f, _VISIT_SELECT, " WHERE {where} AND c.id = %(id)s")
    rows = await _rows(conn, query, {**f.params, "id": visit_id})
    return Visit(**rows[0]) if rows else None


async def compliance(
    conn: Conn, f: HomeFilter, week_start: date, village: str | None
) -> list[Compliance]:
    """Every elder living alone in the filter with their visits in the week starting
    `week_start` (Monday, in the home's time zone) and whether their home was in away /
    hospital mode (`home_modes`) during it, by village and name."""
    params = {**f.params, "week": week_start, "village": village}
    query = _compose(
        f,
        """SELECT e.id AS elder_id, e.full_name AS elder_name, h.id AS home_id,
                  h.village_id, v.name AS village,
                  (SELECT count(*) FROM care_visits c WHERE c.elder_id = e.id
                     AND c.visited_at >= (%(week)s::date)::timestamp AT TIME ZONE h.timezone
                     AND c.visited_at < (%(week)s::date + 7)::timestamp AT TIME ZONE h.timezone
                  )::int AS visits,
                  EXISTS (SELECT 1 FROM home_modes m WHERE m.home_id = h.id
                     AND m.since <= (%(week)s::date + 7)::timestamp AT TIME ZONE h.timezone
                     AND (m.until IS NULL
                          OR m.until > (%(week)s::date)::timestamp AT TIME ZONE h.timezone)
                  ) AS away
           FROM elders e JOIN homes h ON h.id = e.home_id JOIN regions v ON v.id = h.village_id
           WHERE {where} AND e.lives_alone
             AND (%(village)s::text IS NULL OR h.village_id = %(village)s)
           ORDER BY v.name, e.full_name""",
    )
    return [Compliance(**r) for r in await _rows(conn, query, params)]


# --------------------------------------------------------------------------- audit


async def audit_health_read(
    conn: Conn, user_id: int, elder_id: str, what: str, detail: dict[str, Any] | None = None
) -> None:
    """Write the audit row of one read of an elder's health data."""
    await conn.execute(
        "INSERT INTO health_reads (user_id, elder_id, what, detail) VALUES (%s, %s, %s, %s)",
        (user_id, elder_id, what, json.dumps(detail or {}, default=str)),
    )


async def health_reads(conn: Conn, elder_id: str, limit: int) -> list[dict[str, Any]]:
    """The latest audit rows of reads of one elder's health data."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT r.at, r.user_id, u.display_name AS reader, u.role, r.what, r.detail"
            " FROM health_reads r JOIN users u ON u.id = r.user_id WHERE r.elder_id = %s"
            " ORDER BY r.at DESC, r.id DESC LIMIT %s",
            (elder_id, limit),
        )
        return list(await cur.fetchall())


async def set_locale(conn: Conn, user_id: int, locale: str) -> None:
    """Change the language a user sees."""
    await conn.execute("UPDATE users SET locale = %s WHERE id = %s", (locale, user_id))
