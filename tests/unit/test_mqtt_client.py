"""The one MQTT client's rules (devices/mqtt.py): URLs, credentials, TLS settings, the
configured paho client and its reconnect backoff. The real-broker side is in
tests/integration/test_mqtt_tls.py."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import ValidationError

from devices.mqtt import (
    BrokerAddress,
    ConnectError,
    MqttClient,
    MqttSettings,
    build_client,
    tls_context,
)
from ingest.mqtt import subscriber_client
from runtime.settings import load_settings
from tests.pki import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


# --------------------------------------------------------------------------- URLs


@pytest.mark.parametrize(
    ("url", "host", "port", "tls"),
    [
        ("mqtt://broker.example", "broker.example", 1883, False),
        ("tcp://10.0.0.5", "10.0.0.5", 1883, False),
        ("mqtts://broker.example", "broker.example", 8883, True),
        ("mqtts://broker.example:9883", "broker.example", 9883, True),
        ("mqtt://broker.example:1884", "broker.example", 1884, False),
        ("mqtts://[::1]", "::1", 8883, True),
    ],
)
def test_scheme_sets_tls_and_the_default_port(url: str, host: str, port: int, tls: bool) -> None:
    address = BrokerAddress.parse(url)
    assert (address.host, address.port, address.tls) == (host, port, tls)
    assert (address.username, address.password) == (None, None)


def test_credentials_are_percent_decoded() -> None:
    address = BrokerAddress.parse("mqtts://ingest%40site:p%40ss%2Fw%3Ard%25@broker:8884")
    assert address.username == "ingest@site"
    assert address.password == "p@ss/w:rd%"
    assert (address.host, address.port) == ("broker", 8884)
    settings = MqttSettings(url="mqtts://ingest%40site:p%40ss%2Fw%3Ard%25@broker:8884")
    assert settings.address == address


def test_a_user_without_password() -> None:
    address = BrokerAddress.parse("mqtt://device-7@broker")
    assert (address.username, address.password) == ("device-7", None)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://ingest:hunter2@broker:1883", "got scheme 'http'"),
        ("ws://ingest:hunter2@broker/mqtt", "got scheme 'ws'"),
        ("broker:1883", "got scheme 'broker'"),
        ("", "got scheme ''"),
        ("mqtts://ingest:hunter2@:8883", "has no host"),
        ("mqtt://", "has no host"),
        ("mqtt://ingest:hunter2@broker:99999", "bad port"),
        # an unencoded '/' in the password ends the host part early: the port is 'hun'
        ("mqtt://ingest:hun/ter2@broker:1883", "bad port"),
    ],
)
def test_bad_urls_are_explained_without_the_password(url: str, says: str) -> None:
    with pytest.raises(ValueError, match="broker URL") as info:
        BrokerAddress.parse(url)
    message = str(info.value)
    assert says in message
    assert "mqtt://host:1883" in message
    assert "mqtts://host:8883" in message
    assert "hunter2" not in message
    assert "ter2" not in message
    with pytest.raises(ValidationError) as settings_error:
        MqttSettings(url=url)
    assert "hunter2" not in str(settings_error.value)
    assert says in str(settings_error.value)


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("mqtt://ingest:hunter2@broker.example:1884", "mqtt://ingest@broker.example:1884"),
        ("mqtts://ingest%40site:p%40ss@broker", "mqtts://ingest%40site@broker:8883"),
        ("tcp://broker", "mqtt://broker:1883"),
        ("mqtts://u:hunter2@[::1]:8883", "mqtts://u@[::1]:8883"),
    ],
)
def test_redacted_form_has_no_password(url: str, redacted: str) -> None:
    assert BrokerAddress.parse(url).redacted() == redacted


def test_a_cluster_url_names_every_node_with_one_scheme_and_credentials() -> None:
    address = BrokerAddress.parse("mqtts://ingest:p%40ss%2C@n1:8884,[::1],n3")
    assert address.nodes == (("n1", 8884), ("::1", 8883), ("n3", 8883))
    assert (address.host, address.port, address.tls) == ("n1", 8884, True)
    assert (address.username, address.password) == ("ingest", "p@ss,")
    assert address.redacted() == "mqtts://ingest@n1:8884,[::1]:8883,n3:8883"
    assert BrokerAddress.parse("mqtt://broker").nodes == (("broker", 1883),)
    for bad, says in (("mqtt://u:hunter2@n1,,n3", "no host"), ("mqtt://n1,n2:x", "bad port")):
        with pytest.raises(ValueError, match=says) as info:
            BrokerAddress.parse(bad)
        assert "hunter2" not in str(info.value)


def test_each_reconnect_goes_to_the_next_node() -> None:
    closed = []
    for _ in range(3):  # ports nothing listens on: every attempt fails at once
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed.append(s.getsockname()[1])
    url = "mqtt://" + ",".join(f"127.0.0.1:{port}" for port in closed)
    client = build_client(MqttSettings(url=url), "failover", MqttClient)
    client.connect_async("127.0.0.1", closed[0])
    tried = []
    for _ in range(4):
        with pytest.raises(ConnectionRefusedError):
            client.reconnect()
        tried.append(client.port)
    assert tried == [closed[0], closed[1], closed[2], closed[0]]
    assert isinstance(client.last_error, ConnectionRefusedError)
    single = build_client(MqttSettings(url=f"mqtt://127.0.0.1:{closed[1]}"), "one", MqttClient)
    single.connect_async("127.0.0.1", closed[1])
    for _ in range(2):
        with pytest.raises(ConnectionRefusedError):
            single.reconnect()
        assert single.port == closed[1]


# --------------------------------------------------------------------------- TLS settings


def test_tls_options_need_mqtts(pki: Pki) -> None:
    with pytest.raises(ValidationError, match="need an mqtts:// broker URL"):
        MqttSettings(url="mqtt://broker", tls_ca_file=pki.ca)
    with pytest.raises(ValidationError, match="need an mqtts:// broker URL"):
        MqttSettings(url="mqtt://broker", tls_check_hostname=False)


def test_a_key_needs_its_certificate(pki: Pki) -> None:
    with pytest.raises(ValidationError, match="tls_key_file needs tls_cert_file"):
        MqttSettings(url="mqtts://broker", tls_key_file=pki.client_key)


def test_missing_or_unreadable_tls_files_stop_the_settings(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="tls_ca_file"):
        MqttSettings(url="mqtts://broker", tls_ca_file=tmp_path / "nope.pem")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(ValidationError, match=r"garbage\.pem"):
        MqttSettings(url="mqtts://broker", tls_ca_file=garbage)
    with pytest.raises(ValidationError, match="is not a PEM certificate and its key"):
        # the broker's key does not belong to the client's certificate
        MqttSettings(
            url="mqtts://broker", tls_cert_file=pki.client_cert, tls_key_file=pki.server_key
        )


def test_tls_context_checks_the_broker_unless_told_otherwise(pki: Pki) -> None:
    default = tls_context(MqttSettings(url="mqtts://broker"))
    assert default.verify_mode == ssl.CERT_REQUIRED
    assert default.check_hostname
    mine = tls_context(
        MqttSettings(
            url="mqtts://broker",
            tls_ca_file=pki.ca,
            tls_cert_file=pki.client_cert,
            tls_key_file=pki.client_key,
        )
    )
    assert mine.check_hostname
    assert [c["subject"] for c in mine.get_ca_certs()] == [
        ((("commonName", "eldercare test CA"),),)
    ]
    lax = tls_context(
        MqttSettings(url="mqtts://broker", tls_ca_file=pki.ca, tls_check_hostname=False)
    )
    assert not lax.check_hostname
    assert lax.verify_mode == ssl.CERT_REQUIRED, "only the name check is off, not the chain"


def test_tls_settings_from_the_environment(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELDERCARE_MQTT__URL", "mqtts://ingest:p%40ss@broker.example")
    monkeypatch.setenv("ELDERCARE_MQTT__TLS_CA_FILE", str(pki.ca))
    monkeypatch.setenv("ELDERCARE_MQTT__TLS_CERT_FILE", str(pki.client_cert))
    monkeypatch.setenv("ELDERCARE_MQTT__TLS_KEY_FILE", str(pki.client_key))
    monkeypatch.setenv("ELDERCARE_MQTT__TLS_CHECK_HOSTNAME", "false")
    mqtt = load_settings().mqtt
    assert (mqtt.tls_ca_file, mqtt.tls_cert_file, mqtt.tls_key_file) == (
        pki.ca,
        pki.client_cert,
        pki.client_key,
    )
    assert not mqtt.tls_check_hostname
    assert mqtt.address.password == "p@ss"


# --------------------------------------------------------------------------- the paho client


def test_the_client_gets_credentials_tls_and_its_session(pki: Pki) -> None:
    settings = MqttSettings(
        url="mqtts://ingest%40site:p%40ss%2Fw@broker", protocol="3.1.1", tls_ca_file=pki.ca
    )
    client = build_client(settings, "c1", MqttClient, persistent=True)
    assert client.username == "ingest@site"
    assert client.password == "p@ss/w"
    assert client._ssl, "mqtts:// turns TLS on"
    assert client._clean_session is False, "3.1.1 keeps a persistent session when asked"
    plain = build_client(MqttSettings(url="mqtt://broker", protocol="3.1.1"), "c2", MqttClient)
    assert not plain._ssl
    assert plain.username is None
    assert plain._clean_session is True
    sub = subscriber_client(MqttSettings(url="mqtts://broker", protocol="3.1.1"), "ingest")
    assert sub._ssl
    assert sub._clean_session is False
    assert sub._manual_ack


def test_sockets_get_tcp_nodelay() -> None:
    client = build_client(MqttSettings(), "c", MqttClient)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        assert client.on_socket_open is not None
        client.on_socket_open(client, None, sock)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


def _connack(name: str) -> ReasonCode:
    return ReasonCode(PacketTypes.CONNACK, name)


def _connected(client: MqttClient, reason: str) -> None:
    """What paho's network thread does on a CONNACK (its callback types are a union)."""
    callback: Any = client.on_connect
    callback(client, None, paho.ConnectFlags(False), _connack(reason), None)


def _disconnected(client: MqttClient) -> None:
    callback: Any = client.on_disconnect
    callback(client, None, paho.DisconnectFlags(False), _connack("Unspecified error"), None)


def _failed(client: MqttClient) -> None:
    callback: Any = client.on_connect_fail
    callback(client, None)


def test_reconnects_back_off_with_jitter_and_reset_on_connect() -> None:
    seen: list[tuple[str, float]] = []
    client = build_client(
        MqttSettings(),
        "c",
        MqttClient,
        on_connect=lambda c, flags, reason: seen.append(("connect", 0.0)),
        on_disconnect=lambda c, reason, delay: seen.append(("disconnect", delay)),
        on_connect_fail=lambda c, error, delay: seen.append(("fail", delay)),
    )
    assert client.attempt == 1, "paho's own 1-120 s doubling is replaced before connecting"
    assert client.on_connect_fail is not None
    assert client.on_connect is not None
    assert client.on_disconnect is not None
    for _ in range(12):
        _failed(client)
    assert client.attempt == 13
    delays = [delay for what, delay in seen if what == "fail"]
    for attempt, delay in enumerate(delays, start=2):  # exponential ceiling, capped at 30 s
        assert 0.25 <= delay <= min(30.0, 0.5 * 2**attempt)
    assert client._reconnect_min_delay == client._reconnect_max_delay == delays[-1]
    assert len(set(delays)) == len(delays), "jittered: no two waits alike"
    _connected(client, "Success")
    assert client.attempt == 0
    assert client.first_connection.done()
    _disconnected(client)
    assert client.attempt == 1
    assert seen[-1][0] == "disconnect"
    assert seen[-1][1] <= 1.0, "the first retry after a connection is quick"


def test_a_refused_first_connection_fails_at_once() -> None:
    client = build_client(MqttSettings(url="mqtt://u:secret@broker"), "c", MqttClient)
    assert client.on_connect is not None
    _connected(client, "Not authorized")
    error = client.first_connection.exception(timeout=0)
    assert isinstance(error, ConnectError)
    assert "mqtt://u@broker:1883 refused the connection: Not authorized" in str(error)


def test_a_tls_failure_ends_the_first_connection_an_unreachable_broker_does_not() -> None:
    client = build_client(MqttSettings(url="mqtts://u:secret@broker"), "c", MqttClient)
    assert client.on_connect_fail is not None
    client.last_error = ConnectionRefusedError(111, "Connection refused")
    _failed(client)
    client.last_error = ssl.SSLEOFError(8, "EOF occurred in violation of protocol")
    _failed(client)
    assert not client.first_connection.done(), "a broker starting up is waited for"
    client.last_error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    _failed(client)
    error = client.first_connection.exception(timeout=0)
    assert isinstance(error, ConnectError)
    assert "TLS handshake with the MQTT broker at mqtts://u@broker:8883 failed" in str(error)
    assert "certificate verify failed" in str(error)
    assert "secret" not in str(error)


def test_a_client_certificate_refused_after_the_handshake_ends_the_first_connection() -> None:
    client = build_client(MqttSettings(url="mqtts://broker"), "c", MqttClient)
    assert client.on_disconnect is not None
    _disconnected(client)
    assert not client.first_connection.done(), "a dropped link alone is retried"
    client.last_error = ssl.SSLError(1, "[SSL] tlsv13 alert certificate required")
    _disconnected(client)
    error = client.first_connection.exception(timeout=0)
    assert isinstance(error, ConnectError)
    assert "TLS with the MQTT broker at mqtts://broker:8883 failed" in str(error)
    assert "certificate required" in str(error)
