"""SQL of the ingest stage: registry load, batched reading writes, dead letters, seq gaps."""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg

from devices.payload import Reading, Rejection
from devices.registry import DeviceRecord, Registry
from ingest import feed as detection_feed
from ingest.db import read_in_chunks

Conn = psycopg.AsyncConnection[Any]

_STAGING_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS readings_staging"
    " (device_id text, boot int, seq bigint, ts timestamptz, home_id text,"
    "  metric text, value double precision) ON COMMIT DELETE ROWS"
)
_COPY = (
    "COPY readings_staging (device_id, boot, seq, ts, home_id, metric, value)"
    " FROM STDIN (FORMAT BINARY)"
)
_COPY_TYPES = ["text", "int4", "int8", "timestamptz", "text", "text", "float8"]
_MERGE = (
    "INSERT INTO readings (device_id, boot, seq, ts, home_id, metric, value)"
    " SELECT device_id, boot, seq, ts, home_id, metric, value FROM readings_staging"
    " ON CONFLICT DO NOTHING"
)
# The first reading stored from a device since its install (the install check): devices not
# heard yet are few (a partial index holds them), so this finds none almost always. A row
# another batch is marking is skipped (it marks it), so no two batches wait on each other.
_FIRST_HEARD = (
    "UPDATE devices SET first_heard_at = now() WHERE id IN ("
    " SELECT id FROM devices WHERE id = ANY(%s) AND first_heard_at IS NULL"
    " ORDER BY id FOR UPDATE SKIP LOCKED)"
)


@dataclass(slots=True, frozen=True)
class DeadLetter:
    """A rejected message as it is kept for inspection."""

    topic: str
    payload: bytes
    rejection: Rejection


@dataclass(slots=True, frozen=True)
class Gap:
    """A hole in a device's seq numbers within one boot."""

    device_id: str
    boot: int
    after_seq: int
    before_seq: int


async def registry_version(conn: Conn) -> int | None:
    """The device registry's version: bumped by every statement that changes `devices`
    (None if its row is gone, e.g. after a partial restore: then every check reloads)."""
    cur = await conn.execute("SELECT version FROM registry_version")
    row = await cur.fetchone()
    return int(row[0]) if row is not None else None


async def load_registry(conn: Conn, chunk: int = 1000) -> Registry:
    """Every device in service (not retired), read in chunks (see `read_in_chunks`)."""
    records: list[DeviceRecord] = []
    query = "SELECT id, home_id, kind FROM devices WHERE retired_at IS NULL"
    async with contextlib.aclosing(
        read_in_chunks(conn, "eldercare_registry", query, chunk=chunk)
    ) as chunks:
        async for rows in chunks:
            records += [DeviceRecord(str(i), str(h), str(k)) for i, h, k in rows]
    return Registry(records)


async def prepare_writer(conn: Conn) -> None:
    """Create this connection's staging table (temporary: one per connection)."""
    await conn.execute(_STAGING_DDL)
    await conn.commit()


async def write_batch(
    conn: Conn,
    readings: list[Reading],
    dead: list[DeadLetter],
    gaps: list[Gap],
    source: str = "ingest",
    feed: int = 0,
) -> int:
    """Write one batch in one transaction; returns how many readings were new.

    Readings go through COPY into the staging table, then into `readings` with
    ON CONFLICT DO NOTHING on the dedup key (device, boot, seq, ts), so a redelivered
    message is stored once. With `feed` (the detection's number of shards; 0: no feed), the
    batch's readings also go to the detection feed
    (ingest/feed.py), all of them: a redelivered one the detection had judged is dropped by
    its marks, one it had not (the former commit's feed row consumed before a crash of the
    detection) is judged.
    """
    inserted = 0
    async with conn.transaction():
        if readings:
            async with conn.cursor() as cur:
                async with cur.copy(_COPY) as copy:
                    copy.set_types(_COPY_TYPES)
                    for r in readings:
                        await copy.write_row(
                            (r.device_id, r.boot, r.seq, r.ts, r.home_id, r.metric, r.value)
                        )
                await cur.execute(_MERGE)
                inserted = max(cur.rowcount, 0)
                if inserted:
                    await cur.execute(_FIRST_HEARD, (sorted({r.device_id for r in readings}),))
                if feed:
                    await detection_feed.write(cur, readings, feed)
        if dead:
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO dead_letters (source, topic, payload, reason, detail)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    [
                        (source, d.topic, d.payload, d.rejection.reason.value, d.rejection.detail)
                        for d in dead
                    ],
                )
                counts = Counter(d.rejection.reason.value for d in dead)
                await cur.executemany(
                    "INSERT INTO reject_counts (source, reason, count) VALUES (%s, %s, %s)"
                    " ON CONFLICT (source, reason)"
                    " DO UPDATE SET count = reject_counts.count + EXCLUDED.count",
                    [(source, reason, n) for reason, n in sorted(counts.items())],
                )
        if gaps:
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO seq_gaps (device_id, boot, after_seq, before_seq)"
                    " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    [(g.device_id, g.boot, g.after_seq, g.before_seq) for g in gaps],
                )
    return inserted


_FILLED_GAPS = """
DELETE FROM seq_gaps g WHERE EXISTS (
    SELECT 1 FROM readings r
    WHERE r.device_id = g.device_id AND r.boot = g.boot
      AND r.seq > g.after_seq AND r.seq < g.before_seq
      AND r.ts >= %(since)s AND r.ts < %(until)s)
"""
_SCAN_GAPS = """
WITH seen AS (
    SELECT device_id, boot, seq,
           lag(seq) OVER (PARTITION BY device_id, boot ORDER BY seq) AS prev
    FROM (SELECT DISTINCT device_id, boot, seq FROM readings
          WHERE ts >= %(since)s AND ts < %(until)s) r
)
INSERT INTO seq_gaps (device_id, boot, after_seq, before_seq)
SELECT device_id, boot, prev, seq FROM seen WHERE seq > prev + 1
ON CONFLICT DO NOTHING
"""


async def scan_gaps(conn: Conn, since: datetime, until: datetime) -> int | None:
    """Record the seq gaps among readings with device time in [since, until); returns the
    net change in recorded gaps, or None when another worker holds the scan lock.

    For workers behind a shared subscription, where no single worker sees every message of
    a device. One scan at a time (a transaction-level advisory lock); re-scanning a window
    stores nothing twice (the gap's key is device, boot, seq before it). A gap recorded while
    another worker had not yet committed its part of it is corrected by the next scan: gaps
    that readings in the window now fill are removed, and what is still missing recorded.
    """
    async with conn.transaction():
        cur = await conn.execute("SELECT pg_try_advisory_xact_lock(hashtext('eldercare.gaps'))")
        row = await cur.fetchone()
        if row is None or not row[0]:
            return None
        window = {"since": since, "until": until}
        cur = await conn.execute(_FILLED_GAPS, window)
        filled = max(cur.rowcount, 0)
        cur = await conn.execute(_SCAN_GAPS, window)
        return max(cur.rowcount, 0) - filled


async def trim_dead_letters(conn: Conn, keep: int) -> int:
    """Keep only the newest `keep` dead letters; returns how many were removed."""
    async with conn.transaction():
        cur = await conn.execute(
            "DELETE FROM dead_letters WHERE id <= (SELECT max(id) FROM dead_letters) - %s",
            (keep,),
        )
        return max(cur.rowcount, 0)


async def ensure_partitions(conn: Conn, first: date, last: date) -> int:
    """Create daily reading partitions for [first, last] (a no-op on TimescaleDB)."""
    async with conn.transaction():
        cur = await conn.execute("SELECT eldercare_ensure_partitions(%s, %s)", (first, last))
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def heartbeat(
    conn: Conn, worker: str, at: datetime, received: int, committed: int, pending: int
) -> None:
    """Record an ingest worker's progress."""
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO ingest_heartbeats (worker, at, received, committed, pending)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (worker) DO UPDATE SET at = EXCLUDED.at,"
            " received = EXCLUDED.received, committed = EXCLUDED.committed,"
            " pending = EXCLUDED.pending, left_at = NULL",
            (worker, at, received, committed, pending),
        )


_LEAVE_LOCK = "eldercare-ingest-leave"


async def may_leave_group(conn: Conn, worker: str, at: datetime, alive_since: datetime) -> bool:
    """At a clean stop: may `worker` unsubscribe from its shared group? Only while another
    worker is alive (a heartbeat since `alive_since`, not since stopped): the last member
    keeps its subscription, so that the broker queues the readings in its session until a
    worker is back (with no member subscribed, Mosquitto drops them). Records the stop either
    way. Serialised by a transaction lock, so two workers stopping together never both leave:
    the second one sees the first one gone."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_LEAVE_LOCK,))
        cur = await conn.execute(
            "SELECT count(*) FROM ingest_heartbeats"
            " WHERE worker <> %s AND at >= %s AND left_at IS NULL",
            (worker, alive_since),
        )
        row = await cur.fetchone()
        others = int(row[0]) if row else 0
        await conn.execute(
            "UPDATE ingest_heartbeats SET left_at = %s WHERE worker = %s", (at, worker)
        )
    return others > 0


async def latest_heartbeat(conn: Conn) -> datetime | None:
    """When any ingest worker last recorded progress (None: none ever did)."""
    cur = await conn.execute("SELECT max(at) FROM ingest_heartbeats")
    row = await cur.fetchone()
    return None if row is None else row[0]
