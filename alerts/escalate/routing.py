"""Which escalation policy an alert follows: the stored policy rows (nearest region, then
category) over the built-in defaults, and what planning its rounds needs to know besides."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from alerts.escalate.policy import Policy, default_policy
from alerts.model import Category, Severity

Conn = psycopg.AsyncConnection[Any]

ALL_CHANNELS = frozenset({"webhook", "email", "apprise", "console", "webpush", "sms", "voice"})
"""Every channel kind there is (for callers that plan rounds without a dispatcher's set)."""


@dataclass(slots=True, frozen=True)
class Routing:
    """What planning a round needs besides the database: the channel kinds that can be used
    (a person with none of them is skipped and reported) and the demo speed-up of delays."""

    channels: frozenset[str]
    speed: float = 1.0


async def resolve_policy(
    conn: Conn, home_id: str | None, severity: Severity, category: Category
) -> Policy:
    """The escalation policy for an alert of this home: the most specific row of
    `escalation_policies` (nearest region, then category), else the built-in default."""
    cur = await send_policy_query(conn, home_id, severity, category)
    return await read_policy(cur, severity, category)


async def read_policy(cur: Any, severity: Severity, category: Category) -> Policy:
    """The answer to `send_policy_query` (the built-in default when no row applies)."""
    row = await cur.fetchone()
    if row is None:
        return default_policy(severity, category)
    return Policy.from_json({"steps": row[0], "repeat_s": row[1]})


async def send_policy_query(
    conn: Conn, home_id: str | None, severity: Severity, category: Category
) -> Any:
    """Send the query `read_policy` reads (in pipeline mode: without waiting for it)."""
    return await conn.execute(
        """
        WITH RECURSIVE anc(id, depth, parent_id) AS (
            SELECT r.id, 0, r.parent_id FROM regions r JOIN homes h ON h.village_id = r.id
            WHERE h.id = %(home)s
            UNION ALL
            SELECT r.id, anc.depth + 1, r.parent_id FROM regions r JOIN anc ON r.id = anc.parent_id
        )
        SELECT p.steps, p.repeat_s FROM escalation_policies p
        LEFT JOIN anc ON anc.id = p.region_id
        WHERE p.severity = %(severity)s AND (p.category IS NULL OR p.category = %(category)s)
          AND (p.region_id IS NULL OR anc.id IS NOT NULL)
        ORDER BY coalesce(anc.depth, 1000), (p.category IS NULL), p.id
        LIMIT 1
        """,
        {"home": home_id, "severity": severity.value, "category": category.value},
    )


async def policy_of(conn: Conn, alert_id: int) -> tuple[Policy, datetime, str]:
    """An alert's policy snapshot (the default of its severity and category if it has none),
    its opening time and its status."""
    cur = await conn.execute(
        "SELECT policy, opened_at, severity, category, status FROM alerts WHERE id = %s",
        (alert_id,),
    )
    row = await cur.fetchone()
    assert row is not None
    doc, opened_at, severity, category, status = row
    policy = (
        default_policy(Severity(severity), Category(category))
        if doc is None
        else Policy.from_json(doc)
    )
    return policy, opened_at, str(status)
