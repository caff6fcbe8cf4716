"""Real-time driving of simulated homes: each tick, publish what happened since the last one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal, Protocol

from devices.mqtt import MqttSettings
from devices.payload import Reading
from simulators.home import SimulatedHome
from simulators.publisher import MqttPublisher


class ReadingSink(Protocol):
    """Where readings go; `MqttPublisher` is one."""

    async def publish_readings(self, readings: list[Reading]) -> None:
        """Deliver readings of one device and boot."""


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def by_device(readings: list[Reading]) -> list[list[Reading]]:
    """Group readings per device and boot, keeping their order."""
    groups: dict[tuple[str, str, int], list[Reading]] = {}
    for r in readings:
        groups.setdefault((r.home_id, r.device_id, r.boot), []).append(r)
    return list(groups.values())


async def publish_window(
    publisher: ReadingSink, homes: list[SimulatedHome], start: datetime, end: datetime
) -> int:
    """Publish every home's readings in ``[start, end)``, one batch per device; return count."""
    batches = [batch for home in homes for batch in by_device(home.events_between(start, end))]
    async with asyncio.TaskGroup() as tg:
        for batch in batches:
            tg.create_task(publisher.publish_readings(batch))
    return sum(len(batch) for batch in batches)


async def run_homes(
    publisher: ReadingSink,
    homes: list[SimulatedHome],
    tick_s: float = 1.0,
    stop: asyncio.Event | None = None,
    *,
    clock: Callable[[], datetime] = utc_now,
) -> None:
    """Every `tick_s`, publish each home's readings since the previous tick, until `stop` is set.

    A tick waits for the broker's acknowledgements before the next one starts, so each
    device's readings arrive in order; a slow tick is caught up by the next window.
    """
    if tick_s <= 0:
        raise ValueError("tick_s must be positive")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    last = clock()
    deadline = loop.time()
    while not stop.is_set():
        deadline += tick_s
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, deadline - loop.time())):
                await stop.wait()
        if stop.is_set():
            return
        now = clock()
        if now > last:
            await publish_window(publisher, homes, last, now)
            last = now
        deadline = max(deadline, loop.time() - tick_s)  # don't burst after a long stall


async def press_sos(
    broker: str | MqttSettings,
    home: SimulatedHome,
    protocol: Literal["5", "3.1.1"] | None = None,
    *,
    client_id: str | None = None,
) -> Reading:
    """Connect (a URL, or settings with TLS files: `MqttPublisher`), publish one SOS press of
    `home`'s button now, and return the reading."""
    client = client_id or f"sim-sos-{home.home_id}"
    async with MqttPublisher(broker, client, protocol) as publisher:
        reading = home.sos_press(utc_now())
        await publisher.publish_readings([reading])
    return reading
