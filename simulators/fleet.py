"""The simulated homes' devices on the broker as real ones are: one MQTT connection per
device, each with its retained `status` ("online" on every connection, last will "offline",
devices/status.py), a heartbeat and battery level at boot, then its readings, heartbeats and
battery levels (`SimulatedHome(upkeep=True)`) on its own readings topic, in real time
(`simulators.live.run_homes`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import Literal, Self

from devices import status, topics
from devices.mqtt import MqttSettings
from devices.payload import Reading
from simulators.home import SimulatedHome
from simulators.live import by_device, run_homes, utc_now
from simulators.publisher import MqttPublisher, Retained

log = logging.getLogger(__name__)


class DeviceFleet:
    """Every device of `homes` connected as itself; a `ReadingSink` that publishes each
    device's readings over its own connection. Use as ``async with DeviceFleet(...)``."""

    def __init__(
        self,
        url: str | MqttSettings,
        homes: list[SimulatedHome],
        protocol: Literal["5", "3.1.1"] | None = None,
        *,
        client_prefix: str = "sim",
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.homes = homes
        self._clock = clock
        self._publishers: dict[str, MqttPublisher] = {}
        for home in homes:
            for device in home.devices:
                topic = topics.topic(home.home_id, device.device_id, topics.Channel.STATUS)
                self._publishers[device.device_id] = MqttPublisher(
                    url,
                    f"{client_prefix}-{device.device_id}",
                    protocol,
                    will=(topic, status.last_will()),
                    birth=_online(topic, home.boot(device.device_id)),
                )

    @property
    def device_ids(self) -> list[str]:
        """Every device of the fleet."""
        return list(self._publishers)

    def publisher(self, device_id: str) -> MqttPublisher:
        """The connection of `device_id`."""
        return self._publishers[device_id]

    async def __aenter__(self) -> Self:
        try:
            async with asyncio.TaskGroup() as tg:
                for pub in self._publishers.values():
                    tg.create_task(pub.__aenter__())
        except BaseException:
            await self._close()
            raise
        at = self._clock()
        async with asyncio.TaskGroup() as tg:
            for home in self.homes:
                for batch in by_device(home.boot_readings(at)):
                    tg.create_task(self.publish_readings(batch))
        log.info("%d simulated devices connected", len(self._publishers))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        # A clean disconnect: no will. The retained "online" stays, as it does when a real
        # device's hub is switched off with the service (the next start publishes it again).
        async with asyncio.TaskGroup() as tg:
            for pub in self._publishers.values():
                tg.create_task(pub.__aexit__(None, None, None))

    async def publish_readings(self, readings: list[Reading]) -> None:
        """Publish readings of one device and boot over that device's connection."""
        if readings:
            await self._publishers[readings[0].device_id].publish_readings(readings)


def _online(topic: str, boot: int) -> Callable[[], Retained]:
    def birth() -> Retained:
        return topic, status.online(boot, utc_now())

    return birth


async def run_fleet(
    url: str | MqttSettings,
    homes: list[SimulatedHome],
    protocol: Literal["5", "3.1.1"] | None = None,
    *,
    tick_s: float = 2.0,
    stop: asyncio.Event | None = None,
    client_prefix: str = "sim",
    clock: Callable[[], datetime] = utc_now,
) -> None:
    """Connect every device of `homes` and publish what they send until `stop` is set.

    `url` is a broker URL or the service's `MqttSettings` (TLS files: `MqttPublisher`)."""
    async with DeviceFleet(url, homes, protocol, client_prefix=client_prefix, clock=clock) as f:
        await run_homes(f, homes, tick_s=tick_s, stop=stop, clock=clock)
