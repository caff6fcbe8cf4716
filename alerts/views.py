"""Read views of alerts for people (the console, the API, the dispatcher's notices): alerts
visible in a scope, one alert, and an alert's audit trail, as typed values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from alerts.model import HUMAN_OUTCOMES, Alert, Category, Scope, Severity, Status

Conn = psycopg.AsyncConnection[Any]

OUTCOMES = tuple(o.value for o in HUMAN_OUTCOMES)
"""How an alert may end when a person resolves it."""

_ALERT_SELECT = """
SELECT a.id, a.home_id, a.kind, a.category, a.severity, a.status, a.event_at, a.opened_at,
       a.summary, a.evidence_count, a.last_evidence_at, a.acknowledged_at, a.acknowledged_by,
       u.display_name AS acknowledged_by_name, a.resolved_at, a.outcome,
       e.full_name AS elder_name, v.name AS village, e.id AS elder_id, h.village_id,
       a.en_route_at, ur.display_name AS en_route_by_name, a.arrived_at,
       ua.display_name AS arrived_by_name, nullif(u.phone, '') AS acknowledged_by_phone
FROM alerts a
LEFT JOIN homes h ON h.id = a.home_id
LEFT JOIN regions v ON v.id = h.village_id
LEFT JOIN elders e ON e.home_id = a.home_id
LEFT JOIN users u ON u.id = a.acknowledged_by
LEFT JOIN users ur ON ur.id = a.en_route_by
LEFT JOIN users ua ON ua.id = a.arrived_by
"""

_SUBTREE = """
WITH RECURSIVE subtree(id) AS (
    SELECT id FROM regions WHERE id = %(region)s
    UNION ALL
    SELECT r.id FROM regions r JOIN subtree s ON r.parent_id = s.id
)
"""


def _alert(row: dict[str, Any]) -> Alert:
    return Alert(
        id=row["id"],
        home_id=row["home_id"],
        kind=row["kind"],
        category=Category(row["category"]),
        severity=Severity(row["severity"]),
        status=Status(row["status"]),
        event_at=row["event_at"],
        opened_at=row["opened_at"],
        summary=row["summary"],
        evidence_count=row["evidence_count"],
        last_evidence_at=row["last_evidence_at"],
        acknowledged_at=row["acknowledged_at"],
        acknowledged_by=row["acknowledged_by"],
        acknowledged_by_name=row["acknowledged_by_name"],
        resolved_at=row["resolved_at"],
        outcome=row["outcome"],
        elder_name=row["elder_name"],
        village=row["village"],
        elder_id=row["elder_id"],
        en_route_at=row["en_route_at"],
        en_route_by_name=row["en_route_by_name"],
        arrived_at=row["arrived_at"],
        arrived_by_name=row["arrived_by_name"],
        acknowledged_by_phone=row["acknowledged_by_phone"],
        region_id=row["village_id"],
    )


def _scope_filter(scope: Scope) -> tuple[sql.Composable, dict[str, Any]]:
    clauses: list[sql.Composable] = []
    params: dict[str, Any] = {}
    if not scope.everything:
        if scope.region_id is None and scope.home_ids is None:
            clauses.append(sql.SQL("false"))
        if scope.region_id is not None:
            clauses.append(sql.SQL("h.village_id IN (SELECT id FROM subtree)"))
            params["region"] = scope.region_id
        if scope.home_ids is not None:
            clauses.append(sql.SQL("a.home_id = ANY(%(homes)s)"))
            params["homes"] = list(scope.home_ids)
        if scope.service_alerts:
            clauses = [
                sql.SQL("(({}) OR a.home_id IS NULL)").format(sql.SQL(" AND ").join(clauses))
            ]
    # An erased elder's alerts (anonymised, kept for the KPIs) are nobody's to list.
    clauses.append(sql.SQL("a.erasure_id IS NULL"))
    if scope.categories is not None:
        clauses.append(sql.SQL("a.category = ANY(%(cats)s)"))
        params["cats"] = [c.value for c in scope.categories]
    return sql.SQL(" AND ").join(clauses) if clauses else sql.SQL("true"), params


async def list_alerts(
    conn: Conn,
    scope: Scope,
    statuses: list[Status],
    limit: int,
    before_id: int | None = None,
) -> list[Alert]:
    """Alerts visible in `scope`, newest first, keyset-paginated by id."""
    where, params = _scope_filter(scope)
    params.update({"statuses": [s.value for s in statuses], "limit": limit, "before": before_id})
    query = sql.SQL(
        "{subtree} {select} WHERE {where} AND a.status = ANY(%(statuses)s)"
        " AND (%(before)s::bigint IS NULL OR a.id < %(before)s)"
        " ORDER BY a.id DESC LIMIT %(limit)s"
    ).format(
        subtree=sql.SQL(_SUBTREE if "region" in params else ""),
        select=sql.SQL(_ALERT_SELECT),
        where=where,
    )
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return [_alert(r) for r in await cur.fetchall()]


async def get_alert(conn: Conn, scope: Scope, alert_id: int) -> Alert | None:
    """One alert, if it exists and is visible in `scope`."""
    where, params = _scope_filter(scope)
    params["id"] = alert_id
    query = sql.SQL("{subtree} {select} WHERE {where} AND a.id = %(id)s").format(
        subtree=sql.SQL(_SUBTREE if "region" in params else ""),
        select=sql.SQL(_ALERT_SELECT),
        where=where,
    )
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        row = await cur.fetchone()
    return None if row is None else _alert(row)


@dataclass(slots=True, frozen=True)
class HistoryFilter:
    """Which past and present alerts to list: all given fields must match."""

    region_id: str | None = None
    """A region subtree (a district, town or village), within the caller's scope."""
    kinds: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()
    statuses: tuple[Status, ...] = ()
    opened_from: datetime | None = None
    opened_to: datetime | None = None
    """Opened in [opened_from, opened_to)."""


async def search_alerts(
    conn: Conn, scope: Scope, wanted: HistoryFilter, limit: int, before_id: int | None = None
) -> list[Alert]:
    """Alerts visible in `scope` that match `wanted`, newest first, keyset-paginated by id."""
    where, params = _scope_filter(scope)
    clauses = [where]
    if wanted.region_id is not None:
        clauses.append(
            sql.SQL(
                "h.village_id IN (WITH RECURSIVE sub(id) AS (SELECT id FROM regions WHERE id ="
                " %(wanted_region)s UNION ALL SELECT r.id FROM regions r JOIN sub ON"
                " r.parent_id = sub.id) SELECT id FROM sub)"
            )
        )
        params["wanted_region"] = wanted.region_id
    for name, values, column in (
        ("kinds", wanted.kinds, "a.kind"),
        ("outcomes", wanted.outcomes, "a.outcome"),
        ("wanted_statuses", tuple(s.value for s in wanted.statuses), "a.status"),
    ):
        if values:
            clauses.append(sql.SQL("{} = ANY({})").format(sql.SQL(column), sql.Placeholder(name)))
            params[name] = list(values)
    if wanted.opened_from is not None:
        clauses.append(sql.SQL("a.opened_at >= %(opened_from)s"))
        params["opened_from"] = wanted.opened_from
    if wanted.opened_to is not None:
        clauses.append(sql.SQL("a.opened_at < %(opened_to)s"))
        params["opened_to"] = wanted.opened_to
    params.update({"limit": limit, "before": before_id})
    query = sql.SQL(
        "{subtree} {select} WHERE {where}"
        " AND (%(before)s::bigint IS NULL OR a.id < %(before)s)"
        " ORDER BY a.id DESC LIMIT %(limit)s"
    ).format(
        subtree=sql.SQL(_SUBTREE if "region" in params else ""),
        select=sql.SQL(_ALERT_SELECT),
        where=sql.SQL(" AND ").join(clauses),
    )
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return [_alert(r) for r in await cur.fetchall()]


async def visible_ids(conn: Conn, scope: Scope, alert_ids: list[int]) -> list[int]:
    """Those of `alert_ids` that exist and are visible in `scope`."""
    where, params = _scope_filter(scope)
    params["ids"] = alert_ids
    query = sql.SQL(
        "{subtree} SELECT a.id FROM alerts a LEFT JOIN homes h ON h.id = a.home_id"
        " WHERE {where} AND a.id = ANY(%(ids)s) ORDER BY a.id"
    ).format(subtree=sql.SQL(_SUBTREE if "region" in params else ""), where=where)
    cur = await conn.execute(query, params)
    return [r[0] for r in await cur.fetchall()]


@dataclass(slots=True, frozen=True)
class AlertEvent:
    """One row of an alert's audit trail."""

    at: datetime
    actor_id: int | None
    """Who did it; None: the service."""
    action: str
    """What happened: `opened`, `evidence`, `round_planned`, `notified`, ... (docs/alerting.md)."""
    detail: dict[str, Any]


async def alert_events(conn: Conn, alert_id: int) -> list[AlertEvent]:
    """The audit trail of one alert, oldest first."""
    cur = await conn.execute(
        "SELECT at, actor_id, action, detail FROM alert_events WHERE alert_id = %s ORDER BY at, id",
        (alert_id,),
    )
    return [
        AlertEvent(at, None if actor is None else int(actor), str(action), dict(detail))
        for at, actor, action, detail in await cur.fetchall()
    ]
