"""A recorded home's readings as its devices would send them (devices.recorded)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from devices.catalogue import CATALOGUE, HEARTBEAT
from devices.payload import Reading
from devices.recorded import RecordedDevice, as_sent, heartbeats

T0 = datetime(2008, 7, 26, 6, 0, tzinfo=UTC)
DEVICES = [
    RecordedDevice("h-1", "h", "pir_motion", "bathroom"),
    RecordedDevice("h-2", "h", "flush_sensor", "bathroom"),
    RecordedDevice("h-3", "h", "power_plug", "kitchen"),  # heartbeat every 900 s
]


def rec(device: str, kind: str, metric: str, minutes: float, value: float, seq: int) -> Reading:
    return Reading("h", device, kind, 0, seq, T0 + timedelta(minutes=minutes), metric, value)


RECORDED = [
    rec("h-1", "pir_motion", "motion", 1, 1, 1),
    rec("h-2", "flush_sensor", "flowing", 2, 1, 2),
    rec("h-1", "pir_motion", "motion", 3, 0, 3),
    rec("h-2", "flush_sensor", "flowing", 4, 0, 4),
    rec("h-3", "power_plug", "power", 90, 800, 5),
    rec("h-1", "pir_motion", "motion", 200, 1, 6),
]


def test_every_device_beats_at_its_catalogue_interval_staggered() -> None:
    end = T0 + timedelta(hours=3)
    beats = list(heartbeats(DEVICES, T0, end))
    assert [b.ts for b in beats] == sorted(b.ts for b in beats)
    for d in DEVICES:
        times = [b.ts for b in beats if b.device_id == d.device_id]
        step = timedelta(seconds=CATALOGUE[d.kind].heartbeat_s)
        assert times, d
        assert all(b - a == step for a, b in itertools.pairwise(times))
        assert T0 <= times[0] < T0 + step
        assert times[-1] < end <= times[-1] + step
    firsts = {min(b.ts for b in beats if b.device_id == d.device_id) for d in DEVICES}
    assert len(firsts) == len(DEVICES), "devices do not all beat at one instant"
    assert {(b.metric, b.value) for b in beats} == {(HEARTBEAT, 1.0)}


def test_as_sent_numbers_per_device_and_keeps_data_time_offline() -> None:
    end = T0 + timedelta(hours=3)
    out = list(as_sent(RECORDED, DEVICES, start=T0, end=end, boot=5))
    assert [r.ts for r in out] == sorted(r.ts for r in out)
    for d in DEVICES:
        mine = [r for r in out if r.device_id == d.device_id]
        assert [r.seq for r in mine] == list(range(1, len(mine) + 1))
        assert {r.boot for r in mine} == {5}
        assert {r.kind for r in mine} == {d.kind}
    own = [(r.device_id, r.ts, r.metric, r.value) for r in out if r.metric != HEARTBEAT]
    # Everything recorded in [start, end) is there, unchanged; the reading at 200 min is not.
    assert own == [(r.device_id, r.ts, r.metric, r.value) for r in RECORDED[:5]]


def test_a_live_replay_stamps_when_sent_at_its_speed() -> None:
    live = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
    start = T0 + timedelta(minutes=2)
    out = list(
        as_sent(RECORDED, DEVICES, start=start, end=T0 + timedelta(hours=4), live_start=live,
                speed=60.0)
    )  # fmt: skip
    own = [r for r in out if r.metric != HEARTBEAT]
    assert [r.seq for r in own if r.device_id == "h-2"] == [1, 2]  # the first of its messages
    for r, orig in zip(own, RECORDED[1:], strict=True):
        assert r.ts == live + (orig.ts - start) / 60
    assert out[0].ts >= live
    assert out[-1].ts < live + timedelta(hours=4) / 60


def test_unknown_kind_and_bad_speed_are_refused() -> None:
    with pytest.raises(ValueError, match="not in the catalogue"):
        list(heartbeats([RecordedDevice("h-9", "h", "water")], T0, T0 + timedelta(hours=1)))
    with pytest.raises(ValueError, match="speed"):
        list(as_sent(RECORDED, DEVICES, start=T0, end=T0 + timedelta(hours=1), speed=0))
