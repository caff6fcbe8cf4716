"""The generated password file and ACL against a real Mosquitto: devices stay in their lane."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from devices.mqtt import PublishError
from devices.provisioning import (
    Credential,
    ServiceAccount,
    acl_file,
    hash_password,
    password_file,
)
from devices.registry import DeviceRecord
from devstack.broker import find_mosquitto
from devstack.ports import free_port
from ingest import device_store
from ingest.store import load_registry
from runtime.settings import Settings
from simulators.publisher import MqttPublisher
from tests.integration.helpers import eventually, running_service, scalar

pytestmark = pytest.mark.integration

SERVICE = "eldercare-ingest"
PASSWORDS = {"ha-pir": "pw-a", "ha-door": "pw-a-door", "hb-pir": "pw-b", SERVICE: "pw-svc"}
DEVICES = [
    DeviceRecord("ha-pir", "ha", "pir_motion"),
    DeviceRecord("ha-door", "ha", "door_contact"),
    DeviceRecord("hb-pir", "hb", "pir_motion"),
]


class Broker:
    """A Mosquitto started by this test with the generated files; anonymous refused."""

    def __init__(self, directory: Path, devices: list[DeviceRecord], passwords: dict[str, str]):
        self.port = free_port()
        creds = [Credential(d.device_id, hash_password(passwords[d.device_id])) for d in devices]
        services = [ServiceAccount(SERVICE, hash_password(passwords[SERVICE]))]
        (directory / "passwd").write_text(password_file([*creds, *services]))
        (directory / "acl").write_text(acl_file(devices, services))
        (directory / "mosquitto.conf").write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous false\n"
            f"password_file {directory / 'passwd'}\nacl_file {directory / 'acl'}\n"
            f"persistence false\nsys_interval 1\nlog_dest file {directory / 'log'}\n"
            + ("user root\n" if __import__("os").geteuid() == 0 else "")
        )
        mosquitto = find_mosquitto()
        assert mosquitto is not None, "mosquitto is not installed (apt-get install mosquitto)"
        self.proc = subprocess.Popen([mosquitto, "-c", str(directory / "mosquitto.conf")])
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                break
            assert time.monotonic() < deadline, "mosquitto did not start"
            time.sleep(0.05)

    def url(self, user: str | None = None, password: str | None = None) -> str:
        auth = f"{user}:{password or PASSWORDS[user]}@" if user else ""
        return f"mqtt://{auth}127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path, DEVICES, PASSWORDS)
    try:
        yield b
    finally:
        b.stop()


class Listener:
    """A paho client that subscribes and records every message it gets."""

    def __init__(
        self, broker: Broker, user: str, filters: list[str], protocol: MQTTProtocolVersion
    ) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"l-{user}", protocol=protocol
        )
        self.client.username_pw_set(user, PASSWORDS[user])
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.client.subscribe([(f, 1) for f in filters])
        assert self.subscribed.wait(5)

    def _on_message(self, client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        with self.lock:
            self.got.append((msg.topic, bytes(msg.payload)))

    def topics(self) -> set[str]:
        with self.lock:
            return {t for t, _ in self.got}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def publish(broker: Broker, user: str, topic: str, protocol: str = "3.1.1") -> None:
    async with MqttPublisher(broker.url(user), f"p-{user}", protocol) as pub:  # type: ignore[arg-type]
        await pub.publish(topic, b'{"seq": 1, "ts": 1, "value": 1}', qos=1)


async def test_anonymous_and_wrong_passwords_are_refused(broker: Broker) -> None:
    for url in (broker.url(), broker.url("ha-pir", "wrong"), broker.url("nobody", "x")):
        with pytest.raises(RuntimeError, match="refused"):
            async with MqttPublisher(url, "intruder", "3.1.1", connect_timeout_s=5):
                pass


async def test_a_device_publishes_and_reads_only_its_own_topics(broker: Broker) -> None:
    svc = Listener(
        broker,
        SERVICE,
        ["eldercare/+/+/readings", "eldercare/+/+/status"],
        MQTTProtocolVersion.MQTTv311,
    )
    spy = Listener(
        broker,
        "ha-pir",
        ["eldercare/#", "eldercare/+/+/readings", "eldercare/hb/hb-pir/commands", "$SYS/#",
         "#", "eldercare/ha/ha-pir/commands"],
        MQTTProtocolVersion.MQTTv311,
    )  # fmt: skip
    try:
        forbidden = [
            "eldercare/hb/hb-pir/readings",  # another home's device
            "eldercare/ha/hb-pir/readings",  # another home's device under our home
            "eldercare/ha/ha-door/readings",  # another device of the same home
            "eldercare/hb/ha-pir/readings",  # itself, under another home
            "eldercare/ha/ha-pir/commands",  # commands come from the service only
            "eldercare/hb/hb-pir/status",
        ]
        for topic in forbidden:  # MQTT 3.1.1: the broker acks and drops
            await publish(broker, "ha-pir", topic)
        with pytest.raises(PublishError, match="authori"):  # MQTT 5 says so in the PUBACK
            await publish(broker, "ha-pir", "eldercare/hb/hb-pir/readings", "5")
        # Traffic the spy must not see: another home's readings and commands.
        await publish(broker, "hb-pir", "eldercare/hb/hb-pir/readings")
        await publish(broker, SERVICE, "eldercare/hb/hb-pir/commands")
        # What is allowed, published last: it arrives, so the forbidden had their chance.
        await publish(broker, "ha-pir", "eldercare/ha/ha-pir/readings")
        await publish(broker, "ha-pir", "eldercare/ha/ha-pir/status")
        await publish(broker, SERVICE, "eldercare/ha/ha-pir/commands")
        deadline = time.monotonic() + 10
        while "eldercare/ha/ha-pir/commands" not in spy.topics() or len(svc.topics()) < 3:
            assert time.monotonic() < deadline, (spy.topics(), svc.topics())
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.5)  # $SYS is published every second: give it a chance
        assert svc.topics() == {
            "eldercare/ha/ha-pir/readings",
            "eldercare/ha/ha-pir/status",
            "eldercare/hb/hb-pir/readings",
        }
        assert spy.topics() == {"eldercare/ha/ha-pir/commands"}
    finally:
        svc.close()
        spy.close()


async def test_ingest_stores_only_what_the_acl_lets_through(tmp_path: Path, db_url: str) -> None:
    """With the service's own login, ingest stores a device's own readings and nothing it
    tried to publish as another home's device."""
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        registry = await load_registry(conn)
        mine, theirs = registry.get("h01-pir-living"), registry.get("h02-pir-living")
        assert mine is not None
        assert theirs is not None
        async with conn.transaction():
            await device_store.set_credential(
                conn, mine.device_id, Credential(mine.device_id, hash_password("pw-h01"))
            )
    passwords = {**PASSWORDS, mine.device_id: "pw-h01", theirs.device_id: "pw-h02"}
    b = Broker(tmp_path, [mine, theirs], passwords)
    try:
        settings = Settings(
            database={"url": db_url, "pool_max": 5},
            mqtt={"url": b.url(SERVICE), "protocol": "5"},
            ingest={"batch_max_delay_ms": 10, "registry_refresh_s": 0.5},
            alerts={"poll_s": 0.1},
            gateway={"port": 0},
        )
        now = datetime.now(UTC).timestamp()
        async with running_service(settings, ("ingest",)):
            url = f"mqtt://{mine.device_id}:pw-h01@127.0.0.1:{b.port}"
            async with MqttPublisher(url, "h01-dev", "3.1.1") as pub:
                for seq, topic in enumerate(
                    (
                        "eldercare/h02/h02-pir-living/readings",
                        "eldercare/h02/h01-pir-living/readings",
                    )
                ):
                    payload = b'{"seq": %d, "ts": %f, "value": 1}' % (seq + 100, now)
                    await pub.publish(topic, payload)
                await pub.publish(
                    "eldercare/h01/h01-pir-living/readings",
                    b'{"seq": 7, "ts": %f, "value": 1}' % now,
                )
            await eventually(
                lambda: scalar(db_url, "SELECT count(*) FROM readings WHERE seq = 7"),
                what="the device's own reading",
            )
            assert await scalar(db_url, "SELECT count(*) FROM readings WHERE seq >= 100") == 0
            assert await scalar(db_url, "SELECT count(*) FROM dead_letters") == 0
    finally:
        b.stop()
