"""The audit trail of alerts: one row of `alert_events` for each thing that happens to one.

Written by every stage that touches an alert (its lifecycle, round planning, the outbox),
inside the caller's transaction; read back by `alerts.views.alert_events`.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg

Conn = psycopg.AsyncConnection[Any]


async def record_event(
    conn: Conn, alert_id: int, action: str, actor_id: int | None, detail: dict[str, Any]
) -> None:
    """Append one audit row (`actor_id` None: the service did it)."""
    await conn.execute(
        "INSERT INTO alert_events (alert_id, actor_id, action, detail) VALUES (%s, %s, %s, %s)",
        (alert_id, actor_id, action, json.dumps(detail, default=str)),
    )
