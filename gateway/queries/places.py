"""SQL of the region tree and the homes in it."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.access import HomeFilter
from gateway.queries.base import Conn, compose, fetch_dicts


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


async def regions(conn: Conn, f: HomeFilter) -> list[Region]:
    """Regions the filter lets through (a region filter), with their number of homes."""
    query = compose(
        f,
        """SELECT r.id, r.name, r.tier, r.parent_id,
                  (SELECT count(*) FROM homes h JOIN regions v ON v.id = h.village_id
                   WHERE h.village_id = r.id OR v.parent_id = r.id
                      OR v.parent_id IN (SELECT id FROM regions t WHERE t.parent_id = r.id))
                  AS homes
           FROM regions r WHERE {where} ORDER BY r.tier, r.name""",
    )
    return [Region(**r) for r in await fetch_dicts(conn, query, f.params)]


HOME_SELECT = """
SELECT h.id, h.village_id, v.name AS village, v.parent_id AS town_id, h.address, h.timezone,
       e.id AS elder_id, e.full_name AS elder_name
FROM homes h JOIN regions v ON v.id = h.village_id LEFT JOIN elders e ON e.home_id = h.id
"""
"""The columns of a `Home` (with aliases h, v, e for filters and conditions)."""


async def homes(
    conn: Conn, f: HomeFilter, region: str | None, limit: int, offset: int
) -> tuple[list[Home], int]:
    """Homes in the filter (and under `region` when given), by id; and how many in all."""
    params = {**f.params, "region": region, "limit": limit, "offset": offset}
    query = compose(
        f,
        HOME_SELECT,
        """WHERE {where} AND (%(region)s::text IS NULL OR h.village_id = %(region)s
                OR v.parent_id = %(region)s
                OR v.parent_id IN (SELECT id FROM regions WHERE parent_id = %(region)s))
           ORDER BY h.id""",
    )
    rows = await fetch_dicts(conn, query, params)
    return [Home(**r) for r in rows[offset : offset + limit]], len(rows)


async def home(conn: Conn, f: HomeFilter, home_id: str) -> Home | None:
    """One home, if the filter lets it through."""
    query = compose(f, HOME_SELECT, " WHERE {where} AND h.id = %(id)s")
    rows = await fetch_dicts(conn, query, {**f.params, "id": home_id})
    return Home(**rows[0]) if rows else None


_IN_SUBTREE = """
WITH RECURSIVE subtree(id) AS (
    SELECT id FROM regions WHERE id = %(root)s
    UNION ALL
    SELECT r.id FROM regions r JOIN subtree s ON r.parent_id = s.id
)
SELECT EXISTS (SELECT 1 FROM subtree WHERE id = %(region)s)
    OR EXISTS (SELECT 1 FROM homes WHERE id = %(home)s AND village_id IN (SELECT id FROM subtree))
"""


async def in_subtree(
    conn: Conn, root: str | None, *, region_id: str | None, home_id: str | None
) -> bool:
    """Whether region `region_id` or home `home_id` lies in the region tree under `root`
    (`root` itself included)."""
    cur = await conn.execute(_IN_SUBTREE, {"root": root, "region": region_id, "home": home_id})
    row = await cur.fetchone()
    return bool(row and row[0])
