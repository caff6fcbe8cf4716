"""The full stream's detectors follow the registry: a device installed while the service
runs is placed in its room (and its home's time zone) without a restart."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from alerts.config import AlertSettings
from alerts.detect.detectors import default_detectors
from alerts.detect.layout import Layout, PlacedDevice
from alerts.detect.learned import LearnedDetector
from alerts.service import AlertService, Detection, Sources
from devices import topics
from devices.registry import DeviceRecord, Registry
from ingest.mqtt import Message
from ingest.registry import RegistryCache
from tests.unit.test_urgent_follow import FakeSubscriber


class Source:
    """The registry and the rooms, as the database would give them."""

    def __init__(self) -> None:
        self.version = 1
        self.devices = [PlacedDevice("h01-pir-hall", "h01", "pir_motion", "hall")]
        self.layout_loads = 0
        self.fail: Exception | None = None

    async def load(self) -> Registry:
        return Registry(DeviceRecord(d.device_id, d.home_id, d.kind) for d in self.devices)

    async def read_version(self) -> int:
        return self.version

    async def layout(self) -> Layout:
        self.layout_loads += 1
        if self.fail is not None:
            raise self.fail
        return Layout(self.devices, {"h01": "Europe/Amsterdam"})

    def install(self, device_id: str, kind: str, room: str) -> Message:
        self.devices = [*self.devices, PlacedDevice(device_id, "h01", kind, room)]
        self.version += 1
        return Message(
            topics.topic("h01", device_id, topics.Channel.READINGS), b"{}", 1, False, 1, 0
        )


async def started(src: Source) -> tuple[AlertService, FakeSubscriber, LearnedDetector, Registry]:
    cache = RegistryCache(src.load, refresh_s=30.0, miss_interval_s=0.0, version=src.read_version)
    await cache.refresh()
    detectors = default_detectors(await src.layout())
    learned = detectors.find(LearnedDetector)
    assert learned is not None
    full = FakeSubscriber()
    svc = AlertService(
        AlertSettings(poll_s=0.02),
        Sources(cache, full),  # type: ignore[arg-type]
        Detection(detectors, layout=src.layout, layout_of=cache.current),
        None,  # type: ignore[arg-type]  # no store: nothing here raises an alert
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
    )
    return svc, full, learned, cache.current


async def wait_acked(full: FakeSubscriber, n: int) -> None:
    deadline = time.monotonic() + 2.0
    while len(full.acked) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert len(full.acked) == n


async def test_a_device_installed_while_running_is_placed_in_its_room() -> None:
    src = Source()
    svc, full, learned, _ = await started(src)
    task = asyncio.create_task(svc.run())
    try:
        # Unknown to the layout loaded at start, it would count by its kind alone.
        assert learned.layout.device("h01-pir-bath", "pir_motion").room == ""
        hall = topics.topic("h01", "h01-pir-hall", topics.Channel.READINGS)
        await full.messages.put(Message(hall, b"{}", 1, False, 1, 0))
        await wait_acked(full, 1)
        assert src.layout_loads == 1, "no reload while the registry is unchanged"
        # Its first message reloads the registry (miss path), and the rooms with it.
        await full.messages.put(src.install("h01-pir-bath", "pir_motion", "bathroom"))
        await wait_acked(full, 2)
        assert src.layout_loads == 2
        info = learned.layout.device("h01-pir-bath", "pir_motion")
        assert info.bathroom
        assert info.room == "bathroom"
        assert learned.layout.motion_covered("h01")
    finally:
        task.cancel()


@pytest.mark.parametrize(
    "error",
    [psycopg.OperationalError("database down"), ValueError("any other failure")],
    ids=["database", "other"],
)
async def test_a_failed_reload_keeps_the_old_layout_and_is_retried_later(error: Exception) -> None:
    src = Source()
    svc, full, learned, _ = await started(src)
    before = learned.layout
    src.fail = error
    task = asyncio.create_task(svc.run())
    try:
        await full.messages.put(src.install("h01-bed", "bed_mat", "bedroom"))
        await full.messages.put(src.install("h01-door", "door_contact", "hall"))
        await wait_acked(full, 2)  # messages go on through the detectors meanwhile
        assert learned.layout is before
        assert src.layout_loads == 2, "one try, then none until the retry time"
        src.fail = None
        svc._layout_retry_at = 0.0  # the retry time has come
        await svc.follow_layout()
        assert src.layout_loads == 3
        assert learned.layout.device("h01-door", "door_contact").role.value == "entry_door"
    finally:
        task.cancel()


def test_a_home_with_an_unknown_time_zone_is_judged_in_utc() -> None:
    """The column is free text: a typo must not stop the layout (and detection) loading."""
    layout = Layout([PlacedDevice("h01-pir", "h01", "pir_motion", "hall")], {"h01": "Mars/Base"})
    assert str(layout.tz("h01")) == "UTC"
