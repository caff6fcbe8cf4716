"""Devices over the API and the CLI against a real Mosquitto (password file + ACL) and
PostgreSQL, and per-elder limits set through the API that the live service follows."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from typer.testing import CliRunner

from alerts.detect.health import TemperatureWatch
from cli.main import app as cli_app
from devices.payload import Reading
from devstack.broker import EmbeddedBroker
from gateway.app import create_app
from gateway.context import AppContext
from ingest import store
from simulators.publisher import MqttPublisher
from tests.integration.helpers import (
    assert_error,
    eventually,
    login,
    make_settings,
    running_service,
    scalar,
)
from tests.integration.test_device_lifecycle import (
    AclBroker,
    acl_broker,
    connects,
    eventually_refused,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def broker(tmp_path: Path, db_url: str) -> AsyncIterator[AclBroker]:
    async with acl_broker(tmp_path, db_url) as b:
        yield b


async def test_install_rotate_replace_retire_over_the_api(
    ctx: AppContext, broker: AclBroker, db_url: str
) -> None:
    app = create_app(dataclasses.replace(ctx, broker=broker.settings))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        body = {"device_id": "h01-radar-2", "kind": "radar", "room": "bathroom"}
        family = await login(client, "family-h01")
        r = await client.post("/api/v1/homes/h01/devices", json=body, headers=family)
        assert_error(r, 403, "forbidden")
        other = await login(client, "worker-v2")  # h01 is in village v1
        r = await client.post("/api/v1/homes/h01/devices", json=body, headers=other)
        assert_error(r, 404, "not_found")
        staff = await login(client, "worker-v1")
        bad = await client.post(
            "/api/v1/homes/h01/devices", json={**body, "kind": "toaster"}, headers=staff
        )
        error = assert_error(bad, 422, "invalid_request")
        assert "body.kind" in {d["field"] for d in error["details"]}

        r = await client.post("/api/v1/homes/h01/devices", json=body, headers=staff)
        assert r.status_code == 201, r.text
        installed = r.json()
        assert installed["username"] == "h01-radar-2"
        assert installed["broker"] == {"files_written": True, "reloaded": True, "error": None}
        assert installed["install"]["status"] == "waiting"
        assert await connects(broker, "h01-radar-2", installed["password"])
        r = await client.post("/api/v1/homes/h01/devices", json=body, headers=staff)
        assert_error(r, 409, "duplicate_id")
        r = await client.get("/api/v1/devices/h01-radar-2/install", headers=staff)
        assert r.json()["status"] == "waiting"
        assert r.json()["first_heard_at"] is None

        operator = await login(client, "operator")
        r = await client.post("/api/v1/devices/h01-radar-2/rotate", headers=operator)
        assert r.status_code == 200, r.text
        rotated = r.json()["password"]
        await eventually_refused(broker, "h01-radar-2", installed["password"])
        assert await connects(broker, "h01-radar-2", rotated)

        r = await client.post(
            "/api/v1/devices/h01-radar-2/replace", json={"new_device_id": "h01-radar-3"},
            headers=staff,
        )  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["retired"] == "h01-radar-2"
        assert r.json()["install"]["status"] == "waiting"
        await eventually_refused(broker, "h01-radar-2", rotated)
        assert await connects(broker, "h01-radar-3", r.json()["password"])

        r = await client.post("/api/v1/devices/h01-radar-3/retire", headers=staff)
        assert r.status_code == 200, r.text
        assert r.json()["password"] is None
        r = await client.post("/api/v1/devices/h01-radar-3/retire", headers=staff)
        assert_error(r, 409, "retired")
        one = (await client.get("/api/v1/devices/h01-radar-3", headers=staff)).json()
        assert one["retired_at"] is not None
        listed = (await client.get("/api/v1/devices?home=h01", headers=staff)).json()["items"]
        assert "h01-radar-3" not in {d["id"] for d in listed}
        assert "h01-sos" in {d["id"] for d in listed}
    actions = await scalar(
        db_url,
        "SELECT string_agg(action || ':' || device_id || ':' || actor, ' ' ORDER BY id)"
        " FROM device_events",
    )
    assert actions == (
        "install:h01-radar-2:worker-v1 rotate:h01-radar-2:operator install:h01-radar-3:worker-v1"
        " replace:h01-radar-2:worker-v1 retire:h01-radar-3:worker-v1"
    )


def test_cli_install_and_check_install(db_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {
        "ELDERCARE_DATABASE__URL": db_url,
        "ELDERCARE_BROKER__PASSWORD_FILE": str(tmp_path / "passwd"),
        "ELDERCARE_BROKER__ACL_FILE": str(tmp_path / "acl"),
    }
    args = ["devices", "install", "h02", "h02-pir-2", "--kind", "pir_motion", "--room", "hall"]
    done = runner.invoke(cli_app, args, env=env)
    assert done.exit_code == 0, done.output
    assert re.search(r"password: \S+", done.stdout)
    assert "user h02-pir-2\n" in (tmp_path / "acl").read_text()
    assert "reload the broker" in done.output  # no pid file nor command: files only
    again = runner.invoke(cli_app, args, env=env)
    assert again.exit_code == 2
    assert "duplicate_id" in again.output

    waiting = runner.invoke(cli_app, ["devices", "check-install", "h02-pir-2"], env=env)
    assert waiting.exit_code == 1, waiting.output
    assert "waiting" in waiting.stdout

    async def heard() -> None:
        async with await psycopg.AsyncConnection.connect(db_url) as conn:
            await store.prepare_writer(conn)
            now = datetime.now(UTC)
            reading = Reading("h02", "h02-pir-2", "pir_motion", 1, 1, now, "motion", 1.0)
            await store.write_batch(conn, [reading], [], [])

    asyncio.run(heard())
    ok = runner.invoke(cli_app, ["devices", "check-install", "h02-pir-2", "--wait", "5"], env=env)
    assert ok.exit_code == 0, ok.output
    assert "heard" in ok.stdout
    gone = runner.invoke(cli_app, ["devices", "retire", "h02-pir-2"], env=env)
    assert gone.exit_code == 0, gone.output
    assert "h02-pir-2" not in (tmp_path / "passwd").read_text()
    assert runner.invoke(cli_app, ["devices", "check-install", "nope"], env=env).exit_code == 2


async def test_a_limit_set_through_the_api_changes_what_the_live_service_raises(
    db_url: str, mosquitto: EmbeddedBroker
) -> None:
    settings = make_settings(db_url, mosquitto)
    async with running_service(settings) as svc:
        transport = httpx.ASGITransport(app=svc.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            staff = await login(client, "district")
            bad = await client.patch(
                "/api/v1/elders/e01", json={"thresholds": {"pulse_max": 120}}, headers=staff
            )
            error = assert_error(bad, 422, "invalid_request")
            assert any("pulse_max" in d["field"] for d in error["details"])
            r = await client.patch(
                "/api/v1/elders/e01", json={"thresholds": {"temperature_max_c": 25}},
                headers=staff,
            )  # fmt: skip
            assert r.status_code == 200, r.text
            assert r.json()["thresholds"] == {"temperature_max_c": 25}
        # The edit is audited: who, and the changed field before and after.
        row = await scalar(
            db_url,
            "SELECT json_build_array(actor, before, after) FROM admin_audit"
            " WHERE entity = 'elder' AND entity_id = 'e01' AND action = 'update'",
        )
        assert row[0] == "district"
        assert row[2] == {"thresholds": {"temperature_max_c": 25}}
        assert set(row[1]) == {"thresholds"}

        # The detection follows the edit on its clock, with no reading needed to wake it.
        async def applied() -> bool:
            watch = svc.detectors.find(TemperatureWatch) if svc.detectors else None
            return watch is not None and watch.limits.get("h01", (None, None))[1] == 25

        await eventually(applied, what="the detectors to hold h01's limit")
        # 27 °C for two hours and more in h01 (the elder's limit 25) and in h02 (the default 30).
        now = datetime.now(UTC)
        async with MqttPublisher(mosquitto.url, "limits-test") as pub:
            for seq, ago in enumerate((130, 90, 60, 30, 0), start=1):
                at = now - timedelta(minutes=ago)
                for home in ("h01", "h02"):
                    await pub.publish_readings(
                        [Reading(home, f"{home}-temp", "temperature", 1, seq, at, "temperature",
                                 27.0)]
                    )  # fmt: skip
        kinds = "SELECT string_agg(home_id, ',' ORDER BY home_id) FROM alerts WHERE kind = %s"
        await eventually(lambda: scalar(db_url, kinds, "indoor_heat"), what="indoor_heat")
        await asyncio.sleep(1.0)  # h02's readings were handled by now too
        assert await scalar(db_url, kinds, "indoor_heat") == "h01"
