"""The broker restarted under load, gracefully and with SIGKILL: the ingester and the devices
reconnect by themselves, and every reading that did not arrive shows up as a recorded seq gap."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import pytest

from devices.payload import Reading
from devstack.broker import EmbeddedBroker
from simulators.publisher import MqttPublisher
from tests.integration.helpers import eventually, make_settings, running_service, scalar

pytestmark = pytest.mark.integration

DEVICES = [("h01-pir-living", "h01"), ("h02-pir-kitchen", "h02"), ("h03-pir-bath", "h03")]


async def _stream(
    pub: MqttPublisher, device: str, home: str, done: asyncio.Event, sent: dict[str, int]
) -> None:
    start = datetime.now(UTC) - timedelta(hours=1)
    seq = 0
    while not done.is_set():
        reading = Reading(
            home, device, "pir_motion", 2, seq, start + timedelta(seconds=seq), "motion", seq % 2
        )
        # A device does not wait forever for one PUBACK: it moves on after a timeout (the
        # reading may or may not have reached the broker; a gap records it if it did not).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(pub.publish_readings([reading]), 5.0)
        seq += 1
        sent[device] = seq
        await asyncio.sleep(0.003)


@pytest.mark.parametrize("how", ["graceful", "kill"])
async def test_broker_restart_under_load(db_url: str, mosquitto: EmbeddedBroker, how: str) -> None:
    settings = make_settings(db_url, mosquitto)
    async with running_service(settings, ("ingest", "alerts")) as svc:
        ingest_sub = svc.subscribers["ingest"]
        async with MqttPublisher(mosquitto.url, f"devices-{how}") as pub:
            done = asyncio.Event()
            sent: dict[str, int] = {}

            async def chaos() -> None:
                try:
                    await asyncio.sleep(0.8)
                    for _ in range(2):
                        if how == "kill":
                            mosquitto.kill()
                        else:
                            mosquitto.stop()
                        await asyncio.sleep(0.5)
                        mosquitto.start()
                        await eventually(
                            lambda: _true(ingest_sub.connected),
                            timeout=60,
                            what="the ingester to reconnect",
                        )
                        await asyncio.sleep(0.8)
                finally:
                    done.set()

            await asyncio.gather(chaos(), *(_stream(pub, d, h, done, sent) for d, h in DEVICES))
            # One more reading per device after the dust settles, so a loss at the very end of
            # the stream is followed by a later seq and can be seen as a gap.
            for device, home in DEVICES:
                seq = sent[device]
                await pub.publish_readings(
                    [Reading(home, device, "pir_motion", 2, seq, datetime.now(UTC), "motion", 0)]
                )
                sent[device] = seq + 1
        assert ingest_sub.reconnects >= 2
        for device, _ in DEVICES:
            last = sent[device] - 1
            await eventually(
                lambda d=device, s=last: scalar(  # type: ignore[misc]
                    db_url, "SELECT 1 FROM readings WHERE device_id = %s AND seq = %s", d, s
                ),
                timeout=60,
                what=f"the last reading of {device}",
            )
    for device, _ in DEVICES:
        stored = set(await _seqs(db_url, device))
        missing = sorted(set(range(sent[device])) - stored)
        gaps = await _gaps(db_url, device)
        undetected = [s for s in missing if not any(a < s < b for a, b in gaps)]
        assert undetected == [], f"{device}: lost seqs not recorded as gaps: {undetected[:20]}"
        # Each reading is stored once.
        assert await scalar(
            db_url,
            "SELECT count(*) = count(DISTINCT seq) FROM readings WHERE device_id = %s",
            device,
        )
        if how == "graceful":
            # Mosquitto saves sessions and queues on a graceful stop, and the ingester's
            # persistent session queues what arrives while it reconnects: nothing is lost.
            assert missing == [], f"{device}: {len(missing)} readings lost"


async def _true(value: bool) -> bool:
    return value


async def _seqs(db_url: str, device: str) -> list[int]:
    import psycopg

    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cur = await conn.execute("SELECT seq FROM readings WHERE device_id = %s", (device,))
        return [int(r[0]) for r in await cur.fetchall()]


async def _gaps(db_url: str, device: str) -> list[tuple[int, int]]:
    import psycopg

    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cur = await conn.execute(
            "SELECT after_seq, before_seq FROM seq_gaps WHERE device_id = %s", (device,)
        )
        return [(int(a), int(b)) for a, b in await cur.fetchall()]
