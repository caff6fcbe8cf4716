"""The self-check: the pipeline itself going quiet is never silent.

Every `watchdog_s` it asks two questions and raises a technical alert about the service
(no home; to the operator on duty, then the district centre) while the answer is bad, and
clears it by the data when it is good again:
- `no_readings`: the alerts stage has seen no reading from any home for `no_readings_after_s`
  although devices are registered (broker, devices' uplinks or our subscription is down);
- `ingest_stalled`: no ingest worker has recorded progress for `ingest_stale_after_s`
  (the ingester is gone or stuck, so readings are not being stored).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from alerts import store
from alerts.config import AlertSettings, Clock, utc_now
from alerts.escalate.routing import Routing
from ingest import store as ingest_store

log = logging.getLogger(__name__)


class PipelineWatchdog:
    """Raises and clears alerts about the pipeline's own health."""

    def __init__(
        self,
        settings: AlertSettings,
        pool: AsyncConnectionPool[Any],
        routing: Routing,
        last_reading: Callable[[], datetime],
        devices: Callable[[], int],
        wake: Callable[[], None],
        clock: Clock = utc_now,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._routing = routing
        self._last_reading = last_reading
        self._devices = devices
        self._wake = wake
        self._clock = clock

    async def _set(
        self, conn: Any, kind: str, bad: bool, summary: str, evidence: dict[str, Any], now: datetime
    ) -> None:
        if bad:
            raised = await store.raise_system(conn, kind, summary, evidence, now, self._routing)
            if raised.created:
                log.critical("service alert %d: %s", raised.alert_id, summary)
                self._wake()
        else:
            cleared = await store.clear_system(conn, kind, "the pipeline is flowing again", now)
            if cleared is not None:
                log.warning("service alert %d cleared: %s is over", cleared, kind)
                self._wake()

    async def check(self) -> None:
        """One self-check."""
        now = self._clock()
        last = self._last_reading()
        quiet_s = (now - last).total_seconds()
        async with self._pool.connection(timeout=10) as conn:
            await self._set(
                conn,
                "no_readings",
                self._devices() > 0 and quiet_s > self._settings.no_readings_after_s,
                f"No readings from any home for {quiet_s / 60:.0f} min",
                {"last_reading_at": last.isoformat(), "devices": self._devices()},
                now,
            )
            beat = await ingest_store.latest_heartbeat(conn)
            stale_s = None if beat is None else (now - beat).total_seconds()
            await self._set(
                conn,
                "ingest_stalled",
                stale_s is not None and stale_s > self._settings.ingest_stale_after_s,
                f"The ingester has recorded no progress for {(stale_s or 0) / 60:.0f} min:"
                " readings are not being stored",
                {"last_heartbeat_at": None if beat is None else beat.isoformat()},
                now,
            )

    async def run(self) -> None:
        """Check until cancelled."""
        while True:
            await asyncio.sleep(self._settings.watchdog_s)
            try:
                await self.check()
            except (psycopg.Error, TimeoutError) as exc:
                log.error("self-check could not reach the database: %r", exc)
