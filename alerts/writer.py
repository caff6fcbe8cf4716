"""Storing what the detectors say: a signal through the mutes into the alert store (retried
while the database is unreachable), a detector's all-clear, and the elder's cancel."""

from __future__ import annotations

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
from ingest.db import Retry, in_transaction, retrying

log = logging.getLogger(__name__)

STORE_ONCE = Retry(attempts=2, base_s=0.02, cap_s=0.05, timeouts=False)
"""A store tries a second connection at once when the first was cut off (the pool's
connections to a primary that died), but a database that gives no connection within
`store_timeout_s` is left to the fallback, not waited for twice."""
STORE_UNTIL_DONE = Retry(attempts=None, base_s=0.1, cap_s=5.0)
"""The background store of what could not be stored at once: until it is."""


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
        Raises when the database cannot be reached within `store_timeout_s`. A transaction
        cut off with its connection (the pool's connections to a primary that just died) is
        tried once more on a fresh one, which libpq opens to the node taking writes; a store
        run twice stores once (one unresolved alert per home and kind, evidence by device,
        boot and seq)."""
        return await in_transaction(
            self._pool,
            lambda conn: self._store(conn, signal, alert_id, hold_s),
            STORE_ONCE,
            f"storing {signal.kind} for {signal.home_id}",
            timeout_s=self._settings.store_timeout_s,
        )

    async def _store(
        self,
        conn: psycopg.AsyncConnection[Any],
        signal: Signal,
        alert_id: int | None,
        hold_s: float,
    ) -> Raised | None:
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
        """Store a signal (None when muted), retrying while the database is unreachable
        (an outage, a failover): until it is stored, as the message is acknowledged only
        then."""
        raised = await retrying(
            lambda: self.store_once(signal, alert_id, hold_s),
            STORE_UNTIL_DONE,
            f"storing the {signal.kind} alert for {signal.home_id}",
        )
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
        cleared = await in_transaction(
            self._pool,
            lambda conn: store.clear_by_data(conn, home_id, kind, reason, self._clock()),
            Retry(),
            f"clearing {kind} at {home_id}",
        )
        if cleared is not None:
            self._dispatcher.wake()
        return cleared

    async def self_cancel(self, reading: Reading) -> tuple[int | None, bool]:
        """A cancel from the elder's SOS button (recorded; cancels within the window)."""
        window = timedelta(seconds=self._settings.sos_cancel_window_s)
        alert_id, cancelled = await in_transaction(
            self._pool,
            lambda conn: store.self_cancel(
                conn, reading.home_id, reading.device_id, reading.ts, window
            ),
            Retry(),
            f"the cancel from {reading.device_id}",
        )
        if cancelled:
            log.warning("alert %s cancelled by the elder on %s", alert_id, reading.device_id)
            self._dispatcher.wake()
        return alert_id, cancelled
