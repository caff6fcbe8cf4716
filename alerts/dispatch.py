"""The notification dispatcher: sends due notifications and plans repeat rounds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from alerts import store
from alerts.channels import Channel, DeliveryError, Notice
from alerts.config import AlertMetrics, AlertSettings, Clock, utc_now
from alerts.model import Outgoing, Scope

log = logging.getLogger(__name__)


class Dispatcher:
    """Sends due notifications and plans repeat rounds until an alert is acknowledged.

    Timers and notifications live in the database and are claimed with row locks
    (FOR UPDATE SKIP LOCKED), so after a restart they continue, and with several instances
    each one is handled once.
    """

    def __init__(
        self,
        settings: AlertSettings,
        pool: AsyncConnectionPool[Any],
        channels: dict[str, Channel],
        metrics: AlertMetrics,
        console_url: str,
        clock: Clock = utc_now,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._channels = channels
        self._metrics = metrics
        self._console_url = console_url
        self._clock = clock
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for due work now rather than at the next poll."""
        self._wake.set()

    async def _send(self, note: Outgoing, notice: Notice) -> str | None:
        channel = self._channels.get(note.channel)
        if channel is None:
            return f"no channel {note.channel!r} configured"
        try:
            await asyncio.wait_for(channel.send(note.target, notice), self._settings.send_timeout_s)
        except DeliveryError as exc:
            return str(exc)
        except TimeoutError:
            return f"{note.channel} timed out after {self._settings.send_timeout_s:g} s"
        return None

    async def step(self) -> int:
        """Do everything that is due now; returns how many notifications were attempted."""
        now = self._clock()
        repeat = timedelta(seconds=self._settings.repeat_s)
        async with self._pool.connection() as conn:
            async with conn.transaction():
                for alert_id, next_round, status in await store.due_timers(conn, now):
                    if status == "open":
                        await store.plan_round(conn, alert_id, next_round, now, repeat)
                    else:
                        await store.drop_timer(conn, alert_id)
            async with conn.transaction():
                notes = await store.due_notifications(conn, now)
                alerts = {
                    a_id: await store.get_alert(conn, Scope(everything=True), a_id)
                    for a_id in {n.alert_id for n in notes}
                }
                results = await asyncio.gather(
                    *(
                        self._send(n, Notice(alert, n.round, n.user_id, self._console_url))
                        for n in notes
                        if (alert := alerts[n.alert_id]) is not None
                    )
                )
                for note, error in zip(notes, results, strict=True):
                    retry_at = None
                    if error is not None and note.attempts + 1 < self._settings.max_attempts:
                        retry_at = now + timedelta(
                            seconds=self._settings.retry_base_s * 2**note.attempts
                        )
                    await store.record_attempt(conn, note, error is None, error, retry_at)
                    self._metrics.notifications.labels(
                        note.channel, "sent" if error is None else "failed"
                    ).inc()
                    if error is not None:
                        log.warning("notification %d failed: %s", note.id, error)
        return len(notes)

    async def run(self) -> None:
        """Work until cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.poll_s)
            self._wake.clear()
            try:
                await self.step()
            except psycopg.Error as exc:
                log.warning("dispatcher step failed: %r", exc)
                await asyncio.sleep(self._settings.poll_s)
