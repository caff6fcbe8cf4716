"""Installing, rotating, replacing and retiring devices against a real Mosquitto (password
file + ACL, reloaded by SIGHUP) and PostgreSQL: what the broker lets in follows the
registry without a restart, and a refused operation keeps the old credentials working."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from alerts.detect.technical import DeviceWatch
from devices.lifecycle import DeviceRefused, Refusal
from devices.provisioning import ServiceAccount, hash_password
from devstack.broker import find_mosquitto
from devstack.ports import free_port
from ingest import device_store
from ingest.broker_files import BrokerSettings, write_files
from ingest.device_lifecycle import (
    BrokerSyncFailed,
    current_files,
    install_device,
    install_state,
    replace_device,
    retire_device,
    rotate_credentials,
)
from runtime.settings import Settings
from simulators.publisher import MqttPublisher
from tests.integration.helpers import eventually, login, running_service, scalar

pytestmark = pytest.mark.integration

SERVICE, SERVICE_PW = "eldercare-svc", "svc-password"
Conn = psycopg.AsyncConnection[Any]


class AclBroker:
    """Mosquitto reading the files `BrokerSettings` names; its pid in the pid file."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.port = free_port()
        self.settings = BrokerSettings(
            password_file=directory / "passwd",
            acl_file=directory / "acl",
            pid_file=directory / "mosquitto.pid",
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        conf = self.dir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous false\n"
            f"password_file {self.dir / 'passwd'}\nacl_file {self.dir / 'acl'}\n"
            f"persistence false\nlog_dest file {self.dir / 'log'}\nlog_type all\n"
            + ("user root\n" if os.geteuid() == 0 else "")
        )
        mosquitto = find_mosquitto()
        assert mosquitto is not None, "mosquitto is not installed (apt-get install mosquitto)"
        self.proc = subprocess.Popen([mosquitto, "-c", str(conf)])
        (self.dir / "mosquitto.pid").write_text(f"{self.proc.pid}\n")
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                break
            assert time.monotonic() < deadline, "mosquitto did not start"
            time.sleep(0.05)

    def url(self, user: str, password: str) -> str:
        return f"mqtt://{user}:{password}@127.0.0.1:{self.port}"

    def reloads(self) -> int:
        """How many times Mosquitto has read its configuration again (its log says)."""
        log = self.dir / "log"
        return log.read_text().count("Reloading config") if log.exists() else 0

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


@contextlib.asynccontextmanager
async def acl_broker(directory: Path, db_url: str) -> AsyncIterator[AclBroker]:
    """A started `AclBroker` whose files hold the registry and one service account."""
    b = AclBroker(directory)
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        async with conn.transaction():
            await device_store.add_service_account(
                conn, ServiceAccount(SERVICE, hash_password(SERVICE_PW))
            )
        async with conn.transaction():
            write_files(b.settings, await current_files(conn))
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
async def broker(tmp_path: Path, db_url: str) -> AsyncIterator[AclBroker]:
    async with acl_broker(tmp_path, db_url) as b:
        yield b


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[Conn]:
    async with await psycopg.AsyncConnection.connect(db_url) as c:
        yield c


async def connects(broker: AclBroker, user: str, password: str) -> bool:
    """Whether the broker accepts this login (a fresh connection)."""
    try:
        async with MqttPublisher(broker.url(user, password), f"t-{user}-{time.monotonic_ns()}",
                                 "5", connect_timeout_s=5):  # fmt: skip
            return True
    except RuntimeError as exc:
        if "refused" not in str(exc):
            raise
        return False


async def disconnected(pub: MqttPublisher) -> bool:
    return not pub.connected


async def eventually_refused(broker: AclBroker, user: str, password: str) -> None:
    """The reload is a signal: the broker reads the files a moment later."""

    async def refused() -> bool:
        return not await connects(broker, user, password)

    await eventually(refused, timeout=10, what=f"{user} refused")


def settings_for(db_url: str, broker: AclBroker) -> Settings:
    return Settings(
        database={"url": db_url, "pool_max": 5},
        mqtt={"url": broker.url(SERVICE, SERVICE_PW), "protocol": "5"},
        ingest={"batch_max_delay_ms": 10, "registry_refresh_s": 0.5},
        alerts={"poll_s": 0.1},
        gateway={"port": 0},
    )


async def test_install_then_the_device_publishes_and_is_stored(
    broker: AclBroker, conn: Conn, db_url: str
) -> None:
    change = await install_device(
        conn, broker.settings, "h01", "h01-temp-2", "temperature", "kitchen", "by the stove"
    )
    assert change.password is not None
    assert change.broker.files_written
    assert change.broker.reloaded
    assert (
        "user h01-temp-2\ntopic write eldercare/h01/h01-temp-2/readings"
        in (broker.dir / "acl").read_text()
    )
    assert oct((broker.dir / "passwd").stat().st_mode & 0o777) == "0o600"
    assert oct((broker.dir / "acl").stat().st_mode & 0o777) == "0o600"
    state = await install_state(conn, "h01-temp-2", 300)
    assert state is not None
    assert state.status == "waiting"
    assert state.first_heard_at is None
    await conn.commit()
    url = broker.url("h01-temp-2", change.password)
    async with running_service(settings_for(db_url, broker), ("ingest",)):
        await eventually(lambda: connects(broker, "h01-temp-2", change.password or ""))
        async with MqttPublisher(url, "h01-temp-2") as pub:
            now = datetime.now(UTC).timestamp()
            await pub.publish(
                "eldercare/h01/h01-temp-2/readings",
                b'{"seq": 1, "ts": %f, "value": 21.5, "metric": "temperature"}' % now,
            )
        await eventually(
            lambda: scalar(db_url, "SELECT count(*) FROM readings WHERE device_id = 'h01-temp-2'"),
            what="the new device's reading",
        )
    state = await install_state(conn, "h01-temp-2", 300)
    assert state is not None
    assert state.status == "heard"
    assert state.first_heard_at is not None
    assert state.first_heard_at >= state.installed_at
    assert (
        await scalar(db_url, "SELECT action FROM device_events WHERE device_id = 'h01-temp-2'")
        == "install"
    )


async def test_rotate_refuses_the_old_password_without_a_restart(
    broker: AclBroker, conn: Conn
) -> None:
    installed = await install_device(conn, broker.settings, "h02", "h02-door-2", "door_contact")
    old = installed.password or ""
    assert await connects(broker, "h02-door-2", old)
    pid = broker.proc.pid if broker.proc else None
    reloads = broker.reloads()
    # A connection made with the old password, open across the rotation.
    async with MqttPublisher(broker.url("h02-door-2", old), "h02-door-2-open") as open_pub:
        rotated = await rotate_credentials(conn, broker.settings, "h02-door-2", actor="test")
        new = rotated.password or ""
        assert new
        assert new != old
        await eventually_refused(broker, "h02-door-2", old)
        assert await connects(broker, "h02-door-2", new)
        # Mosquitto checks its connected clients again at the reload: the one that logged in
        # with the old password is dropped (and cannot come back with it).
        await eventually(lambda: disconnected(open_pub), what="the old login dropped")
    assert broker.proc is not None
    assert broker.proc.poll() is None
    assert broker.proc.pid == pid
    assert broker.reloads() > reloads


async def test_retire_refuses_the_device_and_the_watch_stops_expecting_it(
    broker: AclBroker, conn: Conn, db_url: str
) -> None:
    installed = await install_device(conn, broker.settings, "h03", "h03-pir-2", "pir_motion")
    password = installed.password or ""
    assert await connects(broker, "h03-pir-2", password)
    async with running_service(settings_for(db_url, broker), ("alerts",)) as svc:
        watch = svc.detectors.find(DeviceWatch)
        assert isinstance(watch, DeviceWatch)

        async def expected() -> bool:
            return watch.known("h03-pir-2")

        await eventually(expected, what="the new device expected by the watch")
        async with MqttPublisher(broker.url("h03-pir-2", password), "h03-pir-2") as pub:
            retired = await retire_device(conn, broker.settings, "h03-pir-2")
            assert retired.retired == "h03-pir-2"
            assert retired.password is None
            await eventually_refused(broker, "h03-pir-2", password)
            # Its open connection is dropped at the reload.
            await eventually(lambda: disconnected(pub), what="the retired login dropped")

        # The alerts stage follows the registry at its next message (from another device).
        other = await install_device(conn, broker.settings, "h03", "h03-pir-3", "pir_motion")
        await eventually(lambda: connects(broker, "h03-pir-3", other.password or ""))
        url = broker.url("h03-pir-3", other.password or "")
        async with MqttPublisher(url, "h03-pir-3") as pub:
            for seq in range(1, 40):
                now = datetime.now(UTC).timestamp()
                await pub.publish(
                    "eldercare/h03/h03-pir-3/readings", b'{"seq":%d,"ts":%f,"value":1}' % (seq, now)
                )
                if not watch.known("h03-pir-2") and watch.known("h03-pir-3"):
                    break
                await asyncio.sleep(0.25)
        assert not watch.known("h03-pir-2")
        # A day later every device not heard is silent, the retired one is not among them.
        silent = {s.device_id for s in watch.advance(datetime.now(UTC) + timedelta(days=1))}
        assert "h03-pir-living" in silent
        assert "h03-pir-2" not in silent
    assert "h03-pir-2" not in (broker.dir / "passwd").read_text()
    assert "user h03-pir-2\n" not in (broker.dir / "acl").read_text()
    row = await scalar(db_url, "SELECT retired_at IS NOT NULL FROM devices WHERE id='h03-pir-2'")
    assert row is True


async def test_replace_under_a_new_id_and_under_the_same_id(
    broker: AclBroker, conn: Conn, db_url: str
) -> None:
    first = await install_device(conn, broker.settings, "h04", "h04-sos-2", "sos_button", "hall")
    new = await replace_device(conn, broker.settings, "h04-sos-2", "h04-sos-3", actor="test")
    assert new.device.device_id == "h04-sos-3"
    assert new.device.kind == "sos_button"
    assert new.retired == "h04-sos-2"
    await eventually_refused(broker, "h04-sos-2", first.password or "")
    assert await connects(broker, "h04-sos-3", new.password or "")
    assert (
        await scalar(
            db_url, "SELECT replaced_by || ' ' || room FROM devices WHERE id = 'h04-sos-2'"
        )
        == "h04-sos-3 hall"
    )
    assert await scalar(db_url, "SELECT room FROM devices WHERE id = 'h04-sos-3'") == "hall"

    before = await scalar(db_url, "SELECT installed_at FROM devices WHERE id = 'h04-sos-3'")
    same = await replace_device(conn, broker.settings, "h04-sos-3")
    assert same.device.device_id == "h04-sos-3"
    assert same.retired is None
    await eventually_refused(broker, "h04-sos-3", new.password or "")
    assert await connects(broker, "h04-sos-3", same.password or "")
    after = await scalar(db_url, "SELECT installed_at FROM devices WHERE id = 'h04-sos-3'")
    assert after > before  # the install check starts again for the new unit


async def test_refused_operations_change_nothing(
    broker: AclBroker, conn: Conn, db_url: str
) -> None:
    kept = await install_device(conn, broker.settings, "h05", "h05-pir-2", "pir_motion")
    gone = await install_device(conn, broker.settings, "h05", "h05-pir-9", "pir_motion")
    await retire_device(conn, broker.settings, "h05-pir-9")
    await conn.execute("UPDATE homes SET closed_at = now() WHERE id = 'h06'")
    await conn.commit()
    files = ((broker.dir / "passwd").read_bytes(), (broker.dir / "acl").read_bytes())
    devices = await scalar(db_url, "SELECT count(*) FROM devices")
    events = await scalar(db_url, "SELECT count(*) FROM device_events")
    cases = [
        (Refusal.UNKNOWN_KIND, install_device(conn, broker.settings, "h05", "h05-x", "toaster")),
        (Refusal.INVALID_ID, install_device(conn, broker.settings, "h05", "H05 X", "hub")),
        (Refusal.NO_HOME, install_device(conn, broker.settings, "zz", "zz-hub", "hub")),
        (Refusal.HOME_CLOSED, install_device(conn, broker.settings, "h06", "h06-hub2", "hub")),
        # Taken, in another home, and by a retired device: ids are never reused.
        (Refusal.DUPLICATE_ID, install_device(conn, broker.settings, "h01", "h05-pir-2", "hub")),
        (Refusal.DUPLICATE_ID, install_device(conn, broker.settings, "h05", "h05-pir-9", "hub")),
        (Refusal.DUPLICATE_ID, replace_device(conn, broker.settings, "h05-pir-2", "h01-sos")),
        (Refusal.RETIRED, rotate_credentials(conn, broker.settings, "h05-pir-9")),
        (Refusal.RETIRED, retire_device(conn, broker.settings, "h05-pir-9")),
        (Refusal.NOT_FOUND, rotate_credentials(conn, broker.settings, "nope")),
        (Refusal.INVALID_FIELD, replace_device(conn, broker.settings, "h05-pir-2", kind="hub")),
    ]
    for reason, op in cases:
        with pytest.raises(DeviceRefused) as refused:
            await op
        assert refused.value.reason is reason, (reason, refused.value.message)
        assert refused.value.message
    assert ((broker.dir / "passwd").read_bytes(), (broker.dir / "acl").read_bytes()) == files
    assert await scalar(db_url, "SELECT count(*) FROM devices") == devices
    assert await scalar(db_url, "SELECT count(*) FROM device_events") == events
    assert await connects(broker, "h05-pir-2", kept.password or "")
    assert not await connects(broker, "h05-pir-9", gone.password or "")


async def test_a_failed_reload_is_an_error_and_the_change_is_recorded(
    broker: AclBroker, conn: Conn, db_url: str
) -> None:
    broken = BrokerSettings(
        password_file=broker.settings.password_file,
        acl_file=broker.settings.acl_file,
        pid_file=broker.dir / "no-such.pid",
    )
    with pytest.raises(BrokerSyncFailed, match="not reloaded") as failed:
        await install_device(conn, broken, "h07", "h07-hub-2", "hub")
    change = failed.value.change
    assert change.password is not None
    assert change.broker.files_written
    assert not change.broker.reloaded
    assert "no-such.pid" in (change.broker.error or "")
    assert await scalar(db_url, "SELECT kind FROM devices WHERE id = 'h07-hub-2'") == "hub"
    assert "h07-hub-2:" in (broker.dir / "passwd").read_text()
    # Not yet known to the broker (no reload); a working reload makes it so.
    assert not await connects(broker, "h07-hub-2", change.password)
    await rotate_credentials(conn, broker.settings, "h01-sos")
    await eventually(lambda: connects(broker, "h07-hub-2", change.password or ""))


def test_broker_settings_refuse_half_a_configuration(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="both"):
        BrokerSettings(password_file=tmp_path / "p")
    with pytest.raises(ValueError, match="not both"):
        BrokerSettings(
            password_file=tmp_path / "p",
            acl_file=tmp_path / "a",
            pid_file=tmp_path / "pid",
            reload_command="true",
        )


async def test_closing_an_elder_through_the_api_locks_their_devices_out_of_the_broker(
    broker: AclBroker, conn: Conn, db_url: str
) -> None:
    change = await install_device(conn, broker.settings, "h01", "h01-temp-2", "temperature")
    assert change.password is not None
    await conn.commit()
    assert await connects(broker, "h01-temp-2", change.password)
    settings = settings_for(db_url, broker).model_copy(update={"broker": broker.settings})
    async with running_service(settings, ("gateway",)) as svc:
        base = f"http://127.0.0.1:{svc.http_port}"
        async with httpx.AsyncClient(base_url=base) as client:
            town = await login(client, "town-t1")
            r = await client.post(
                "/api/v1/admin/elders/e01/close", json={"reason": "moved away"}, headers=town
            )
            assert r.status_code == 200, r.text
    await eventually_refused(broker, "h01-temp-2", change.password)
    assert "h01-temp-2" not in (broker.dir / "passwd").read_text()
