"""`eldercare broker config --listen both|tls`: the generated mosquitto.conf starts a real
Mosquitto with a TLS listener that wants a client certificate besides the password; a client
with one connects over mqtts://, a client without is refused, anonymous clients too."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from devices.mqtt import AckedPublisher, ConnectError, MqttSettings
from devstack.broker import find_mosquitto
from devstack.ports import free_port
from tests.pki import Pki, make_pki

pytestmark = pytest.mark.integration

SERVICE = "eldercare-alerts"  # may write commands (docs/devices.md, the ACL)
COMMAND_TOPIC = "eldercare/h01/h01-sos/commands"


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
            return
        assert proc.poll() is None, log.read_text() if log.exists() else "mosquitto exited"
        assert time.monotonic() < deadline, "mosquitto did not open its port"
        time.sleep(0.05)


@contextlib.contextmanager
def _mosquitto(conf: Path, *ports: int) -> Iterator[None]:
    mosquitto = find_mosquitto()
    assert mosquitto is not None, "mosquitto is not installed (apt-get install mosquitto)"
    log = conf.parent / "mosquitto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([mosquitto, "-c", str(conf)], stdout=out, stderr=out)
    try:
        for port in ports:
            _wait_port(port, proc, log)
        yield
    finally:
        proc.terminate()
        proc.wait(10)


async def _config(db_url: str, out: Path, pki: Pki, *args: str) -> tuple[str, str]:
    """Run `broker config` with `args` (in a thread: it runs its own event loop); return the
    service's new password and the generated mosquitto.conf."""
    tls_files = ["--cafile", str(pki.ca), "--certfile", str(pki.server_cert)]
    tls_files += ["--keyfile", str(pki.server_key)]
    runas = ["--user", "root"] if os.geteuid() == 0 else []
    command = ["broker", "config", "--out", str(out), "--service", SERVICE]
    command += ["--bind", "127.0.0.1", *tls_files, *runas, *args]
    env = {"ELDERCARE_DATABASE__URL": db_url}
    result = await asyncio.to_thread(CliRunner().invoke, app, command, env=env)
    assert result.exit_code == 0, result.output
    match = re.search(rf"new service account {SERVICE}: password (\S+)", result.stdout)
    assert match, result.stdout
    return match.group(1), (out / "mosquitto.conf").read_text()


def _tls(port: int, password: str, pki: Pki, *, cert: bool = True) -> MqttSettings:
    files = {"tls_cert_file": pki.client_cert, "tls_key_file": pki.client_key} if cert else {}
    return MqttSettings(
        url=f"mqtts://{SERVICE}:{password}@localhost:{port}",
        connect_timeout_s=10,
        tls_ca_file=pki.ca,
        **files,
    )


async def test_both_listeners_password_everywhere_certificate_on_tls(
    db_url: str, tmp_path: Path
) -> None:
    pki = make_pki(tmp_path / "pki", server_names=("localhost",))
    plain, tls = free_port(), free_port()
    out = tmp_path / "broker"
    password, conf = await _config(db_url, out, pki, "--listen", "both", "--port", str(plain),
                             "--tls-port", str(tls))  # fmt: skip
    assert f"listener {tls} 127.0.0.1\n" in conf
    assert "require_certificate true\ntls_version tlsv1.2\n" in conf
    assert "allow_anonymous false\n" in conf
    assert oct((out / "mosquitto.conf").stat().st_mode & 0o777) == "0o600"
    with _mosquitto(out / "mosquitto.conf", plain, tls):
        async with AckedPublisher(_tls(tls, password, pki), "tls-with-cert") as pub:
            await pub.publish(COMMAND_TOPIC, b'{"command": "help_coming"}')
        started = time.monotonic()
        with pytest.raises(ConnectError, match=r"TLS .*failed: .*certificate"):
            async with AckedPublisher(_tls(tls, password, pki, cert=False), "tls-no-cert"):
                pass
        assert time.monotonic() - started < 5, "refused at once, not timed out"
        with pytest.raises(ConnectError, match="refused"):  # the certificate is not enough
            async with AckedPublisher(_tls(tls, "wrong", pki), "tls-bad-password"):
                pass
        plain_url = f"mqtt://{SERVICE}:{password}@127.0.0.1:{plain}"
        async with AckedPublisher(MqttSettings(url=plain_url), "plain-service") as pub:
            await pub.publish(COMMAND_TOPIC, b'{"command": "help_coming"}')
        anonymous = MqttSettings(url=f"mqtt://127.0.0.1:{plain}", connect_timeout_s=5)
        with pytest.raises(ConnectError, match="refused"):
            async with AckedPublisher(anonymous, "anonymous"):
                pass


async def test_tls_only_has_no_plain_listener(db_url: str, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki", server_names=("localhost",))
    tls = free_port()
    out = tmp_path / "broker"
    password, conf = await _config(db_url, out, pki, "--listen", "tls", "--tls-port", str(tls),
                             "--tls-version", "tlsv1.3")  # fmt: skip
    assert conf.count("\nlistener ") == 1
    assert "listener 1883" not in conf
    assert "tls_version tlsv1.3\n" in conf
    with _mosquitto(out / "mosquitto.conf", tls):
        async with AckedPublisher(_tls(tls, password, pki), "tls13") as pub:
            await pub.publish(COMMAND_TOPIC, b"{}")


def test_a_tls_listener_needs_its_files(db_url: str, tmp_path: Path) -> None:
    env = {"ELDERCARE_DATABASE__URL": db_url}
    args = ["broker", "config", "--out", str(tmp_path / "b"), "--listen", "tls"]
    result = CliRunner().invoke(app, [*args, "--cafile", "ca.pem"], env=env)
    assert result.exit_code == 2
    assert "--certfile, --keyfile" in result.output
    bad = CliRunner().invoke(app, ["broker", "config", "--listen", "tcp"], env=env)
    assert bad.exit_code == 2
    old = CliRunner().invoke(
        app,
        [*args, "--cafile", "a", "--certfile", "b", "--keyfile", "c", "--tls-version", "tlsv1"],
        env=env,
    )
    assert old.exit_code == 2
    assert "tlsv1.2 or tlsv1.3" in old.output
    assert not (tmp_path / "b").exists()
