"""The device and simulator commands against a real PostgreSQL (and the ACL files they write)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from cli.main import app
from devices.provisioning import verify_password
from devstack.broker import EmbeddedBroker
from ingest import device_store
from simulators.cohort.cohort import Cohort
from simulators.cohort.truth import read_ground_truth
from simulators.drive import MqttSink, drive
from simulators.publisher import MqttPublisher
from tests.integration.helpers import eventually, make_settings, running_service, scalar

pytestmark = pytest.mark.integration


def rows(db_url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(query.encode()).fetchall()


def test_provision_then_broker_config(db_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"ELDERCARE_DATABASE__URL": db_url}
    result = runner.invoke(
        app, ["devices", "provision", "h01", "h01-radar", "--kind", "radar", "--room", "bathroom"],
        env=env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    password = re.search(r"password: (\S+)", result.stdout)
    assert password is not None
    [(username, hashed)] = rows(
        db_url, "SELECT username, password_hash FROM device_credentials WHERE device_id='h01-radar'"
    )
    assert username == "h01-radar"
    assert verify_password(password[1], str(hashed))
    assert rows(db_url, "SELECT home_id, kind, room FROM devices WHERE id='h01-radar'") == [
        ("h01", "radar", "bathroom")
    ]
    refused = runner.invoke(
        app, ["devices", "provision", "h02", "h01-radar", "--kind", "radar"], env=env
    )
    assert refused.exit_code == 2
    assert "taken" in refused.output
    unknown = runner.invoke(
        app, ["devices", "provision", "h01", "x1", "--kind", "toaster"], env=env
    )
    assert unknown.exit_code == 2
    no_home = runner.invoke(app, ["devices", "provision", "zz", "zz-1", "--kind", "hub"], env=env)
    assert no_home.exit_code == 2

    out = tmp_path / "broker"
    result = runner.invoke(app, ["broker", "config", "--out", str(out)], env=env)
    assert result.exit_code == 0, result.output
    assert "new service account eldercare-ingest" in result.stdout
    passwd = (out / "passwd").read_text().splitlines()
    assert {line.split(":")[0] for line in passwd} == {
        "h01-radar",
        "eldercare-ingest",
        "eldercare-alerts",
    }
    acl = (out / "acl").read_text()
    assert "user h01-radar\ntopic write eldercare/h01/h01-radar/readings" in acl
    assert oct((out / "acl").stat().st_mode & 0o777) == "0o600"
    again = runner.invoke(app, ["broker", "config", "--out", str(out)], env=env)
    assert again.exit_code == 0
    assert "new service account" not in again.stdout  # passwords of services are kept
    assert (out / "passwd").read_text().splitlines() == passwd


def test_simulate_loads_readings_and_ground_truth(db_url: str, tmp_path: Path) -> None:
    truth = tmp_path / "truth.jsonl"
    args = ["simulate", "--homes", "3", "--days", "4", "--seed", "6", "--incidents", "0.5",
            "--start", "2026-02-02", "--truth", str(truth), "--prefix", "s"]  # fmt: skip
    result = CliRunner().invoke(app, args, env={"ELDERCARE_DATABASE__URL": db_url})
    assert result.exit_code == 0, result.output
    sent = int(re.search(r"sent ([\d,]+) readings", result.output)[1].replace(",", ""))  # type: ignore[index]
    cohort = Cohort(3, 4, 6, 0.5, Cohort(1, 1, 0).start.replace(2026, 2, 2), home_prefix="s")
    expected = list(cohort.readings())
    assert sent == len(expected)
    [(stored,)] = rows(db_url, "SELECT count(*) FROM readings WHERE home_id LIKE 's%'")
    assert stored == len(expected)
    assert rows(db_url, "SELECT count(*) FROM dead_letters") == [(0,)]
    assert read_ground_truth(truth) == cohort.ground_truth()
    stored_truth = rows(
        db_url, "SELECT home_id, kind, starts_at, expected_alerts, detail FROM sim_incidents"
    )
    assert sorted((h, k, s) for h, k, s, _, _ in stored_truth) == sorted(
        (i.home_id, i.kind, i.start) for i in cohort.ground_truth()
    )
    assert all(json.dumps(d) for *_, d in stored_truth)
    # The readings are the cohort's, e.g. the last one of each device.
    last = {r.device_id: r for r in expected}
    db_last: dict[object, object] = dict(
        (d, n)
        for d, n in rows(
            db_url,
            "SELECT DISTINCT ON (device_id) device_id, seq FROM readings"
            " WHERE home_id LIKE 's%' ORDER BY device_id, seq DESC",
        )
    )
    assert db_last == {d: r.seq for d, r in last.items()}


def test_simulate_group_keeps_its_commands() -> None:
    result = CliRunner().invoke(app, ["simulate", "--help"])
    assert result.exit_code == 0
    for word in ("press-sos", "homes", "--homes", "--speed", "--incidents"):
        assert word in result.output
    bad = CliRunner().invoke(app, ["simulate", "--speed", "fast", "--to", "none", "--days", "1"])
    assert bad.exit_code == 2


async def test_a_cohort_over_real_mqtt_lands_in_the_database(
    db_url: str, mosquitto: EmbeddedBroker
) -> None:
    """Readings published with their event times over Mosquitto are all stored, once."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    cohort = Cohort(2, 2, 12, 0.5, today - timedelta(days=2), home_prefix="m")
    expected = list(cohort.readings())
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        homes = [
            (h.home_id, "Elder", [(d.device_id, d.kind, d.room) for d in h.devices])
            for h in cohort.homes
        ]
        async with conn.transaction():
            await device_store.register_homes(conn, homes, "simv-test")
    settings = make_settings(db_url, mosquitto)
    async with running_service(settings, ("ingest",)):
        async with MqttPublisher(mosquitto.url, "sim-cohort", mosquitto.protocol) as pub:
            sent = await drive(cohort.readings(), MqttSink(pub), max_rows=5000)
        assert sent == len(expected)
        await eventually(
            lambda: scalar(db_url, "SELECT count(*) = %s FROM readings WHERE home_id LIKE 'm%%'",
                           len(expected)),
            timeout=60,
            what="every published reading stored",
        )  # fmt: skip
    assert await scalar(db_url, "SELECT count(*) FROM dead_letters") == 0
    assert await scalar(db_url, "SELECT count(*) FROM seq_gaps") == 0
