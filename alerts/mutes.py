"""Mutes: stages with one interface that may hold a signal back before it becomes an alert.

- `AwayMode`: the elder is away or in hospital; wellbeing signals (inactivity, not up...)
  mean nothing then. Never an emergency.
- `Silences`: an operator's silence for a home or region (optionally some kinds only), with
  an end time and a reason. Never an emergency.
- `Inhibition`: a signal is inhibited while another alert of the home explains it: an open
  "hub offline" alert inhibits wellbeing signals (no data is not an inactive elder).
- `ConsentMute`: the home's elder has no current consent to monitoring and health-data
  processing (PIPL art. 28-29; `alerts.consent`), or nobody is enrolled there: wellbeing,
  health and environment signals are not raised. Technical and care signals are not
  health data and pass; emergencies pass (vital interest, PIPL art. 13(4)).

Emergencies (SOS, fall, smoke, gas) are never muted. Every held-back signal is kept in
`suppressed_signals` with the stage and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import psycopg
from prometheus_client import Counter

from alerts import consent
from alerts.model import Category, Signal

Conn = psycopg.AsyncConnection[Any]
NEVER_MUTED = frozenset({Category.EMERGENCY})


@dataclass(slots=True, frozen=True)
class Muted:
    """Why a signal was held back."""

    stage: str
    reason: str


class Mute(Protocol):
    """One mute stage."""

    name: str

    async def check(self, conn: Conn, signal: Signal, now: datetime) -> Muted | None:
        """Return why `signal` is muted now, or None to let it through."""
        ...


class AwayMode:
    """Away / hospital mode of a home mutes its wellbeing signals."""

    name = "away_mode"
    categories = frozenset({Category.WELLBEING})

    async def check(self, conn: Conn, signal: Signal, now: datetime) -> Muted | None:
        """Muted when the home is in away or hospital mode now."""
        if signal.category not in self.categories:
            return None
        cur = await conn.execute(
            "SELECT mode, reason FROM home_modes WHERE home_id = %s AND since <= %s"
            " AND (until IS NULL OR until > %s)",
            (signal.home_id, now, now),
        )
        row = await cur.fetchone()
        if row is None:
            return None
        return Muted(self.name, f"home in {row[0]} mode" + (f": {row[1]}" if row[1] else ""))


class Silences:
    """Silences for a home or a region (and its subregions), all kinds or some."""

    name = "silence"

    async def check(self, conn: Conn, signal: Signal, now: datetime) -> Muted | None:
        """Muted by the first silence that covers this home, kind and time."""
        cur = await conn.execute(
            """
            WITH RECURSIVE anc(id, parent_id) AS (
                SELECT r.id, r.parent_id FROM regions r JOIN homes h ON h.village_id = r.id
                WHERE h.id = %(home)s
                UNION ALL
                SELECT r.id, r.parent_id FROM regions r JOIN anc ON r.id = anc.parent_id
            )
            SELECT id, reason, ends_at FROM silences
            WHERE starts_at <= %(now)s AND ends_at > %(now)s
              AND (home_id = %(home)s OR region_id IN (SELECT id FROM anc))
              AND (kinds IS NULL OR %(kind)s = ANY(kinds))
            ORDER BY id LIMIT 1
            """,
            {"home": signal.home_id, "now": now, "kind": signal.kind},
        )
        row = await cur.fetchone()
        if row is None:
            return None
        return Muted(self.name, f"silence #{row[0]} until {row[2].isoformat()}: {row[1]}")


@dataclass(slots=True, frozen=True)
class InhibitRule:
    """While the home has an unresolved alert of `source_kind`, signals of `categories` (or
    of `kinds`) are inhibited."""

    source_kind: str
    categories: frozenset[Category] = frozenset()
    kinds: frozenset[str] = frozenset()


DEFAULT_INHIBITIONS = (InhibitRule("hub_offline", categories=frozenset({Category.WELLBEING})),)


class Inhibition:
    """One alert explains (and so inhibits) others of the same home."""

    name = "inhibition"

    def __init__(self, rules: tuple[InhibitRule, ...] = DEFAULT_INHIBITIONS) -> None:
        self._rules = rules

    async def check(self, conn: Conn, signal: Signal, now: datetime) -> Muted | None:
        """Inhibited when a rule matches and its source alert is unresolved."""
        sources = [
            r.source_kind
            for r in self._rules
            if signal.category in r.categories or signal.kind in r.kinds
        ]
        sources = [s for s in sources if s != signal.kind]
        if not sources:
            return None
        cur = await conn.execute(
            "SELECT id, kind FROM alerts WHERE home_id = %s AND kind = ANY(%s)"
            " AND status <> 'resolved' ORDER BY id LIMIT 1",
            (signal.home_id, sources),
        )
        row = await cur.fetchone()
        if row is None:
            return None
        return Muted(self.name, f"inhibited by open {row[1]} alert #{row[0]}")


class ConsentMute:
    """No current monitoring consent for the home's elder: its health data is not
    processed into wellbeing, health or environment alerts."""

    name = "consent"
    categories = frozenset({Category.WELLBEING, Category.HEALTH, Category.ENVIRONMENT})

    def __init__(self, counter: Counter | None = None) -> None:
        self._counter = counter
        """A prometheus counter labelled by kind, incremented per signal held back."""

    async def check(self, conn: Conn, signal: Signal, now: datetime) -> Muted | None:
        """Muted when the elder has no current monitoring consent (or no elder lives there)."""
        if signal.category not in self.categories or signal.home_id is None:
            return None
        state = await consent.home_consent(conn, signal.home_id, now)
        if not state.missing:
            return None
        if self._counter is not None:
            self._counter.labels(signal.kind).inc()
        if state.elder_id is None:
            return Muted(self.name, "no elder enrolled in this home: no consent to process")
        return Muted(self.name, f"no current consent to monitoring for elder {state.elder_id}")


class MuteChain:
    """The mute stages run in order; the first that mutes wins. Emergencies pass untouched."""

    def __init__(self, stages: list[Mute]) -> None:
        self._stages = stages

    async def check(self, conn: Conn, signal: Signal, now: datetime) -> Muted | None:
        """Why `signal` is muted, or None."""
        if signal.category in NEVER_MUTED:
            return None
        for stage in self._stages:
            muted = await stage.check(conn, signal, now)
            if muted is not None:
                return muted
        return None

    @staticmethod
    async def record(conn: Conn, signal: Signal, muted: Muted) -> None:
        """Keep a held-back signal for audit."""
        await conn.execute(
            "INSERT INTO suppressed_signals (home_id, kind, severity, event_at, muted_by, reason)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (
                signal.home_id,
                signal.kind,
                signal.severity.value,
                signal.event_at,
                muted.stage,
                muted.reason,
            ),
        )


def default_mutes(consent_counter: Counter | None = None) -> MuteChain:
    """Consent, away mode, silences, inhibition."""
    return MuteChain([ConsentMute(consent_counter), AwayMode(), Silences(), Inhibition()])


async def set_home_mode(
    conn: Conn,
    home_id: str,
    mode: str | None,
    *,
    since: datetime,
    until: datetime | None = None,
    reason: str = "",
    user_id: int | None = None,
) -> None:
    """Put a home in `away` / `hospital` mode from `since` until `until` (open-ended when
    None), or back to normal with None. The one writer of `home_modes`, which `AwayMode`
    reads: the elder's away mode in the API and pages is this row too."""
    if mode is None:
        await conn.execute("DELETE FROM home_modes WHERE home_id = %s", (home_id,))
        return
    if mode not in ("away", "hospital"):
        raise ValueError(f"mode must be away or hospital, not {mode!r}")
    if until is not None and until <= since:
        raise ValueError("a home mode must end after it starts")
    await conn.execute(
        "INSERT INTO home_modes (home_id, mode, since, until, reason, set_by)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (home_id) DO UPDATE SET"
        " mode = EXCLUDED.mode, since = EXCLUDED.since, until = EXCLUDED.until,"
        " reason = EXCLUDED.reason, set_by = EXCLUDED.set_by",
        (home_id, mode, since, until, reason, user_id),
    )


async def add_silence(
    conn: Conn,
    *,
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
    home_id: str | None = None,
    region_id: str | None = None,
    kinds: list[str] | None = None,
    user_id: int | None = None,
) -> int:
    """Create a silence; returns its id. It needs a reason, an end time and a target."""
    if not reason.strip():
        raise ValueError("a silence needs a reason")
    if (home_id is None) == (region_id is None):
        raise ValueError("a silence is for one home or one region")
    if ends_at <= starts_at:
        raise ValueError("a silence must end after it starts")
    cur = await conn.execute(
        "INSERT INTO silences (home_id, region_id, kinds, starts_at, ends_at, reason, created_by)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (home_id, region_id, kinds, starts_at, ends_at, reason, user_id),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])
