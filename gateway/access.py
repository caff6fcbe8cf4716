"""Who may see what: each role's part of the region tree (or its elders), as SQL filters.

Every object the API returns is found through one of these filters, so an object outside
the caller's part is simply not found (404), never shown and never told apart from a
missing one. What kinds of object a role may touch at all is checked before (403)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from gateway.auth import STAFF_ROLES, Principal
from gateway.errors import ApiError


class Area(enum.StrEnum):
    """Kinds of data, for the role check."""

    REGIONS = "regions"
    HOMES = "homes"
    DEVICES = "devices"
    HEALTH = "health"  # the elder's file, readings, status, timeline, visits
    CARE = "care"  # recording visits, compliance, rota
    EDIT_ELDER = "edit_elder"
    MANAGE_DEVICES = "manage_devices"  # install, replace, rotate, retire


_ALLOWED: dict[str, frozenset[Area]] = {
    "district_staff": frozenset(Area),
    "town_staff": frozenset(Area),
    "village_worker": frozenset(Area),
    "family": frozenset({Area.HOMES, Area.DEVICES, Area.HEALTH}),
    "operator": frozenset({Area.REGIONS, Area.HOMES, Area.DEVICES, Area.MANAGE_DEVICES}),
}


def may(principal: Principal, area: Area) -> bool:
    """Whether `principal`'s role may touch `area` at all (objects are filtered further)."""
    return area in _ALLOWED.get(principal.role, frozenset())


def need(principal: Principal, area: Area) -> None:
    """403 unless `principal`'s role may touch `area` at all."""
    if not may(principal, area):
        raise ApiError(403, "forbidden", f"a {principal.role} may not use {area.value} here")


SUBTREE = """
WITH RECURSIVE subtree(id) AS (
    SELECT id FROM regions WHERE id = %(scope_region)s
    UNION ALL
    SELECT r.id FROM regions r JOIN subtree s ON r.parent_id = s.id
)
"""


@dataclass(frozen=True, slots=True)
class HomeFilter:
    """A WHERE clause on a home column, its parameters, and the CTE it needs."""

    where: sql.Composable
    params: dict[str, Any]
    cte: sql.Composable


def home_filter(
    principal: Principal, home_col: str = "h.id", village_col: str = "h.village_id"
) -> HomeFilter:
    """The homes `principal` may see: staff their subtree, family their elders' homes,
    the operator every home (for devices), anyone else none."""
    if principal.role in STAFF_ROLES and principal.region_id is not None:
        return HomeFilter(
            sql.SQL("{} IN (SELECT id FROM subtree)").format(sql.SQL(village_col)),
            {"scope_region": principal.region_id},
            sql.SQL(SUBTREE),
        )
    if principal.role == "family":
        return HomeFilter(
            sql.SQL("{} = ANY(%(scope_homes)s)").format(sql.SQL(home_col)),
            {"scope_homes": list(principal.home_ids)},
            sql.SQL(""),
        )
    if principal.role == "operator":
        return HomeFilter(sql.SQL("true"), {}, sql.SQL(""))
    return HomeFilter(sql.SQL("false"), {}, sql.SQL(""))


def region_filter(principal: Principal, region_col: str = "r.id") -> HomeFilter:
    """The regions `principal` may list: staff their subtree, the operator all, others none."""
    if principal.role in STAFF_ROLES and principal.region_id is not None:
        return HomeFilter(
            sql.SQL("{} IN (SELECT id FROM subtree)").format(sql.SQL(region_col)),
            {"scope_region": principal.region_id},
            sql.SQL(SUBTREE),
        )
    if principal.role == "operator":
        return HomeFilter(sql.SQL("true"), {}, sql.SQL(""))
    return HomeFilter(sql.SQL("false"), {}, sql.SQL(""))


_SUBTREE_AND_UP = """
WITH RECURSIVE subtree(id) AS (
    SELECT id FROM regions WHERE id = %(scope_region)s
    UNION ALL
    SELECT r.id FROM regions r JOIN subtree s ON r.parent_id = s.id
), above(id, parent_id) AS (
    SELECT id, parent_id FROM regions WHERE id = %(scope_region)s
    UNION ALL
    SELECT r.id, r.parent_id FROM regions r JOIN above a ON r.id = a.parent_id
)
"""


def rota_filter(principal: Principal, region_col: str = "s.region_id") -> HomeFilter:
    """The regions whose rota staff may read: their subtree and the tiers above them (whom
    their alerts escalate to). Nobody else reads the rota."""
    if principal.role in STAFF_ROLES and principal.region_id is not None:
        return HomeFilter(
            sql.SQL("({0} IN (SELECT id FROM subtree) OR {0} IN (SELECT id FROM above))").format(
                sql.SQL(region_col)
            ),
            {"scope_region": principal.region_id},
            sql.SQL(_SUBTREE_AND_UP),
        )
    return HomeFilter(sql.SQL("false"), {}, sql.SQL(""))
