"""The urgent path follows every change of the registry copy, and the full stream leaves a
new urgent device to a separate urgent process only once that process can have it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from alerts.config import AlertSettings
from alerts.service import AlertService, Detection, Sources
from devices import topics
from devices.registry import DeviceRecord, Registry
from ingest.mqtt import Message
from ingest.registry import RegistryCache


class Source:
    def __init__(self) -> None:
        self.version = 1
        self.devices = [DeviceRecord("h01-sos-a", "h01", "sos_button")]

    async def load(self) -> Registry:
        return Registry(list(self.devices))

    async def read_version(self) -> int:
        return self.version

    def add(self, device_id: str) -> str:
        self.devices = [*self.devices, DeviceRecord(device_id, "h01", "sos_button")]
        self.version += 1
        return topics.topic("h01", device_id, topics.Channel.READINGS)


class FakeSubscriber:
    def __init__(self) -> None:
        self.filters: list[str] = []
        self.messages: asyncio.Queue[Message] = asyncio.Queue()
        self.acked: list[Message] = []

    def set_filters(self, filters: list[str]) -> tuple[int, int]:
        self.filters = list(filters)
        return (0, 0)

    def ack(self, message: Message) -> bool:
        self.acked.append(message)
        return True


def service(cache: RegistryCache, full: Any, urgent: Any, grace_s: float = 0.0) -> AlertService:
    return AlertService(
        AlertSettings(poll_s=0.02),
        Sources(cache, full, urgent, urgent_grace_s=grace_s),
        Detection(None),  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]  # no store: no message here raises anything
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
    )


async def test_a_new_button_seen_first_on_the_full_stream_joins_the_urgent_path() -> None:
    """Its first message reloads the copy through the miss path; the urgent subscription
    follows that reload (a later timer check sees no newer version and would not reload)."""
    src = Source()
    cache = RegistryCache(src.load, refresh_s=0.3, miss_interval_s=0.0, version=src.read_version)
    await cache.refresh()
    full, urgent = FakeSubscriber(), FakeSubscriber()
    svc = service(cache, full, urgent)
    tasks = [asyncio.create_task(svc.run()), asyncio.create_task(svc.run_urgent())]
    try:
        await asyncio.sleep(0.05)
        assert urgent.filters == ["eldercare/h01/h01-sos-a/readings"]
        new_topic = src.add("h01-sos-b")
        await full.messages.put(Message(new_topic, b"{}", 1, False, 1, 0))
        deadline = time.monotonic() + 2.0
        while new_topic not in urgent.filters and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert new_topic in urgent.filters
        assert svc.left_to_urgent(new_topic)  # this process subscribed: at once
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_with_a_separate_urgent_process_a_new_device_is_left_to_it_after_the_grace() -> None:
    src = Source()
    cache = RegistryCache(src.load, refresh_s=0.0, version=src.read_version)
    await cache.refresh()
    svc = service(cache, FakeSubscriber(), None, grace_s=0.3)
    svc.refresh_urgent()
    # Devices known at start: the urgent process has them (its session kept them).
    assert svc.left_to_urgent("eldercare/h01/h01-sos-a/readings")
    new_topic = src.add("h01-sos-b")
    assert await cache.maybe_refresh()
    svc.refresh_urgent()
    assert not svc.left_to_urgent(new_topic)  # the full stream raises its emergencies too
    assert svc.left_to_urgent("eldercare/h01/h01-sos-a/readings")
    await asyncio.sleep(0.35)
    assert svc.left_to_urgent(new_topic)
    assert not svc.left_to_urgent("eldercare/h01/h01-pir/readings")  # not an urgent device
