"""The on-duty rota: shifts per region and tier, who is on duty now, and uncovered hours.

The tier of a shift is its region's tier (village / town / district), or `operator` for an
operator's shift. Every village, town and district needs someone on duty around the clock,
and the service needs an operator on duty; a gap ahead is warned about in advance.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from alerts.config import AlertMetrics, AlertSettings, Clock, utc_now

Conn = psycopg.AsyncConnection[Any]
log = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class Shift:
    """One shift of one person at one region."""

    id: int
    user_id: int
    username: str
    display_name: str
    region_id: str
    tier: str
    starts_at: datetime
    ends_at: datetime


@dataclass(slots=True, frozen=True)
class Gap:
    """A time with nobody on duty at a region and tier."""

    region_id: str
    tier: str
    starts_at: datetime
    ends_at: datetime

    @property
    def hours(self) -> float:
        """Length in hours."""
        return (self.ends_at - self.starts_at).total_seconds() / 3600


class RotaError(ValueError):
    """A shift that cannot be stored (unknown user or region, wrong role, bad times)."""


async def list_shifts(
    conn: Conn, start: datetime, end: datetime, region_id: str | None = None
) -> list[Shift]:
    """Shifts overlapping [start, end), optionally at one region, in time order."""
    cur = await conn.execute(
        "SELECT d.id, u.id, u.username, u.display_name, d.region_id,"
        " CASE WHEN u.role = 'operator' THEN 'operator' ELSE r.tier END,"
        " d.starts_at, d.ends_at FROM duty_shifts d JOIN users u ON u.id = d.user_id"
        " JOIN regions r ON r.id = d.region_id"
        " WHERE d.starts_at < %s AND d.ends_at > %s AND (%s::text IS NULL OR d.region_id = %s)"
        " ORDER BY d.starts_at, d.region_id, u.id",
        (end, start, region_id, region_id),
    )
    return [Shift(*row) for row in await cur.fetchall()]


async def add_shift(
    conn: Conn, username: str, region_id: str, starts_at: datetime, ends_at: datetime
) -> int:
    """Add a shift; the person's role must fit the region's tier (operators fit anywhere)."""
    if ends_at <= starts_at:
        raise RotaError("a shift must end after it starts")
    cur = await conn.execute(
        "SELECT u.id, u.role, r.tier FROM users u, regions r WHERE u.username = %s AND r.id = %s",
        (username, region_id),
    )
    row = await cur.fetchone()
    if row is None:
        raise RotaError(f"no user {username!r} or no region {region_id!r}")
    uid, role, tier = row
    fits = {"village": "village_worker", "town": "town_staff", "district": "district_staff"}
    if role != "operator" and fits[tier] != role:
        raise RotaError(f"{username} is {role}; a {tier} shift needs {fits[tier]}")
    cur = await conn.execute(
        "INSERT INTO duty_shifts (user_id, region_id, starts_at, ends_at)"
        " VALUES (%s, %s, %s, %s) RETURNING id",
        (uid, region_id, starts_at, ends_at),
    )
    created = await cur.fetchone()
    assert created is not None
    return int(created[0])


async def remove_shift(conn: Conn, shift_id: int) -> bool:
    """Delete a shift; False if there was none."""
    cur = await conn.execute("DELETE FROM duty_shifts WHERE id = %s RETURNING id", (shift_id,))
    return await cur.fetchone() is not None


def uncovered(
    start: datetime, end: datetime, spans: list[tuple[datetime, datetime]]
) -> list[tuple[datetime, datetime]]:
    """The stretches of [start, end) that none of `spans` (start, end) covers, in order."""
    gaps: list[tuple[datetime, datetime]] = []
    cursor = start
    for s, e in sorted(spans):
        if s > cursor:
            gaps.append((cursor, min(s, end)))
        cursor = max(cursor, e)
        if cursor >= end:
            break
    if cursor < end:
        gaps.append((cursor, end))
    return [(s, e) for s, e in gaps if e > s]


async def coverage_gaps(conn: Conn, start: datetime, end: datetime) -> list[Gap]:
    """Every stretch of [start, end) with nobody on duty: per village, town and district
    (their own tier), and for the operator tier as a whole."""
    cur = await conn.execute("SELECT id, tier FROM regions ORDER BY tier, id")
    regions = [(str(i), str(t)) for i, t in await cur.fetchall()]
    shifts = await list_shifts(conn, start, end)
    gaps: list[Gap] = []
    for region_id, tier in regions:
        spans = [
            (s.starts_at, s.ends_at) for s in shifts if s.region_id == region_id and s.tier == tier
        ]
        gaps += [Gap(region_id, tier, s, e) for s, e in uncovered(start, end, spans)]
    op = [(s.starts_at, s.ends_at) for s in shifts if s.tier == "operator"]
    gaps += [Gap("*", "operator", s, e) for s, e in uncovered(start, end, op)]
    return gaps


class RotaWatch:
    """Warns ahead of time about hours with nobody on duty (log and a gauge per region)."""

    def __init__(
        self,
        settings: AlertSettings,
        pool: AsyncConnectionPool[Any],
        metrics: AlertMetrics,
        clock: Clock = utc_now,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._metrics = metrics
        self._clock = clock
        self._known: set[tuple[str, str]] = set()

    async def check(self) -> list[Gap]:
        """Look ahead once; returns the gaps found."""
        now = self._clock()
        end = now + timedelta(hours=self._settings.rota_warn_hours)
        async with self._pool.connection() as conn:
            gaps = await coverage_gaps(conn, now, end)
        totals: dict[tuple[str, str], float] = {}
        for gap in gaps:
            key = (gap.region_id, gap.tier)
            totals[key] = totals.get(key, 0.0) + (gap.ends_at - gap.starts_at).total_seconds()
            log.warning(
                "nobody on duty at %s (%s) from %s to %s",
                gap.region_id,
                gap.tier,
                gap.starts_at.isoformat(timespec="minutes"),
                gap.ends_at.isoformat(timespec="minutes"),
            )
        for key in self._known | set(totals):
            self._metrics.uncovered.labels(*key).set(totals.get(key, 0.0))
        self._known |= set(totals)
        return gaps

    async def run(self) -> None:
        """Check every `rota_check_s` until cancelled."""
        while True:
            try:
                await self.check()
            except psycopg.Error as exc:
                log.warning("rota check failed: %r", exc)
            await asyncio.sleep(self._settings.rota_check_s)
