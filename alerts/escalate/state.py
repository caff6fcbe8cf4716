"""Where each alert's escalation stands, for the people following it: the round and tiers
reached, who was told over which channel with what result, and when the next round (with
which new tiers) is due. A read view; three queries for any number of alerts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from alerts.escalate.policy import STAFF_ROLE, TIERS, Policy, default_policy
from alerts.model import Category, Severity

Conn = psycopg.AsyncConnection[Any]

ROLE_TIER = {role: tier for tier, role in STAFF_ROLE.items()} | {"family": "family"}
"""The tier a person told belongs to, by role."""


@dataclass(slots=True, frozen=True)
class Told:
    """One person (or address) an alert was sent to over one channel, latest round."""

    user_id: int | None
    name: str | None
    tier: str | None
    channel: str
    status: str
    """pending, sent, failed or cancelled (the notification's state)."""
    round: int
    attempts: int
    at: datetime | None
    """When it was handed over (sent), else when it is or was due."""
    error: str | None


@dataclass(slots=True, frozen=True)
class Escalation:
    """An alert's escalation now."""

    alert_id: int
    round: int
    """The latest round planned (0: the first)."""
    tiers: tuple[str, ...]
    """Tiers reached, in the order the policy adds them."""
    told: tuple[Told, ...]
    next_at: datetime | None
    """When the next round is due (None: stopped — acknowledged, resolved — or none left)."""
    next_tiers: tuple[str, ...]
    """Tiers the next round adds."""


def _policy(doc: Any, severity: str, category: str) -> Policy:
    if doc is None:
        return default_policy(Severity(severity), Category(category))
    return Policy.from_json(doc)


async def escalations(conn: Conn, alert_ids: list[int]) -> dict[int, Escalation]:
    """The escalation state of each alert in `alert_ids` that exists."""
    if not alert_ids:
        return {}
    cur = await conn.execute(
        "SELECT a.id, a.policy, a.severity, a.category, a.opened_at, t.due_at"
        " FROM alerts a LEFT JOIN alert_timers t ON t.alert_id = a.id"
        " WHERE a.id = ANY(%s)",
        (alert_ids,),
    )
    heads = await cur.fetchall()
    # The latest notification per person and channel (what was said last), alert notices only.
    cur = await conn.execute(
        """
        SELECT DISTINCT ON (n.alert_id, n.user_id, n.channel, n.target)
               n.alert_id, n.user_id, u.display_name, u.role, n.channel, n.status, n.round,
               n.attempts, coalesce(n.sent_at, n.due_at), n.last_error,
               max(n.round) OVER (PARTITION BY n.alert_id)
        FROM notifications n LEFT JOIN users u ON u.id = n.user_id
        WHERE n.alert_id = ANY(%s) AND n.notice = 'alert' AND n.channel <> 'console'
        ORDER BY n.alert_id, n.user_id, n.channel, n.target, n.round DESC
        """,
        (alert_ids,),
    )
    told: dict[int, list[Told]] = {}
    rounds: dict[int, int] = {}
    for (
        a_id,
        uid,
        name,
        role,
        channel,
        status,
        rnd,
        attempts,
        at,
        error,
        last,
    ) in await cur.fetchall():
        told.setdefault(a_id, []).append(
            Told(uid, name, ROLE_TIER.get(role or ""), channel, status, rnd, attempts, at, error)
        )
        rounds[a_id] = last
    out: dict[int, Escalation] = {}
    for a_id, doc, severity, category, opened_at, due_at in heads:
        try:
            policy = _policy(doc, severity, category)
        except ValueError:
            policy = default_policy(Severity(severity), Category(category))
        people = sorted(
            told.get(a_id, []),
            key=lambda t: (_tier_rank(t.tier), t.name or "", t.channel),
        )
        tiers = tuple(dict.fromkeys(t.tier for t in people if t.tier is not None))
        reached = policy.tiers_at(
            (max((t.at for t in people if t.at), default=opened_at) - opened_at).total_seconds()
        )
        tiers = tuple(dict.fromkeys((*reached, *tiers)))
        next_tiers: tuple[str, ...] = ()
        if due_at is not None:
            later = policy.tiers_at((due_at - opened_at).total_seconds())
            next_tiers = tuple(t for t in later if t not in tiers)
        out[a_id] = Escalation(a_id, rounds.get(a_id, 0), tiers, tuple(people), due_at, next_tiers)
    return out


def _tier_rank(tier: str | None) -> int:
    return TIERS.index(tier) if tier in TIERS else len(TIERS)
