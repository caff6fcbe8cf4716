"""The alert lifecycle in SQL: open an alert or add evidence to it, acknowledge, resolve,
clear by the data, the elder's cancel, and the alerts about the service itself.

Each step is one transaction that also does what follows from it elsewhere: opening an
alert plans its first round (`alerts.escalate.planning`); acknowledging or resolving one
stops its escalation and queues the follow-up notices (`alerts.notify.outbox`) and "help is
on the way" (`alerts.notify.device_queue`); every step is an audit row (`alerts.audit`) and
a `NOTIFY_CHANNEL` notification for the live console.
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from alerts.audit import record_event
from alerts.escalate.planning import drop_timer, plan_round
from alerts.escalate.policy import Policy
from alerts.escalate.recipients import read_contacts, send_contacts_query
from alerts.escalate.routing import (
    ALL_CHANNELS,
    Routing,
    read_policy,
    resolve_policy,
    send_policy_query,
)
from alerts.model import Category, Outcome, Raised, Severity, Signal
from alerts.notify.device_queue import queue_help_command
from alerts.notify.outbox import cancel_pending_alerts, queue_follow_ups

Conn = psycopg.AsyncConnection[Any]
NOTIFY_CHANNEL = "eldercare_alert_changed"
"""The PostgreSQL channel told the id of every alert that changed (the live console)."""


async def _notify_change(conn: Conn, alert_id: int) -> None:
    await conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, str(alert_id)))


async def reserve_alert_ids(conn: Conn, count: int) -> list[int]:
    """Take `count` alert ids from the alerts' sequence (for alerts told of before they are
    stored: see alerts/emergency/fastpath.py)."""
    cur = await conn.execute(
        "SELECT nextval(pg_get_serial_sequence('alerts', 'id')) FROM generate_series(1, %s)",
        (count,),
    )
    return [int(r[0]) for r in await cur.fetchall()]


async def open_alerts_of(conn: Conn, kinds: list[str]) -> dict[tuple[str, str], int]:
    """The unresolved alerts of `kinds`: (home, kind) -> alert id."""
    cur = await conn.execute(
        "SELECT home_id, kind, id FROM alerts WHERE status <> 'resolved' AND kind = ANY(%s)"
        " AND home_id IS NOT NULL",
        (kinds,),
    )
    return {(str(h), str(k)): int(i) for h, k, i in await cur.fetchall()}


async def raise_signal(
    conn: Conn,
    signal: Signal,
    now: datetime,
    routing: Routing | timedelta,
    alert_id: int | None = None,
    hold_first_round_s: float = 0.0,
) -> Raised:
    """Open an alert for `signal`, or add it as evidence to the open one of its home and kind.

    Runs in one transaction; a new alert gets its escalation policy snapshotted, its first
    round of notifications (due `now`) and a timer for the next round; a redelivered signal
    (same device, boot, seq) adds nothing. (A `timedelta` for `routing` is the Foundation's
    signature, kept for callers not yet updated: every channel kind, real-time policy.)

    `alert_id` is a reserved id for a new alert (whose first notifications were already
    sent by the fast path); `hold_first_round_s` makes the first round due that much later,
    so no dispatcher sends it again before the fast path has recorded what it sent.
    """
    if isinstance(routing, timedelta):
        routing = Routing(ALL_CHANNELS)
    # Pipeline mode: statements whose results are not read (audit rows, updates, the timer)
    # go out without waiting for each answer; on the emergency path every round trip to a
    # busy database counts.
    if conn.info.transaction_status == TransactionStatus.IDLE:
        # The whole transaction in one pipeline, BEGIN with the first batch and COMMIT with
        # the last: it waits for the database twice (the alert's answer, then the end).
        # psycopg syncs on its own implicit BEGIN (and `transaction()` inside a pipeline
        # nests pipelines that sync on their own), so the connection is in autocommit mode
        # for the duration and the transaction is spelled out. On any failure: rolled back.
        was_autocommit = conn.autocommit
        try:
            await conn.set_autocommit(True)
            async with conn.pipeline():
                await conn.execute("BEGIN")
                raised = await _raise_in(conn, signal, now, routing, alert_id, hold_first_round_s)
                await conn.execute("COMMIT")
        except BaseException:
            if conn.info.transaction_status != TransactionStatus.IDLE:
                with contextlib.suppress(Exception):
                    await conn.execute("ROLLBACK")
            raise
        finally:
            with contextlib.suppress(Exception):
                await conn.set_autocommit(was_autocommit)
        return raised
    # Inside the caller's transaction: as a savepoint of it.
    async with conn.transaction(), conn.pipeline():
        return await _raise_in(conn, signal, now, routing, alert_id, hold_first_round_s)


async def _raise_in(
    conn: Conn,
    signal: Signal,
    now: datetime,
    routing: Routing,
    alert_id: int | None,
    hold_first_round_s: float,
) -> Raised:
    """`raise_signal`'s statements, inside its transaction and pipeline."""
    # Sent together, answered together: the policy (needed if the alert is new) and the
    # alert with its evidence in one statement.
    policy_cur = await send_policy_query(conn, signal.home_id, signal.severity, signal.category)
    # A fast-path emergency is new (the fast path knew of no open alert of its kind here):
    # who its first round reaches (with their channels) is asked in the same batch, so
    # the round is planned without another wait.
    contacts_cur = (
        await send_contacts_query(conn, signal.home_id, now) if alert_id is not None else None
    )
    cur = await conn.execute(
        "WITH a AS ("
        " INSERT INTO alerts (id, home_id, kind, category, severity, event_at, summary,"
        " last_evidence_at, opened_at)"
        " VALUES (coalesce(%(id)s, nextval(pg_get_serial_sequence('alerts', 'id'))),"
        " %(home)s, %(kind)s, %(category)s, %(severity)s, %(at)s, %(summary)s, %(at)s,"
        " %(now)s)"
        " ON CONFLICT (home_id, kind) WHERE status <> 'resolved'"
        " DO UPDATE SET last_evidence_at = greatest(alerts.last_evidence_at,"
        "   EXCLUDED.last_evidence_at)"
        " RETURNING id, (xmax = 0) AS created, opened_at),"
        " e AS ("
        " INSERT INTO alert_evidence (alert_id, at, device_id, boot, seq, detail)"
        " SELECT a.id, %(at)s, %(device)s, %(boot)s, %(seq)s, %(detail)s FROM a"
        " ON CONFLICT DO NOTHING RETURNING id)"
        " SELECT a.id, a.created, EXISTS (SELECT 1 FROM e), a.opened_at FROM a",
        {
            "id": alert_id,
            "home": signal.home_id,
            "kind": signal.kind,
            "category": signal.category.value,
            "severity": signal.severity.value,
            "at": signal.event_at,
            "summary": signal.summary,
            "now": now,
            "device": signal.device_id,
            "boot": signal.boot,
            "seq": signal.seq,
            "detail": json.dumps(signal.evidence, default=str),
        },
    )
    row = await cur.fetchone()
    assert row is not None
    alert_id, created, new_evidence = int(row[0]), bool(row[1]), bool(row[2])
    if created:
        policy = (await read_policy(policy_cur, signal.severity, signal.category)).scaled(
            routing.speed
        )
        await conn.execute(
            "UPDATE alerts SET policy = %s WHERE id = %s",
            (json.dumps(policy.to_json()), alert_id),
        )
        await record_event(
            conn,
            alert_id,
            "opened",
            None,
            {"summary": signal.summary, "policy": policy.to_json()},
        )
        await plan_round(
            conn,
            alert_id,
            0,
            now,
            routing,
            send_at=now + timedelta(seconds=hold_first_round_s) if hold_first_round_s else None,
            known=(policy, row[3], signal.home_id),
            contacts=None if contacts_cur is None else await read_contacts(contacts_cur),
        )
    elif new_evidence:
        await conn.execute(
            "UPDATE alerts SET evidence_count = evidence_count + 1 WHERE id = %s",
            (alert_id,),
        )
        await record_event(
            conn,
            alert_id,
            "evidence",
            None,
            {"device_id": signal.device_id, "seq": signal.seq, "at": signal.event_at},
        )
    if created or new_evidence:
        await _notify_change(conn, alert_id)
    return Raised(alert_id, created, new_evidence)


SYSTEM_LOCK = 0x53595354  # "SYST": serialises opening alerts about the service itself


async def raise_system(
    conn: Conn,
    kind: str,
    summary: str,
    evidence: dict[str, Any],
    now: datetime,
    routing: Routing,
    severity: Severity = Severity.CRITICAL,
    policy: Policy | None = None,
) -> Raised:
    """Open a technical alert about the service itself (no home), or add evidence to the
    open one of this kind. It escalates by `policy`, by default the technical one: the
    operator on duty at once, then the district centre."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SYSTEM_LOCK,))
        cur = await conn.execute(
            "SELECT id FROM alerts WHERE home_id IS NULL AND kind = %s AND status <> 'resolved'",
            (kind,),
        )
        row = await cur.fetchone()
        if row is not None:
            alert_id = int(row[0])
            await conn.execute(
                "UPDATE alerts SET last_evidence_at = %s, evidence_count = evidence_count + 1"
                " WHERE id = %s",
                (now, alert_id),
            )
            await record_event(conn, alert_id, "evidence", None, evidence)
            await _notify_change(conn, alert_id)
            return Raised(alert_id, False, True)
        policy = (policy or await resolve_policy(conn, None, severity, Category.TECHNICAL)).scaled(
            routing.speed
        )
        cur = await conn.execute(
            "INSERT INTO alerts (home_id, kind, category, severity, event_at, summary,"
            " last_evidence_at, opened_at, policy) VALUES (NULL, %s, 'technical', %s, %s, %s,"
            " %s, %s, %s) RETURNING id",
            (kind, severity.value, now, summary, now, now, json.dumps(policy.to_json())),
        )
        created = await cur.fetchone()
        assert created is not None
        alert_id = int(created[0])
        await conn.execute(
            "INSERT INTO alert_evidence (alert_id, at, detail) VALUES (%s, %s, %s)",
            (alert_id, now, json.dumps(evidence, default=str)),
        )
        await record_event(conn, alert_id, "opened", None, {"summary": summary, **evidence})
        await plan_round(conn, alert_id, 0, now, routing)
        await _notify_change(conn, alert_id)
    return Raised(alert_id, True, True)


async def clear_system(conn: Conn, kind: str, reason: str, at: datetime) -> int | None:
    """The service is well again: resolve its open alert of this kind, reason recorded."""
    cur = await conn.execute(
        "SELECT id FROM alerts WHERE home_id IS NULL AND kind = %s AND status <> 'resolved'",
        (kind,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    ok = await resolve(conn, int(row[0]), None, Outcome.CLEARED_BY_DATA, reason, at)
    return int(row[0]) if ok else None


async def _stop_escalation(conn: Conn, alert_id: int) -> None:
    await cancel_pending_alerts(conn, alert_id)
    await drop_timer(conn, alert_id)


async def acknowledge(
    conn: Conn, alert_id: int, user_id: int, how: str, at: datetime | None = None
) -> bool:
    """Take ownership of an open alert: stops the escalation, tells everyone already
    notified who owns it, and queues "help is on the way" for the elder's home unit.

    Returns False when the alert was not open (already acknowledged or resolved)."""
    async with conn.transaction():
        cur = await conn.execute(
            "UPDATE alerts SET status = 'acknowledged', acknowledged_at = coalesce(%s, now()),"
            " acknowledged_by = %s, acknowledged_how = %s WHERE id = %s AND status = 'open'"
            " RETURNING id",
            (at, user_id, how, alert_id),
        )
        if await cur.fetchone() is None:
            return False
        await _stop_escalation(conn, alert_id)
        told = await queue_follow_ups(conn, alert_id, "acknowledged", user_id, at)
        commands = await queue_help_command(conn, alert_id, user_id, at)
        await record_event(conn, alert_id, "acknowledged", user_id, {"how": how})
        if told:
            await record_event(conn, alert_id, "owner_announced", None, {"notices": told})
        if commands:
            await record_event(conn, alert_id, "help_command_queued", None, {"devices": commands})
        await _notify_change(conn, alert_id)
    return True


PROGRESS_STEPS = ("en_route", "arrived")
"""What the owner of an alert says between acknowledging and resolving it."""


async def mark_progress(
    conn: Conn, alert_id: int, user_id: int, step: str, at: datetime | None = None
) -> str:
    """Record "on my way" (`en_route`) or "arrived" on an unresolved alert, each once.

    An alert still open is first acknowledged by the same person (who is on the way has
    taken it). Returns `done`, `already` (the step was recorded before: nothing changes),
    `resolved` or `missing`."""
    if step not in PROGRESS_STEPS:
        raise ValueError(f"step must be one of {PROGRESS_STEPS}, not {step!r}")
    async with conn.transaction():
        at_col, by_col = sql.Identifier(f"{step}_at"), sql.Identifier(f"{step}_by")
        cur = await conn.execute(
            sql.SQL("SELECT status, {} FROM alerts WHERE id = %s FOR UPDATE").format(at_col),
            (alert_id,),
        )
        row = await cur.fetchone()
        if row is None:
            return "missing"
        if row[0] == "resolved":
            return "resolved"
        if row[1] is not None:
            return "already"
        if row[0] == "open":
            await acknowledge(conn, alert_id, user_id, step, at)
        await conn.execute(
            sql.SQL("UPDATE alerts SET {} = coalesce(%s, now()), {} = %s WHERE id = %s").format(
                at_col, by_col
            ),
            (at, user_id, alert_id),
        )
        await record_event(conn, alert_id, step, user_id, {})
        await _notify_change(conn, alert_id)
    return "done"


async def resolve(
    conn: Conn,
    alert_id: int,
    user_id: int | None,
    outcome: Outcome,
    note: str = "",
    at: datetime | None = None,
) -> bool:
    """Close an open or acknowledged alert with an outcome and a note: stops its escalation
    and tells those already notified how it ended.

    Returns False when the alert was already resolved (or does not exist)."""
    async with conn.transaction():
        cur = await conn.execute("SELECT status FROM alerts WHERE id = %s FOR UPDATE", (alert_id,))
        row = await cur.fetchone()
        if row is None or row[0] == "resolved":
            return False
        was_open = row[0] == "open"
        await conn.execute(
            "UPDATE alerts SET status = 'resolved', resolved_at = coalesce(%s, now()),"
            " resolved_by = %s, outcome = %s, resolution_note = %s WHERE id = %s",
            (at, user_id, outcome.value, note, alert_id),
        )
        if was_open and user_id is not None:
            # A person who closes an open alert has taken it: that is its acknowledgement.
            await conn.execute(
                "UPDATE alerts SET acknowledged_at = coalesce(%s, now()), acknowledged_by = %s,"
                " acknowledged_how = 'resolve' WHERE id = %s",
                (at, user_id, alert_id),
            )
        await _stop_escalation(conn, alert_id)
        # Everyone who was told about the alert hears how it ended (the family: open,
        # acknowledged, resolved), whether or not someone had taken it first.
        notice = {
            Outcome.CANCELLED_BY_ELDER: "cancelled",
            Outcome.CLEARED_BY_DATA: "cleared",
        }.get(outcome, "resolved")
        told = await queue_follow_ups(conn, alert_id, notice, user_id, at)
        action = {
            Outcome.CANCELLED_BY_ELDER: "self_cancelled",
            Outcome.CLEARED_BY_DATA: "cleared",
        }.get(outcome, "resolved")
        await record_event(
            conn, alert_id, action, user_id, {"outcome": outcome.value, "note": note, "told": told}
        )
        await _notify_change(conn, alert_id)
    return True


async def open_alert_id(conn: Conn, home_id: str, kind: str) -> tuple[int, datetime] | None:
    """The id and event time of the unresolved alert of a home and kind, if any."""
    cur = await conn.execute(
        "SELECT id, event_at FROM alerts WHERE home_id = %s AND kind = %s AND status <> 'resolved'",
        (home_id, kind),
    )
    row = await cur.fetchone()
    return None if row is None else (int(row[0]), row[1])


async def clear_by_data(
    conn: Conn, home_id: str, kind: str, reason: str, at: datetime | None = None
) -> int | None:
    """The data shows the condition is over (e.g. the elder moved again): resolve the
    unresolved alert of this home and kind with the reason recorded. Returns its id."""
    found = await open_alert_id(conn, home_id, kind)
    if found is None:
        return None
    ok = await resolve(conn, found[0], None, Outcome.CLEARED_BY_DATA, reason, at)
    return found[0] if ok else None


async def self_cancel(
    conn: Conn, home_id: str, device_id: str, at: datetime, window: timedelta
) -> tuple[int | None, bool]:
    """A cancel from the elder's own device: within `window` of the press it resolves the SOS
    alert as cancelled by the elder (recorded, never deleted); later, it is recorded as an
    audit row and the alert goes on. Returns (alert id or None, whether it cancelled)."""
    found = await open_alert_id(conn, home_id, "sos")
    if found is None:
        return None, False
    alert_id, pressed_at = found
    if at - pressed_at <= window:
        ok = await resolve(
            conn,
            alert_id,
            None,
            Outcome.CANCELLED_BY_ELDER,
            f"cancelled on {device_id} {(at - pressed_at).total_seconds():.0f} s after the press",
            at,
        )
        return alert_id, ok
    async with conn.transaction():
        await record_event(
            conn,
            alert_id,
            "cancel_too_late",
            None,
            {"device_id": device_id, "after_s": (at - pressed_at).total_seconds()},
        )
    return alert_id, False
