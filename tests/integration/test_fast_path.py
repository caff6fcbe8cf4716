"""The fast path on real parts: an emergency's first round goes out from memory, under an
alert id reserved ahead, while the alert is stored; what it delivered is recorded against the
stored round, so nobody is told twice."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from alerts.notify.links import check_ack_token
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


async def _webhook_first(db_url: str, receiver: HttpReceiver) -> None:
    await webhook_first(db_url, "worker-v1", receiver.url + "/worker-v1")


def press(home: str, seq: int) -> Reading:
    return Reading(home, f"{home}-sos", "sos_button", 1, seq, datetime.now(UTC), "press", 1)


async def fast_path_ready(db_url: str) -> None:
    """The fast path has reserved its alert ids (so it is in use from now on)."""
    await eventually(
        lambda: scalar(db_url, "SELECT last_value >= 32 FROM alerts_id_seq"),
        what="alert ids reserved by the fast path",
    )
    await asyncio.sleep(0.5)  # and the emergency contacts are cached


async def test_the_first_round_is_sent_once_under_the_stored_alert_id(
    db_url: str, mosquitto: EmbeddedBroker, http_receiver: HttpReceiver
) -> None:
    await _webhook_first(db_url, http_receiver)
    settings = make_settings(db_url, mosquitto, alerts={"fallback_refresh_s": 0.3})
    async with running_service(settings, ("ingest", "alerts")):
        await fast_path_ready(db_url)
        async with MqttPublisher(mosquitto.url, "dev-h01-sos-fast") as pub:
            await pub.publish_readings([press("h01", 1)])
            hooks = await http_receiver.wait_for(1)
            body = hooks[0].json()
            alert_id = await eventually(
                lambda: scalar(db_url, "SELECT id FROM alerts WHERE home_id = 'h01'"),
                what="the alert stored",
            )
            assert body["alert"]["id"] == alert_id
            grant = check_ack_token(
                settings.alerts.ack_link_secret.get_secret_value().encode(),
                body["ack_url"].rsplit("/", 1)[1],
                datetime.now(UTC),
            )
            assert grant is not None
            assert grant.alert_id == alert_id
            await eventually(
                lambda: scalar(
                    db_url,
                    "SELECT count(*) FROM notifications n JOIN users u ON u.id = n.user_id"
                    " WHERE n.alert_id = %s AND u.username = 'worker-v1' AND n.status = 'sent'"
                    " AND n.attempts = 1",
                    alert_id,
                ),
                what="the delivery recorded against the stored round",
            )
            assert await scalar(
                db_url,
                "SELECT count(*) FROM alert_events WHERE alert_id = %s AND action = 'notified'"
                " AND (detail->>'fast_path')::boolean",
                alert_id,
            ) == 1  # fmt: skip
            # A second press is evidence for the same alert: no second notice.
            await pub.publish_readings([press("h01", 2)])
            await eventually(
                lambda: scalar(
                    db_url, "SELECT evidence_count = 2 FROM alerts WHERE id = %s", alert_id
                ),
                what="the second press as evidence",
            )
        await asyncio.sleep(1.0)  # several dispatcher polls: nothing is sent again
        assert len(http_receiver.requests) == 1


async def test_a_press_right_after_start_and_another_later_tell_each_person_once(
    db_url: str, mosquitto: EmbeddedBroker, http_receiver: HttpReceiver
) -> None:
    """The first press may come before the fast path is ready (no reserved id yet) and be
    stored the ordinary way; a second press later is evidence for that alert, not news."""
    await _webhook_first(db_url, http_receiver)
    settings = make_settings(db_url, mosquitto, alerts={"fallback_refresh_s": 0.3})
    async with (
        running_service(settings, ("ingest", "alerts")),
        MqttPublisher(mosquitto.url, "dev-h01-sos-early") as pub,
    ):
        await pub.publish_readings([press("h01", 1)])
        alert_id = await eventually(
            lambda: scalar(db_url, "SELECT id FROM alerts WHERE home_id = 'h01'"),
            what="the alert stored",
        )
        await fast_path_ready(db_url)
        await pub.publish_readings([press("h01", 2)])
        await eventually(
            lambda: scalar(db_url, "SELECT evidence_count = 2 FROM alerts WHERE id = %s", alert_id),
            what="the second press as evidence",
        )
        await asyncio.sleep(1.0)
    assert [r.json()["alert"]["id"] for r in http_receiver.requests] == [alert_id]
