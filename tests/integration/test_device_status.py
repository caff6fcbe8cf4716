"""Devices' status topics on real parts: a retained "offline" (a last will the broker kept
while the service was down) or a last will sent while it runs raises `device_silent` at once,
and the device watch is seeded from the registry at start."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from alerts.detect.technical import DeviceWatch
from devices import status, topics
from devices.mqtt import BrokerAddress
from devstack.broker import EmbeddedBroker
from simulators.publisher import MqttPublisher
from tests.integration.helpers import eventually, make_settings, running_service, scalar

pytestmark = pytest.mark.integration


async def open_alerts(db_url: str, home: str, kind: str) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cur = await conn.execute(
            "SELECT a.id, e.device_id, a.category FROM alerts a"
            " JOIN alert_evidence e ON e.alert_id = a.id"
            " WHERE a.home_id = %s AND a.kind = %s AND a.status = 'open'",
            (home, kind),
        )
        return await cur.fetchall()


async def test_a_retained_offline_status_raises_device_silent_at_start(
    db_url: str, mosquitto: EmbeddedBroker
) -> None:
    topic = topics.topic("h01", "h01-temp", topics.Channel.STATUS)
    async with MqttPublisher(mosquitto.url, "dev-h01-temp") as pub:
        # The device went away while the alerts stage was down: the broker kept its will.
        await pub.publish(topic, status.last_will(), retain=True)
        # Another home's device is online: its retained status raises nothing.
        other = topics.topic("h02", "h02-temp", topics.Channel.STATUS)
        await pub.publish(other, status.online(1, datetime.now(UTC)), retain=True)
        # A status on a topic naming the wrong home is not believed.
        await pub.publish(
            topics.topic("h03", "h02-pir-living", topics.Channel.STATUS),
            status.last_will(),
            retain=True,
        )
    settings = make_settings(db_url, mosquitto)
    async with running_service(settings, ("alerts",)) as svc:
        rows = await eventually(
            lambda: open_alerts(db_url, "h01", "device_silent"), what="device_silent for h01"
        )
        assert [(device, category) for _, device, category in rows] == [("h01-temp", "technical")]
        watch = svc.detectors.find(DeviceWatch)
        assert isinstance(watch, DeviceWatch)
        assert watch.device_dead("h01-temp")
        # Seeded from the registry: every registered device is watched from its install
        # time, heard or not.
        installed = await scalar(
            db_url, "SELECT extract(epoch FROM created_at) FROM devices WHERE id = 'h05-bed'"
        )
        assert watch.known("h05-bed")
        idx = watch._index["h05-bed"]
        assert watch.last_seen[idx] == pytest.approx(float(installed))
        assert not watch.device_dead("h02-temp")
        await asyncio.sleep(0.5)  # every retained status has been handled by now
        assert await open_alerts(db_url, "h02", "device_silent") == []
        assert await open_alerts(db_url, "h03", "device_silent") == []
        assert await scalar(db_url, "SELECT count(*) FROM alerts") == 1


async def test_a_last_will_sent_while_running_raises_device_silent(
    db_url: str, mosquitto: EmbeddedBroker
) -> None:
    settings = make_settings(db_url, mosquitto)
    topic = topics.topic("h04", "h04-pir-kitchen", topics.Channel.STATUS)
    async with running_service(settings, ("alerts",)):
        address = BrokerAddress.parse(mosquitto.url)
        device = Client(
            CallbackAPIVersion.VERSION2,
            client_id="dev-h04-pir-kitchen",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        device.will_set(topic, status.last_will(), qos=1, retain=True)
        device.connect(address.host, address.port, keepalive=30)
        device.loop_start()
        try:
            device.publish(
                topic, status.online(1, datetime.now(UTC)), qos=1, retain=True
            ).wait_for_publish(5)
            await asyncio.sleep(0.5)
            assert await open_alerts(db_url, "h04", "device_silent") == [], "online: alive"
        finally:
            device.loop_stop()
            sock = device.socket()
            assert sock is not None
            sock.close()  # the link drops without a DISCONNECT: the broker sends the will
        rows = await eventually(
            lambda: open_alerts(db_url, "h04", "device_silent"), what="device_silent for h04"
        )
        assert [device for _, device, _ in rows] == ["h04-pir-kitchen"]
