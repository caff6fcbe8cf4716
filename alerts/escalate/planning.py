"""Escalation rounds: planning one (who is told, over which channel, and the audit of who
could not be) and the timer of the next, claimed by the dispatcher when it is due."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg

from alerts.audit import record_event
from alerts.escalate.policy import Policy
from alerts.escalate.recipients import UNKNOWN, Contacts, Unknown, recipients
from alerts.escalate.routing import Routing, policy_of

Conn = psycopg.AsyncConnection[Any]


async def plan_round(
    conn: Conn,
    alert_id: int,
    round_no: int,
    due_at: datetime,
    routing: Routing,
    send_at: datetime | None = None,
    known: tuple[Policy, datetime, str | None] | None = None,
    contacts: Contacts | None = None,
) -> int:
    """Queue one round of notifications (due `due_at`) by the alert's policy snapshot and set
    the timer for the next round; returns how many notifications were queued. (`known`: the
    alert's policy, opening time and home; `contacts`: its home's contacts at `due_at`, when
    the caller has them.)

    When no staff member of the round can be reached (nobody on duty, or no usable channel),
    the next step's tiers are added at once; every such skip is an audit row."""
    if known is None:
        policy, opened_at, _ = await policy_of(conn, alert_id)
        home: str | Unknown | None = UNKNOWN
    else:
        policy, opened_at, home = known  # the caller just wrote them: no need to read back
    offset = max(0.0, (due_at - opened_at).total_seconds())
    tiers = list(policy.tiers_at(offset))
    before = set(policy.tiers_at(offset - 1e-3)) if offset > 0 else set()
    if "family" in before:
        # The family hears once when their tier is reached (round 0 by every built-in
        # policy), then the acknowledgement and the resolution: not every repeat.
        tiers.remove("family")
    probe = offset
    while True:
        found, reachable, skipped = await recipients(
            conn, alert_id, tuple(tiers), due_at, routing.channels, home, contacts
        )
        staff = [uid for t, ids in reachable.items() if t != "family" for uid in ids]
        later = [s for s in policy.steps if s.after_s > probe + 1e-6]
        if staff or not later:
            break
        await record_event(
            conn,
            alert_id,
            "no_staff_reachable",
            None,
            {"round": round_no, "tiers": tiers, "adding": list(later[0].tiers)},
        )
        tiers += [t for t in later[0].tiers if t not in tiers]
        probe = later[0].after_s
    for uid in skipped:
        await record_event(
            conn,
            alert_id,
            "recipient_skipped",
            None,
            {"user_id": uid, "reason": "no usable channel"},
        )
    for tier, ids in reachable.items():
        if not ids:
            await record_event(
                conn, alert_id, "tier_uncovered", None, {"round": round_no, "tier": tier}
            )
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO notifications (alert_id, round, user_id, channel, target, due_at,"
            " position) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [
                (alert_id, round_no, p.user_id, p.channel, p.target, send_at or due_at, p.position)
                for p in found
            ],
        )
    next_due = opened_at + timedelta(seconds=policy.next_round_after(offset))
    await conn.execute(
        "INSERT INTO alert_timers (alert_id, next_round, due_at) VALUES (%s, %s, %s)"
        " ON CONFLICT (alert_id) DO UPDATE SET next_round = EXCLUDED.next_round,"
        " due_at = EXCLUDED.due_at",
        (alert_id, round_no + 1, next_due),
    )
    new_tiers = [t for t in tiers if t not in before]
    if round_no > 0 and new_tiers:
        await record_event(
            conn, alert_id, "escalated", None, {"round": round_no, "tiers": new_tiers}
        )
    await record_event(
        conn,
        alert_id,
        "round_planned" if found else "no_recipient",
        None,
        {
            "round": round_no,
            "tiers": tiers,
            "recipients": [p.user_id for p in found],
            "next_due_at": next_due,
        },
    )
    return len(found)


async def due_timers(
    conn: Conn, now: datetime, limit: int = 50
) -> list[tuple[int, int, str, datetime]]:
    """Claim (row-lock) timers that are due: (alert, next round, alert status, due at).

    Call inside a transaction; the lock makes each round happen once across instances."""
    cur = await conn.execute(
        "SELECT t.alert_id, t.next_round, a.status, t.due_at FROM alert_timers t"
        " JOIN alerts a ON a.id = t.alert_id"
        " WHERE t.due_at <= %s ORDER BY t.due_at LIMIT %s FOR UPDATE OF t SKIP LOCKED",
        (now, limit),
    )
    return [(int(a), int(r), str(s), d) for a, r, s, d in await cur.fetchall()]


async def drop_timer(conn: Conn, alert_id: int) -> None:
    """Forget the escalation timer of an alert."""
    await conn.execute("DELETE FROM alert_timers WHERE alert_id = %s", (alert_id,))
