"""PostgreSQL stopped under load: nothing acknowledged is lost, the backlog drains after, and
an SOS pressed during the outage still reaches a person."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import psycopg
import pytest

from devices.payload import Reading
from gateway.embedded import EmbeddedBroker, EmbeddedPostgres
from simulators.publisher import MqttPublisher
from tests.integration.helpers import eventually, make_settings, running_service, scalar

if TYPE_CHECKING:
    from tests.conftest import ExternalPostgres, HttpReceiver

pytestmark = pytest.mark.integration


async def test_database_outage_under_load(
    db_url: str,
    pg_server: EmbeddedPostgres | ExternalPostgres,
    mosquitto: EmbeddedBroker,
    http_receiver: HttpReceiver,
) -> None:
    if not isinstance(pg_server, EmbeddedPostgres):
        pytest.skip("stops and starts the database server: only with the embedded one")
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        await conn.execute(
            "INSERT INTO contact_channels (user_id, channel, target)"
            " SELECT id, 'webhook', %s FROM users WHERE username = 'worker-v1'",
            (http_receiver.url + "/worker-v1",),
        )
        await conn.commit()
    settings = make_settings(
        db_url, mosquitto, alerts={"fallback_refresh_s": 0.3, "store_timeout_s": 1.0}
    )
    start = datetime.now(UTC) - timedelta(hours=1)
    sent = 0
    done = asyncio.Event()

    async def stream(pub: MqttPublisher) -> None:
        nonlocal sent
        while not done.is_set():
            await pub.publish_readings(
                [
                    Reading(
                        "h02",
                        "h02-pir-kitchen",
                        "pir_motion",
                        1,
                        sent,
                        start + timedelta(seconds=sent),
                        "motion",
                        sent % 2,
                    )
                ]
            )
            sent += 1
            await asyncio.sleep(0.005)

    try:
        async with (
            running_service(settings, ("ingest", "alerts")),
            MqttPublisher(mosquitto.url, "outage-devices") as pub,
        ):
            load = asyncio.create_task(stream(pub))
            await eventually(
                lambda: scalar(db_url, "SELECT count(*) > 20 FROM readings"),
                what="readings flowing",
            )
            await asyncio.sleep(1.0)  # the fallback has refreshed its contacts by now
            pg_server.stop()
            await asyncio.sleep(0.5)
            sos = Reading("h01", "h01-sos", "sos_button", 1, 1, datetime.now(UTC), "press", 1)
            await pub.publish_readings([sos])
            hooks = await http_receiver.wait_for(1, timeout=20)
            assert hooks[0].path == "/worker-v1"
            body = hooks[0].json()
            assert body["alert"]["kind"] == "sos"
            assert body["alert"]["home_id"] == "h01"
            assert "alert store is unavailable" in body["alert"]["summary"]
            await asyncio.sleep(1.0)  # the outage goes on under load
            pg_server.start()
            await asyncio.sleep(1.0)
            done.set()
            await load
            # After the outage: the alert is stored and notified the normal way too.
            await eventually(
                lambda: scalar(
                    db_url, "SELECT count(*) FROM alerts WHERE home_id = 'h01' AND kind = 'sos'"
                ),
                timeout=30,
                what="the SOS alert stored after the outage",
            )
            await http_receiver.wait_for(2, timeout=20)
            await eventually(
                lambda: scalar(
                    db_url,
                    "SELECT count(*) = %s FROM readings WHERE device_id = 'h02-pir-kitchen'",
                    sent,
                ),
                timeout=60,
                what=f"all {sent} readings stored after the outage",
            )
    finally:
        pg_server.start()
    assert sent > 200
    assert (
        await scalar(
            db_url, "SELECT count(DISTINCT seq) FROM readings WHERE device_id = 'h02-pir-kitchen'"
        )
        == sent
    )
    assert await scalar(db_url, "SELECT count(*) FROM alerts") == 1
