"""The notification outbox: what is to be sent to whom (`notifications`), claimed when due,
each attempt's result recorded (with a fallback to the person's next channel), and what the
fast path sent ahead of the stored first round."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from alerts.audit import record_event
from alerts.model import Outgoing

Conn = psycopg.AsyncConnection[Any]


async def due_notifications(
    conn: Conn, now: datetime, limit: int = 50, alert_id: int | None = None
) -> list[Outgoing]:
    """Claim (row-lock) notifications that are due (alert notices only while the alert is
    open; follow-up notices always), of one alert when `alert_id` is given; inside a
    transaction."""
    cur = await conn.execute(
        "SELECT n.id, n.alert_id, n.round, n.user_id, n.channel, n.target, n.attempts,"
        " n.notice, n.position, n.fallback_queued"
        " FROM notifications n JOIN alerts a ON a.id = n.alert_id"
        " WHERE n.status = 'pending' AND n.due_at <= %s"
        "   AND (a.status = 'open' OR n.notice <> 'alert')"
        "   AND (%s::bigint IS NULL OR n.alert_id = %s)"
        " ORDER BY n.due_at LIMIT %s FOR UPDATE OF n SKIP LOCKED",
        (now, alert_id, alert_id, limit),
    )
    return [
        Outgoing(
            int(i),
            int(a),
            int(r),
            None if u is None else int(u),
            str(c),
            str(t),
            int(n),
            str(kind),
            int(pos),
            bool(fb),
        )
        for i, a, r, u, c, t, n, kind, pos, fb in await cur.fetchall()
    ]


async def record_attempt(
    conn: Conn,
    note: Outgoing,
    ok: bool,
    error: str | None,
    retry_at: datetime | None,
    now: datetime | None = None,
    usable: frozenset[str] | None = None,
) -> None:
    """Store the result of one delivery attempt (and its audit row). On a failure, the
    person's next usable channel is queued at once as a fallback (once per notification)."""
    if ok:
        await conn.execute(
            "UPDATE notifications SET status = 'sent', attempts = attempts + 1,"
            " sent_at = clock_timestamp(), last_error = NULL WHERE id = %s",
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
    await conn.execute(
        "INSERT INTO notification_attempts (notification_id, at, ok, error)"
        " VALUES (%s, coalesce(%s, now()), %s, %s)",
        (note.id, now, ok, error),
    )
    await record_event(
        conn,
        note.alert_id,
        "notified" if ok else "notify_failed",
        None,
        {
            "user_id": note.user_id,
            "channel": note.channel,
            "notice": note.notice,
            "round": note.round,
            "attempt": note.attempts + 1,
            "error": error,
            "will_retry": retry_at is not None,
        },
    )
    if ok or note.fallback_queued or note.user_id is None:
        return
    cur = await conn.execute(
        "SELECT channel, target, position FROM contact_channels WHERE user_id = %s"
        " AND (position, id) > (%s, -1) AND NOT (channel = %s AND target = %s)"
        " ORDER BY position, id",
        (note.user_id, note.position, note.channel, note.target),
    )
    options = [
        (str(c), str(t), int(p))
        for c, t, p in await cur.fetchall()
        if usable is None or str(c) in usable
    ]
    await conn.execute("UPDATE notifications SET fallback_queued = true WHERE id = %s", (note.id,))
    if not options:
        await record_event(
            conn,
            note.alert_id,
            "no_fallback",
            None,
            {"user_id": note.user_id, "channel": note.channel},
        )
        return
    channel, target, position = options[0]
    await conn.execute(
        "INSERT INTO notifications (alert_id, round, notice, user_id, channel, target, due_at,"
        " position) VALUES (%s, %s, %s, %s, %s, %s, coalesce(%s, now()), %s)"
        " ON CONFLICT DO NOTHING",
        (note.alert_id, note.round, note.notice, note.user_id, channel, target, now, position),
    )
    await record_event(
        conn,
        note.alert_id,
        "fallback",
        None,
        {"user_id": note.user_id, "from": note.channel, "to": channel, "round": note.round},
    )


async def first_round_pending(conn: Conn, alert_id: int) -> list[Outgoing]:
    """Claim (row-lock) the pending notifications of an alert's first round; inside a
    transaction."""
    cur = await conn.execute(
        "SELECT id, alert_id, round, user_id, channel, target, attempts, notice, position,"
        " fallback_queued FROM notifications WHERE alert_id = %s AND round = 0"
        " AND notice = 'alert' AND status = 'pending' ORDER BY id FOR UPDATE",
        (alert_id,),
    )
    return [
        Outgoing(int(i), int(a), int(r), None if u is None else int(u), str(c), str(t), int(n),
                 str(kind), int(pos), bool(fb))
        for i, a, r, u, c, t, n, kind, pos, fb in await cur.fetchall()
    ]  # fmt: skip


async def record_sent_ahead(conn: Conn, note: Outgoing, when: datetime) -> None:
    """Record that the fast path delivered `note` at `when` (inside a transaction)."""
    await conn.execute(
        "UPDATE notifications SET status = 'sent', attempts = attempts + 1, sent_at = %s,"
        " last_error = NULL WHERE id = %s",
        (when, note.id),
    )
    await conn.execute(
        "INSERT INTO notification_attempts (notification_id, at, ok, error)"
        " VALUES (%s, %s, true, NULL)",
        (note.id, when),
    )
    await record_event(
        conn,
        note.alert_id,
        "notified",
        None,
        {"user_id": note.user_id, "channel": note.channel, "notice": note.notice,
         "round": note.round, "attempt": note.attempts + 1, "error": None,
         "will_retry": False, "fast_path": True},
    )  # fmt: skip


async def record_unplanned(
    conn: Conn,
    alert_id: int,
    user_id: int,
    channel: str,
    target: str,
    at: datetime,
    error: str | None,
) -> None:
    """Record a fast-path send that the stored first round did not plan (the cache was
    stale, or the send itself removed a gone push subscription before the round was
    planned), so that every message sent is on record; its person is not fallen back from
    here (the stored round has them, or they are not in it)."""
    cur = await conn.execute(
        "INSERT INTO notifications (alert_id, round, notice, user_id, channel, target, due_at,"
        " status, attempts, sent_at, last_error, fallback_queued)"
        " VALUES (%s, 0, 'alert', %s, %s, %s, %s, %s, 1, %s, %s, true)"
        " ON CONFLICT DO NOTHING RETURNING id",
        (alert_id, user_id, channel, target, at, "sent" if error is None else "failed",
         at if error is None else None, error),
    )  # fmt: skip
    row = await cur.fetchone()
    if row is None:
        return
    await conn.execute(
        "INSERT INTO notification_attempts (notification_id, at, ok, error)"
        " VALUES (%s, %s, %s, %s)",
        (row[0], at, error is None, error),
    )
    await record_event(
        conn,
        alert_id,
        "notified" if error is None else "notify_failed",
        None,
        {"user_id": user_id, "channel": channel, "notice": "alert", "round": 0,
         "attempt": 1, "error": error, "will_retry": False, "fast_path": True,
         "planned": False},
    )  # fmt: skip


async def release_first_round(conn: Conn, alert_id: int, at: datetime, keep: list[int]) -> None:
    """Make the first round's pending notifications due at `at`, except `keep` (their due
    time was set by a failed attempt's retry)."""
    await conn.execute(
        "UPDATE notifications SET due_at = least(due_at, %s) WHERE alert_id = %s AND round = 0"
        " AND status = 'pending' AND NOT (id = ANY(%s))",
        (at, alert_id, keep),
    )


async def queue_follow_ups(
    conn: Conn, alert_id: int, notice: str, exclude: int | None, at: datetime | None
) -> int:
    """Queue a follow-up notice (acknowledged / cancelled / cleared / resolved) to everyone
    who was already sent this alert, over the channel that reached them."""
    cur = await conn.execute(
        "INSERT INTO notifications (alert_id, round, notice, user_id, channel, target, due_at,"
        " position)"
        " SELECT DISTINCT ON (user_id) alert_id, 0, %s, user_id, channel, target,"
        "   coalesce(%s, now()), position"
        " FROM notifications WHERE alert_id = %s AND notice = 'alert' AND status = 'sent'"
        "   AND user_id IS DISTINCT FROM %s"
        " ORDER BY user_id, round DESC, position"
        " ON CONFLICT DO NOTHING RETURNING id",
        (notice, at, alert_id, exclude),
    )
    return len(await cur.fetchall())


async def cancel_pending_alerts(conn: Conn, alert_id: int) -> None:
    """Cancel an alert's alert notices not sent yet (its escalation stops; follow-up notices
    still go out)."""
    await conn.execute(
        "UPDATE notifications SET status = 'cancelled' WHERE alert_id = %s"
        " AND status = 'pending' AND notice = 'alert'",
        (alert_id,),
    )
