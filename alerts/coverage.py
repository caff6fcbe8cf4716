"""A gap in 24-hour duty coverage is itself an alert (DESIGN: "a gap in 24-hour coverage is
itself a warning"): every `rota_check_s` the rota is looked at from a week back to
`rota_warn_hours` ahead; each gap that has not ended is a technical system alert (no home)
through `store.raise_system`, one per gap, sent at once to the district centre on duty and
the operator (`GAP_POLICY`), and each alert whose gap is covered now is cleared by the data
(`store.clear_system`). The log line and the gauge of `RotaWatch` stay. District staff see
these alerts in their console (`Scope.service_alerts`).

A gap is known by its tier, region and start (its real start, a shift's end, looked up to
`LOOKBACK` back; `before` when nothing ended in that week): the kind
`rota_gap:<tier>:<region>:<start>`. Covering the start of a gap makes it another gap (the
old alert is cleared, the rest raised anew); a gap whose end moves adds evidence. A gap
alert someone resolved by hand while the gap is still there is raised again: acknowledge it
to own it; it clears itself once the gap is covered."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import psycopg
from psycopg_pool import AsyncConnectionPool

from alerts import store
from alerts.config import AlertMetrics, AlertSettings, Clock, utc_now
from alerts.escalate.policy import Policy, Step
from alerts.escalate.rota import Gap, RotaWatch, coverage_gaps
from alerts.escalate.routing import Routing
from alerts.model import Severity

log = logging.getLogger(__name__)

KIND_PREFIX = "rota_gap:"
GAP_POLICY = Policy((Step(0, ("operator", "district")),), 1800)
"""A gap is sent to the district centre at once (with the operator on duty), then every
30 minutes until someone acknowledges it: the district fills its own rota."""
LOOKBACK = timedelta(days=7)
"""How far back a gap's start is looked for."""

_TIERS = {
    "village": ("village", "村级"),
    "town": ("town", "镇级"),
    "district": ("district", "区级"),
    "operator": ("operator", "运维"),
}


class Sender(Protocol):
    """Who sends an alert's rounds (the `Dispatcher`): its routing, and a nudge to look now."""

    routing: Routing

    def wake(self) -> None:
        """Look for due notifications now."""


@dataclass(frozen=True, slots=True)
class OpenGap:
    """A gap that has not ended, with what it is known by."""

    gap: Gap
    kind: str
    started: bool
    open_ended: bool


def gap_kind(gap: Gap, window_start: datetime) -> str:
    """`rota_gap:<tier>:<region>:<start, UTC>` (`before` for a start before the window)."""
    start = (
        "before"
        if gap.starts_at <= window_start
        else gap.starts_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    )
    return f"{KIND_PREFIX}{gap.tier}:{gap.region_id}:{start}"


def gap_summary(
    og: OpenGap, region_name: str, tz: ZoneInfo, locale: str, window_end: datetime
) -> str:
    """ "No one on duty at tier town (East Town) from … to …", in `locale` and `tz`."""
    g = og.gap
    fmt = "%Y-%m-%d %H:%M"
    start = g.starts_at.astimezone(tz).strftime(fmt)
    end = min(g.ends_at, window_end).astimezone(tz).strftime(fmt)
    en_tier, zh_tier = _TIERS.get(g.tier, (g.tier, g.tier))
    where = region_name if g.region_id != "*" else ""
    if locale == "zh":
        more = "或更晚" if og.open_ended else ""
        place = f"（{where}）" if where else ""
        return f"{zh_tier}{place}无人值班：{start} 至 {end}{more}（{tz.key}）"
    more = " or later" if og.open_ended else ""
    place = f" ({where})" if where else ""
    return f"No one on duty at tier {en_tier}{place} from {start} to {end}{more} ({tz.key})"


class RotaGapAlerts:
    """Raises a system alert per uncovered stretch of the rota, clears it once covered."""

    def __init__(
        self,
        settings: AlertSettings,
        pool: AsyncConnectionPool[Any],
        metrics: AlertMetrics,
        sender: Sender,
        clock: Clock = utc_now,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._routing = sender.routing
        self._wake = sender.wake
        self._clock = clock
        self._watch = RotaWatch(settings, pool, metrics, clock)
        self._ends: dict[str, datetime | None] = {}
        """The end of each alerted gap as last seen (None: beyond the look-ahead)."""

    async def open_gaps(self, conn: psycopg.AsyncConnection[Any], now: datetime) -> list[OpenGap]:
        """The gaps from now to `rota_warn_hours` ahead, each with its real start."""
        back = now - LOOKBACK
        end = now + timedelta(hours=self._settings.rota_warn_hours)
        found = await coverage_gaps(conn, back, end)
        return [
            OpenGap(g, gap_kind(g, back), g.starts_at <= now, g.ends_at >= end)
            for g in found
            if g.ends_at > now
        ]

    async def check(self) -> list[OpenGap]:
        """Look once: log and measure (RotaWatch), raise new gaps, clear covered ones."""
        await self._watch.check()
        now = self._clock()
        end = now + timedelta(hours=self._settings.rota_warn_hours)
        tz, locale = self._settings.zone(), self._settings.locale
        changed = False
        async with self._pool.connection(timeout=10) as conn:
            gaps = await self.open_gaps(conn, now)
            cur = await conn.execute("SELECT id, name FROM regions")
            names = {str(i): str(n) for i, n in await cur.fetchall()}
            cur = await conn.execute(
                "SELECT kind FROM alerts WHERE home_id IS NULL AND kind LIKE %s"
                " AND status <> 'resolved'",
                (KIND_PREFIX + "%",),
            )
            alerting = {str(k) for (k,) in await cur.fetchall()}
            current = {og.kind for og in gaps}
            for og in gaps:
                g = og.gap
                real_end = None if og.open_ended else g.ends_at
                known = og.kind in alerting
                if known and (og.kind not in self._ends or self._ends[og.kind] == real_end):
                    self._ends[og.kind] = real_end  # as before (or as before a restart)
                    continue  # no new evidence every check
                summary = gap_summary(og, names.get(g.region_id, g.region_id), tz, locale, end)
                evidence = {
                    "region_id": g.region_id,
                    "tier": g.tier,
                    "starts_at": g.starts_at.isoformat(),
                    "ends_at": None if real_end is None else real_end.isoformat(),
                    "summary": summary,
                }
                severity = Severity.CRITICAL if og.started else Severity.WARNING
                raised = await store.raise_system(
                    conn, og.kind, summary, evidence, now, self._routing, severity, GAP_POLICY
                )
                self._ends[og.kind] = real_end
                changed = True
                if raised.created:
                    log.warning("rota gap alert %d: %s", raised.alert_id, summary)
            for kind in sorted(alerting - current):
                cleared = await store.clear_system(conn, kind, "someone is on duty now", now)
                self._ends.pop(kind, None)
                if cleared is not None:
                    changed = True
                    log.info("rota gap alert %d cleared: covered (%s)", cleared, kind)
        if changed:
            self._wake()
        return gaps

    async def run(self) -> None:
        """Check every `rota_check_s` until cancelled."""
        while True:
            try:
                await self.check()
            except (psycopg.Error, TimeoutError) as exc:
                log.warning("rota check failed: %r", exc)
            await asyncio.sleep(self._settings.rota_check_s)
