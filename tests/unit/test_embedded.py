"""Tests of the embedded PostgreSQL and MQTT brokers, and of the SMTP/HTTP fixtures."""

from __future__ import annotations

import smtplib
import threading
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devstack.broker import EmbeddedBroker
from devstack.postgres import EmbeddedPostgres

if TYPE_CHECKING:
    from tests.conftest import HttpReceiver, SmtpServer

# --------------------------------------------------------------------------- helpers


class Subscriber:
    """A paho client that collects messages of one topic filter (QoS 1)."""

    def __init__(self, broker: EmbeddedBroker, client_id: str, topic: str) -> None:
        self.protocol = mqtt.MQTTv5 if broker.protocol == "5" else mqtt.MQTTv311
        kwargs: dict[str, Any] = {} if self.protocol == mqtt.MQTTv5 else {"clean_session": False}
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=self.protocol, **kwargs
        )
        self.topic = topic
        self.broker = broker
        self.received: list[tuple[str, bytes, int]] = []
        self.changed = threading.Condition()
        self.subscribed = threading.Event()
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_connect = self._on_connect

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe(self.topic, qos=1)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.changed:
            self.received.append((msg.topic, bytes(msg.payload), msg.qos))
            self.changed.notify_all()

    def connect(self) -> None:
        self.subscribed.clear()
        if self.protocol == mqtt.MQTTv5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 3600  # persistent session
            self.client.connect("127.0.0.1", self.broker.port, clean_start=False, properties=props)
        else:
            self.client.connect("127.0.0.1", self.broker.port)
        self.client.loop_start()
        assert self.subscribed.wait(10), "no SUBACK"

    def disconnect(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def wait_for(self, count: int, timeout: float = 10) -> list[tuple[str, bytes, int]]:
        with self.changed:
            self.changed.wait_for(lambda: len(self.received) >= count, timeout)
            return list(self.received)


def publish(broker: EmbeddedBroker, topic: str, payloads: list[bytes]) -> None:
    """Publish at QoS 1 and wait for every PUBACK."""
    protocol = mqtt.MQTTv5 if broker.protocol == "5" else mqtt.MQTTv311
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="pub", protocol=protocol)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        for payload in payloads:
            client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


# --------------------------------------------------------------------------- PostgreSQL


@pytest.mark.integration
def test_postgres_keeps_data_across_stop_and_kill(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path / "pg" / "data")
    url = pg.start()
    try:
        assert url.startswith("postgresql://eldercare:")
        assert url.endswith("/eldercare")
        with psycopg.connect(url) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
            conn.execute("create table t (id int primary key, name text)")
            conn.execute("insert into t values (1, 'ä')")

        pg.stop()
        pg.stop()  # idempotent
        assert pg.start() == url  # same password, same port
        with psycopg.connect(url) as conn:
            assert conn.execute("select name from t").fetchall() == [("ä",)]

        pg.kill()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url, connect_timeout=2)
        assert pg.start() == url  # crash recovery
        with psycopg.connect(url) as conn:
            assert conn.execute("select count(*) from t").fetchone() == (1,)
            conn.execute("insert into t values (2, 'b')")

        # a new object on the same dir resumes (password file and port file are reused)
        pg.stop()
        with (
            EmbeddedPostgres(tmp_path / "pg" / "data") as again,
            psycopg.connect(again.url) as conn,
        ):
            assert again.url == url
            assert conn.execute("select count(*) from t").fetchone() == (2,)
    finally:
        pg.stop()


@pytest.mark.integration
def test_pg_server_fixture(pg_server: EmbeddedPostgres) -> None:
    with psycopg.connect(pg_server.url) as conn:
        row = conn.execute("select current_user, current_database()").fetchone()
    assert row == ("eldercare", "eldercare")


# --------------------------------------------------------------------------- brokers


@pytest.mark.integration
def test_mosquitto_qos1_round_trip(mosquitto: EmbeddedBroker) -> None:
    assert (mosquitto.kind, mosquitto.protocol) == ("mosquitto", "5")
    assert mosquitto.url == f"mqtt://127.0.0.1:{mosquitto.port}"
    sub = Subscriber(mosquitto, "sub-rt", "eldercare/#")
    sub.connect()
    try:
        publish(mosquitto, "eldercare/h1/d1/readings", [b"hello"])
        assert sub.wait_for(1) == [("eldercare/h1/d1/readings", b"hello", 1)]
    finally:
        sub.disconnect()


@pytest.mark.integration
def test_mosquitto_persistent_session_survives_graceful_restart(mosquitto: EmbeddedBroker) -> None:
    sub = Subscriber(mosquitto, "ingest-test", "eldercare/#")
    sub.connect()
    sub.disconnect()
    payloads = [f"m{i}".encode() for i in range(20)]
    publish(mosquitto, "eldercare/h1/d1/readings", payloads)  # subscriber offline: queued

    port = mosquitto.port
    mosquitto.stop()
    mosquitto.start()
    assert mosquitto.port == port

    sub.connect()
    try:
        got = sub.wait_for(len(payloads))
        assert [p for _, p, _ in got] == payloads
    finally:
        sub.disconnect()


@pytest.mark.integration
def test_mosquitto_bad_config_gives_clear_error(tmp_path: Path) -> None:
    broker = EmbeddedBroker(tmp_path, prefer="mosquitto", extra_config="no_such_option 1\n")
    if broker.kind != "mosquitto":
        pytest.fail("mosquitto is not installed: `apt-get install -y mosquitto`")
    with pytest.raises(RuntimeError, match="no_such_option"):
        broker.start()


@pytest.mark.integration
def test_amqtt_fallback_round_trip(tmp_path: Path) -> None:
    with EmbeddedBroker(tmp_path, prefer="amqtt") as broker:
        assert (broker.kind, broker.protocol) == ("amqtt", "3.1.1")
        sub = Subscriber(broker, "sub-amqtt", "eldercare/#")
        sub.connect()
        try:
            publish(broker, "eldercare/h1/d1/readings", [b"a", b"b"])
            got = sub.wait_for(2)
            assert [(t, p) for t, p, _ in got] == [
                ("eldercare/h1/d1/readings", b"a"),
                ("eldercare/h1/d1/readings", b"b"),
            ]
            assert {q for _, _, q in got} == {1}
            # persistent session (clean_session=False): QoS 1 queued while offline
            sub.disconnect()
            publish(broker, "eldercare/h1/d1/readings", [b"c"])
            sub.connect()
            assert [p for _, p, _ in sub.wait_for(3)] == [b"a", b"b", b"c"]
        finally:
            sub.disconnect()
        broker.kill()
        assert broker.pid is None
        broker.start()  # restarts on the same port
        publish(broker, "x/y", [b"again"])


# --------------------------------------------------------------------------- SMTP / HTTP fixtures


def test_smtp_server_fixture(smtp_server: SmtpServer) -> None:
    msg = EmailMessage()
    msg["From"] = "alerts@eldercare.test"
    msg["To"] = "family@example.test"
    msg["Subject"] = "SOS – Mrs Wang"
    msg.set_content("Pendant pressed at 03:12.")
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=10) as smtp:
        smtp.send_message(msg, to_addrs=["family@example.test", "worker@example.test"])
    [mail] = smtp_server.messages
    assert mail.subject == "SOS – Mrs Wang"
    assert mail.text.strip() == "Pendant pressed at 03:12."
    assert mail.mail_from == "alerts@eldercare.test"
    assert mail.rcpt_tos == ["family@example.test", "worker@example.test"]


def test_http_receiver_fixture(http_receiver: HttpReceiver) -> None:
    response = httpx.post(
        f"{http_receiver.url}/hook", json={"alert": 1}, headers={"X-Signature": "abc"}
    )
    assert response.status_code == 200
    http_receiver.status = 500
    assert httpx.post(f"{http_receiver.url}/hook", content=b"x").status_code == 500
    first, second = http_receiver.requests
    assert first.path == "/hook"
    assert first.headers["x-signature"] == "abc"
    assert first.json() == {"alert": 1}
    assert second.body == b"x"
