"""Reading the administrative audit (`admin_audit`): who changed what, when, before and
after. District and town staff read the rows of their region; the command line all."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.admin.common import Actor, Conn, Op, Result, allow, scope_regions


class AuditRow(Result):
    """One administrative change."""

    id: int
    at: datetime
    actor_id: int | None
    actor: str
    actor_role: str
    entity: str
    entity_id: str
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


async def list_audit(
    conn: Conn,
    actor: Actor,
    entity: str | None = None,
    entity_id: str | None = None,
    limit: int = 100,
) -> list[AuditRow]:
    """The latest changes, newest first: for staff, those made by people of their region or
    to its regions, homes and elders."""
    allow(actor, Op.AUDIT)
    regions = await scope_regions(conn, actor)
    cur = await conn.execute(
        "SELECT a.id, a.at, a.actor_id, a.actor, a.actor_role, a.entity, a.entity_id, a.action,"
        " a.before, a.after FROM admin_audit a"
        " WHERE (%(entity)s::text IS NULL OR a.entity = %(entity)s)"
        " AND (%(eid)s::text IS NULL OR a.entity_id = %(eid)s)"
        " AND (%(regions)s::text[] IS NULL"
        "   OR a.actor_id IN (SELECT id FROM users WHERE region_id = ANY(%(regions)s))"
        "   OR (a.entity = 'region' AND a.entity_id = ANY(%(regions)s))"
        "   OR coalesce(a.after, a.before) ->> 'village_id' = ANY(%(regions)s))"
        " ORDER BY a.id DESC LIMIT %(limit)s",
        {"entity": entity, "eid": entity_id, "regions": regions, "limit": limit},
    )
    names = list(AuditRow.model_fields)
    return [AuditRow(**dict(zip(names, r, strict=True))) for r in await cur.fetchall()]
