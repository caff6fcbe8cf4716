"""PostgreSQL stopped under load: nothing acknowledged is lost, the backlog drains after, and
an SOS pressed during the outage still reaches a person."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import psycopg
import pytest

from devices.payload import Reading
from devstack.broker import EmbeddedBroker
from devstack.postgres import EmbeddedPostgres
from simulators.publisher import MqttPublisher
from tests.integration.helpers import eventually, make_settings, running_service, scalar

if TYPE_CHECKING:
    from tests.conftest import ExternalPostgres, HttpReceiver

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "fallback"])
async def test_database_outage_under_load(
    db_url: str,
    pg_server: EmbeddedPostgres | ExternalPostgres,
    mosquitto: EmbeddedBroker,
    http_receiver: HttpReceiver,
    fast_path: bool,
) -> None:
    """With the fast path, the SOS goes out from memory under an alert id reserved before
    the outage, and is stored under that id afterwards with that delivery recorded (nobody is
    told twice); without it, the fallback sends from its cached contacts, and the alert is
    notified the normal way once stored."""
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
        db_url,
        mosquitto,
        alerts={"fallback_refresh_s": 0.3, "store_timeout_s": 1.0, "fast_path": fast_path},
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
            if fast_path:
                told_id = body["alert"]["id"]
                assert told_id > 0, "the notice names the alert (its ack link works later)"
                assert body["alert"]["summary"] == "SOS button pressed"
            else:
                assert "alert store is unavailable" in body["alert"]["summary"]
            await asyncio.sleep(1.0)  # the outage goes on under load
            pg_server.start()
            await asyncio.sleep(1.0)
            done.set()
            await load
            await eventually(
                lambda: scalar(
                    db_url, "SELECT count(*) FROM alerts WHERE home_id = 'h01' AND kind = 'sos'"
                ),
                timeout=30,
                what="the SOS alert stored after the outage",
            )
            if fast_path:
                # Stored under the id the notice named, the delivery recorded against it.
                stored = await scalar(
                    db_url, "SELECT id FROM alerts WHERE home_id = 'h01' AND kind = 'sos'"
                )
                assert stored == told_id
                await eventually(
                    lambda: scalar(
                        db_url,
                        "SELECT count(*) FROM notifications n JOIN users u ON u.id = n.user_id"
                        " WHERE n.alert_id = %s AND u.username = 'worker-v1'"
                        " AND n.status = 'sent' AND n.attempts = 1",
                        told_id,
                    ),
                    timeout=20,
                    what="the fast path's delivery recorded",
                )
                await asyncio.sleep(1.0)
                assert len(http_receiver.requests) == 1, "worker-v1 was not told twice"
            else:
                # The alert is notified the normal way too.
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
