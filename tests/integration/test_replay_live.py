"""`eldercare replay` without --offline: a recorded home through the real broker into the
running service, as its devices would send it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from alerts.detect.dataset import load_dataset
from alerts.detect.learned import LearnedDetector
from cli.detect import ReplayError, replay_live
from devices.catalogue import HEARTBEAT
from devstack.broker import EmbeddedBroker
from tests.integration.helpers import eventually, make_settings, running_service, scalar

pytestmark = pytest.mark.integration

SENSORS = {
    "1": {"name": "front door", "kind": "entry_door", "room": "hall"},
    "2": {"name": "bathroom PIR", "kind": "motion", "room": "bathroom"},
    "3": {"name": "toilet flush", "kind": "water", "room": "bathroom"},
    "4": {"name": "microwave", "kind": "appliance", "room": "kitchen"},
    "5": {"name": "bed", "kind": "bed", "room": "bedroom"},
    "6": {"name": "fridge", "kind": "contact", "room": "kitchen"},
}
EVENTS = [  # (seconds after 07:00 local time, sensor, value): getting up
    (0, "5", 0), (20, "2", 1), (50, "2", 0), (80, "3", 1), (95, "3", 0), (200, "6", 1),
    (230, "6", 0), (240, "4", 1), (360, "4", 0), (400, "1", 1), (410, "1", 0), (590, "2", 1),
]  # fmt: skip
KINDS = {  # what each arrives as: the catalogue's kind and metric
    "1": ("door_contact", "open"),
    "2": ("pir_motion", "motion"),
    "3": ("flush_sensor", "flowing"),
    "4": ("appliance_switch", "on"),
    "5": ("bed_mat", "occupied"),
    "6": ("cupboard_contact", "open"),
}


def recording(tmp_path: Path, sensors: dict[str, dict[str, str]] = SENSORS) -> Path:
    folder = tmp_path / "rec_home"
    folder.mkdir()
    (folder / "sensors.json").write_text(
        json.dumps({"timezone": "Europe/Amsterdam", "sensors": sensors})
    )
    rows = [f"2008-07-26T07:{s // 60:02d}:{s % 60:02d},{sid},{v}" for s, sid, v in EVENTS]
    (folder / "events.csv").write_text("timestamp,sensor_id,value\n" + "\n".join(rows) + "\n")
    return folder


async def test_a_recording_arrives_as_its_devices_would_send_it(
    db_url: str, mosquitto: EmbeddedBroker, tmp_path: Path
) -> None:
    folder = recording(tmp_path)
    ds = load_dataset(folder / "events.csv", folder / "sensors.json")
    speed = 60.0  # ten recorded minutes in ten seconds
    settings = make_settings(db_url, mosquitto)
    async with running_service(settings, ("ingest", "alerts")) as running:
        before = datetime.now(UTC)
        sent = await replay_live(ds, db_url, mosquitto.url, mosquitto.protocol, speed=speed)
        await eventually(
            lambda: scalar(db_url, "SELECT count(*) = %s FROM readings", sent),
            what="every published reading stored",
        )
        # The detectors placed the new devices in their rooms and the home's time zone.
        learned = running.detectors.find(LearnedDetector)
        assert learned is not None
        assert learned.layout.device("rec_home-2", "pir_motion").bathroom
        assert learned.layout.device("rec_home-1", "door_contact").role.value == "entry_door"
        assert str(learned.layout.tz("rec_home")) == "Europe/Amsterdam"
    assert await scalar(db_url, "SELECT count(*) FROM dead_letters") == 0
    assert await scalar(db_url, "SELECT timezone FROM homes WHERE id = 'rec_home'") == (
        "Europe/Amsterdam"
    )
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cur = await conn.execute(
            "SELECT device_id, boot, seq, ts, metric, value FROM readings ORDER BY ts, device_id"
        )
        rows = await cur.fetchall()
    own = [r for r in rows if r[4] != HEARTBEAT]
    beats = [r for r in rows if r[4] == HEARTBEAT]
    assert len(own) == len(EVENTS)
    assert sent == len(rows)
    # One boot; each device's messages numbered 1, 2, ... with no gap (heartbeats included).
    assert len({r[1] for r in rows}) == 1
    for sid in SENSORS:
        seqs = sorted(r[2] for r in rows if r[0] == f"rec_home-{sid}")
        assert seqs == list(range(1, len(seqs) + 1)), sid
    # Every event as recorded, in the catalogue's kind and metric, the gaps divided by speed.
    t0 = own[0][3]
    for (s, sid, value), (device, _, _, ts, metric, stored) in zip(EVENTS, own, strict=True):
        assert device == f"rec_home-{sid}"
        assert metric == KINDS[sid][1]
        assert stored == value
        assert abs((ts - t0) - timedelta(seconds=s / speed)) < timedelta(milliseconds=2)
    assert beats
    assert beats[0][3] == t0
    # Stamped with the time it is sent: from the replay's start on, never ahead of arrival
    # (the ingester keeps receipt times), and not the recording's 2008.
    assert before <= t0
    assert await scalar(db_url, "SELECT bool_and(ts <= received_at) FROM readings")
    kinds = await scalar(
        db_url, "SELECT string_agg(DISTINCT kind, ',' ORDER BY kind) FROM devices"
        " WHERE home_id = 'rec_home'",
    )  # fmt: skip
    assert kinds == ",".join(sorted({k for k, _ in KINDS.values()}))


async def test_a_recording_the_registry_would_misread_is_refused(
    db_url: str, mosquitto: EmbeddedBroker, tmp_path: Path
) -> None:
    sensors = {**SENSORS, "1": {"name": "front door", "kind": "entry_door", "room": "kitchen"}}
    folder = recording(tmp_path, sensors)
    ds = load_dataset(folder / "events.csv", folder / "sensors.json")
    with pytest.raises(ReplayError, match="entry door in room 'kitchen'"):
        await replay_live(ds, db_url, mosquitto.url, mosquitto.protocol, speed=60)
    assert await scalar(db_url, "SELECT count(*) FROM homes WHERE id = 'rec_home'") == 0


async def test_a_refused_replay_registers_nothing(
    db_url: str, mosquitto: EmbeddedBroker, tmp_path: Path
) -> None:
    folder = recording(tmp_path)
    ds = load_dataset(folder / "events.csv", folder / "sensors.json")
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        await conn.execute(
            "INSERT INTO devices (id, home_id, kind, room) VALUES"
            " ('rec_home-2', 'h01', 'pir_motion', 'hall')"
        )
        await conn.commit()
    with pytest.raises(ReplayError, match=r"registered already .*rec_home-2"):
        await replay_live(ds, db_url, mosquitto.url, mosquitto.protocol, speed=60)
    assert await scalar(db_url, "SELECT count(*) FROM homes WHERE id = 'rec_home'") == 0
    assert await scalar(db_url, "SELECT count(*) FROM devices WHERE id LIKE 'rec_home-%%'") == 1
    # The same home, registered before in another time zone, is not replayed into it.
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        await conn.execute("DELETE FROM devices WHERE id = 'rec_home-2'")
        await conn.execute(
            "INSERT INTO homes (id, village_id, timezone) SELECT 'rec_home', village_id,"
            " 'Asia/Shanghai' FROM homes WHERE id = 'h01'"
        )
        await conn.commit()
    with pytest.raises(ReplayError, match="time zone 'Asia/Shanghai'"):
        await replay_live(ds, db_url, mosquitto.url, mosquitto.protocol, speed=60)
    assert await scalar(db_url, "SELECT count(*) FROM devices WHERE home_id = 'rec_home'") == 0
