"""The full-stream detection's readings, from ingest through the database (ingest/feed.py):
each reading is received from the broker and decoded once, by ingest (issue 18).

The holder of the `detection` lease (of `detection-{k}`: the rows of shard k) reads the feed
in id order, runs each row's readings
through the detectors (`AlertService.handle_readings`) and deletes the row once what it
raised is committed. A row whose signals are still being stored in the background (the
database refused them a moment) stays in the table, skipped here, until that store calls
back; a detection that dies first leaves it for the next holder, whose restored marks drop
the readings it had judged already. Rows are woken by NOTIFY and, should a notification be
missed (a reconnect, a failover), found by a poll every `poll_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import Any

import msgspec
import psycopg
from prometheus_client import CollectorRegistry, Counter, Gauge
from psycopg_pool import AsyncConnectionPool

from alerts.service import AlertService
from ingest import feed
from ingest.db import WRITE_RETRY

log = logging.getLogger(__name__)


class FeedMetrics:
    """Prometheus figures of the detection feed."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.rows = Counter(
            "eldercare_detection_feed_rows", "feed rows judged by the detection", registry=registry
        )
        self.readings = Counter(
            "eldercare_detection_feed_readings", "readings judged from the feed", registry=registry
        )
        self.corrupt = Counter(
            "eldercare_detection_feed_corrupt",
            "feed rows that could not be decoded (their readings are stored, not judged)",
            registry=registry,
        )
        self.waiting = Gauge(
            "eldercare_detection_feed_waiting",
            "feed rows read but still storing what they raised",
            registry=registry,
        )


class FeedReader:
    """Feeds one `AlertService` from the detection feed until cancelled."""

    def __init__(
        self,
        dsn: str,
        pool: AsyncConnectionPool[Any],
        service: AlertService,
        metrics: FeedMetrics | None = None,
        *,
        batch_rows: int = 8,
        poll_s: float = 0.5,
        shard: int = 0,
    ) -> None:
        self._dsn = dsn
        self._pool = pool
        self._service = service
        self._metrics = metrics
        self._batch_rows = batch_rows
        self._poll_s = poll_s
        self._shard = shard  # the rows of this shard only (devices/shards.py)
        self._wake = asyncio.Event()
        self._waiting: set[int] = set()  # read; what they raised is being stored
        self._stored: list[int] = []  # ready to delete
        self.judged_rows = 0

    def _stored_later(self, row_id: int) -> None:
        self._stored.append(row_id)
        self._wake.set()

    async def run(self) -> None:
        """Read, judge and delete rows until cancelled (after the replay at start)."""
        await self._service.resumed()
        listener = asyncio.create_task(self._listen(), name="alerts-feed-listen")
        attempt = 0
        try:
            while True:
                try:
                    got = await self._round()
                    attempt = 0
                except psycopg.Error as exc:
                    attempt += 1
                    delay = WRITE_RETRY.delay(attempt)
                    log.warning("detection feed read failed (%r); retrying in %.2f s", exc, delay)
                    await asyncio.sleep(delay)
                    continue
                if not got:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._poll_s):
                            await self._wake.wait()
                    self._wake.clear()
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def _round(self) -> int:
        """One batch of rows: judged, and the ones whose signals are stored deleted."""
        async with self._pool.connection() as conn:
            if self._stored:
                await self._delete(conn, self._stored)
            cur = await conn.execute(
                "SELECT id, readings FROM detection_feed WHERE shard = %s"
                " AND NOT (id = ANY(%s)) ORDER BY id LIMIT %s",
                (self._shard, sorted(self._waiting), self._batch_rows),
            )
            rows = await cur.fetchall()
            await conn.commit()
        if not rows:
            return 0
        done: list[int] = []
        for row_id, blob in rows:
            try:
                readings = feed.decode(bytes(blob))
            except msgspec.DecodeError:
                log.exception(
                    "detection feed row %d is corrupt: its readings are not judged", row_id
                )
                if self._metrics is not None:
                    self._metrics.corrupt.inc()
                done.append(row_id)
                continue
            try:
                stored = await self._service.handle_readings(
                    readings, functools.partial(self._stored_later, row_id)
                )
            except Exception:  # a detector's fault: the row stays for the next holder
                log.exception("detection failed on feed row %d; left in the feed", row_id)
                self._waiting.add(row_id)
                continue
            await asyncio.sleep(0)  # the lease renewals and the clock run between rows
            if stored:
                done.append(row_id)
            else:
                self._waiting.add(row_id)
            self.judged_rows += 1
            if self._metrics is not None:
                self._metrics.rows.inc()
                self._metrics.readings.inc(len(readings))
        async with self._pool.connection() as conn:
            await self._delete(conn, done + self._stored)
        return len(rows)

    async def _delete(self, conn: psycopg.AsyncConnection[Any], ids: list[int]) -> None:
        if not ids:
            return
        taken = list(ids)
        await conn.execute("DELETE FROM detection_feed WHERE id = ANY(%s)", (taken,))
        await conn.commit()
        self._waiting.difference_update(taken)
        gone = set(taken)
        self._stored = [i for i in self._stored if i not in gone]
        if self._metrics is not None:
            self._metrics.waiting.set(len(self._waiting))

    async def _listen(self) -> None:
        """Wake the reader at each NOTIFY; reconnect after a failure (the poll covers the
        gap)."""
        attempt = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._dsn, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {feed.CHANNEL}")
                    attempt = 0
                    self._wake.set()  # rows written before the LISTEN
                    async for _note in conn.notifies():
                        self._wake.set()
            except psycopg.Error as exc:
                attempt += 1
                delay = WRITE_RETRY.delay(attempt)
                log.warning("detection feed LISTEN lost (%r); again in %.2f s", exc, delay)
                await asyncio.sleep(delay)
