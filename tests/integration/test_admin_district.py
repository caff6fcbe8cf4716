"""The done-when test of issue #17: a new district set up from an EMPTY database (migrations
only, no demo seed) with the command line and the API alone: the district, a town and two
villages, staff accounts (passwords set through their invitation links), the rota, 50
elders imported from a spreadsheet, an SOS button installed in each home, a family member
invited; then an SOS pressed in one home, published on the real broker, reaches the worker
of that home's village (a notification row, the alert in their list) and nobody else's."""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import openpyxl
import psycopg
import pytest
from typer.testing import CliRunner, Result

from cli.main import app
from devices.mqtt import ConnectError
from devices.payload import Reading
from devstack.broker import find_mosquitto
from devstack.ports import free_port
from devstack.postgres import EmbeddedPostgres
from ingest.migrate import migrate
from simulators.publisher import MqttPublisher
from tests.conftest import ExternalPostgres
from tests.integration.helpers import eventually, make_settings, running_service, scalar

pytestmark = pytest.mark.integration

_names = itertools.count()
HOMES = 50


@pytest.fixture
def empty_db(pg_server: EmbeddedPostgres | ExternalPostgres) -> Iterator[str]:
    """A database with the migrations only: no region, home, elder or account."""
    name = f"empty_district_{next(_names)}"
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    url = pg_server.url.rsplit("/", 1)[0] + f"/{name}"
    asyncio.run(migrate(url))
    yield url
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def register_xlsx() -> bytes:
    """The village's register as the office keeps it: Chinese headers, one row per elder."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["编号", "姓名", "地址", "住户编号", "出生日期", "性别", "电话",
                  "紧急联系人", "联系人关系", "联系人电话", "联系人有钥匙"])  # fmt: skip
    for i in range(1, HOMES + 1):
        sheet.append([
            f"SL-{i:03d}", f"老人{i:03d}", f"松林村{i}号", f"sl-{i:03d}", f"19{35 + i % 15}-03-01",
            "女" if i % 2 else "男", f"1380000{i:04d}", f"子女{i}", "子女",
            f"1390000{i:04d}", "是" if i % 3 == 0 else "否",
        ])  # fmt: skip
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


class GeneratedBroker:
    """Mosquitto started with the config `eldercare broker config` wrote: passwords and ACL
    from the registry, no anonymous client."""

    protocol = "5"

    def __init__(self, conf: Path, port: int) -> None:
        self.port = port
        mosquitto = find_mosquitto()
        assert mosquitto is not None, "mosquitto is not installed (apt-get install mosquitto)"
        log = (conf.parent / "stdout.log").open("wb")
        self.proc = subprocess.Popen([mosquitto, "-c", str(conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                break
            assert self.proc.poll() is None, (conf.parent / "stdout.log").read_text()
            assert time.monotonic() < deadline, "mosquitto did not start"
            time.sleep(0.05)

    @property
    def url(self) -> str:
        """Anonymous: refused by this broker."""
        return f"mqtt://127.0.0.1:{self.port}"

    def login(self, user: str, password: str) -> str:
        return f"mqtt://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


async def test_a_district_from_an_empty_database(empty_db: str, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"ELDERCARE_DATABASE__URL": empty_db, "ELDERCARE_GATEWAY__PUBLIC_URL": ""}

    async def cli(*args: str, code: int = 0) -> Result:
        # In a thread: each command runs its own event loop.
        result = await asyncio.to_thread(runner.invoke, app, list(args), env=env)
        assert result.exit_code == code, (args, result.output)
        return result

    assert await scalar(empty_db, "SELECT count(*) FROM regions") == 0
    assert await scalar(empty_db, "SELECT count(*) FROM users") == 0

    # The tree.
    await cli("admin", "region", "add", "songlin-d", "--name", "松林区", "--tier", "district")
    await cli("admin", "region", "add", "songlin-t", "--name", "松林镇", "--tier", "town",
              "--parent", "songlin-d")  # fmt: skip
    for village, name in (("songlin-v", "松林村"), ("reed-v", "芦苇村")):
        await cli("admin", "region", "add", village, "--name", name, "--tier", "village",
                  "--parent", "songlin-t")  # fmt: skip

    # Staff: the village workers and the district centre, each with a password link.
    links: dict[str, str] = {}
    for user, role, region, phone in (
        ("worker-songlin", "village_worker", "songlin-v", "13700000001"),
        ("worker-reed", "village_worker", "reed-v", "13700000002"),
        ("centre", "district_staff", "songlin-d", "13700000003"),
    ):
        out = await cli("admin", "--json", "staff", "add", user, "--name", user, "--role", role,
                        "--region", region, "--phone", phone, "--channel", "sms",
                        "--channel", "console")  # fmt: skip
        created = json.loads(out.stdout)
        assert created["account"]["channels"] == ["sms", "console"]
        links[user] = created["invitation"]["token"]
    # On duty around the clock this week.
    now = datetime.now(UTC)
    start, end = (now - timedelta(hours=1)).isoformat(), (now + timedelta(days=7)).isoformat()
    for user, region in (("worker-songlin", "songlin-v"), ("worker-reed", "reed-v"),
                         ("centre", "songlin-d")):  # fmt: skip
        await cli("rota", "add", "--user", user, "--region", region, "--start", start,
                  "--end", end)  # fmt: skip

    # 50 elders from the spreadsheet: dry run, then the import.
    sheet = tmp_path / "songlin.xlsx"
    sheet.write_bytes(register_xlsx())
    dry = await cli("admin", "--json", "import", str(sheet), "--village", "songlin-v",
                    "--dry-run")  # fmt: skip
    assert json.loads(dry.stdout)["created"] == HOMES
    assert await scalar(empty_db, "SELECT count(*) FROM elders") == 0
    done = await cli("admin", "--json", "import", str(sheet), "--village", "songlin-v")
    report = json.loads(done.stdout)
    assert (report["written"], report["created"]) == (True, HOMES)
    assert await scalar(empty_db, "SELECT count(*) FROM elders") == HOMES

    # An SOS button in every home, each with its own broker credential.
    device_password: dict[str, str] = {}
    for i in range(1, HOMES + 1):
        home = f"sl-{i:03d}"
        out = await cli("devices", "provision", home, f"{home}-sos", "--kind", "sos_button",
                        "--room", "卧室")  # fmt: skip
        found = re.search(r"password: (\S+)", out.stdout)
        assert found is not None, out.stdout
        device_password[f"{home}-sos"] = found.group(1)
    # The broker's files and config, generated from the registry; the service accounts'
    # passwords are printed once.
    broker_dir = tmp_path / "broker"
    port = free_port()
    as_root = ["--user", "root"] if os.geteuid() == 0 else []
    out = await cli("broker", "config", "--out", str(broker_dir), "--port", str(port),
                    "--bind", "127.0.0.1", *as_root)  # fmt: skip
    services = dict(re.findall(r"new service account (\S+): password (\S+)", out.stdout))
    assert set(services) == {"eldercare-ingest", "eldercare-alerts"}
    assert "user sl-017-sos\n" in (broker_dir / "acl").read_text()
    assert await scalar(empty_db, "SELECT count(*) FROM device_credentials") == HOMES
    broker = await asyncio.to_thread(GeneratedBroker, broker_dir / "mosquitto.conf", port)
    try:
        await _serve_and_press(empty_db, cli, links, broker, services, device_password)
    finally:
        broker.stop()


async def _serve_and_press(
    empty_db: str,
    cli: Any,
    links: dict[str, str],
    broker: GeneratedBroker,
    services: dict[str, str],
    device_password: dict[str, str],
) -> None:
    # A family member of the elder in home sl-017.
    listed = json.loads((await cli("admin", "--json", "elder", "list",
                                   "--village", "songlin-v")).stdout)  # fmt: skip
    elder = next(e for e in listed if e["home_id"] == "sl-017")
    out = await cli("admin", "invite", elder["id"], "--name", "王芳", "--relation", "女儿",
                    "--phone", "13900000017", "--email", "wangfang@example.org")  # fmt: skip
    invite_token = out.stdout.strip().rsplit("/invite/", 1)[1]

    # The service logs in to the broker with its account; anonymous is refused there.
    service_login = broker.login("eldercare-ingest", services["eldercare-ingest"])
    settings = make_settings(empty_db, broker, mqtt={"url": service_login})
    async with running_service(settings) as svc:
        base = f"http://127.0.0.1:{svc.http_port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            for user, token in links.items():
                r = await http.post(f"/api/v1/invitations/{token}/accept",
                                    json={"password": f"{user}-pass-2026"})  # fmt: skip
                assert r.status_code == 201, r.text
            family_login = {"username": "wang-fang", "password": "plum-rain-2026"}
            r = await http.post(f"/api/v1/invitations/{invite_token}/accept", json=family_login)
            assert r.status_code == 201, r.text

            async def token_of(user: str, password: str) -> dict[str, str]:
                r = await http.post("/api/v1/auth/login",
                                    json={"username": user, "password": password})  # fmt: skip
                assert r.status_code == 200, r.text
                http.cookies.clear()
                return {"Authorization": f"Bearer {r.json()['token']}"}

            worker = await token_of("worker-songlin", "worker-songlin-pass-2026")
            other = await token_of("worker-reed", "worker-reed-pass-2026")
            family = await token_of("wang-fang", "plum-rain-2026")
            seen = await http.get("/api/v1/elders", headers=family)
            assert [e["elder_id"] for e in seen.json()["items"]] == [elder["id"]]

            # The SOS, as the button sends it, over the real broker.
            press = Reading("sl-017", "sl-017-sos", "sos_button", 1, 1, datetime.now(UTC),
                            "press", 1.0)  # fmt: skip
            with pytest.raises(ConnectError):  # the broker knows only its devices
                async with MqttPublisher(broker.url, "dev-anonymous", connect_timeout_s=5) as pub:
                    await pub.publish_readings([press])
            login = broker.login("sl-017-sos", device_password["sl-017-sos"])
            async with MqttPublisher(login, "sl-017-sos") as pub:
                await pub.publish_readings([press])

            async def told() -> Any:
                return await scalar(
                    empty_db,
                    "SELECT a.id FROM notifications n JOIN alerts a ON a.id = n.alert_id"
                    " JOIN users u ON u.id = n.user_id WHERE u.username = 'worker-songlin'"
                    " AND a.home_id = 'sl-017' AND a.kind = 'sos' AND n.channel = 'console'",
                )

            alert_id = await eventually(told, 20, "the village worker's notification")
            r = await http.get("/api/v1/alerts", headers=worker)
            assert [a["id"] for a in r.json()["items"]] == [alert_id]
            assert r.json()["items"][0]["severity"] == "critical"
            r = await http.get("/api/v1/alerts", headers=other)
            assert r.json()["items"] == []
            r = await http.get("/api/v1/alerts", headers=family)
            assert [a["id"] for a in r.json()["items"]] == [alert_id]
    reed_told = await scalar(
        empty_db,
        "SELECT count(*) FROM notifications n JOIN users u ON u.id = n.user_id"
        " WHERE u.username = 'worker-reed'",
    )
    assert reed_told == 0
    family_told = await scalar(
        empty_db,
        "SELECT count(*) FROM notifications n JOIN users u ON u.id = n.user_id"
        " WHERE u.username = 'wang-fang' AND n.alert_id = %s",
        alert_id,
    )
    assert family_told >= 1
    # Everything done was audited, by the command line and by the people themselves.
    actions = await scalar(
        empty_db,
        "SELECT json_object_agg(k, n) FROM (SELECT entity || '.' || action AS k, count(*) AS n"
        " FROM admin_audit GROUP BY 1) s",
    )
    assert actions["region.create"] == 4
    assert actions["user.create"] == 3
    assert actions["elder.import"] == HOMES
    assert actions["invitation.accept"] == 4
