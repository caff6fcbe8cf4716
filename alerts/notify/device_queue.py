"""The device-command queue (`device_commands`): "help is on the way" queued for the
devices of an acknowledged alert's home, claimed by the dispatcher when due and published
(see `alerts.notify.commands`), each result recorded and a failure retried."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

Conn = psycopg.AsyncConnection[Any]


async def queue_help_command(conn: Conn, alert_id: int, user_id: int, at: datetime | None) -> int:
    """Queue "help is on the way" for the devices that raised the alert (else the home's
    SOS buttons); the dispatcher publishes it QoS 1 on their command topics."""
    cur = await conn.execute(
        """
        WITH a AS (SELECT id, home_id FROM alerts WHERE id = %(alert)s),
        evidence AS (
            SELECT DISTINCT ev.device_id FROM alert_evidence ev, a
            WHERE ev.alert_id = a.id AND ev.device_id IS NOT NULL
        ),
        targets AS (
            SELECT device_id FROM evidence
            UNION
            SELECT d.id FROM devices d, a
            WHERE d.home_id = a.home_id AND d.kind = 'sos_button'
              AND NOT EXISTS (SELECT 1 FROM evidence)
        )
        INSERT INTO device_commands (alert_id, home_id, device_id, command, due_at)
        SELECT a.id, a.home_id, t.device_id,
               jsonb_build_object('command', 'help_on_the_way', 'alert_id', a.id,
                                  'by', (SELECT display_name FROM users WHERE id = %(user)s),
                                  'at', coalesce(%(at)s, now())),
               coalesce(%(at)s, now())
        FROM a, targets t
        RETURNING id
        """,
        {"alert": alert_id, "user": user_id, "at": at},
    )
    return len(await cur.fetchall())


async def due_commands(
    conn: Conn, now: datetime, limit: int = 50
) -> list[tuple[int, str, str, dict[str, Any], int]]:
    """Claim (row-lock) device commands to publish: (id, home, device, command, attempts)."""
    cur = await conn.execute(
        "SELECT id, home_id, device_id, command, attempts FROM device_commands"
        " WHERE sent_at IS NULL AND due_at <= %s ORDER BY due_at LIMIT %s"
        " FOR UPDATE SKIP LOCKED",
        (now, limit),
    )
    return [(int(i), str(h), str(d), dict(c), int(n)) for i, h, d, c, n in await cur.fetchall()]


async def record_command(
    conn: Conn, command_id: int, error: str | None, retry_at: datetime
) -> None:
    """Store the result of publishing a device command (retried at `retry_at` on failure)."""
    if error is None:
        await conn.execute(
            "UPDATE device_commands SET sent_at = now(), attempts = attempts + 1,"
            " last_error = NULL WHERE id = %s",
            (command_id,),
        )
    else:
        await conn.execute(
            "UPDATE device_commands SET attempts = attempts + 1, last_error = %s, due_at = %s"
            " WHERE id = %s",
            (error, retry_at, command_id),
        )
