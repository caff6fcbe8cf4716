"""The alerts stage at run time: readings through the detectors into stored alerts."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from alerts import store
from alerts.config import AlertMetrics, AlertSettings, Clock, utc_now
from alerts.detect import DetectorSet
from alerts.dispatch import Dispatcher
from alerts.fallback import EmergencyFallback
from alerts.model import Raised, Severity, Signal
from devices import payload, topics
from devices.payload import Rejection
from ingest.mqtt import Message, Subscriber
from ingest.registry import RegistryCache

log = logging.getLogger(__name__)


class AlertService:
    """Runs readings through the detectors and stores what they raise.

    It has its own QoS 1 subscription, separate from ingest's batching, so an SOS does not
    wait behind bulk writes; a message is acknowledged once its alert is committed.
    """

    def __init__(
        self,
        settings: AlertSettings,
        pool: AsyncConnectionPool[Any],
        subscriber: Subscriber,
        cache: RegistryCache,
        detectors: DetectorSet,
        dispatcher: Dispatcher,
        metrics: AlertMetrics,
        clock: Clock = utc_now,
        fallback: EmergencyFallback | None = None,
    ) -> None:
        self._settings = settings
        self._fallback = fallback
        self._pending: set[asyncio.Task[None]] = set()
        self._pool = pool
        self._sub = subscriber
        self._cache = cache
        self._detectors = detectors
        self._dispatcher = dispatcher
        self._metrics = metrics
        self._clock = clock

    @staticmethod
    def filters() -> list[str]:
        """Every reading of every home."""
        return [topics.subscription(topics.Channel.READINGS)]

    async def _store_once(self, signal: Signal) -> Raised:
        async with self._pool.connection(timeout=self._settings.store_timeout_s) as conn:
            return await store.raise_signal(
                conn, signal, self._clock(), timedelta(seconds=self._settings.repeat_s)
            )

    async def raise_signal(self, signal: Signal) -> Raised:
        """Store a signal, retrying while the database is unreachable."""
        delay = 0.1
        while True:
            try:
                raised = await self._store_once(signal)
                break
            except (psycopg.OperationalError, TimeoutError) as exc:
                log.error(
                    "could not store %s alert for %s (%r); retrying",
                    signal.kind,
                    signal.home_id,
                    exc,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self._opened(signal, raised)
        return raised

    def _opened(self, signal: Signal, raised: Raised) -> None:
        if raised.created:
            self._metrics.opened.labels(signal.kind, signal.severity.value).inc()
            log.warning("alert %d opened: %s at %s", raised.alert_id, signal.kind, signal.home_id)
        self._dispatcher.wake()

    async def _store_later(self, signals: list[Signal], msg: Message) -> None:
        for signal in signals:
            await self.raise_signal(signal)
        self._sub.ack(msg)

    async def _raise_all(self, signals: list[Signal], msg: Message) -> bool:
        """Store `signals`; True when all are committed. What cannot be stored now is
        retried in the background (acknowledging `msg` after), and a critical one is sent
        straight away from the fallback's cached contacts, so one outage does not hold up
        the next emergency."""
        failed: list[Signal] = []
        for signal in signals:
            if failed:
                failed.append(signal)
                continue
            try:
                self._opened(signal, await self._store_once(signal))
            except (psycopg.OperationalError, TimeoutError) as exc:
                log.error("alert store unavailable (%r)", exc)
                failed.append(signal)
        if not failed:
            return True
        if self._fallback is not None:
            for signal in failed:
                if signal.severity is Severity.CRITICAL:
                    self._metrics.fallback.inc(await self._fallback.notify(signal))
        task = asyncio.create_task(self._store_later(failed, msg), name="alerts-store-later")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return False

    async def handle(self, msg: Message) -> None:
        """Detect on one message and acknowledge it once what it raised is stored."""
        started = asyncio.get_running_loop().time()
        now = self._clock()
        result = payload.decode(msg.topic, msg.payload, self._cache.current, now)
        if (
            isinstance(result, Rejection)
            and result.reason is payload.Reason.UNKNOWN_DEVICE
            and await self._cache.maybe_refresh(miss=True)
        ):
            result = payload.decode(msg.topic, msg.payload, self._cache.current, now)
        if not isinstance(result, Rejection):  # rejects are ingest's to count and keep
            signals = [s for r in result for s in self._detectors.observe(r)]
            if signals:
                if not await self._raise_all(signals, msg):
                    return  # acknowledged once stored, by the background retry
                self._metrics.alert_latency.observe(asyncio.get_running_loop().time() - started)
        self._sub.ack(msg)

    async def run(self) -> None:
        """Handle messages until cancelled."""
        await self._cache.maybe_refresh()
        while True:
            msg = await self._sub.messages.get()
            try:
                await self._cache.maybe_refresh()
                await self.handle(msg)
            except Exception:
                log.exception(
                    "alert handling failed for %s; message left unacknowledged", msg.topic
                )

    async def tick(self, interval_s: float = 1.0) -> None:
        """Advance detection time with the wall clock (live mode)."""
        while True:
            await asyncio.sleep(interval_s)
            for signal in self._detectors.advance(self._clock()):
                await self.raise_signal(signal)
