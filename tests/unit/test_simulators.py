"""Unit tests for the simulated home and the real-time driver (no broker)."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from devices import topics
from devices.catalogue import CATALOGUE, LOW_BATTERY_PERCENT
from devices.payload import Reading, decode, encode
from devices.registry import DeviceRecord, Registry
from simulators.home import SimDevice, SimulatedHome
from simulators.live import by_device, publish_window, run_homes

DEVICES = [
    SimDevice("h1-pir-bed", "pir_motion", "bedroom"),
    SimDevice("h1-pir-bath", "pir_motion", "bathroom"),
    SimDevice("h1-pir-kitchen", "pir_motion", "kitchen"),
    SimDevice("h1-pir-living", "pir_motion", "living_room"),
    SimDevice("h1-pir-hall", "pir_motion", "hall"),
    SimDevice("h1-door", "door_contact", "hall"),
    SimDevice("h1-bed", "bed_mat", "bedroom"),
    SimDevice("h1-temp", "temperature", "living_room"),
    SimDevice("h1-sos", "sos_button", "bedroom"),
]
DAY = datetime(2026, 3, 10, tzinfo=UTC)


def make_home(seed: int = 7, devices: list[SimDevice] | None = None) -> SimulatedHome:
    return SimulatedHome("home-1", DEVICES if devices is None else devices, seed)


def windows(start: datetime, end: datetime, step: timedelta) -> list[tuple[datetime, datetime]]:
    out = []
    while start < end:
        out.append((start, min(start + step, end)))
        start += step
    return out


def occupied_share(
    readings: list[Reading], device_id: str, start: datetime, end: datetime
) -> float:
    """Fraction of [start, end) during which a binary device was at 1 (state before: 0)."""
    state, since, on = 0.0, start, timedelta()
    for r in readings:
        if r.device_id != device_id or r.ts >= end:
            continue
        if r.ts > start and state == 1.0:
            on += r.ts - max(since, start)
        state, since = r.value, r.ts
    if state == 1.0:
        on += end - max(since, start)
    return on / (end - start)


def test_deterministic_for_a_seed_and_window_split() -> None:
    end = DAY + timedelta(days=2)
    whole = make_home().events_between(DAY, end)
    again = make_home().events_between(DAY, end)
    ticked_home = make_home()
    ticked = [
        r
        for a, b in windows(DAY, end, timedelta(minutes=7))
        for r in ticked_home.events_between(a, b)
    ]
    assert whole == again == ticked
    assert whole != make_home(seed=8).events_between(DAY, end)


def test_readings_sorted_and_within_window() -> None:
    start, end = DAY + timedelta(hours=5, minutes=3), DAY + timedelta(hours=19, seconds=11)
    readings = make_home().events_between(start, end)
    assert readings
    assert all(start <= r.ts < end and r.ts.tzinfo is not None for r in readings)
    assert [r.ts for r in readings] == sorted(r.ts for r in readings)
    assert make_home().events_between(end, start) == []


def test_seq_strictly_increasing_per_device_across_windows() -> None:
    home = make_home()
    last: dict[str, int] = {}
    boots: dict[str, set[int]] = defaultdict(set)
    for a, b in windows(DAY, DAY + timedelta(days=1), timedelta(hours=1)):
        for r in home.events_between(a, b):
            assert r.seq > last.get(r.device_id, -1)
            last[r.device_id] = r.seq
            boots[r.device_id].add(r.boot)
    press = home.sos_press(DAY + timedelta(days=1))
    again = home.sos_press(DAY + timedelta(days=1, seconds=5))
    assert again.seq > press.seq
    assert all(len(b) == 1 for b in boots.values())


def test_every_reading_decodes_through_the_payload_contract() -> None:
    home = make_home()
    registry = Registry(DeviceRecord(d.device_id, home.home_id, d.kind) for d in DEVICES)
    end = DAY + timedelta(days=1)
    readings = [*home.events_between(DAY, end), home.sos_press(end)]
    kinds = {r.kind for r in readings}
    assert kinds == {d.kind for d in DEVICES}
    for batch in by_device(readings):
        topic = topics.topic(home.home_id, batch[0].device_id, topics.Channel.READINGS)
        for chunk in (batch[:1], batch[:200]):
            decoded = decode(topic, encode(chunk), registry, end)
            assert decoded == chunk, decoded


def test_a_plausible_day() -> None:
    for seed in range(5):
        home = make_home(seed)
        # From the evening before, so the bed mat's state at 01:00 is known.
        start = DAY - timedelta(hours=4)
        readings = home.events_between(start, DAY + timedelta(days=1))
        night = occupied_share(
            readings, "h1-bed", DAY + timedelta(hours=1), DAY + timedelta(hours=5)
        )
        assert night > 0.9
        day = occupied_share(
            readings, "h1-bed", DAY + timedelta(hours=9), DAY + timedelta(hours=20)
        )
        assert day == 0.0
        daytime_motion = [
            r for r in readings if r.kind == "pir_motion" and r.value == 1.0 and 9 <= r.ts.hour < 20
        ]
        assert len(daytime_motion) > 50
        hours_with_motion = {r.ts.hour for r in daytime_motion}
        assert len(hours_with_motion) >= 8  # outings leave at most a couple of hours quiet
        temps = [r.value for r in readings if r.kind == "temperature"]
        assert len(temps) == 28 * 12
        assert all(19.0 <= t <= 23.0 for t in temps)


def test_binary_devices_alternate_and_pir_rearms() -> None:
    readings = make_home(3).events_between(DAY, DAY + timedelta(days=3))
    per_device: dict[str, list[Reading]] = defaultdict(list)
    for r in readings:
        per_device[r.device_id].append(r)
    for device_id in ("h1-pir-bed", "h1-pir-bath", "h1-pir-living", "h1-door", "h1-bed"):
        values = [r.value for r in per_device[device_id]]
        assert values, device_id
        assert all(a != b for a, b in itertools.pairwise(values)), device_id
    for r1, r0 in zip(
        per_device["h1-pir-living"][::2], per_device["h1-pir-living"][1::2], strict=False
    ):
        assert r1.value == 1.0
        assert timedelta(seconds=10) <= r0.ts - r1.ts <= timedelta(seconds=30)
    door_opens = [r for r in per_device["h1-door"] if r.value == 1.0]
    assert len(door_opens) >= 1


def test_local_time_zone_shifts_the_night() -> None:
    tz = ZoneInfo("Asia/Shanghai")
    home = SimulatedHome("home-1", DEVICES, 7, tz=tz)
    local_day = datetime(2026, 3, 10, tzinfo=tz)
    readings = home.events_between(local_day - timedelta(hours=4), local_day + timedelta(days=1))
    share = occupied_share(
        readings, "h1-bed", local_day + timedelta(hours=1), local_day + timedelta(hours=5)
    )
    assert share > 0.9


def test_homes_without_some_devices() -> None:
    only_temp = make_home(devices=[SimDevice("t1", "temperature", "kitchen")])
    readings = only_temp.events_between(DAY, DAY + timedelta(hours=1))
    assert len(readings) == 12
    assert {r.metric for r in readings} == {"temperature"}
    only_door = make_home(devices=[SimDevice("d1", "door_contact", "hall")])
    assert all(r.metric == "open" for r in only_door.events_between(DAY, DAY + timedelta(days=2)))


def test_sos_press() -> None:
    home = make_home()
    at = DAY + timedelta(hours=3)
    press = home.sos_press(at)
    assert (press.device_id, press.kind, press.metric, press.value, press.ts) == (
        "h1-sos",
        "sos_button",
        "press",
        1.0,
        at,
    )
    with pytest.raises(ValueError, match="no sos_button"):
        make_home(devices=DEVICES[:3]).sos_press(at)
    with pytest.raises(ValueError, match="time zone"):
        home.sos_press(datetime(2026, 3, 10, 3))


def test_invalid_devices_rejected() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        make_home(devices=[SimDevice("x1", "toaster", "kitchen")])
    with pytest.raises(ValueError, match="repeated"):
        make_home(devices=[DEVICES[0], DEVICES[0]])


class FakeSink:
    """Collects what would be published."""

    def __init__(self) -> None:
        self.batches: list[list[Reading]] = []

    async def publish_readings(self, readings: list[Reading]) -> None:
        await asyncio.sleep(0)
        self.batches.append(readings)


async def test_publish_window_batches_per_device() -> None:
    sink, home = FakeSink(), make_home()
    count = await publish_window(sink, [home], DAY, DAY + timedelta(hours=12))
    assert count == sum(len(b) for b in sink.batches)
    assert len({b[0].device_id for b in sink.batches}) == len(sink.batches)
    assert all(len({r.device_id for r in b}) == 1 for b in sink.batches)


async def test_run_homes_ticks_through_consecutive_windows() -> None:
    sink, home, stop = FakeSink(), make_home(), asyncio.Event()
    now = [DAY + timedelta(hours=8)]

    def clock() -> datetime:
        now[0] += timedelta(minutes=10)  # each tick, ten simulated minutes pass
        if now[0] >= DAY + timedelta(hours=12):
            stop.set()
        return now[0]

    await asyncio.wait_for(run_homes(sink, [home], tick_s=0.001, stop=stop, clock=clock), 10)
    published = sorted((r for b in sink.batches for r in b), key=lambda r: (r.ts, r.device_id))
    start = DAY + timedelta(hours=8, minutes=10)
    expected = make_home().events_between(start, published[-1].ts + timedelta(microseconds=1))
    assert [(r.device_id, r.ts, r.value) for r in published] == [
        (r.device_id, r.ts, r.value) for r in expected
    ]


def test_upkeep_heartbeats_and_battery_as_real_devices_send() -> None:
    """With `upkeep`, every device beats every `heartbeat_s` of its kind, battery devices
    report their level with some beats and at boot; the stream stays split-proof and
    decodable, and the elder's own readings are the same as without."""

    def home() -> SimulatedHome:
        return SimulatedHome("home-1", DEVICES, 7, upkeep=True)

    start, end = DAY, DAY + timedelta(days=1)
    whole = home().events_between(start, end)
    ticked = home()
    split = [
        r for a, b in windows(start, end, timedelta(minutes=7)) for r in ticked.events_between(a, b)
    ]
    assert split == whole
    upkeep = ("heartbeat", "battery")
    own = [(r.ts, r.device_id, r.metric, r.value) for r in whole if r.metric not in upkeep]
    plain = make_home().events_between(start, end)
    assert own == [(r.ts, r.device_id, r.metric, r.value) for r in plain]
    for d in DEVICES:
        spec = CATALOGUE[d.kind]
        beats = [r for r in whole if r.device_id == d.device_id and r.metric == "heartbeat"]
        assert len(beats) in (86400 // spec.heartbeat_s, 86400 // spec.heartbeat_s + 1), d
        gaps = {round((b.ts - a.ts).total_seconds()) for a, b in itertools.pairwise(beats)}
        assert gaps == {spec.heartbeat_s}, d
        levels = [r.value for r in whole if r.device_id == d.device_id and r.metric == "battery"]
        if spec.battery:
            assert levels, d
            assert all(LOW_BATTERY_PERCENT < v <= 100.0 for v in levels), d
        else:
            assert levels == [], d
    registry = Registry(DeviceRecord(d.device_id, "home-1", d.kind) for d in DEVICES)
    for batch in by_device(whole):
        topic = topics.topic("home-1", batch[0].device_id, topics.Channel.READINGS)
        assert decode(topic, encode(batch[:200]), registry, end) == batch[:200]
    boot = home().boot_readings(start)
    assert {(r.device_id, r.metric) for r in boot} == {
        (d.device_id, m) for d in DEVICES for m in upkeep[: 2 if CATALOGUE[d.kind].battery else 1]
    }
