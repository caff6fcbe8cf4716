"""The one MQTT client over TLS against a real Mosquitto that wants a client certificate and a
password: the ingest subscriber, the shared publisher and the device-command sink connect
with ``mqtts://``, a client certificate and percent-encoded credentials; a wrong CA, a
certificate for another name, a missing client certificate or a wrong password fail with
a clear error, not a hang. The whole service (ingest, the alerts' full-stream and urgent
subscribers, the device-command sink, the gateway) and a simulated home (each device its
own connection, and `eldercare simulate press-sos` with its --mqtt-* flags) run over
mqtts:// with `require_certificate true`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import httpx
import pytest
from typer.testing import CliRunner

from alerts.notify.commands import MqttCommandPublisher
from cli.main import app, load_sim_homes
from devices.mqtt import AckedPublisher, ConnectError, MqttSettings
from devices.provisioning import Credential, hash_password, password_file
from devstack.broker import find_mosquitto
from devstack.ports import free_port
from ingest.mqtt import Message, Subscriber
from runtime.settings import Settings
from simulators.fleet import DeviceFleet
from simulators.live import run_homes
from tests.conftest import SmtpServer
from tests.integration.helpers import eventually, login, running_service, scalar
from tests.integration.test_replay_live import EVENTS, recording
from tests.pki import Pki, make_pki

pytestmark = pytest.mark.integration

USER = "eldercare-ingest"
PASSWORD = "p@ss/w:rd 100%"  # '@', '/', ':', ' ' and '%' all need percent-encoding in a URL
READINGS = "eldercare/+/+/readings"


class TlsBroker:
    """Mosquitto with one TLS listener (client certificate required) and password auth."""

    def __init__(self, directory: Path, pki: Pki) -> None:
        self.port = free_port()
        self.pki = pki
        passwd = directory / "passwd"
        passwd.write_text(password_file([Credential(USER, hash_password(PASSWORD))]))
        conf = directory / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"cafile {pki.ca}\ncertfile {pki.server_cert}\nkeyfile {pki.server_key}\n"
            "require_certificate true\n"
            f"allow_anonymous false\npassword_file {passwd}\n"
            f"persistence false\nlog_dest file {directory / 'log'}\n"
            + ("user root\n" if os.geteuid() == 0 else "")
        )
        mosquitto = find_mosquitto()
        assert mosquitto is not None, "mosquitto is not installed (apt-get install mosquitto)"
        self.proc = subprocess.Popen([mosquitto, "-c", str(conf)])
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                break
            assert self.proc.poll() is None, (directory / "log").read_text()
            assert time.monotonic() < deadline, "mosquitto did not start"
            time.sleep(0.05)

    def settings(
        self,
        host: str = "localhost",
        password: str = PASSWORD,
        protocol: Literal["5", "3.1.1"] = "5",
        **overrides: Any,
    ) -> MqttSettings:
        """Settings reaching this broker as `USER` with the client certificate, a 20 s
        connect timeout, and `overrides`."""
        url = f"mqtts://{quote(USER, safe='')}:{quote(password, safe='')}@{host}:{self.port}"
        values: dict[str, Any] = {
            "url": url,
            "protocol": protocol,
            "connect_timeout_s": 20,
            "tls_ca_file": self.pki.ca,
            "tls_cert_file": self.pki.client_cert,
            "tls_key_file": self.pki.client_key,
            **overrides,
        }
        return MqttSettings(**values)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[TlsBroker]:
    b = TlsBroker(tmp_path, make_pki(tmp_path / "pki", server_names=("localhost",)))
    try:
        yield b
    finally:
        b.stop()


async def _next(sub: Subscriber, timeout: float = 10.0) -> Message:
    async with asyncio.timeout(timeout):
        return await sub.messages.get()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_the_subscriber_receives_and_acknowledges_over_mqtts(
    broker: TlsBroker, protocol: Literal["5", "3.1.1"]
) -> None:
    settings = broker.settings(protocol=protocol)
    assert "%40" in settings.url
    assert "%2F" in settings.url
    assert settings.address.password == PASSWORD
    assert PASSWORD not in settings.address.redacted()
    async with Subscriber(settings, "tls-ingest", [READINGS]) as sub:
        assert sub.connected
        async with AckedPublisher(settings, "tls-device") as pub:
            await pub.publish("eldercare/h01/h01-pir/readings", b"acked", qos=1)
            await pub.publish("eldercare/h01/h01-pir/readings", b"not acked", qos=1)
        first, second = await _next(sub), await _next(sub)
        assert (first.payload, second.payload) == (b"acked", b"not acked")
        assert sub.ack(first)
        await asyncio.sleep(0.2)  # the PUBACK goes out with the next turn of the event loop
    # Same client id, persistent session: only the unacknowledged message comes again.
    async with Subscriber(settings, "tls-ingest", [READINGS]) as sub:
        async with AckedPublisher(settings, "tls-device") as pub:
            await pub.publish("eldercare/h01/h01-pir/readings", b"marker", qos=1)
        got = [await _next(sub)]
        while got[-1].payload != b"marker":
            got.append(await _next(sub))
        assert [m.payload for m in got] == [b"not acked", b"marker"]


async def test_the_ingester_stores_a_reading_sent_over_mqtts(
    broker: TlsBroker, db_url: str
) -> None:
    mqtt = broker.settings()
    settings = Settings(
        database={"url": db_url, "pool_max": 5},
        mqtt=mqtt.model_dump(),
        ingest={"batch_max_delay_ms": 10, "registry_refresh_s": 0.5},
        alerts={"poll_s": 0.1},
        gateway={"port": 0},
    )
    now = datetime.now(UTC).timestamp()
    async with running_service(settings, ("ingest",)):
        async with AckedPublisher(mqtt, "tls-h01-pir") as pub:
            payload = json.dumps({"seq": 7, "ts": now, "value": 1}).encode()
            await pub.publish("eldercare/h01/h01-pir-living/readings", payload)
        await eventually(
            lambda: scalar(db_url, "SELECT count(*) FROM readings WHERE seq = 7"),
            what="the reading sent over TLS",
        )


async def test_device_commands_go_out_over_mqtts(broker: TlsBroker) -> None:
    settings = broker.settings()
    async with (
        Subscriber(settings, "tls-device-h01", ["eldercare/h01/+/commands"]) as device,
        MqttCommandPublisher(settings, "tls-commands") as commands,
    ):
        await commands.send("h01", "h01-sos", {"command": "help_coming"})
        got = await _next(device)
        assert got.topic == "eldercare/h01/h01-sos/commands"
        assert json.loads(got.payload) == {"command": "help_coming"}


async def _fails_fast(settings: MqttSettings, match: str) -> str:
    """Both kinds of client fail with `match` well before the 20 s connect timeout."""
    messages = []
    for client in (Subscriber(settings, "tls-ingest", [READINGS]), AckedPublisher(settings, "p")):
        started = time.monotonic()
        with pytest.raises(ConnectError, match=match) as info:
            async with client:
                pass
        assert time.monotonic() - started < 5, "an error, not a wait for the timeout"
        messages.append(str(info.value))
        assert PASSWORD not in messages[-1]
        assert quote(PASSWORD, safe="") not in messages[-1]
    return messages[0]


async def test_a_broker_signed_by_another_ca_is_refused_at_once(broker: TlsBroker) -> None:
    message = await _fails_fast(
        broker.settings(tls_ca_file=broker.pki.other_ca), "certificate verify failed"
    )
    assert f"TLS handshake with the MQTT broker at mqtts://{USER}@localhost:" in message


async def test_a_certificate_for_another_name_is_refused_unless_the_check_is_off(
    broker: TlsBroker,
) -> None:
    await _fails_fast(broker.settings(host="127.0.0.1"), "mismatch")
    lax = broker.settings(host="127.0.0.1", tls_check_hostname=False)
    async with AckedPublisher(lax, "tls-lax") as pub:
        await pub.publish("eldercare/h01/h01-pir/readings", b"x", qos=1)


async def test_the_broker_wants_the_password_and_the_client_certificate(
    broker: TlsBroker,
) -> None:
    await _fails_fast(broker.settings(password="wrong"), "refused")
    await _fails_fast(
        broker.settings(tls_cert_file=None, tls_key_file=None), r"TLS .* failed: .*certificate"
    )


def service_settings(broker: TlsBroker, db_url: str, **more: Any) -> Settings:
    """The service's settings for a test over this TLS broker (fast timers, a free port)."""
    return Settings(
        database={"url": db_url, "pool_max": 5},
        mqtt=broker.settings().model_dump(),
        ingest={"batch_max_delay_ms": 10, "registry_refresh_s": 0.5},
        gateway={"port": 0},
        **more,
    )


async def test_the_whole_service_and_a_simulated_home_run_over_mqtts(
    broker: TlsBroker, db_url: str, smtp_server: SmtpServer
) -> None:
    mqtt = broker.settings()
    settings = service_settings(
        broker,
        db_url,
        alerts={
            "poll_s": 0.1,
            "retry_base_s": 0.1,
            "smtp": {"host": smtp_server.host, "port": smtp_server.port},
        },
    )
    assert not settings.alerts.urgent_separate  # the urgent subscriber runs with the alerts
    homes = [h for h in await load_sim_homes(db_url) if h.home_id == "h01"]
    assert homes
    assert len(homes[0].devices) > 3
    stop = asyncio.Event()
    async with (
        running_service(settings, ("ingest", "alerts", "gateway")) as svc,
        Subscriber(mqtt, "tls-home-unit", ["eldercare/h01/+/commands"]) as unit,
        DeviceFleet(mqtt, homes, client_prefix="tls-sim") as fleet,
    ):
        assert set(svc.subscribers) == {"ingest", "alerts", "alerts_urgent"}
        assert all(sub.connected for sub in svc.subscribers.values())
        driving = asyncio.create_task(run_homes(fleet, homes, tick_s=0.5, stop=stop))
        # Every device connected as itself over TLS: its retained "online" status is stored.
        await eventually(
            lambda: scalar(db_url, "SELECT count(*) FROM readings WHERE home_id = 'h01'"),
            what="the simulated home's readings, through ingest over mqtts://",
        )
        # The SOS button, pressed by the CLI with its TLS flags (a thread: it runs its own loop).
        env = {"ELDERCARE_DATABASE__URL": db_url, "ELDERCARE_MQTT__URL": mqtt.url}
        args = ["simulate", "press-sos", "h01", "--mqtt-ca-file", str(broker.pki.ca),
                "--mqtt-cert-file", str(broker.pki.client_cert),
                "--mqtt-key-file", str(broker.pki.client_key)]  # fmt: skip
        result = await asyncio.to_thread(CliRunner().invoke, app, args, env=env)
        assert result.exit_code == 0, result.output
        assert "SOS pressed" in result.output

        def mailed() -> set[str]:
            return {r for m in smtp_server.messages for r in m.rcpt_tos}

        async def worker_told() -> bool:
            return "worker-v1@example.org" in mailed()

        await eventually(worker_told, timeout=20, what="the SOS notification")
        kind = await scalar(db_url, "SELECT kind FROM alerts WHERE home_id = 'h01'")
        assert kind == "sos"
        # Without the client certificate the same press is refused by the broker, clearly.
        bare = await asyncio.to_thread(
            CliRunner().invoke, app, [*args[:3], "--mqtt-ca-file", str(broker.pki.ca)], env=env
        )
        assert bare.exit_code == 1, bare.output
        assert "TLS" in bare.output
        assert "certificate" in bare.output
        # The acknowledgement's "help is on the way" reaches the home unit over TLS too.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{svc.http_port}") as client:
            headers = await login(client, "worker-v1")
            alert_id = await scalar(db_url, "SELECT id FROM alerts WHERE home_id = 'h01'")
            ack = await client.post(f"/api/v1/alerts/{alert_id}/ack", headers=headers)
            assert ack.status_code == 200, ack.text
        command = await _next(unit, timeout=15)
        assert command.topic.endswith("/commands")
        stop.set()
        await driving


async def test_a_recording_is_replayed_over_mqtts_with_the_tls_flags(
    broker: TlsBroker, db_url: str, tmp_path: Path
) -> None:
    """`eldercare replay` (live) through a broker that wants TLS and a client certificate."""
    mqtt = broker.settings()
    settings = service_settings(broker, db_url)
    folder = recording(tmp_path)
    env = {"ELDERCARE_DATABASE__URL": db_url, "ELDERCARE_MQTT__URL": mqtt.url}
    args = ["replay", str(folder / "events.csv"), "--sensors", str(folder / "sensors.json"),
            "--speed", "600", "--mqtt-ca-file", str(broker.pki.ca)]  # fmt: skip
    async with running_service(settings, ("ingest",)):
        # Without the client certificate the broker refuses the replay, clearly.
        bare = await asyncio.to_thread(CliRunner().invoke, app, args, env=env)
        assert bare.exit_code == 1, bare.output
        assert "TLS" in bare.output
        assert "certificate" in bare.output
        assert "p%40ss" not in bare.output  # the broker password is not printed
        full = [*args, "--mqtt-cert-file", str(broker.pki.client_cert),
                "--mqtt-key-file", str(broker.pki.client_key)]  # fmt: skip
        result = await asyncio.to_thread(CliRunner().invoke, app, full, env=env)
        assert result.exit_code == 0, result.output
        assert "published" in result.output
        stored = await eventually(
            lambda: scalar(
                db_url,
                "SELECT count(*) FROM readings WHERE home_id = 'rec_home' AND metric <> 'heartbeat'"
                " HAVING count(*) >= %s",
                len(EVENTS),
            ),
            what="the recording's events, through ingest over mqtts://",
        )
        assert stored >= len(EVENTS)
