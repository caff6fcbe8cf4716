"""Storing what the detectors say: a signal through the mutes into the alert store (retried
while the database is unreachable), a detector's all-clear, and the elder's cancel."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from alerts import store
from alerts.config import AlertMetrics, AlertSettings, Clock, utc_now
from alerts.model import Raised, Signal
from alerts.mutes import MuteChain, default_mutes
from alerts.notify.dispatch import Dispatcher
from devices.payload import Reading

log = logging.getLogger(__name__)


class SignalWriter:
    """Writes signals, all-clears and cancels to the alert store, and wakes the dispatcher
    for what they queued."""

    def __init__(
        self,
        settings: AlertSettings,
        pool: AsyncConnectionPool[Any],
        dispatcher: Dispatcher,
        metrics: AlertMetrics,
        mutes: MuteChain | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._dispatcher = dispatcher
        self._metrics = metrics
        self._mutes = mutes if mutes is not None else default_mutes(metrics.consent_muted)
        self._clock = clock

    async def store_once(
        self, signal: Signal, alert_id: int | None = None, hold_s: float = 0.0
    ) -> Raised | None:
        """Store a signal once, unless a mute holds it back (then it is recorded as
        suppressed and None is returned). `alert_id` / `hold_s`: see `store.raise_signal`.
        Raises when the database cannot be reached within `store_timeout_s`."""
        async with self._pool.connection(timeout=self._settings.store_timeout_s) as conn:
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
            return await store.raise_signal(
                conn, signal, now, self._dispatcher.routing, alert_id, hold_s
            )

    async def raise_signal(
        self, signal: Signal, alert_id: int | None = None, hold_s: float = 0.0
    ) -> Raised | None:
        """Store a signal (None when muted), retrying while the database is unreachable."""
        delay = 0.1
        while True:
            try:
                raised = await self.store_once(signal, alert_id, hold_s)
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
        self.opened(signal, raised)
        return raised

    def opened(self, signal: Signal, raised: Raised | None) -> None:
        """After a store: count and log a new alert, and wake the dispatcher."""
        if raised is not None and raised.created:
            self._metrics.opened.labels(signal.kind, signal.severity.value).inc()
            log.warning("alert %d opened: %s at %s", raised.alert_id, signal.kind, signal.home_id)
        self._dispatcher.wake()

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
