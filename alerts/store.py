"""SQL of the alerts stage: open alerts, add evidence, acknowledge, plan notifications."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from alerts.model import (
    Alert,
    Category,
    Outgoing,
    Raised,
    Recipient,
    Scope,
    Severity,
    Signal,
    Status,
)

Conn = psycopg.AsyncConnection[Any]
NOTIFY_CHANNEL = "eldercare_alert_changed"

_ALERT_SELECT = """
SELECT a.id, a.home_id, a.kind, a.category, a.severity, a.status, a.event_at, a.opened_at,
       a.summary, a.evidence_count, a.last_evidence_at, a.acknowledged_at, a.acknowledged_by,
       u.display_name AS acknowledged_by_name, a.resolved_at, a.outcome,
       e.full_name AS elder_name, v.name AS village
FROM alerts a
JOIN homes h ON h.id = a.home_id
JOIN regions v ON v.id = h.village_id
LEFT JOIN elders e ON e.home_id = a.home_id
LEFT JOIN users u ON u.id = a.acknowledged_by
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
    )


async def _event(
    conn: Conn, alert_id: int, action: str, actor_id: int | None, detail: dict[str, Any]
) -> None:
    await conn.execute(
        "INSERT INTO alert_events (alert_id, actor_id, action, detail) VALUES (%s, %s, %s, %s)",
        (alert_id, actor_id, action, json.dumps(detail, default=str)),
    )


async def _notify_change(conn: Conn, alert_id: int) -> None:
    await conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, str(alert_id)))


async def raise_signal(conn: Conn, signal: Signal, now: datetime, repeat: timedelta) -> Raised:
    """Open an alert for `signal`, or add it as evidence to the open one of its home and kind.

    Runs in one transaction; a new alert gets its first round of notifications (due `now`)
    and a repeat timer; a redelivered signal (same device, boot, seq) adds nothing.
    """
    async with conn.transaction():
        cur = await conn.execute(
            "INSERT INTO alerts (home_id, kind, category, severity, event_at, summary,"
            " last_evidence_at) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (home_id, kind) WHERE status <> 'resolved'"
            " DO UPDATE SET last_evidence_at = greatest(alerts.last_evidence_at,"
            "   EXCLUDED.last_evidence_at)"
            " RETURNING id, (xmax = 0) AS created",
            (
                signal.home_id,
                signal.kind,
                signal.category.value,
                signal.severity.value,
                signal.event_at,
                signal.summary,
                signal.event_at,
            ),
        )
        row = await cur.fetchone()
        assert row is not None
        alert_id, created = int(row[0]), bool(row[1])
        cur = await conn.execute(
            "INSERT INTO alert_evidence (alert_id, at, device_id, boot, seq, detail)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING id",
            (
                alert_id,
                signal.event_at,
                signal.device_id,
                signal.boot,
                signal.seq,
                json.dumps(signal.evidence, default=str),
            ),
        )
        new_evidence = await cur.fetchone() is not None
        if created:
            await _event(conn, alert_id, "opened", None, {"summary": signal.summary})
            await plan_round(conn, alert_id, 0, now, repeat)
        elif new_evidence:
            await conn.execute(
                "UPDATE alerts SET evidence_count = evidence_count + 1 WHERE id = %s",
                (alert_id,),
            )
            await _event(
                conn,
                alert_id,
                "evidence",
                None,
                {"device_id": signal.device_id, "seq": signal.seq, "at": signal.event_at},
            )
        if created or new_evidence:
            await _notify_change(conn, alert_id)
    return Raised(alert_id, created, new_evidence)


async def recipients(conn: Conn, alert_id: int, at: datetime) -> list[Recipient]:
    """Who is told about an alert at once: the on-duty village worker(s) of the elder's
    village and the family's first contact, each over every channel they have."""
    cur = await conn.execute(
        """
        WITH a AS (
            SELECT h.village_id, e.id AS elder_id
            FROM alerts al JOIN homes h ON h.id = al.home_id
            LEFT JOIN elders e ON e.home_id = h.id
            WHERE al.id = %(alert)s
        ), people AS (
            SELECT DISTINCT u.id, u.role
            FROM duty_shifts d JOIN users u ON u.id = d.user_id, a
            WHERE d.region_id = a.village_id AND d.starts_at <= %(at)s AND d.ends_at > %(at)s
              AND u.role = 'village_worker'
            UNION
            SELECT u.id, u.role
            FROM family_links f JOIN users u ON u.id = f.user_id, a
            WHERE f.elder_id = a.elder_id AND f.first_contact
        )
        SELECT p.id, p.role, c.channel, c.target
        FROM people p JOIN contact_channels c ON c.user_id = p.id
        ORDER BY p.id, c.position, c.id
        """,
        {"alert": alert_id, "at": at},
    )
    return [Recipient(int(u), str(r), str(ch), str(t)) for u, r, ch, t in await cur.fetchall()]


async def plan_round(
    conn: Conn, alert_id: int, round_no: int, at: datetime, repeat: timedelta
) -> int:
    """Queue one round of notifications and set the timer for the next; returns how many."""
    people = await recipients(conn, alert_id, at)
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO notifications (alert_id, round, user_id, channel, target, due_at)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [(alert_id, round_no, p.user_id, p.channel, p.target, at) for p in people],
        )
    await conn.execute(
        "INSERT INTO alert_timers (alert_id, next_round, due_at) VALUES (%s, %s, %s)"
        " ON CONFLICT (alert_id) DO UPDATE SET next_round = EXCLUDED.next_round,"
        " due_at = EXCLUDED.due_at",
        (alert_id, round_no + 1, at + repeat),
    )
    if people:
        await _event(
            conn,
            alert_id,
            "round_planned",
            None,
            {"round": round_no, "recipients": len({p.user_id for p in people})},
        )
    else:
        await _event(conn, alert_id, "no_recipient", None, {"round": round_no})
    return len(people)


async def due_timers(conn: Conn, now: datetime, limit: int = 50) -> list[tuple[int, int, str]]:
    """Claim (row-lock) timers that are due; call inside a transaction."""
    cur = await conn.execute(
        "SELECT t.alert_id, t.next_round, a.status FROM alert_timers t"
        " JOIN alerts a ON a.id = t.alert_id"
        " WHERE t.due_at <= %s ORDER BY t.due_at LIMIT %s FOR UPDATE OF t SKIP LOCKED",
        (now, limit),
    )
    return [(int(a), int(r), str(s)) for a, r, s in await cur.fetchall()]


async def drop_timer(conn: Conn, alert_id: int) -> None:
    """Forget the repeat timer of an alert."""
    await conn.execute("DELETE FROM alert_timers WHERE alert_id = %s", (alert_id,))


async def due_notifications(conn: Conn, now: datetime, limit: int = 50) -> list[Outgoing]:
    """Claim (row-lock) notifications that are due for open alerts; inside a transaction."""
    cur = await conn.execute(
        "SELECT n.id, n.alert_id, n.round, n.user_id, n.channel, n.target, n.attempts"
        " FROM notifications n JOIN alerts a ON a.id = n.alert_id"
        " WHERE n.status = 'pending' AND n.due_at <= %s AND a.status = 'open'"
        " ORDER BY n.due_at LIMIT %s FOR UPDATE OF n SKIP LOCKED",
        (now, limit),
    )
    return [
        Outgoing(int(i), int(a), int(r), None if u is None else int(u), str(c), str(t), int(n))
        for i, a, r, u, c, t, n in await cur.fetchall()
    ]


async def record_attempt(
    conn: Conn,
    note: Outgoing,
    ok: bool,
    error: str | None,
    retry_at: datetime | None,
) -> None:
    """Store the result of one delivery attempt (and its audit row)."""
    if ok:
        await conn.execute(
            "UPDATE notifications SET status = 'sent', attempts = attempts + 1, sent_at = now(),"
            " last_error = NULL WHERE id = %s",
            (note.id,),
        )
    elif retry_at is not None:
        await conn.execute(
            "UPDATE notifications SET attempts = attempts + 1, last_error = %s, due_at = %s"
            " WHERE id = %s",
            (error, retry_at, note.id),
        )
    else:
        await conn.execute(
            "UPDATE notifications SET status = 'failed', attempts = attempts + 1,"
            " last_error = %s WHERE id = %s",
            (error, note.id),
        )
    await _event(
        conn,
        note.alert_id,
        "notified" if ok else "notify_failed",
        None,
        {
            "user_id": note.user_id,
            "channel": note.channel,
            "round": note.round,
            "attempt": note.attempts + 1,
            "error": error,
            "will_retry": retry_at is not None,
        },
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


async def acknowledge(conn: Conn, alert_id: int, user_id: int, how: str) -> bool:
    """Mark an open alert acknowledged by `user_id`; stops further notifications.

    Returns False when the alert was not open (already acknowledged or resolved)."""
    async with conn.transaction():
        cur = await conn.execute(
            "UPDATE alerts SET status = 'acknowledged', acknowledged_at = now(),"
            " acknowledged_by = %s WHERE id = %s AND status = 'open' RETURNING id",
            (user_id, alert_id),
        )
        if await cur.fetchone() is None:
            return False
        await conn.execute(
            "UPDATE notifications SET status = 'cancelled' WHERE alert_id = %s"
            " AND status = 'pending'",
            (alert_id,),
        )
        await drop_timer(conn, alert_id)
        await _event(conn, alert_id, "acknowledged", user_id, {"how": how})
        await _notify_change(conn, alert_id)
    return True


async def alert_events(conn: Conn, alert_id: int) -> list[dict[str, Any]]:
    """The audit trail of one alert, oldest first."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT at, actor_id, action, detail FROM alert_events WHERE alert_id = %s"
            " ORDER BY at, id",
            (alert_id,),
        )
        return list(await cur.fetchall())


OUTCOMES = ("false_alarm", "visited_fine", "needed_help", "ambulance", "hospital", "other")
"""How an alert may end when a person resolves it."""


async def resolve(conn: Conn, alert_id: int, user_id: int, outcome: str, note: str) -> bool:
    """Close an open or acknowledged alert with `outcome` (one of OUTCOMES) and a note.

    An open alert is acknowledged by the same person first (so escalation stops). Returns
    False when the alert was already resolved."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}; choose from {OUTCOMES}")
    async with conn.transaction():
        cur = await conn.execute(
            "UPDATE alerts SET status = 'resolved', resolved_at = now(), outcome = %s,"
            " acknowledged_at = coalesce(acknowledged_at, now()),"
            " acknowledged_by = coalesce(acknowledged_by, %s)"
            " WHERE id = %s AND status <> 'resolved' RETURNING id",
            (outcome, user_id, alert_id),
        )
        if await cur.fetchone() is None:
            return False
        await conn.execute(
            "UPDATE notifications SET status = 'cancelled' WHERE alert_id = %s"
            " AND status = 'pending'",
            (alert_id,),
        )
        await drop_timer(conn, alert_id)
        await _event(conn, alert_id, "resolved", user_id, {"outcome": outcome, "note": note})
        await _notify_change(conn, alert_id)
    return True
