"""Failure while running: the ingester killed with SIGKILL mid-stream loses nothing it
acknowledged and stores nothing twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cli.main import run_argv
from devices.payload import Reading
from devstack.broker import EmbeddedBroker
from simulators.publisher import MqttPublisher
from tests.integration.helpers import eventually, scalar

pytestmark = pytest.mark.integration

DEVICES = [
    ("h01-pir-living", "h01"),
    ("h02-pir-kitchen", "h02"),
    ("h03-pir-bath", "h03"),
    ("h04-pir-living", "h04"),
]


async def _ready(value: bool) -> bool:
    return value


def start_ingester(db_url: str, broker: EmbeddedBroker, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ELDERCARE_DATABASE__URL": db_url,
        "ELDERCARE_MQTT__URL": broker.url,
        "ELDERCARE_MQTT__PROTOCOL": broker.protocol,
        "ELDERCARE_INGEST__BATCH_MAX_DELAY_MS": "5",
        "ELDERCARE_INGEST__BATCH_MAX_ROWS": "200",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            run_argv("ingest"),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


async def test_kill_9_ingester_mid_stream_loses_nothing_and_stores_nothing_twice(
    db_url: str, mosquitto: EmbeddedBroker, tmp_path: Path
) -> None:
    log = tmp_path / "ingester.log"
    proc = start_ingester(db_url, mosquitto, log)
    # One reading a second of event time per device, published as fast as the broker takes
    # them: start far enough back that no run publishes past now + 5 min (the decoder's
    # max_future), which would reject readings as future_timestamp, not lose them.
    start = datetime.now(UTC) - timedelta(hours=6)
    try:
        async with MqttPublisher(mosquitto.url, "fault-devices") as pub:
            # The ingester's persistent session must exist before the load starts: probe
            # until a reading lands (one published before it subscribed has no receiver).
            for n in range(60):
                probe = Reading("h05", "h05-pir-living", "pir_motion", 9, n, start, "motion", 1)
                await pub.publish_readings([probe])
                if await scalar(db_url, "SELECT count(*) FROM readings"):
                    break
                await asyncio.sleep(0.5)
            else:
                raise AssertionError(f"the ingester stored nothing; see {log}")

            done = asyncio.Event()
            published: dict[str, int] = {}

            def connects() -> int:
                return log.read_text(errors="replace").count("connected (session present")

            async def device_stream(device: str, home: str) -> None:
                seq = 0
                while not done.is_set():
                    ts = start + timedelta(seconds=seq)
                    await pub.publish_readings(
                        [Reading(home, device, "pir_motion", 1, seq, ts, "motion", seq % 2)]
                    )
                    seq += 1
                    published[device] = seq
                    await asyncio.sleep(0.002)

            async def chaos() -> None:
                nonlocal proc
                try:
                    for restart in range(3):
                        await asyncio.sleep(0.5)
                        kill(proc)  # SIGKILL while batches are in flight
                        await asyncio.sleep(0.3)
                        proc = start_ingester(db_url, mosquitto, log)
                        want = restart + 2
                        await eventually(
                            lambda: _ready(connects() >= want),  # noqa: B023 - awaited here
                            timeout=30,
                            what="the restarted ingester to connect",
                        )
                    await asyncio.sleep(0.5)
                finally:
                    done.set()

            await asyncio.gather(chaos(), *(device_stream(d, h) for d, h in DEVICES))
        total = sum(published.values())
        assert connects() == 4, "one connection per start: the first and three restarts"
        assert total > 1000, "the load ran throughout the kills"
        stored = await eventually(
            lambda: scalar(
                db_url, "SELECT count(*) FROM readings WHERE boot = 1 HAVING count(*) >= %s", total
            ),
            timeout=60,
            what="every published reading",
        )
        assert stored == total
        distinct = await scalar(
            db_url, "SELECT count(DISTINCT (device_id, seq)) FROM readings WHERE boot = 1"
        )
        assert distinct == total
        per_device = await scalar(
            db_url,
            "SELECT json_object_agg(device_id, n) FROM (SELECT device_id, count(*) AS n"
            " FROM readings WHERE boot = 1 GROUP BY device_id) d",
        )
        assert per_device == published
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(15)
