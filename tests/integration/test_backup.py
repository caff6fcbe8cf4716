"""`eldercare backup` / `eldercare restore` for real: a backup of a database with alerts,
readings and audit rows, restored into a second, fresh PostgreSQL server started here."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from typer.testing import CliRunner

from alerts import store
from alerts.model import Category, Outcome, Severity, Signal
from cli.main import app
from devstack.broker import EmbeddedBroker
from devstack.postgres import EmbeddedPostgres
from ingest.migrate import migrate, storage_kind
from tests.integration.helpers import login, make_settings, running_service

pytestmark = pytest.mark.integration

# What must come back, each as (count, md5 of its ids in order).
FINGERPRINTS = {
    "alerts": "SELECT count(*), md5(string_agg(id::text, ',' ORDER BY id)) FROM alerts",
    "alert_events": "SELECT count(*), md5(string_agg(id::text || action || coalesce("
    "actor_id::text, '-'), ',' ORDER BY id)) FROM alert_events",
    "readings": "SELECT count(*), md5(string_agg(device_id || ':' || boot || ':' || seq || ':'"
    " || extract(epoch FROM ts) || '=' || value, ',' ORDER BY device_id, boot, seq, ts))"
    " FROM readings",
    "health_reads": "SELECT count(*), md5(string_agg(id::text || user_id || elder_id || what,"
    " ',' ORDER BY id)) FROM health_reads",
    "notifications": "SELECT count(*), md5(string_agg(id::text || status, ',' ORDER BY id))"
    " FROM notifications",
    "schema_migrations": "SELECT count(*), md5(string_agg(version || name || storage, ','"
    " ORDER BY version)) FROM schema_migrations",
    "resolved": "SELECT count(*), md5(string_agg(id || outcome, ',' ORDER BY id)) FROM alerts"
    " WHERE status = 'resolved'",
}


def fingerprints(url: str) -> dict[str, tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return {
            name: tuple(conn.execute(query.encode()).fetchone() or ())
            for name, query in FINGERPRINTS.items()
        }


async def populate(db_url: str) -> None:
    """Alerts raised, acknowledged and resolved (with their audit rows), readings over
    several days (day partitions and the default one), health-read audit rows."""
    now = datetime.now(UTC)
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cur = await conn.execute("SELECT id FROM users WHERE username = 'worker-v1'")
        row = await cur.fetchone()
        assert row is not None
        worker = int(row[0])
        ids = []
        for i, (home, kind, category) in enumerate(
            [
                ("h01", "sos", Category.EMERGENCY),
                ("h02", "fall", Category.EMERGENCY),
                ("h03", "smoke", Category.EMERGENCY),
                ("h04", "inactivity", Category.WELLBEING),
            ]
        ):
            signal = Signal(
                home_id=home, kind=kind, category=category, severity=Severity.CRITICAL,
                event_at=now - timedelta(minutes=10 - i), summary=f"{kind} in {home}",
                device_id=f"{home}-sos", boot=1, seq=i + 1,
            )  # fmt: skip
            raised = await store.raise_signal(conn, signal, now, timedelta(minutes=5))
            ids.append(raised.alert_id)
        assert await store.acknowledge(conn, ids[0], worker, "console")
        assert await store.resolve(conn, ids[0], worker, Outcome.VISITED_FINE, "all well")
        assert await store.resolve(conn, ids[1], worker, Outcome.FALSE_ALARM, "pendant dropped")
        assert await store.acknowledge(conn, ids[2], worker, "console")
        await conn.execute(
            "INSERT INTO readings (device_id, boot, seq, ts, home_id, metric, value)"
            " SELECT d.id, 1, g, %s - g * interval '2 minutes', d.home_id, 'temperature',"
            "        20 + (g %% 7) * 0.5"
            " FROM devices d CROSS JOIN generate_series(1, 3000) g WHERE d.home_id IN"
            " ('h01', 'h02') AND d.kind = 'temperature'",
            (now,),
        )
        await conn.execute(
            "INSERT INTO health_reads (user_id, elder_id, what)"
            " SELECT %s, e.id, 'timeline' FROM elders e",
            (worker,),
        )
        await conn.commit()


def test_backup_restores_everything_into_a_fresh_server(
    db_url: str, tmp_path: Path, mosquitto: EmbeddedBroker
) -> None:
    import asyncio

    asyncio.run(populate(db_url))
    before = fingerprints(db_url)
    assert before["readings"][0] == 6000  # two thermometers x 3000
    assert before["alerts"][0] == 4
    assert before["resolved"][0] == 2
    assert before["alert_events"][0] >= 8
    assert before["health_reads"][0] == 8

    runner = CliRunner()
    dump = tmp_path / "backups" / "eldercare.dump"
    made = runner.invoke(
        app, ["backup", "--out", str(dump)], env={"ELDERCARE_DATABASE__URL": db_url}
    )
    assert made.exit_code == 0, made.output
    assert dump.stat().st_size > 10_000
    assert "rows: alerts 4, readings 6,000, alert_events" in made.stdout
    summary = json.loads((dump.parent / "eldercare.dump.summary.json").read_text())
    assert summary["rows"] == {
        "alerts": 4, "readings": 6000, "alert_events": before["alert_events"][0]
    }  # fmt: skip
    assert not list(dump.parent.glob(".*partial"))

    fresh = EmbeddedPostgres(tmp_path / "pg2" / "data")
    fresh.start()
    try:
        restored = runner.invoke(app, ["restore", str(dump), "--to", fresh.url])
        assert restored.exit_code == 0, restored.output
        assert "restored:" in restored.stdout
        assert f"{summary['tables']} tables" in restored.stdout
        assert fingerprints(fresh.url) == before

        # The service starts on it: nothing left to migrate, the same storage path, and
        # the gateway serves the restored alerts.
        assert asyncio.run(migrate(fresh.url)) == []

        async def storage() -> str:
            async with await psycopg.AsyncConnection.connect(fresh.url) as conn:
                return await storage_kind(conn)

        assert asyncio.run(storage()) == "native"

        async def serve_restored() -> list[int]:
            settings = make_settings(fresh.url, mosquitto)
            async with running_service(settings, ("gateway",)) as running:
                base = f"http://127.0.0.1:{running.http_port}"
                async with httpx.AsyncClient(base_url=base) as client:
                    headers = await login(client, "district")
                    r = await client.get("/api/v1/alerts/history", headers=headers)
                    assert r.status_code == 200, r.text
                    return sorted(int(a["id"]) for a in r.json()["items"])

        with psycopg.connect(db_url) as conn:
            ids = [int(r[0]) for r in conn.execute("SELECT id FROM alerts ORDER BY id")]
        assert asyncio.run(serve_restored()) == ids

        # Not empty now: refused without --yes, and nothing touched.
        refused = runner.invoke(app, ["restore", str(dump), "--to", fresh.url])
        assert refused.exit_code == 2
        assert "not empty" in refused.output
        assert "--yes" in refused.output
        with psycopg.connect(fresh.url, autocommit=True) as conn:
            conn.execute("DELETE FROM health_reads WHERE id = (SELECT min(id) FROM health_reads)")
        assert fingerprints(fresh.url)["health_reads"][0] == 7
        # With --yes it is replaced by the backup's contents (the deleted row is back).
        again = runner.invoke(app, ["restore", str(dump), "--to", fresh.url, "--yes"])
        assert again.exit_code == 0, again.output
        assert fingerprints(fresh.url) == before

        # A backup damaged in its data (past the table of contents at its start) fails
        # half-way through the restore: the target stays as it was.
        with psycopg.connect(fresh.url, autocommit=True) as conn:
            conn.execute("INSERT INTO health_reads (user_id, elder_id, what)"
                         " SELECT min(id), 'e01', 'kept' FROM users")  # fmt: skip
        kept = fingerprints(fresh.url)
        damaged = bytearray(dump.read_bytes())
        at = len(damaged) * 9 // 10
        damaged[at : at + 500] = b"\x55" * 500
        bad = tmp_path / "damaged.dump"
        bad.write_bytes(bytes(damaged))
        failed = runner.invoke(app, ["restore", str(bad), "--to", fresh.url, "--yes"])
        assert failed.exit_code == 1, failed.output
        assert "the target is unchanged" in failed.output
        assert fingerprints(fresh.url) == kept
    finally:
        fresh.stop()


def test_backup_errors_are_clear(db_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["restore", str(tmp_path / "nope.dump"), "--to", db_url])
    assert missing.exit_code == 1
    assert "no backup file" in missing.output
    garbage = tmp_path / "garbage.dump"
    garbage.write_bytes(b"not a dump at all")
    unreadable = runner.invoke(app, ["restore", str(garbage), "--to", db_url, "--yes"])
    assert unreadable.exit_code == 1
    assert "is not a backup pg_restore" in unreadable.output
    unreachable = runner.invoke(
        app, ["backup", "--out", str(tmp_path / "x.dump")],
        env={"ELDERCARE_DATABASE__URL": "postgresql://nobody:x@127.0.0.1:1/none"},
    )  # fmt: skip
    assert unreachable.exit_code == 1
    assert "cannot connect to the source database" in unreachable.output
    assert not (tmp_path / "x.dump").exists()
