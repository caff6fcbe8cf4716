"""One receive per reading (issue 18): ingest hands its decoded readings to the full-stream
detection through the database (ingest/feed.py, alerts/feed_reader.py), on real Mosquitto
and PostgreSQL. The detection's own subscription carries device status only; a feed row
outlives a detection that is not running and is judged when it runs; with the feed off, the
detection subscribes to the readings itself, as before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from devices.payload import Reading
from devstack.broker import EmbeddedBroker
from runtime.settings import Settings
from simulators.publisher import MqttPublisher
from tests.integration.helpers import eventually, make_settings, running_service, scalar

HEAT = "SELECT string_agg(home_id, ',' ORDER BY home_id) FROM alerts WHERE kind = 'indoor_heat'"


async def publish_heat(url: str, home: str = "h01") -> None:
    """38 °C for two hours and more: an `indoor_heat` once judged."""
    now = datetime.now(UTC)
    async with MqttPublisher(url, "feed-test") as pub:
        for seq, ago in enumerate((130, 90, 60, 30, 0), start=1):
            at = now - timedelta(minutes=ago)
            await pub.publish_readings(
                [Reading(home, f"{home}-temp", "temperature", 1, seq, at, "temperature", 38.0)]
            )


async def test_detection_judges_what_ingest_received_once(
    db_url: str, mosquitto: EmbeddedBroker
) -> None:
    settings = make_settings(db_url, mosquitto)
    assert settings.ingest.feed_detection  # the default
    async with running_service(settings, ("ingest", "alerts")) as svc:
        stream = svc.subscribers["alerts"]
        assert stream._filters == ["eldercare/+/+/status"]  # no readings of its own
        await publish_heat(mosquitto.url)
        assert await eventually(lambda: scalar(db_url, HEAT), what="indoor_heat") == "h01"
        await eventually(
            lambda: scalar(db_url, "SELECT count(*) = 0 FROM detection_feed"),
            what="the feed emptied once judged",
        )
        assert await scalar(db_url, "SELECT count(*) FROM readings WHERE home_id = 'h01'") == 5
        assert stream.messages.qsize() == 0


async def test_a_feed_row_waits_for_a_detection_that_is_not_running(
    db_url: str, mosquitto: EmbeddedBroker
) -> None:
    settings = make_settings(db_url, mosquitto)
    async with running_service(settings, ("ingest",)):
        await publish_heat(mosquitto.url)
        await eventually(
            lambda: scalar(db_url, "SELECT coalesce(sum(n), 0) = 5 FROM detection_feed"),
            what="the five readings waiting in the feed",
        )
    assert await scalar(db_url, HEAT) is None  # stored, not judged: no detection ran
    async with running_service(settings, ("alerts",)):
        assert await eventually(lambda: scalar(db_url, HEAT), what="indoor_heat") == "h01"
        await eventually(
            lambda: scalar(db_url, "SELECT count(*) = 0 FROM detection_feed"),
            what="the feed emptied",
        )
    # Judged once: a second start finds nothing to raise again.
    async with running_service(settings, ("ingest", "alerts")):
        await publish_heat(mosquitto.url, "h02")

        async def both() -> bool:
            return bool(await scalar(db_url, HEAT) == "h01,h02")

        await eventually(both, what="h02's heat beside h01's")
    assert await scalar(db_url, "SELECT count(*) FROM alerts WHERE kind = 'indoor_heat'") == 2


async def test_with_the_feed_off_the_detection_subscribes_to_the_readings(
    db_url: str, mosquitto: EmbeddedBroker
) -> None:
    base = make_settings(db_url, mosquitto)
    settings = Settings(
        **{
            **base.model_dump(),
            "ingest": {**base.ingest.model_dump(), "feed_detection": False},
        }
    )
    async with running_service(settings, ("ingest", "alerts")) as svc:
        assert "eldercare/+/+/readings" in svc.subscribers["alerts"]._filters
        await publish_heat(mosquitto.url)
        assert await eventually(lambda: scalar(db_url, HEAT), what="indoor_heat") == "h01"
        assert await scalar(db_url, "SELECT count(*) FROM detection_feed") == 0
