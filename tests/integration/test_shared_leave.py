"""A shared subscription's members leave it at a clean stop only while another member is
alive (ingest/store.py `may_leave_group`), on real Mosquitto and PostgreSQL: the one that
stops beside a running worker hands its share over at once, and the last one keeps its
subscription so that the broker queues what is published until a worker is back. (When every
member unsubscribed, Mosquitto dropped what the devices published to the group meanwhile:
acknowledged readings, lost; the SOS benchmark lost 6 198 of 200 000 that way between two
phases.)"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta

import pytest

from devices.payload import Reading
from devstack.broker import EmbeddedBroker
from runtime.service import Running
from runtime.settings import Settings
from simulators.publisher import MqttPublisher
from tests.integration.helpers import eventually, make_settings, running_service, scalar

pytestmark = pytest.mark.integration


def worker(db_url: str, broker: EmbeddedBroker, name: str) -> Settings:
    return make_settings(
        db_url,
        broker,
        ingest={
            "shared_group": "leave",
            "client_id": name,
            "heartbeat_s": 0.2,
            "batch_max_delay_ms": 10,
            "registry_refresh_s": 0.5,
        },
    )


class Device:
    """h01's thermometer, publishing readings with seqs one after the other."""

    def __init__(self, broker: EmbeddedBroker) -> None:
        self._broker = broker
        self.sent = 0

    async def publish(self, n: int) -> None:
        start = datetime.now(UTC) - timedelta(minutes=10)
        seqs = range(self.sent + 1, self.sent + n + 1)
        at = [start + timedelta(seconds=seq) for seq in seqs]
        readings = [
            Reading("h01", "h01-temp", "temperature", 1, seq, ts, "temperature", 21.0)
            for seq, ts in zip(seqs, at, strict=True)
        ]
        async with MqttPublisher(self._broker.url, "dev-h01-temp") as pub:
            await pub.publish_readings(readings)  # each one acknowledged by the broker
        self.sent += n


async def stored(db_url: str, n: int, what: str) -> None:
    await eventually(lambda: scalar(db_url, "SELECT count(*) = %s FROM readings", n), what=what)


async def left(db_url: str, name: str) -> bool:
    return bool(
        await scalar(
            db_url, "SELECT left_at IS NOT NULL FROM ingest_heartbeats WHERE worker = %s", name
        )
    )


async def test_the_last_member_keeps_the_group_and_nothing_is_lost(
    db_url: str, mosquitto: EmbeddedBroker
) -> None:
    device = Device(mosquitto)
    async with running_service(worker(db_url, mosquitto, "ingest-a"), ("ingest",)):
        async with running_service(worker(db_url, mosquitto, "ingest-b"), ("ingest",)):
            await device.publish(20)
            await stored(db_url, 20, "the first 20 stored by the two workers")
        assert await left(db_url, "ingest-b")
        # b left beside a live a: a takes the whole stream now, nothing waits in b's session.
        await device.publish(20)
        await stored(db_url, 40, "the next 20 stored by a alone while b is down")
    assert await left(db_url, "ingest-a")
    # a was the last member and kept its subscription: the broker queues for it.
    await device.publish(20)
    assert await scalar(db_url, "SELECT count(*) FROM readings") == 40
    async with running_service(worker(db_url, mosquitto, "ingest-a"), ("ingest",)):
        await stored(db_url, 60, "the 20 published while no worker ran, stored once a is back")
        assert not await left(db_url, "ingest-a")  # its heartbeat says it is back


async def test_two_members_stopping_together_leave_one_subscribed(
    db_url: str, mosquitto: EmbeddedBroker
) -> None:
    device = Device(mosquitto)
    services: list[AbstractAsyncContextManager[Running]] = [
        running_service(worker(db_url, mosquitto, name), ("ingest",))
        for name in ("ingest-c", "ingest-d")
    ]
    for service in services:
        await service.__aenter__()
    await device.publish(10)
    await stored(db_url, 10, "10 stored by the two workers")
    # Both stop at the same moment: the leave decisions are serialised in the database, so
    # the second one sees the first one gone and stays in the group.
    await asyncio.gather(*(s.__aexit__(None, None, None) for s in services))
    await device.publish(30)
    async with (
        running_service(worker(db_url, mosquitto, "ingest-c"), ("ingest",)),
        running_service(worker(db_url, mosquitto, "ingest-d"), ("ingest",)),
    ):
        await stored(db_url, 40, "the 30 published while both were down, stored once back")
