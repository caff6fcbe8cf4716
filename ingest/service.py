"""The ingest worker: batch, validate, write with COPY, commit, then acknowledge."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import BaseModel, Field, model_validator

from devices import payload, topics
from devices.payload import Limits, Reading, Reason, Rejection
from ingest import retention, store
from ingest.db import WRITE_RETRY
from ingest.mqtt import Message, Subscriber
from ingest.registry import RegistryCache

log = logging.getLogger(__name__)

"""A batch is written until it commits (it is acknowledged only then): jittered backoff, at
most 2 s between tries, so the writer is back within 2 s of a failover."""


class IngestSettings(BaseModel):
    """Tuning of the ingest stage."""

    client_id: str = "eldercare-ingest"
    shared_group: str | None = Field(
        default=None,
        description="MQTT shared-subscription group ($share/<group>/...) so several workers "
        "split the load. Off by default: Mosquitto drops messages for a share group while "
        "none of its members is connected (e.g. all ingesters restarting), whereas a plain "
        "persistent subscription queues them",
    )
    batch_max_rows: int = Field(default=2000, ge=1, le=50_000)
    batch_max_delay_ms: int = Field(default=20, ge=0, le=5000)
    dead_letter_keep: int = Field(default=10_000, ge=100)
    registry_refresh_s: float = Field(default=30.0, gt=0)
    max_future_s: int = Field(default=300, ge=0)
    max_age_days: int = Field(default=7, ge=1)
    partitions_ahead_days: int = Field(default=7, ge=1)
    heartbeat_s: float = Field(default=30.0, gt=0, description="progress record for the watchdog")
    feed_detection: bool = Field(
        default=True,
        description="hand each batch's decoded readings to the full-stream detection through "
        "the database (ingest/feed.py), in the transaction that stores them: each reading is "
        "received and decoded once. Off: the detection subscribes to every reading itself "
        "(a second delivery by the broker). Every process of a deployment must agree.",
    )
    detection_shards: int = Field(
        default=1,
        ge=1,
        le=256,
        description="spread the full-stream detection by home over this many shards (devices/"
        "shards.py), each run under its own lease by whichever instance holds it; the instances "
        "share them out by rendezvous hashing. Needs feed_detection. Every process of a "
        "deployment must agree.",
    )
    gap_scan_s: float = Field(
        default=60.0,
        gt=0,
        description="behind a shared subscription: how often the database is scanned for seq "
        "gaps (no worker sees all of a device's messages)",
    )
    gap_scan_window_s: float = Field(
        default=300.0,
        gt=0,
        description="how far back (device time) each gap scan looks; a gap whose two sides are "
        "further apart than this is not seen by the scan, and each scan reads every reading "
        "of the window (at 10 000 readings/s, 3 million)",
    )

    retention_days: int | None = Field(
        default=180,
        description="how many days raw readings are kept (None: for ever); at least "
        f"{retention.MIN_RETENTION_DAYS} (the longest raw window read, see "
        "ingest.retention.MIN_RETENTION_DAYS) and max_age_days + 3",
    )
    rollup_retention_days: int | None = Field(
        default=1825,
        description="how many days the hourly and daily rollups are kept (None: for ever); "
        "at least retention_days",
    )

    @model_validator(mode="after")
    def _check_shards(self) -> IngestSettings:
        if self.detection_shards > 1 and not self.feed_detection:
            raise ValueError(
                "ingest.detection_shards above 1 needs ingest.feed_detection: the shards read"
                " their homes' readings from the detection feed (set"
                " ELDERCARE_INGEST__FEED_DETECTION=true or ELDERCARE_INGEST__DETECTION_SHARDS=1)"
            )
        return self

    @model_validator(mode="after")
    def _check_retention(self) -> IngestSettings:
        least = max(retention.MIN_RETENTION_DAYS, self.max_age_days + 3)
        if self.retention_days is not None and self.retention_days < least:
            raise ValueError(
                f"ingest.retention_days must be at least {least}: the usual day of the "
                f"family page and daily summary reads {retention.MIN_RETENTION_DAYS} days "
                f"of raw readings, and readings up to max_age_days ({self.max_age_days}) old "
                "are still accepted (set ELDERCARE_INGEST__RETENTION_DAYS)"
            )
        floor = self.retention_days or retention.MIN_RETENTION_DAYS
        if self.rollup_retention_days is not None and self.rollup_retention_days < floor:
            raise ValueError(
                f"ingest.rollup_retention_days must be at least retention_days ({floor}): "
                "rollups are what is left once raw readings go "
                "(set ELDERCARE_INGEST__ROLLUP_RETENTION_DAYS)"
            )
        return self

    def retention(self) -> retention.Policy:
        """The retention policy these settings ask for."""
        return retention.Policy(
            self.retention_days, self.rollup_retention_days, late_days=self.max_age_days
        )

    def filters(self) -> list[str]:
        """The subscription filters for readings."""
        base = topics.subscription(topics.Channel.READINGS)
        return [f"$share/{self.shared_group}/{base}" if self.shared_group else base]


class IngestMetrics:
    """Prometheus counters of the ingest stage."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages = Counter(
            "eldercare_ingest_messages", "MQTT messages received", registry=registry
        )
        self.readings = Counter(
            "eldercare_ingest_readings", "readings accepted and written", registry=registry
        )
        self.duplicates = Counter(
            "eldercare_ingest_duplicates", "readings already stored (redelivery)", registry=registry
        )
        self.rejects = Counter(
            "eldercare_ingest_rejects", "messages rejected", ["reason"], registry=registry
        )
        self.seq_gaps = Counter(
            "eldercare_ingest_seq_gaps", "gaps seen in device seq numbers", registry=registry
        )
        self.db_errors = Counter(
            "eldercare_ingest_db_errors", "failed batch writes (retried)", registry=registry
        )
        self.batch_seconds = Histogram(
            "eldercare_ingest_batch_seconds", "time to write and commit a batch", registry=registry
        )


class SeqTracker:
    """Remembers the highest seq per (device, boot) and reports forward gaps."""

    def __init__(self, max_devices: int = 1_000_000) -> None:
        self._last: dict[tuple[str, int], int] = {}
        self._max = max_devices

    def observe(self, reading: Reading) -> store.Gap | None:
        """Record `reading`; a Gap when seq jumped forward by more than one."""
        key = (reading.device_id, reading.boot)
        last = self._last.get(key)
        if last is None or reading.seq > last:
            if len(self._last) >= self._max and key not in self._last:
                self._last.clear()
            self._last[key] = reading.seq
        if last is not None and reading.seq > last + 1:
            return store.Gap(reading.device_id, reading.boot, last, reading.seq)
        return None


def decode_batch(
    messages: list[Message],
    cache: RegistryCache,
    now: datetime,
    limits: Limits,
) -> tuple[list[Reading], list[store.DeadLetter]]:
    """Decode a batch of messages into readings and dead letters (never raises)."""
    readings: list[Reading] = []
    dead: list[store.DeadLetter] = []
    registry = cache.current
    for msg in messages:
        try:
            result = payload.decode(msg.topic, msg.payload, registry, now, limits)
        except Exception as exc:  # the decoder promises not to raise; keep the loop alive
            log.exception("decoder raised on %s", msg.topic)
            result = Rejection(Reason.MALFORMED, f"decoder error: {exc!r}"[:300])
        if isinstance(result, Rejection):
            dead.append(store.DeadLetter(msg.topic, msg.payload[:4096], result))
        else:
            readings.extend(result)
    return readings, dead


def leave_check(
    settings: IngestSettings, dsn: str, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> Callable[[], Awaitable[bool]]:
    """The subscriber's `may_leave` for a worker in a shared group: another worker has
    recorded a heartbeat within three of its intervals and has not stopped since
    (`store.may_leave_group`)."""

    async def may_leave() -> bool:
        now = clock()
        async with await psycopg.AsyncConnection.connect(dsn, connect_timeout=2) as conn:
            return await store.may_leave_group(
                conn, settings.client_id, now, now - timedelta(seconds=3 * settings.heartbeat_s)
            )

    return may_leave


class IngestWorker:
    """Takes messages from a Subscriber and makes them durable before acknowledging."""

    def __init__(
        self,
        settings: IngestSettings,
        dsn: str,
        subscriber: Subscriber,
        cache: RegistryCache,
        metrics: IngestMetrics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._dsn = dsn
        self._sub = subscriber
        self._cache = cache
        self._metrics = metrics
        self._clock = clock
        # Behind a shared subscription each worker sees only some of a device's messages, so
        # a seq jump here is no gap: then gaps are found in the database (`scan_gaps`).
        self._seq = SeqTracker() if settings.shared_group is None else None
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._limits = Limits(
            max_future=timedelta(seconds=settings.max_future_s),
            max_age=timedelta(days=settings.max_age_days),
        )
        self.committed_batches = 0
        self.received = 0
        self.committed = 0

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(self._dsn)
            await store.prepare_writer(self._conn)
        return self._conn

    async def _collect(self) -> list[Message]:
        first = await self._sub.messages.get()
        batch = [first]
        deadline = time.monotonic() + self._settings.batch_max_delay_ms / 1000
        queue = self._sub.messages
        limit = self._settings.batch_max_rows
        while len(batch) < limit:
            for _ in range(min(queue.qsize(), limit - len(batch))):
                batch.append(queue.get_nowait())
            if len(batch) >= limit:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                async with asyncio.timeout(remaining):  # not wait_for: see notify/dispatch.py
                    batch.append(await queue.get())
            except TimeoutError:
                break
        return batch

    async def _write(
        self, readings: list[Reading], dead: list[store.DeadLetter], gaps: list[store.Gap]
    ) -> int:
        """Write until it succeeds: nothing is acknowledged before this returns. A batch whose
        commit was lost with the connection (a failover) is written again on the next
        connection (libpq picks the node that takes writes); ON CONFLICT drops what the lost
        commit had stored, so nothing is stored twice."""
        attempt = 0
        feed = self._settings.detection_shards if self._settings.feed_detection else 0
        while True:
            try:
                conn = await self._connection()
                with self._metrics.batch_seconds.time():
                    return await store.write_batch(conn, readings, dead, gaps, feed=feed)
            except psycopg.Error as exc:
                self._metrics.db_errors.inc()
                attempt += 1
                delay = WRITE_RETRY.delay(attempt)
                log.warning("batch write failed (%r); retrying in %.2f s", exc, delay)
                if self._conn is not None:
                    await self._conn.close()
                self._conn = None
                await asyncio.sleep(delay)

    async def process(self, batch: list[Message]) -> None:
        """Decode, write and acknowledge one batch."""
        self._metrics.messages.inc(len(batch))
        self.received += len(batch)
        now = self._clock()
        readings, dead = decode_batch(batch, self._cache, now, self._limits)
        if any(d.rejection.reason is Reason.UNKNOWN_DEVICE for d in dead) and (
            await self._cache.maybe_refresh(miss=True)
        ):
            readings, dead = decode_batch(batch, self._cache, now, self._limits)
        gaps: list[store.Gap] = []
        if self._seq is not None:
            gaps = [g for g in map(self._seq.observe, readings) if g is not None]
        inserted = await self._write(readings, dead, gaps)
        self._sub.ack_many(batch)
        self.committed_batches += 1
        self.committed += len(batch)
        self._metrics.readings.inc(inserted)
        self._metrics.duplicates.inc(len(readings) - inserted)
        self._metrics.seq_gaps.inc(len(gaps))
        for d in dead:
            self._metrics.rejects.labels(d.rejection.reason.value).inc()
            log.info("rejected %s: %s (%s)", d.topic, d.rejection.reason, d.rejection.detail)

    async def run(self) -> None:
        """Process batches until cancelled."""
        await self._cache.maybe_refresh()
        try:
            while True:
                await self._cache.maybe_refresh()
                await self.process(await self._collect())
        finally:
            if self._conn is not None:
                await self._conn.close()

    async def heartbeat(self, interval_s: float = 30.0) -> None:
        """Record this worker's progress every `interval_s`, for the alerts watchdog."""
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._dsn) as conn:
                    await store.heartbeat(
                        conn,
                        self._settings.client_id,
                        self._clock(),
                        self.received,
                        self.committed,
                        self._sub.messages.qsize(),
                    )
            except psycopg.Error as exc:
                log.warning("heartbeat not recorded: %s", exc)
            await asyncio.sleep(interval_s)

    async def scan_gaps(self) -> None:
        """Behind a shared subscription: find seq gaps in the stored readings, periodically.

        Scans device time [now - window, now - 10 s): the last 10 s are left for messages
        still in flight to another worker.
        """
        if self._seq is not None:
            return  # this worker sees every message and tracks gaps as they arrive
        interval = self._settings.gap_scan_s
        while True:
            await asyncio.sleep(interval)
            now = self._clock()
            since = now - timedelta(seconds=self._settings.gap_scan_window_s)
            try:
                async with await psycopg.AsyncConnection.connect(self._dsn) as conn:
                    found = await store.scan_gaps(conn, since, now - timedelta(seconds=10))
            except psycopg.Error as exc:
                log.warning("gap scan failed: %s", exc)
                continue
            if found:
                log.info("gap scan: %+d seq gaps", found)
            if found and found > 0:
                self._metrics.seq_gaps.inc(found)

    async def maintain(self, interval_s: float = 3600.0) -> None:
        """Periodic housekeeping: partitions ahead of time, dead-letter trimming, retention."""
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._dsn) as conn:
                    today = self._clock().date()
                    made = await store.ensure_partitions(
                        conn,
                        today - timedelta(days=1),
                        today + timedelta(days=self._settings.partitions_ahead_days),
                    )
                    trimmed = await store.trim_dead_letters(conn, self._settings.dead_letter_keep)
                    if made or trimmed:
                        log.info(
                            "maintenance: %d partitions made, %d dead letters trimmed",
                            made,
                            trimmed,
                        )
            except psycopg.Error as exc:
                log.warning("maintenance failed: %s", exc)
            await self.retain()
            await asyncio.sleep(interval_s)

    async def retain(self) -> retention.Report | None:
        """One retention pass (`ingest.retention.run`): rollups, then old raw readings
        dropped; None when it failed (logged, retried next hour) or another worker ran it."""
        try:
            async with await psycopg.AsyncConnection.connect(self._dsn, autocommit=True) as conn:
                return await retention.run(conn, self._settings.retention(), self._clock())
        except psycopg.Error as exc:
            log.warning("retention pass failed (raw readings kept until it succeeds): %s", exc)
            return None
