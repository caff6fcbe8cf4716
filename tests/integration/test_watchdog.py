"""The pipeline itself stalling is never silent: the self-check raises a technical alert
about the service to the operator on duty, and clears it when readings flow again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import psycopg
import pytest

from devices.payload import Reading
from devstack.broker import EmbeddedBroker
from simulators.publisher import MqttPublisher
from tests.integration.helpers import (
    eventually,
    make_settings,
    running_service,
    scalar,
    webhook_first,
)

if TYPE_CHECKING:
    from tests.conftest import HttpReceiver

pytestmark = pytest.mark.integration

FAST = {"watchdog_s": 0.3, "no_readings_after_s": 1.5, "ingest_stale_after_s": 1.5}


async def _operator_webhook(db_url: str, url: str) -> None:
    await webhook_first(db_url, "operator", url)


async def test_no_readings_from_anywhere_raises_and_clears(
    db_url: str, mosquitto: EmbeddedBroker, http_receiver: HttpReceiver
) -> None:
    await _operator_webhook(db_url, http_receiver.url + "/operator")
    settings = make_settings(db_url, mosquitto, alerts=FAST, ingest={"heartbeat_s": 0.3})
    async with running_service(settings, ("ingest", "alerts")):
        alert_id = await eventually(
            lambda: scalar(
                db_url,
                "SELECT id FROM alerts WHERE home_id IS NULL"
                " AND kind = 'no_readings' AND status = 'open'",
            ),
            timeout=20,
            what="the no_readings service alert",
        )
        hooks = await http_receiver.wait_for(1, timeout=20)
        assert hooks[0].path == "/operator"
        body = hooks[0].json()
        assert body["alert"]["kind"] == "no_readings"
        assert body["alert"]["category"] == "technical"
        assert body["alert"]["home_id"] is None
        # One alert while it lasts, however many checks find it.
        await asyncio.sleep(1.0)
        assert await scalar(db_url, "SELECT count(*) FROM alerts WHERE home_id IS NULL") == 1
        assert await scalar(db_url, "SELECT kind FROM alerts WHERE home_id IS NULL") == (
            "no_readings"
        )
        async with MqttPublisher(mosquitto.url, "dev-h01-pir") as pub:
            now = datetime.now(UTC)
            for seq in range(3):
                await pub.publish_readings(
                    [
                        Reading(
                            "h01",
                            "h01-pir-living",
                            "pir_motion",
                            1,
                            seq,
                            now - timedelta(seconds=3 - seq),
                            "motion",
                            seq % 2,
                        )
                    ]
                )
            outcome = await eventually(
                lambda: scalar(
                    db_url,
                    "SELECT outcome FROM alerts WHERE id = %s AND status = 'resolved'",
                    alert_id,
                ),
                timeout=20,
                what="the service alert cleared by readings",
            )
    assert outcome == "cleared_by_data"


async def test_ingest_without_progress_raises(
    db_url: str, mosquitto: EmbeddedBroker, http_receiver: HttpReceiver
) -> None:
    await _operator_webhook(db_url, http_receiver.url + "/operator")
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        await conn.execute(
            "INSERT INTO ingest_heartbeats (worker, at, received, committed, pending)"
            " VALUES ('eldercare-ingest', now() - interval '1 hour', 10, 10, 0)"
        )
        await conn.commit()
    # Detection runs, the ingester does not: readings would not be stored.
    settings = make_settings(db_url, mosquitto, alerts=FAST)
    async with running_service(settings, ("alerts",)):
        alert_id = await eventually(
            lambda: scalar(
                db_url,
                "SELECT id FROM alerts WHERE home_id IS NULL"
                " AND kind = 'ingest_stalled' AND status = 'open'",
            ),
            timeout=20,
            what="the ingest_stalled service alert",
        )
        kinds = {h.json()["alert"]["kind"] for h in await http_receiver.wait_for(1, timeout=20)}
        assert "ingest_stalled" in kinds or "no_readings" in kinds
    # The ingester comes back: its heartbeats clear the alert.
    settings = make_settings(db_url, mosquitto, alerts=FAST, ingest={"heartbeat_s": 0.3})
    async with running_service(settings, ("ingest", "alerts")):
        await eventually(
            lambda: scalar(
                db_url, "SELECT status = 'resolved' FROM alerts WHERE id = %s", alert_id
            ),
            timeout=20,
            what="ingest_stalled cleared by fresh heartbeats",
        )
