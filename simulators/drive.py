"""Driving a stream of simulated readings into a sink on a simulated clock.

`drive` cuts the event-time ordered stream into windows, groups each window per device, and
hands the batches to a sink: as fast as the sink takes them (``speed=None``), or paced so that
simulated time runs `speed` times faster than the wall clock (1.0 is real time, as in load
mode). The same readings arrive either way: only the pacing differs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import Protocol

from devices.payload import Reading
from simulators.live import by_device
from simulators.publisher import MqttPublisher


class BatchSink(Protocol):
    """Takes per-device batches of readings (one device and boot per batch)."""

    async def send(self, batches: list[list[Reading]]) -> None:
        """Deliver every batch; return once they are safe (acknowledged or committed)."""


class MqttSink:
    """Publishes batches at QoS 1 through an `MqttPublisher`, all in flight at once."""

    def __init__(self, publisher: MqttPublisher) -> None:
        self._publisher = publisher

    async def send(self, batches: list[list[Reading]]) -> None:
        """Publish each batch to its device's readings topic; wait for every PUBACK."""
        async with asyncio.TaskGroup() as tg:
            for batch in batches:
                tg.create_task(self._publisher.publish_readings(batch))


async def drive(
    readings: Iterable[Reading],
    sink: BatchSink,
    *,
    speed: float | None = None,
    window: timedelta = timedelta(minutes=1),
    max_rows: int = 20_000,
    skip_before: datetime | None = None,
    on_progress: Callable[[datetime, int], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> int:
    """Send `readings` (in event-time order) to `sink`; return how many were sent.

    With `speed`, a window ending at simulated time T is sent once ``(T - first) / speed``
    wall seconds have passed since the first window. Readings before `skip_before` are
    generated but not sent (load mode starts "now").
    """
    if speed is not None and speed <= 0:
        raise ValueError("speed must be positive (or None for as fast as possible)")
    sent = 0
    chunk: list[Reading] = []
    window_end: datetime | None = None
    origin: datetime | None = None
    last: datetime | None = None
    wall0 = clock()

    async def flush(upto: datetime) -> None:
        nonlocal sent, chunk
        if speed is not None and origin is not None:
            due = (upto - origin).total_seconds() / speed
            delay = due - (clock() - wall0)
            if delay > 0:
                await sleep(delay)
        if chunk:
            await sink.send(by_device(chunk))
            sent += len(chunk)
            chunk = []
        if on_progress is not None:
            on_progress(upto, sent)

    for r in readings:
        if skip_before is not None and r.ts < skip_before:
            continue
        if origin is None:
            origin = r.ts
            window_end = r.ts + window
            if speed is not None:
                wall0 = clock()
        assert window_end is not None
        paced_due = speed is not None and r.ts >= window_end
        if paced_due or (speed is None and len(chunk) >= max_rows):
            await flush(min(r.ts, window_end) if speed is not None else r.ts)
            while window_end <= r.ts:
                window_end += window
        chunk.append(r)
        last = r.ts
    if origin is not None and window_end is not None:
        await flush(window_end if speed is not None or last is None else last)
    return sent
