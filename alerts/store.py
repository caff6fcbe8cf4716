"""SQL of the alerts stage: open alerts, add evidence, acknowledge, plan notifications."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

from alerts.escalate.policy import Policy, default_policy
from alerts.model import (
    HUMAN_OUTCOMES,
    Alert,
    Category,
    Outcome,
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
LEFT JOIN homes h ON h.id = a.home_id
LEFT JOIN regions v ON v.id = h.village_id
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
    cur = await _policy_query(conn, home_id, severity, category)
    return await _policy_result(cur, severity, category)


async def _policy_result(cur: Any, severity: Severity, category: Category) -> Policy:
    row = await cur.fetchone()
    if row is None:
        return default_policy(severity, category)
    return Policy.from_json({"steps": row[0], "repeat_s": row[1]})


async def _policy_query(
    conn: Conn, home_id: str | None, severity: Severity, category: Category
) -> Any:
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


ALL_CHANNELS = frozenset({"webhook", "email", "apprise", "console", "webpush"})


async def reserve_alert_ids(conn: Conn, count: int) -> list[int]:
    """Take `count` alert ids from the alerts' sequence (for alerts told of before they are
    stored: see alerts/notify/fastpath.py)."""
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
    policy_cur = await _policy_query(conn, signal.home_id, signal.severity, signal.category)
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
        policy = (await _policy_result(policy_cur, signal.severity, signal.category)).scaled(
            routing.speed
        )
        await conn.execute(
            "UPDATE alerts SET policy = %s WHERE id = %s",
            (json.dumps(policy.to_json()), alert_id),
        )
        await _event(
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


SYSTEM_LOCK = 0x53595354  # "SYST": serialises opening alerts about the service itself


async def raise_system(
    conn: Conn,
    kind: str,
    summary: str,
    evidence: dict[str, Any],
    now: datetime,
    routing: Routing,
    severity: Severity = Severity.CRITICAL,
) -> Raised:
    """Open a technical alert about the service itself (no home), or add evidence to the
    open one of this kind. It escalates by the technical policy: the operator on duty at
    once, then the district centre."""
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
            await _event(conn, alert_id, "evidence", None, evidence)
            await _notify_change(conn, alert_id)
            return Raised(alert_id, False, True)
        policy = (await resolve_policy(conn, None, severity, Category.TECHNICAL)).scaled(
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
        await _event(conn, alert_id, "opened", None, {"summary": summary, **evidence})
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


async def on_duty(
    conn: Conn, home_id: str | None, at: datetime
) -> dict[str, list[tuple[int, str]]]:
    """Who is on duty for a home at `at`, per tier: (user id, display name), in user id order.

    The tier of a shift is its region's tier (the role must match it), or `operator` for an
    operator's shift at any region above the home. For an alert about the service itself
    (no home), the operators and the district staff on duty anywhere."""
    return _by_tier(await (await _on_duty_query(conn, home_id, at)).fetchall())


def _by_tier(rows: list[Any]) -> dict[str, list[tuple[int, str]]]:
    found: dict[str, list[tuple[int, str]]] = {}
    for tier, uid, name in rows:
        found.setdefault(str(tier), []).append((int(uid), str(name)))
    return found


def _people(rows: list[Any]) -> list[tuple[int, str]]:
    return [(int(u), str(n)) for u, n in rows]


# Each person's contact channels in their order, as rows of [channel, target, position]
# (NULL when none): joined to who is on duty / the family first contact, so a round's
# recipients are known after one wait instead of two.
_CHANNELS = sql.SQL(
    ", (SELECT array_agg(ARRAY[c.channel, c.target, c.position::text] ORDER BY c.position, c.id)"
    " FROM contact_channels c WHERE c.user_id = u.id)"
)


async def _on_duty_query(
    conn: Conn, home_id: str | None, at: datetime, channels: bool = False
) -> Any:
    extra = _CHANNELS if channels else sql.SQL("")
    if home_id is None:
        return await conn.execute(
            sql.SQL(
                "SELECT DISTINCT CASE WHEN u.role = 'operator' THEN 'operator' ELSE 'district'"
                " END, u.id, u.display_name{extra} FROM duty_shifts d"
                " JOIN users u ON u.id = d.user_id JOIN regions r ON r.id = d.region_id"
                " WHERE d.starts_at <= %(at)s AND d.ends_at > %(at)s"
                " AND (u.role = 'operator' OR (r.tier = 'district' AND u.role = 'district_staff'))"
                " ORDER BY 1, 2"
            ).format(extra=extra),
            {"at": at},
        )
    # The shifts on now over this home's regions first (a handful of rows), then each one's
    # person by key (the LIMIT keeps the planner from turning it back into a join): joined
    # the other way round, the planner read every user (10 000 family members in the
    # benchmark) to find the few on duty.
    return await conn.execute(
        sql.SQL("""
        WITH RECURSIVE anc(id, tier, parent_id) AS (
            SELECT r.id, r.tier, r.parent_id FROM regions r JOIN homes h ON h.village_id = r.id
            WHERE h.id = %(home)s
            UNION ALL
            SELECT r.id, r.tier, r.parent_id FROM regions r JOIN anc ON r.id = anc.parent_id
        ),
        d AS MATERIALIZED (
            SELECT d.user_id, anc.tier FROM duty_shifts d JOIN anc ON anc.id = d.region_id
            WHERE d.starts_at <= %(at)s AND d.ends_at > %(at)s
        )
        SELECT DISTINCT CASE WHEN u.role = 'operator' THEN 'operator' ELSE d.tier END AS tier,
               u.id, u.display_name{extra}
        FROM d CROSS JOIN LATERAL (
            SELECT u.id, u.display_name, u.role FROM users u WHERE u.id = d.user_id LIMIT 1
        ) u
        WHERE (u.role = 'operator'
               OR (d.tier = 'village' AND u.role = 'village_worker')
               OR (d.tier = 'town' AND u.role = 'town_staff')
               OR (d.tier = 'district' AND u.role = 'district_staff'))
        ORDER BY 1, 2
        """).format(extra=extra),
        {"home": home_id, "at": at},
    )


async def _family_query(conn: Conn, home_id: str, channels: bool = False) -> Any:
    return await conn.execute(
        sql.SQL(
            "SELECT u.id, u.display_name{extra} FROM family_links f"
            " JOIN users u ON u.id = f.user_id JOIN elders e ON e.id = f.elder_id"
            " WHERE e.home_id = %s AND f.first_contact ORDER BY u.id"
        ).format(extra=_CHANNELS if channels else sql.SQL("")),
        (home_id,),
    )


@dataclass(slots=True)
class Contacts:
    """Who a home's alert can reach at one instant, read once: everyone on duty for it (all
    tiers) and the family first contacts, each with their channels in order."""

    duty: dict[str, list[tuple[int, str]]]
    family: list[tuple[int, str]]
    channels: dict[int, list[tuple[str, str, int]]]


async def send_contacts_query(conn: Conn, home_id: str, at: datetime) -> tuple[Any, Any]:
    """Send (in pipeline mode, without waiting) the queries `read_contacts` reads."""
    return (
        await _on_duty_query(conn, home_id, at, channels=True),
        await _family_query(conn, home_id, channels=True),
    )


async def read_contacts(cursors: tuple[Any, Any]) -> Contacts:
    """The answer to `send_contacts_query`."""
    duty_cur, family_cur = cursors
    duty: dict[str, list[tuple[int, str]]] = {}
    channels: dict[int, list[tuple[str, str, int]]] = {}

    def keep(uid: int, listed: list[list[str]] | None) -> None:
        channels[uid] = [(str(c), str(t), int(p)) for c, t, p in listed or []]

    for tier, uid, name, listed in await duty_cur.fetchall():
        duty.setdefault(str(tier), []).append((int(uid), str(name)))
        keep(int(uid), listed)
    family = []
    for uid, name, listed in await family_cur.fetchall():
        family.append((int(uid), str(name)))
        keep(int(uid), listed)
    return Contacts(duty, family, channels)


async def _channels_of(conn: Conn, user_ids: list[int]) -> dict[int, list[tuple[str, str, int]]]:
    cur = await conn.execute(
        "SELECT user_id, channel, target, position FROM contact_channels"
        " WHERE user_id = ANY(%s) ORDER BY user_id, position, id",
        (user_ids,),
    )
    found: dict[int, list[tuple[str, str, int]]] = {}
    for uid, channel, target, position in await cur.fetchall():
        found.setdefault(int(uid), []).append((str(channel), str(target), int(position)))
    return found


class _Unknown:
    """Not known to the caller: read it."""


UNKNOWN = _Unknown()


async def recipients(
    conn: Conn,
    alert_id: int,
    tiers: tuple[str, ...],
    at: datetime,
    usable: frozenset[str],
    home: str | _Unknown | None = UNKNOWN,
    contacts: Contacts | None = None,
) -> tuple[list[Recipient], dict[str, list[int]], list[int]]:
    """Who a round reaches: for each tier, the people on duty (or the family first contact),
    each over their first usable channel. Returns (recipients, tier -> reachable user ids,
    user ids skipped because none of their channels is usable). `home`: the alert's home,
    when the caller knows it; `contacts`: the home's contacts at `at`, when already read."""
    if contacts is not None:
        return _reach(tiers, contacts, usable)
    if isinstance(home, _Unknown):
        cur = await conn.execute("SELECT home_id FROM alerts WHERE id = %s", (alert_id,))
        row = await cur.fetchone()
        assert row is not None
        home_id = None if row[0] is None else str(row[0])
    else:
        home_id = home
    # Both asked before either answer is read: one wait, not two (pipeline mode).
    duty_cur = await _on_duty_query(conn, home_id, at)
    family_cur = (
        await _family_query(conn, home_id) if home_id is not None and "family" in tiers else None
    )
    duty = _by_tier(await duty_cur.fetchall())
    family = [] if family_cur is None else _people(await family_cur.fetchall())
    ids = sorted({uid for t in tiers for uid, _ in (family if t == "family" else duty.get(t, []))})
    return _reach(tiers, Contacts(duty, family, await _channels_of(conn, ids)), usable)


def _reach(
    tiers: tuple[str, ...], contacts: Contacts, usable: frozenset[str]
) -> tuple[list[Recipient], dict[str, list[int]], list[int]]:
    people = {t: contacts.family if t == "family" else contacts.duty.get(t, []) for t in tiers}
    channels = contacts.channels
    found: list[Recipient] = []
    reachable: dict[str, list[int]] = {t: [] for t in tiers}
    skipped: list[int] = []
    done: set[int] = set()
    for tier in tiers:
        for uid, _name in people[tier]:
            usable_channels = [c for c in channels.get(uid, []) if c[0] in usable]
            if not usable_channels:
                if uid not in skipped:
                    skipped.append(uid)
                continue
            reachable[tier].append(uid)
            if uid in done:
                continue
            done.add(uid)
            channel, target, position = usable_channels[0]
            found.append(Recipient(uid, tier, channel, target, position))
    return found, reachable, skipped


async def _policy_of(conn: Conn, alert_id: int) -> tuple[Policy, datetime, str]:
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
        policy, opened_at, _ = await _policy_of(conn, alert_id)
        home: str | _Unknown | None = UNKNOWN
    else:
        policy, opened_at, home = known  # the caller just wrote them: no need to read back
    offset = max(0.0, (due_at - opened_at).total_seconds())
    tiers = list(policy.tiers_at(offset))
    before = set(policy.tiers_at(offset - 1e-3)) if offset > 0 else set()
    probe = offset
    while True:
        found, reachable, skipped = await recipients(
            conn, alert_id, tuple(tiers), due_at, routing.channels, home, contacts
        )
        staff = [uid for t, ids in reachable.items() if t != "family" for uid in ids]
        later = [s for s in policy.steps if s.after_s > probe + 1e-6]
        if staff or not later:
            break
        await _event(
            conn,
            alert_id,
            "no_staff_reachable",
            None,
            {"round": round_no, "tiers": tiers, "adding": list(later[0].tiers)},
        )
        tiers += [t for t in later[0].tiers if t not in tiers]
        probe = later[0].after_s
    for uid in skipped:
        await _event(
            conn,
            alert_id,
            "recipient_skipped",
            None,
            {"user_id": uid, "reason": "no usable channel"},
        )
    for tier, ids in reachable.items():
        if not ids:
            await _event(conn, alert_id, "tier_uncovered", None, {"round": round_no, "tier": tier})
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
        await _event(conn, alert_id, "escalated", None, {"round": round_no, "tiers": new_tiers})
    await _event(
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
    await _event(
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
        await _event(
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
    await _event(
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
    await _event(
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
    await _event(
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


async def _tell_notified(
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


async def _stop_escalation(conn: Conn, alert_id: int) -> None:
    await conn.execute(
        "UPDATE notifications SET status = 'cancelled' WHERE alert_id = %s"
        " AND status = 'pending' AND notice = 'alert'",
        (alert_id,),
    )
    await drop_timer(conn, alert_id)


async def _queue_help_command(conn: Conn, alert_id: int, user_id: int, at: datetime | None) -> int:
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
        told = await _tell_notified(conn, alert_id, "acknowledged", user_id, at)
        commands = await _queue_help_command(conn, alert_id, user_id, at)
        await _event(conn, alert_id, "acknowledged", user_id, {"how": how})
        if told:
            await _event(conn, alert_id, "owner_announced", None, {"notices": told})
        if commands:
            await _event(conn, alert_id, "help_command_queued", None, {"devices": commands})
        await _notify_change(conn, alert_id)
    return True


async def resolve(
    conn: Conn,
    alert_id: int,
    user_id: int | None,
    outcome: Outcome,
    note: str = "",
    at: datetime | None = None,
) -> bool:
    """Close an open or acknowledged alert with an outcome and a note; an alert closed while
    still open also stops its escalation and tells those already notified.

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
        told = 0
        if was_open:
            notice = {
                Outcome.CANCELLED_BY_ELDER: "cancelled",
                Outcome.CLEARED_BY_DATA: "cleared",
            }.get(outcome, "resolved")
            told = await _tell_notified(conn, alert_id, notice, user_id, at)
        action = {
            Outcome.CANCELLED_BY_ELDER: "self_cancelled",
            Outcome.CLEARED_BY_DATA: "cleared",
        }.get(outcome, "resolved")
        await _event(
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
        await _event(
            conn,
            alert_id,
            "cancel_too_late",
            None,
            {"device_id": device_id, "after_s": (at - pressed_at).total_seconds()},
        )
    return alert_id, False


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


async def alert_events(conn: Conn, alert_id: int) -> list[dict[str, Any]]:
    """The audit trail of one alert, oldest first."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT at, actor_id, action, detail FROM alert_events WHERE alert_id = %s"
            " ORDER BY at, id",
            (alert_id,),
        )
        return list(await cur.fetchall())


OUTCOMES = tuple(o.value for o in HUMAN_OUTCOMES)
"""How an alert may end when a person resolves it."""
