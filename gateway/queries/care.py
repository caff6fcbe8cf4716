"""SQL of care: the on-duty rota, care visits, and each week's visits against the target."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from gateway.access import HomeFilter
from gateway.queries.base import Conn, compose, fetch_dicts


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


async def rota(
    conn: Conn, f: HomeFilter, start: datetime, end: datetime, region: str | None
) -> list[Shift]:
    """Shifts overlapping [start, end) in the regions the (region) filter lets through."""
    params = {**f.params, "start": start, "end": end, "region": region}
    query = compose(
        f,
        """SELECT s.id, s.user_id, u.display_name AS staff, u.role, s.region_id,
                  r.name AS region, r.tier, s.starts_at, s.ends_at
           FROM duty_shifts s JOIN users u ON u.id = s.user_id JOIN regions r ON r.id = s.region_id
           WHERE {where} AND s.starts_at < %(end)s AND s.ends_at > %(start)s
             AND (%(region)s::text IS NULL OR s.region_id = %(region)s)
           ORDER BY r.tier, r.name, s.starts_at""",
    )
    return [Shift(**r) for r in await fetch_dicts(conn, query, params)]


async def rota_regions(conn: Conn, f: HomeFilter) -> dict[str, str]:
    """Id → name of the regions whose rota the (region) filter lets through (`f` made with
    the region column `r.id`)."""
    query = compose(f, "SELECT r.id, r.name FROM regions r WHERE {where} ORDER BY r.id")
    return {str(r["id"]): str(r["name"]) for r in await fetch_dicts(conn, query, f.params)}


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
    query = compose(
        f,
        _VISIT_SELECT,
        """WHERE {where} AND c.visited_at >= %(start)s AND c.visited_at < %(end)s
               AND (%(elder)s::text IS NULL OR c.elder_id = %(elder)s)
             ORDER BY c.visited_at DESC, c.id DESC""",
    )
    rows = await fetch_dicts(conn, query, params)
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
    query = compose(f, _VISIT_SELECT, " WHERE {where} AND c.id = %(id)s")
    rows = await fetch_dicts(conn, query, {**f.params, "id": visit_id})
    return Visit(**rows[0]) if rows else None


async def compliance(
    conn: Conn, f: HomeFilter, week_start: date, village: str | None
) -> list[Compliance]:
    """Every elder living alone in the filter with their visits in the week starting
    `week_start` (Monday, in the home's time zone) and whether their home was in away /
    hospital mode (`home_modes`) during it, by village and name."""
    params = {**f.params, "week": week_start, "village": village}
    query = compose(
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
    return [Compliance(**r) for r in await fetch_dicts(conn, query, params)]
