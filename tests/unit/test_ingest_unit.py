"""Unit tests of ingest's pure parts: seq gap tracking, batch decoding, the migration plan."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices import payload
from devices.payload import Limits, Reading, Reason, Rejection
from devices.registry import DeviceRecord, Registry
from ingest import migrate
from ingest.mqtt import Message
from ingest.registry import RegistryCache
from ingest.service import SeqTracker, decode_batch
from ingest.store import Gap

NOW = datetime(2026, 11, 23, 13, 0, 0, tzinfo=UTC)
NOW_S = NOW.timestamp()


def reading(seq: int, boot: int = 0, device_id: str = "d-motion") -> Reading:
    return Reading("h01", device_id, "pir_motion", boot, seq, NOW, "motion", 1.0)


# --------------------------------------------------------------------------- SeqTracker


def test_first_reading_of_a_device_is_no_gap() -> None:
    assert SeqTracker().observe(reading(500)) is None


def test_consecutive_seqs_are_no_gap() -> None:
    tracker = SeqTracker()
    assert [tracker.observe(reading(s)) for s in range(5)] == [None] * 5


def test_forward_jump_is_a_gap_with_both_ends() -> None:
    tracker = SeqTracker()
    tracker.observe(reading(1, boot=2))
    tracker.observe(reading(2, boot=2))
    assert tracker.observe(reading(6, boot=2)) == Gap("d-motion", 2, 2, 6)
    assert tracker.observe(reading(7, boot=2)) is None


def test_duplicates_are_no_gap() -> None:
    tracker = SeqTracker()
    tracker.observe(reading(10))
    assert tracker.observe(reading(10)) is None
    assert tracker.observe(reading(11)) is None
    assert tracker.observe(reading(11)) is None


def test_out_of_order_is_no_gap_and_does_not_move_the_mark_back() -> None:
    tracker = SeqTracker()
    tracker.observe(reading(1))
    assert tracker.observe(reading(4)) == Gap("d-motion", 0, 1, 4)
    assert tracker.observe(reading(2)) is None  # late, fills part of the hole
    assert tracker.observe(reading(3)) is None
    assert tracker.observe(reading(5)) is None  # continues from 4, not from 3
    assert tracker.observe(reading(7)) == Gap("d-motion", 0, 5, 7)


def test_new_boot_starts_fresh() -> None:
    tracker = SeqTracker()
    tracker.observe(reading(900, boot=1))
    assert tracker.observe(reading(0, boot=2)) is None
    assert tracker.observe(reading(1, boot=2)) is None
    assert tracker.observe(reading(3, boot=2)) == Gap("d-motion", 2, 1, 3)
    # the old boot is still remembered on its own
    assert tracker.observe(reading(902, boot=1)) == Gap("d-motion", 1, 900, 902)


def test_devices_are_tracked_separately() -> None:
    tracker = SeqTracker()
    tracker.observe(reading(1, device_id="a"))
    tracker.observe(reading(100, device_id="b"))
    assert tracker.observe(reading(2, device_id="a")) is None
    assert tracker.observe(reading(102, device_id="b")) == Gap("b", 0, 100, 102)


@given(st.lists(st.integers(0, 60), max_size=60))
def test_gaps_match_a_model(seqs: list[int]) -> None:
    """A gap is reported exactly when a seq is beyond the highest seen so far plus one."""
    tracker = SeqTracker()
    highest: int | None = None
    for seq in seqs:
        expected = (
            Gap("d-motion", 0, highest, seq) if highest is not None and seq > highest + 1 else None
        )
        assert tracker.observe(reading(seq)) == expected
        highest = seq if highest is None else max(highest, seq)


# --------------------------------------------------------------------------- decode_batch

REGISTRY = Registry(
    [
        DeviceRecord("d-motion", "h01", "pir_motion"),
        DeviceRecord("d-sos", "h01", "sos_button"),
        DeviceRecord("d-elsewhere", "h02", "door_contact"),
    ]
)


async def load_registry() -> Registry:
    return REGISTRY


@pytest.fixture
async def cache() -> RegistryCache:
    cache = RegistryCache(load_registry)
    assert await cache.refresh() is REGISTRY
    assert cache.current is REGISTRY
    return cache


def message(i: int, topic: str, doc: object) -> Message:
    raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return Message(topic, raw, qos=1, retain=False, mid=i, generation=1)


MOTION_TOPIC = "eldercare/h01/d-motion/readings"
SOS_TOPIC = "eldercare/h01/d-sos/readings"


def mixed_batch() -> list[Message]:
    return [
        message(1, MOTION_TOPIC, {"boot": 1, "seq": 1, "ts": NOW_S, "value": 1}),
        message(2, "eldercare/h01/d-motion/status", {"seq": 2, "ts": NOW_S, "value": 1}),
        message(3, MOTION_TOPIC, b"{oops"),
        message(
            4,
            SOS_TOPIC,
            {
                "boot": 3,
                "readings": [
                    {"seq": 7, "ts": NOW_S - 1, "value": 1, "metric": "press"},
                    {"seq": 8, "ts": NOW_S, "value": 1, "metric": "cancel"},
                ],
            },
        ),
        message(5, "eldercare/h01/d-ghost/readings", {"seq": 1, "ts": NOW_S, "value": 1}),
        message(6, "eldercare/h01/d-elsewhere/readings", {"seq": 1, "ts": NOW_S, "value": 1}),
        message(7, MOTION_TOPIC, {"seq": 3, "ts": NOW_S, "value": 0.5}),
        message(8, MOTION_TOPIC, {"seq": 4, "ts": NOW_S + 3600, "value": 1}),
        message(9, MOTION_TOPIC, {"boot": 1, "seq": 2, "ts": NOW_S, "value": 0}),
    ]


async def test_decode_batch_splits_readings_and_dead_letters(cache: RegistryCache) -> None:
    batch = mixed_batch()
    readings, dead = decode_batch(batch, cache, NOW, Limits())

    assert [(r.device_id, r.boot, r.seq, r.metric, r.value) for r in readings] == [
        ("d-motion", 1, 1, "motion", 1.0),
        ("d-sos", 3, 7, "press", 1.0),
        ("d-sos", 3, 8, "cancel", 1.0),
        ("d-motion", 1, 2, "motion", 0.0),
    ]
    assert readings[1].ts == NOW - timedelta(seconds=1)
    assert [(d.topic, d.rejection.reason) for d in dead] == [
        ("eldercare/h01/d-motion/status", Reason.BAD_TOPIC),
        (MOTION_TOPIC, Reason.MALFORMED),
        ("eldercare/h01/d-ghost/readings", Reason.UNKNOWN_DEVICE),
        ("eldercare/h01/d-elsewhere/readings", Reason.WRONG_HOME),
        (MOTION_TOPIC, Reason.OUT_OF_RANGE),
        (MOTION_TOPIC, Reason.FUTURE_TIMESTAMP),
    ]
    by_mid = {m.mid: m for m in batch}
    assert [d.payload for d in dead] == [by_mid[i].payload for i in (2, 3, 5, 6, 7, 8)]


async def test_decode_batch_uses_the_limits_and_the_clock(cache: RegistryCache) -> None:
    msg = message(1, MOTION_TOPIC, {"seq": 1, "ts": NOW_S, "value": 1})
    readings, dead = decode_batch([msg], cache, NOW + timedelta(days=8), Limits())
    assert readings == []
    assert [d.rejection.reason for d in dead] == [Reason.TOO_OLD]
    tight = Limits(max_payload_bytes=10)
    readings, dead = decode_batch([msg], cache, NOW, tight)
    assert [d.rejection.reason for d in dead] == [Reason.OVERSIZED]


async def test_decode_batch_reads_the_current_registry() -> None:
    cache = RegistryCache(load_registry)  # not loaded yet: an empty registry
    msg = message(1, MOTION_TOPIC, {"seq": 1, "ts": NOW_S, "value": 1})
    readings, dead = decode_batch([msg], cache, NOW, Limits())
    assert (readings, [d.rejection.reason for d in dead]) == ([], [Reason.UNKNOWN_DEVICE])
    await cache.refresh()
    readings, dead = decode_batch([msg], cache, NOW, Limits())
    assert (len(readings), dead) == (1, [])


async def test_dead_letter_payload_is_truncated(cache: RegistryCache) -> None:
    big = b'{"pad": "' + b"x" * 70_000 + b'"}'
    readings, dead = decode_batch([message(1, MOTION_TOPIC, big)], cache, NOW, Limits())
    assert readings == []
    [letter] = dead
    assert letter.rejection.reason is Reason.OVERSIZED
    assert letter.payload == big[:4096]


async def test_decode_batch_of_nothing(cache: RegistryCache) -> None:
    assert decode_batch([], cache, NOW, Limits()) == ([], [])


async def test_a_raising_decoder_becomes_a_dead_letter(
    cache: RegistryCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decoder promises not to raise; if it ever does, the loop must survive."""
    real = payload.decode

    def flaky(
        topic: str, raw: bytes, registry: Registry, now: datetime, limits: Limits
    ) -> list[Reading] | Rejection:
        if raw == b"boom":
            raise RuntimeError("decoder bug")
        return real(topic, raw, registry, now, limits)

    monkeypatch.setattr(payload, "decode", flaky)
    batch = [
        message(1, MOTION_TOPIC, b"boom"),
        message(2, MOTION_TOPIC, {"seq": 1, "ts": NOW_S, "value": 1}),
    ]
    readings, dead = decode_batch(batch, cache, NOW, Limits())
    assert [r.seq for r in readings] == [1]
    [letter] = dead
    assert letter.rejection.reason is Reason.MALFORMED
    assert "decoder bug" in letter.rejection.detail


# --------------------------------------------------------------------------- migration plan


@pytest.mark.parametrize(
    ("timescale", "wanted", "unwanted"),
    [
        (True, "create_hypertable", "PARTITION BY RANGE"),
        (False, "PARTITION BY RANGE", "create_hypertable"),
    ],
)
def test_plan_picks_the_storage_variant(timescale: bool, wanted: str, unwanted: str) -> None:
    steps = migrate.plan(timescale)
    # Later areas add their own numbered steps; the first three are the released ones.
    assert [s.version for s in steps][:3] == [1, 2, 3]
    assert [s.name for s in steps][:3] == ["core", "readings", "alerts"]
    assert [s.version for s in steps] == sorted({s.version for s in steps})
    readings_step = steps[1]
    assert wanted in readings_step.sql
    assert unwanted not in readings_step.sql
    for step in (steps[0], *steps[2:]):
        assert "create_hypertable" not in step.sql
        assert "PARTITION BY RANGE" not in step.sql
    assert "CREATE TABLE readings" in readings_step.sql


def test_plans_share_the_common_steps() -> None:
    ts, native = migrate.plan(True), migrate.plan(False)
    assert ts[0] == native[0]
    assert ts[2] == native[2]
    assert ts[1].sql != native[1].sql
    assert "CREATE TABLE regions" in ts[0].sql
    assert "CREATE TABLE alerts" in ts[2].sql


# --------------------------------------------------------------------------- the MQTT client


def _mqtt_client() -> Any:
    from devices.mqtt import MqttSettings
    from ingest.mqtt import subscriber_client

    return subscriber_client(MqttSettings(), "unit")


def test_reads_are_served_from_one_large_recv(monkeypatch: pytest.MonkeyPatch) -> None:
    import paho.mqtt.client as paho

    chunks = [b"\x30\x05hello\x30\x02", b"ok"]
    asked: list[int] = []

    def recv(self: Any, bufsize: int) -> bytes:
        asked.append(bufsize)
        if not chunks:
            raise BlockingIOError
        return chunks.pop(0)

    monkeypatch.setattr(paho.Client, "_sock_recv", recv)
    client = _mqtt_client()
    got = [client._sock_recv(n) for n in (1, 1, 5, 1, 1, 5)]
    # the last read asks for 5 and gets the 2 bytes that exist, as a socket would
    assert got == [b"\x30", b"\x05", b"hello", b"\x30", b"\x02", b"ok"]
    assert len(asked) == 2, "one recv per chunk, not one per field"
    assert client.buffered == 0
    with pytest.raises(BlockingIOError):
        client._sock_recv(1)


def test_a_new_connection_never_parses_bytes_left_from_the_old_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import paho.mqtt.client as paho

    monkeypatch.setattr(paho.Client, "_sock_recv", lambda self, n: b"\x30\x05hel")
    monkeypatch.setattr(paho.Client, "_create_socket", lambda self: object())
    client = _mqtt_client()
    client._sock_recv(1)
    assert client.buffered == 4
    client._create_socket()
    assert client.buffered == 0


def test_ack_many_queues_every_puback_in_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _mqtt_client()
    queued: list[tuple[int, bytes]] = []
    monkeypatch.setattr(
        client, "_packet_queue", lambda command, data, mid, qos: queued.append((command, data))
    )
    client.ack_many([1, 2, 65535])
    assert queued == [(0x40, b"\x40\x02\x00\x01\x40\x02\x00\x02\x40\x02\xff\xff")]
    client.ack_many([])
    assert len(queued) == 1


async def test_messages_reach_the_event_loop_in_order_with_one_wakeup_per_burst() -> None:
    import asyncio

    from devices.mqtt import MqttSettings
    from ingest.mqtt import Subscriber

    sub = Subscriber(MqttSettings(), "unit", [])
    loop = asyncio.get_running_loop()
    sub._loop = loop
    woken: list[int] = []
    original = sub._hand_over

    def hand_over() -> None:
        woken.append(len(sub._pending))
        original()

    sub._hand_over = hand_over  # type: ignore[method-assign]

    class Msg:
        def __init__(self, mid: int) -> None:
            self.topic, self.payload, self.qos, self.retain, self.mid = "t", b"", 1, False, mid

    def network_thread() -> None:
        for mid in range(1, 101):
            sub._on_message(None, None, Msg(mid))  # type: ignore[arg-type]

    await asyncio.to_thread(network_thread)
    await asyncio.sleep(0)
    mids = [sub.messages.get_nowait().mid for _ in range(sub.messages.qsize())]
    assert mids == list(range(1, 101))
    assert 1 <= len(woken) < 100
