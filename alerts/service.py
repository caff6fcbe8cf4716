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
from alerts.model import Raised, Signal
from alerts.mutes import MuteChain, default_mutes
from devices import payload, topics
from devices.payload import Reading, Rejection
from ingest.mqtt import Message, Subscriber
from ingest.registry import RegistryCache

log = logging.getLogger(__name__)


def is_cancel(reading: Reading) -> bool:
    """A cancel press of an SOS button (the device sends it for a second press within its
    cancel window)."""
    return reading.kind == "sos_button" and reading.metric == "cancel" and reading.value == 1.0


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
        mutes: MuteChain | None = None,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._sub = subscriber
        self._cache = cache
        self._detectors = detectors
        self._dispatcher = dispatcher
        self._metrics = metrics
        self._clock = clock
        self._mutes = mutes if mutes is not None else default_mutes()

    @staticmethod
    def filters() -> list[str]:
        """Every reading of every home."""
        return [topics.subscription(topics.Channel.READINGS)]

    async def raise_signal(self, signal: Signal) -> Raised | None:
        """Store a signal (unless a mute holds it back: then it is recorded as suppressed and
        None is returned), retrying while the database is unreachable."""
        delay = 0.1
        while True:
            try:
                async with self._pool.connection() as conn:
                    now = self._clock()
                    muted = await self._mutes.check(conn, signal, now)
                    if muted is not None:
                        await self._mutes.record(conn, signal, muted)
                        await conn.commit()
                        log.info(
                            "%s at %s muted by %s: %s",
                            signal.kind,
                            signal.home_id,
                            muted.stage,
                            muted.reason,
                        )
                        return None
                    await conn.commit()
                    raised = await store.raise_signal(conn, signal, now, self._dispatcher.routing)
                break
            except psycopg.OperationalError as exc:
                log.error(
                    "could not store %s alert for %s (%r); retrying",
                    signal.kind,
                    signal.home_id,
                    exc,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        if raised.created:
            self._metrics.opened.labels(signal.kind, signal.severity.value).inc()
            log.warning("alert %d opened: %s at %s", raised.alert_id, signal.kind, signal.home_id)
        self._dispatcher.wake()
        return raised

    async def clear(self, home_id: str, kind: str, reason: str) -> int | None:
        """The data shows the condition is over: resolve the home's alert of this kind with
        the reason recorded (a detector's "all clear"). Returns the alert id, if one was open."""
        async with self._pool.connection() as conn:
            cleared = await store.clear_by_data(conn, home_id, kind, reason, self._clock())
        if cleared is not None:
            self._dispatcher.wake()
        return cleared

    async def self_cancel(self, reading: Reading) -> tuple[int | None, bool]:
        """A cancel from the elder's SOS button (recorded; cancels within the window)."""
        window = timedelta(seconds=self._settings.sos_cancel_window_s)
        async with self._pool.connection() as conn:
            alert_id, cancelled = await store.self_cancel(
                conn, reading.home_id, reading.device_id, reading.ts, window
            )
        if cancelled:
            log.warning("alert %s cancelled by the elder on %s", alert_id, reading.device_id)
            self._dispatcher.wake()
        return alert_id, cancelled

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
            for r in result:
                if is_cancel(r):
                    await self.self_cancel(r)
            signals = [s for r in result for s in self._detectors.observe(r)]
            for signal in signals:
                await self.raise_signal(signal)
            if signals:
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
