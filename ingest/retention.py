"""Retention of raw readings, run by ingest's maintenance task: rollups first, then the raw
data goes. Raw readings are kept `Policy.raw_days`, rollups `Policy.rollup_days`.

Native PostgreSQL: each run writes the hourly rollups of the hours closed since the last
run and the day summaries of the local days just closed; then every daily partition wholly
older than the cutoff (UTC midnight `raw_days` ago) is dropped (DROP TABLE, not DELETE), each
in one transaction with its final rollups: the hours it holds and every home's local days
that overlap it, written from the raw readings just before the drop. Older rows of the
default partition are rolled up and deleted the same way. `readings_retention.raw_since`
then says where the raw readings begin; the gateway reads rollups for anything before it.

TimescaleDB: the policies (raw retention, the aggregates' refresh and retention) are set to
the settings; the day summaries are written by this task, finally for the days about to
leave the raw window, and `raw_since` is set one day after the cutoff, so it stays true
until the next run even if the retention policy drops a chunk meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from time import monotonic
from typing import Any

import psycopg
from psycopg import sql

from ingest import rollups
from ingest.migrate import storage_kind

log = logging.getLogger(__name__)
Conn = psycopg.AsyncConnection[Any]

MIN_RETENTION_DAYS = 18
"""The shortest raw retention allowed: the longest raw window read is `alerts.usual`'s
usual day (the 14 previous days, from 18:00 the evening before the first, in the home's
time zone), for yesterday's daily summary in the morning (`alerts.digest`): that reaches
back 16.25 days from today's local midnight; with the cutoff at a UTC midnight and up to
14 h between the two, 18 days keep all of it raw. Everything else reads less raw (the
readings API one request of at most 31 days, but past the window it reads rollups; the care
visit import 2 days; the detectors' catch-up 1 day)."""
RELOOK = timedelta(hours=2)
"""Hours already rolled up are rolled up again this far back (late readings)."""
_LOCK = "eldercare.retention"
CATCH_UP_CHUNK = rollups.SUMMARY_CHUNK
"""(home, day) pairs summarised per transaction when catching up on missing days."""


@dataclass(frozen=True, slots=True)
class Policy:
    """How long readings and rollups are kept (None: for ever)."""

    raw_days: int | None
    rollup_days: int | None
    late_days: int
    """Readings older than this are refused by ingest (`max_age_days`)."""


@dataclass(slots=True)
class Report:
    """What one run did."""

    storage: str
    hours: int = 0
    days: int = 0
    dropped: list[str] = field(default_factory=list)
    deleted: int = 0
    purged: int = 0
    policies: int = 0
    raw_since: datetime | None = None


def floor_day(at: datetime) -> datetime:
    """The UTC midnight at or before `at`."""
    return datetime.combine(at.astimezone(UTC).date(), time(), UTC)


def floor_hour(at: datetime) -> datetime:
    """The UTC hour at or before `at`."""
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def cutoff(now: datetime, raw_days: int) -> datetime:
    """Raw readings before this instant go: the UTC midnight `raw_days` before `now`."""
    return floor_day(now - timedelta(days=raw_days))


async def raw_since(conn: Conn) -> datetime | None:
    """Where the raw readings begin (None: nothing has been dropped)."""
    cur = await conn.execute("SELECT raw_since FROM readings_retention WHERE id = 1")
    row = await cur.fetchone()
    return None if row is None else row[0]


async def run(conn: Conn, policy: Policy, now: datetime) -> Report | None:
    """One retention pass on an autocommit connection; None when another worker is doing
    it (a session advisory lock: several ingest workers each run the maintenance task)."""
    cur = await conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (_LOCK,))
    row = await cur.fetchone()
    if row is None or not row[0]:
        return None
    try:
        report = Report(await storage_kind(conn))
        if report.storage == "timescale":
            await _timescale(conn, policy, now, report)
        else:
            await _native(conn, policy, now, report)
        if policy.rollup_days is not None:
            async with conn.transaction():
                report.purged = await rollups.purge(
                    conn,
                    floor_day(now - timedelta(days=policy.rollup_days)),
                    tables=report.storage != "timescale",
                )
        await conn.execute(
            "UPDATE readings_retention SET raw_days = %s, rollup_days = %s, updated_at = now()"
            " WHERE id = 1",
            (policy.raw_days, policy.rollup_days),
        )
        report.raw_since = await raw_since(conn)
        return report
    finally:
        await conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (_LOCK,))


async def _recent_days(conn: Conn, policy: Policy, now: datetime, since: datetime | None) -> int:
    """Summaries of the local days closed lately that have none yet."""
    pairs = await rollups.day_pairs(
        conn,
        now - timedelta(days=policy.late_days + 1),
        now,
        now,
        since,
        missing_only=True,
    )
    # Each chunk commits on its own and the pass rests as long as the chunk took: after a
    # restart with 10 000 homes a week behind, this is 80 000 pairs (4.5 s of one database
    # core since each chunk reads only its days' index ranges: `python -m
    # bench.retention_catchup`; before, a chunk that read all of today's partition took
    # 0.2-28 s, and the pass did not end in 15 min). In one transaction it held that core for
    # the whole of each short-lived ingest process in the benchmark, beside the SOS presses,
    # and a process stopped before the end had committed nothing.
    done = 0
    for i in range(0, len(pairs), CATCH_UP_CHUNK):
        started = monotonic()
        async with conn.transaction():
            done += await rollups.summarise_days(conn, pairs[i : i + CATCH_UP_CHUNK])
        if i + CATCH_UP_CHUNK < len(pairs):
            await asyncio.sleep(monotonic() - started)
    return done


async def _native(conn: Conn, policy: Policy, now: datetime, report: Report) -> None:
    cur = await conn.execute("SELECT raw_since, hourly_through FROM readings_retention")
    row = await cur.fetchone()
    since, through = (row[0], row[1]) if row else (None, None)
    until = floor_hour(now)
    start = max(through - RELOOK, until - timedelta(days=1)) if through else until - RELOOK
    if since is not None:
        start = max(start, since)
    if start < until:
        async with conn.transaction():
            report.hours = await rollups.roll_up_hours(conn, start, until)
            await conn.execute(
                "UPDATE readings_retention SET hourly_through = %s WHERE id = 1", (until,)
            )
    report.days = await _recent_days(conn, policy, now, since)
    if policy.raw_days is None:
        return
    cut = cutoff(now, policy.raw_days)
    for lo, hi, partition in await _old_ranges(conn, cut):
        async with conn.transaction():
            await conn.execute("SET LOCAL lock_timeout = '5s'")
            report.hours += await rollups.roll_up_hours(conn, lo, hi)
            pairs = await rollups.day_pairs(conn, lo, hi, now, since)
            report.days += await rollups.summarise_days(conn, pairs)
            if partition is not None:
                await conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(partition)))
                report.dropped.append(partition)
            cur = await conn.execute(
                "DELETE FROM readings_default WHERE ts >= %s AND ts < %s", (lo, hi)
            )
            report.deleted += max(cur.rowcount, 0)
            await conn.execute(
                "UPDATE readings_retention SET raw_since = greatest(raw_since, %s) WHERE id = 1",
                (hi,),
            )
            since = hi if since is None else max(since, hi)
    await conn.execute(
        "UPDATE readings_retention SET raw_since = greatest(raw_since, %s) WHERE id = 1", (cut,)
    )
    if report.dropped or report.deleted:
        log.info(
            "retention: %d partitions dropped (%s), %d old rows of the default partition"
            " deleted, raw readings from %s",
            len(report.dropped),
            ", ".join(report.dropped),
            report.deleted,
            cut.isoformat(),
        )


_PARTITIONS = r"""
SELECT c.relname, m[1]::timestamptz, m[2]::timestamptz
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
CROSS JOIN LATERAL regexp_match(
    pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\) TO \(''([^'']+)''\)') m
WHERE i.inhparent = 'readings'::regclass AND m IS NOT NULL AND m[2]::timestamptz <= %s
"""
_DEFAULT_DAYS = (
    "SELECT DISTINCT date_bin('1 day', ts, '2000-01-01 00:00+00') FROM readings_default"
    " WHERE ts < %s"
)


async def _old_ranges(conn: Conn, cut: datetime) -> list[tuple[datetime, datetime, str | None]]:
    """The partitions wholly before `cut` and the UTC days of older rows in the default
    partition that no partition covers, oldest first: (from, to, partition or None)."""
    cur = await conn.execute(_PARTITIONS, (cut,))
    ranges: list[tuple[datetime, datetime, str | None]] = [
        (lo, hi, str(name)) for name, lo, hi in await cur.fetchall()
    ]
    cur = await conn.execute(_DEFAULT_DAYS, (cut,))
    for (day,) in await cur.fetchall():
        if not any(lo <= day < hi for lo, hi, _ in ranges):
            ranges.append((day, day + timedelta(days=1), None))
    return sorted(ranges, key=lambda r: r[0])


async def _timescale(conn: Conn, policy: Policy, now: datetime, report: Report) -> None:
    cur = await conn.execute(
        "SELECT eldercare_retention_policies(%s, %s, %s)",
        (policy.raw_days, policy.rollup_days, policy.late_days + 2),
    )
    row = await cur.fetchone()
    report.policies = int(row[0]) if row else 0
    cur = await conn.execute(
        "SELECT min(range_start) FROM timescaledb_information.chunks"
        " WHERE hypertable_name = 'readings'"
    )
    row = await cur.fetchone()
    first: datetime | None = row[0] if row else None
    report.days = await _recent_days(conn, policy, now, first)
    if policy.raw_days is None or first is None:
        return
    horizon = cutoff(now, policy.raw_days) + timedelta(days=1)
    if first < horizon:
        pairs = await rollups.day_pairs(conn, first, horizon, now, first)
        async with conn.transaction():
            report.days += await rollups.summarise_days(conn, pairs)
    await conn.execute(
        "UPDATE readings_retention SET raw_since = greatest(raw_since, %s) WHERE id = 1",
        (horizon,),
    )
