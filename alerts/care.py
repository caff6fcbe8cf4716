"""Care visits: tag check-ins become visits, and a week that closes with fewer than the
target number of visits raises a `care` alert (once per elder and week)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, Counter, Gauge
from psycopg_pool import AsyncConnectionPool

from alerts import store
from alerts.config import Clock, utc_now
from alerts.escalate.routing import Routing
from alerts.model import Category, Severity, Signal

log = logging.getLogger(__name__)
Conn = psycopg.AsyncConnection[Any]

VISITS_PER_WEEK = 3
"""Each elder living alone is to be visited at least this often per week (Monday-Sunday)."""
TAG_LOOKBACK = timedelta(days=2)
"""How far back tag readings are looked at (late readings within it still count)."""


def week_start(day: date) -> date:
    """The Monday of the week containing `day`."""
    return day - timedelta(days=day.weekday())


async def import_tag_visits(conn: Conn, now: datetime) -> int:
    """Turn staff-tag readings of visit readers into care visits; returns how many are new.

    A reading of a `visit_reader` device whose value is a known staff tag is a visit by
    that staff member to the elder of the reader's home. Idempotent."""
    cur = await conn.execute(
        """
        INSERT INTO care_visits (elder_id, user_id, visited_at, source, device_id, note)
        SELECT e.id, t.user_id, r.ts, 'tag', r.device_id, ''
        FROM devices d
        JOIN readings r ON r.home_id = d.home_id AND r.device_id = d.id
        JOIN elders e ON e.home_id = d.home_id
        JOIN staff_tags t ON t.tag = r.value::bigint
        WHERE d.kind = 'visit_reader' AND r.metric = 'tag' AND r.ts >= %s AND r.ts <= %s
        ON CONFLICT (device_id, visited_at) WHERE source = 'tag' DO NOTHING
        """,
        (now - TAG_LOOKBACK, now),
    )
    return cur.rowcount


def away_during(
    since: datetime | None, until: datetime | None, starts: datetime, ends: datetime
) -> bool:
    """Whether an away / hospital mode from `since` (None: none) to `until` (None: open)
    overlaps the week [starts, ends): such a week is not held against the visit target."""
    return since is not None and since < ends and (until is None or until > starts)


@dataclass(frozen=True, slots=True)
class ClosedWeek:
    """One elder's week, closed."""

    elder_id: str
    week_start: date
    visits: int
    short: bool
    alert_id: int | None


async def close_weeks(conn: Conn, now: datetime, repeat: timedelta | Routing) -> list[ClosedWeek]:
    """Close the last full week (in each home's time zone) of every elder living alone that
    is not closed yet; a week short of `VISITS_PER_WEEK` visits raises a `care_visits`
    alert, unless the home was in away / hospital mode (`home_modes`) during it or the home
    is newer than the week."""
    cur = await conn.execute(
        """
        WITH w AS (
            SELECT e.id AS elder_id, h.id AS home_id, h.timezone, h.created_at,
                   m.since AS mode_since, m.until AS mode_until,
                   (date_trunc('week', %(now)s AT TIME ZONE h.timezone))::date - 7 AS week
            FROM elders e JOIN homes h ON h.id = e.home_id
            LEFT JOIN home_modes m ON m.home_id = h.id
            WHERE e.lives_alone
        )
        SELECT w.elder_id, w.home_id, w.week,
               (w.week::timestamp AT TIME ZONE w.timezone) AS starts,
               ((w.week + 7)::timestamp AT TIME ZONE w.timezone) AS ends,
               w.created_at, w.mode_since, w.mode_until
        FROM w WHERE NOT EXISTS (
            SELECT 1 FROM care_weeks c WHERE c.elder_id = w.elder_id AND c.week_start = w.week)
        ORDER BY w.elder_id
        """,
        {"now": now},
    )
    closed: list[ClosedWeek] = []
    for (
        elder_id,
        home_id,
        week,
        starts,
        ends,
        created,
        mode_since,
        mode_until,
    ) in await cur.fetchall():
        async with conn.transaction():
            count_cur = await conn.execute(
                "SELECT count(*) FROM care_visits WHERE elder_id = %s AND visited_at >= %s"
                " AND visited_at < %s",
                (elder_id, starts, ends),
            )
            row = await count_cur.fetchone()
            count = int(row[0]) if row else 0
            away = away_during(mode_since, mode_until, starts, ends)
            short = count < VISITS_PER_WEEK and not away and created <= starts
            alert_id: int | None = None
            if short:
                raised = await store.raise_signal(
                    conn,
                    Signal(
                        home_id=str(home_id),
                        kind="care_visits",
                        category=Category.CARE,
                        severity=Severity.WARNING,
                        event_at=ends,
                        summary=(
                            f"{count} of {VISITS_PER_WEEK} care visits in the week of"
                            f" {week.isoformat()}"
                        ),
                        evidence={"week_start": week.isoformat(), "visits": count},
                    ),
                    now,
                    repeat,
                )
                alert_id = raised.alert_id
            inserted = await conn.execute(
                "INSERT INTO care_weeks (elder_id, week_start, visits, short, alert_id)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (elder_id, week, count, short, alert_id),
            )
            if inserted.rowcount:
                closed.append(ClosedWeek(str(elder_id), week, count, short, alert_id))
    return closed


class CareMetrics:
    """Prometheus metrics refreshed by the care task: visits, short weeks, open alerts and
    the escalation lag."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.tag_visits = Counter(
            "eldercare_care_tag_visits", "care visits recorded from staff tags", registry=registry
        )
        self.short_weeks = Counter(
            "eldercare_care_short_weeks", "weeks closed below the visit target", registry=registry
        )
        self.alerts = Gauge(
            "eldercare_alerts_current",
            "alerts not yet resolved",
            ["status", "severity"],
            registry=registry,
        )
        self.lag = Gauge(
            "eldercare_alert_unacknowledged_oldest_seconds",
            "escalation lag: age of the oldest alert nobody has acknowledged (0 when none)",
            registry=registry,
        )


async def refresh_alert_gauges(conn: Conn, metrics: CareMetrics, now: datetime) -> None:
    """Set the open-alert gauges and the escalation lag from the alert table."""
    cur = await conn.execute(
        "SELECT status, severity, count(*), min(opened_at) FILTER (WHERE status = 'open')"
        " FROM alerts WHERE status <> 'resolved' GROUP BY status, severity"
    )
    rows = await cur.fetchall()
    for status in ("open", "acknowledged"):
        for severity in Severity:
            metrics.alerts.labels(status, severity.value).set(0)
    oldest: datetime | None = None
    for status, severity, count, opened in rows:
        metrics.alerts.labels(status, severity).set(count)
        if opened is not None and (oldest is None or opened < oldest):
            oldest = opened
    metrics.lag.set(0 if oldest is None else max((now - oldest).total_seconds(), 0.0))


class CareTask:
    """Background loop of the gateway: imports tag visits, closes weeks, refreshes gauges."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        repeat: timedelta | Routing,
        poll_s: float = 60.0,
        clock: Clock = utc_now,
        metrics: CareMetrics | None = None,
    ) -> None:
        self.pool = pool
        self.repeat = repeat
        self.poll_s = poll_s
        self.clock = clock
        self.metrics = metrics

    async def step(self) -> tuple[int, list[ClosedWeek]]:
        """One round: (new tag visits, weeks closed)."""
        now = self.clock()
        async with self.pool.connection() as conn:
            new = await import_tag_visits(conn, now)
            closed = await close_weeks(conn, now, self.repeat)
            if self.metrics is not None:
                await refresh_alert_gauges(conn, self.metrics, now)
        short = sum(c.short for c in closed)
        if self.metrics is not None:
            self.metrics.tag_visits.inc(new)
            self.metrics.short_weeks.inc(short)
        if new or closed:
            log.info("care: %d tag visits, %d weeks closed (%d short)", new, len(closed), short)
        return new, closed

    async def run(self) -> None:
        """Repeat `step` every `poll_s` until cancelled; a failed round is logged and retried."""
        while True:
            try:
                await self.step()
            except (psycopg.Error, OSError) as exc:
                log.warning("care: round failed, retrying: %s", exc)
            await asyncio.sleep(self.poll_s)
