"""Live alert changes: one PostgreSQL LISTEN connection fanned out to many subscribers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg import sql

from alerts.store import NOTIFY_CHANNEL

log = logging.getLogger(__name__)

Feed = asyncio.Queue[int | None]
"""What a subscriber reads: changed alert ids; `None` means "you may have missed changes
(you were too slow, or the database connection was lost): stop and re-read the list"."""


class Broadcaster:
    """Listens on `alerts.store.NOTIFY_CHANNEL` and hands each changed alert id to every
    subscriber's bounded queue.

    A subscriber whose queue is full is dropped (its queue is emptied and gets `None`) rather
    than slowing everyone down; after a lost connection is re-established every subscriber
    is dropped the same way, since changes made in between were not heard."""

    def __init__(
        self,
        dsn: str,
        *,
        queue_size: int = 256,
        min_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        probe_every_s: float = 30.0,
        probe_timeout_s: float = 10.0,
        channel: str = NOTIFY_CHANNEL,
    ) -> None:
        self._dsn = dsn
        self._queue_size = queue_size
        self._min_backoff_s = min_backoff_s
        self._max_backoff_s = max_backoff_s
        self._probe_every_s = probe_every_s
        self._probe_timeout_s = probe_timeout_s
        self._channel = channel
        self._subscribers: set[Feed] = set()
        self._listening = asyncio.Event()

    @property
    def connected(self) -> bool:
        """Whether the LISTEN connection is up (for health checks)."""
        return self._listening.is_set()

    @property
    def subscriber_count(self) -> int:
        """How many subscribers are attached."""
        return len(self._subscribers)

    async def wait_listening(self) -> None:
        """Wait until the LISTEN connection is established (bound it with asyncio.timeout)."""
        await self._listening.wait()

    async def run(self) -> None:
        """Listen until cancelled, reconnecting with exponential backoff."""
        backoff = self._min_backoff_s
        first = True
        while True:
            try:
                async with asyncio.timeout(self._probe_timeout_s):
                    conn: psycopg.AsyncConnection[Any] = await psycopg.AsyncConnection.connect(
                        self._dsn, autocommit=True
                    )
                async with conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    if not first:
                        log.info("alert stream: reconnected to the database")
                        self._drop_all()
                    first = False
                    backoff = self._min_backoff_s
                    self._listening.set()
                    while True:
                        async for note in conn.notifies(timeout=self._probe_every_s):
                            self._publish(note.payload)
                        # Quiet for a while: make sure the connection is still alive.
                        async with asyncio.timeout(self._probe_timeout_s):
                            await conn.execute("SELECT 1")
            except (psycopg.Error, OSError, TimeoutError) as exc:
                log.warning(
                    "alert stream: database connection lost (%s); retrying in %.1f s",
                    exc or type(exc).__name__,
                    backoff,
                )
            finally:
                self._listening.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff_s)

    def _publish(self, payload: str) -> None:
        try:
            alert_id = int(payload)
        except ValueError:
            log.warning("alert stream: ignoring notification %r", payload)
            return
        self.publish(alert_id)

    def publish(self, alert_id: int) -> None:
        """Hand `alert_id` to every subscriber, dropping those that are full."""
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(alert_id)
            except asyncio.QueueFull:
                log.info("alert stream: dropping a slow subscriber")
                self._drop(queue)

    def _drop(self, queue: Feed) -> None:
        self._subscribers.discard(queue)
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(None)

    def _drop_all(self) -> None:
        for queue in list(self._subscribers):
            self._drop(queue)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Feed]:
        """Attach a subscriber for the duration of the block; yields its queue."""
        queue: Feed = asyncio.Queue(self._queue_size)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)
