"""Export and erasure of one elder's personal information on real PostgreSQL: the archive
holds every table and nothing of another elder; after erasure nothing in any text or JSON
column of the database names the elder, and the monthly KPIs count the same alerts."""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from typer.testing import CliRunner, Result

from alerts import kpi
from cli.main import app as cli_app
from gateway.privacy.export import TABLES
from tests.integration.helpers import Pool, assert_error, login, raise_sos

pytestmark = pytest.mark.integration


async def unique_elder(pool: Pool, village: str) -> tuple[str, str, str]:
    """(elder id, name, home) of an elder of `village` whose name no other elder has."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT e.id, e.full_name, e.home_id FROM elders e JOIN homes h ON h.id = e.home_id"
            " WHERE h.village_id = %s AND (SELECT count(*) FROM elders o"
            " WHERE o.full_name = e.full_name) = 1 ORDER BY e.id LIMIT 1",
            (village,),
        )
        row = await cur.fetchone()
    assert row is not None, "the demo seed has an elder with a name of their own"
    return str(row[0]), str(row[1]), str(row[2])


async def history_for(pool: Pool, client: httpx.AsyncClient, elder: str, home: str) -> None:
    """Give the elder a past: readings, a resolved SOS (with a note naming them), a visit
    with a note, a push subscription of their family member, a list read and a file read."""
    async with pool.connection() as conn:
        await conn.execute("SELECT eldercare_ensure_partitions(current_date - 2, current_date)")
        for h in (home, "h02"):
            await conn.execute(
                "INSERT INTO readings (device_id, boot, seq, ts, home_id, metric, value)"
                " SELECT %s || '-temp', 1, s, now() - s * interval '1 minute', %s,"
                " 'temperature', 21.5 FROM generate_series(1, 30) s",
                (h, h),
            )
        await conn.execute(
            "INSERT INTO care_visits (elder_id, visited_at, source, note)"
            " VALUES (%s, now(), 'console', 'Found her well, talked about her son')",
            (elder,),
        )
        await conn.execute(
            "INSERT INTO contact_channels (user_id, channel, target) SELECT user_id, 'webpush',"
            ' \'{"endpoint": "https://push.test/x"}\' FROM family_links WHERE elder_id = %s',
            (elder,),
        )
    staff = await login(client, "district")
    for h in (home, "h02"):
        alert = await raise_sos(pool, h)
        assert (await client.post(f"/api/v1/alerts/{alert}/ack", headers=staff)).status_code == 200
        done = await client.post(
            f"/api/v1/alerts/{alert}/resolve",
            json={"outcome": "visited_fine", "note": f"visited {h}, all well"},
            headers=staff,
        )
        assert done.status_code == 200, done.text
    assert (await client.get("/api/v1/elders", headers=staff)).status_code == 200
    assert (await client.get(f"/api/v1/elders/{elder}/status", headers=staff)).status_code == 200


def read_zip(data: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for name in zf.namelist():
            text = zf.read(name).decode("utf-8")
            out[name] = (
                json.loads(text) if name.endswith(".json") else list(csv.reader(io.StringIO(text)))
            )
    return out


async def test_export_holds_every_table_of_this_elder_only(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    elder, name, home = await unique_elder(pool, "v1")
    await history_for(pool, client, elder, home)
    town = await login(client, "town-t1")
    response = await client.get(f"/api/v1/elders/{elder}/export", headers=town)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    files = read_zip(response.content)
    manifest = files.pop("manifest.json")
    assert manifest["elder_id"] == elder
    assert manifest["generated_by"] == "town-t1"
    names = [t for t, _, _ in TABLES]
    assert [t["name"] for t in manifest["tables"]] == names
    assert set(files) == {f"{n}.{ext}" for n in names for ext in ("json", "csv")}
    for n in names:
        rows, table = files[f"{n}.json"], files[f"{n}.csv"]
        assert len(table) == len(rows) + 1, n  # the header, then one line per row
        assert next(t["rows"] for t in manifest["tables"] if t["name"] == n) == len(rows)
        if rows:
            assert table[0] == list(rows[0]), n
    assert files["profile.json"][0]["full_name"] == name
    assert files["profile.json"][0]["home_id"] == home
    assert len(files["readings.json"]) == 30
    assert {r["device_id"] for r in files["readings.json"]} == {f"{home}-temp"}
    assert [a["kind"] for a in files["alerts.json"]] == ["sos"]
    assert {e["action"] for e in files["alert_events.json"]} >= {"opened", "acknowledged"}
    assert {c["purpose"] for c in files["consents.json"]} == {"monitoring", "share_family"}
    assert files["visits.json"][0]["note"].startswith("Found her well")
    assert {c["kind"] for c in files["contacts.json"]} == {"contact", "family"}
    assert {r["what"] for r in files["health_reads.json"]} >= {"status"}
    assert [r["what"] for r in files["list_reads.json"]] == ["elders"]
    # Nothing of another elder: not their id, home, name or readings.
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id, home_id, full_name FROM elders WHERE id <> %s", (elder,)
        )
        others = await cur.fetchall()
    blob = json.dumps({k: v for k, v in files.items() if k.endswith(".json")}, ensure_ascii=False)
    for other_id, other_home, other_name in others:
        assert f'"{other_id}"' not in blob
        assert f'"{other_home}' not in blob
        assert other_name not in blob
    # The export is audited; a village worker and a family member may not export.
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT u.username, r.detail FROM health_reads r JOIN users u ON u.id = r.user_id"
            " WHERE r.elder_id = %s AND r.what = 'export'",
            (elder,),
        )
        audited = await cur.fetchall()
    assert [u for u, _ in audited] == ["town-t1"]
    assert audited[0][1]["rows"]["readings"] == 30
    for who in ("worker-v1", "family-" + home):
        headers = await login(client, who)
        assert_error(
            await client.get(f"/api/v1/elders/{elder}/export", headers=headers), 403, "forbidden"
        )
    outside = await login(client, "town-t2")
    assert_error(
        await client.get(f"/api/v1/elders/{elder}/export", headers=outside), 404, "not_found"
    )


async def text_columns(conn: psycopg.AsyncConnection[Any]) -> list[tuple[str, str]]:
    cur = await conn.execute(
        "SELECT c.table_name, c.column_name FROM information_schema.columns c"
        " JOIN information_schema.tables t ON t.table_schema = c.table_schema"
        " AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'"
        " WHERE c.table_schema = current_schema() AND (c.data_type IN"
        " ('text', 'character varying', 'json', 'jsonb', 'ARRAY'))"
        " ORDER BY 1, 2"
    )
    return [(str(t), str(c)) for t, c in await cur.fetchall()]


async def mentions(conn: psycopg.AsyncConnection[Any], needle_regex: str) -> list[str]:
    """Every table.column (text, varchar, json, jsonb, arrays) whose text matches."""
    found = []
    for table, column in await text_columns(conn):
        cur = await conn.execute(
            f'SELECT count(*) FROM "{table}" WHERE "{column}"::text ~ %s',  # noqa: S608 - names from the catalogue
            (needle_regex,),
        )
        row = await cur.fetchone()
        if row and row[0]:
            found.append(f"{table}.{column}")
    return found


async def test_erase_leaves_nothing_identifying_and_the_kpis_unchanged(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    elder, name, home = await unique_elder(pool, "v1")
    await history_for(pool, client, elder, home)
    month = datetime.now(UTC).strftime("%Y-%m")
    async with pool.connection() as conn:
        before = await kpi.report(conn, month)
        village = await (
            await conn.execute("SELECT village_id FROM homes WHERE id = %s", (home,))
        ).fetchone()
        assert await mentions(conn, rf"\y{elder}\y") != []  # the check would see it
    district = await login(client, "district")
    body = {"reason": "moved_away", "confirm": elder}
    # Refused while an alert is open; only district staff; the id repeated.
    open_alert = await raise_sos(pool, home)
    assert_error(
        await client.post(f"/api/v1/elders/{elder}/erase", json=body, headers=district),
        409,
        "alerts_unresolved",
    )
    town = await login(client, "town-t1")
    assert_error(
        await client.post(f"/api/v1/elders/{elder}/erase", json=body, headers=town),
        403,
        "forbidden",
    )
    assert_error(
        await client.post(
            f"/api/v1/elders/{elder}/erase", json={**body, "confirm": "e99"}, headers=district
        ),
        422,
        "invalid_request",
    )
    resolved = await client.post(
        f"/api/v1/alerts/{open_alert}/resolve", json={"outcome": "false_alarm"}, headers=district
    )
    assert resolved.status_code == 200, resolved.text
    async with pool.connection() as conn:
        before = await kpi.report(conn, month)
    erased = await client.post(f"/api/v1/elders/{elder}/erase", json=body, headers=district)
    assert erased.status_code == 200, erased.text
    result = erased.json()
    assert result["counts"]["readings"] == 30
    assert result["counts"]["alerts_anonymised"] == 2
    assert result["counts"]["family_accounts_closed"] == 1

    async with pool.connection() as conn:
        # No text or JSON anywhere names the elder or carries their id.
        assert await mentions(conn, rf"\y{elder}\y") == []
        assert await mentions(conn, name) == []
        cur = await conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE home_id IS NULL AND village_id = %s"
            " AND summary = '' AND resolution_note IS NULL) FROM alerts WHERE erasure_id = %s",
            (village[0] if village else None, result["id"]),
        )
        assert await cur.fetchone() == (2, 2)
        cur = await conn.execute("SELECT count(*) FROM readings WHERE home_id = %s", (home,))
        assert await cur.fetchone() == (0,)
        cur = await conn.execute("SELECT address FROM homes WHERE id = %s", (home,))
        assert await cur.fetchone() == ("",)
        cur = await conn.execute(
            "SELECT erased_by IS NOT NULL, via, reason, counts ? 'readings' FROM elder_erasures"
            " WHERE id = %s",
            (result["id"],),
        )
        assert await cur.fetchone() == (True, "api", "moved_away", True)
        cur = await conn.execute(
            "SELECT count(*) FROM elder_consents WHERE erasure_id = %s AND elder_id IS NULL"
            " AND withdrawn_at IS NOT NULL",
            (result["id"],),
        )
        assert await cur.fetchone() == (2,)
        # The family member's account is closed: no sign-in, no push subscription.
        cur = await conn.execute(
            "SELECT count(*) FROM contact_channels c JOIN users u ON u.id = c.user_id"
            " WHERE u.username = %s",
            (f"family-{home}",),
        )
        assert await cur.fetchone() == (0,)
        after = await kpi.report(conn, month)
    assert after == before
    assert next(r.alerts for r in after if r.grouping == "total") >= 3
    assert (
        await client.post(
            "/api/v1/auth/login",
            json={"username": f"family-{home}", "password": "demo-password"},
        )
    ).status_code == 401
    # The other elders are untouched, and the erased alerts are listed to nobody.
    history = await client.get("/api/v1/alerts/history", headers=district)
    assert {a["home_id"] for a in history.json()["items"]} == {"h02"}
    assert (await client.get("/api/v1/elders/e02/status", headers=district)).status_code == 200
    assert_error(await client.get(f"/api/v1/elders/{elder}", headers=district), 404, "not_found")


def test_cli_consent_export_erase(db_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {**os.environ, "ELDERCARE_DATABASE__URL": db_url}

    def run(*args: str) -> Result:
        return runner.invoke(cli_app, ["privacy", *args], env=env)

    listed = run("consent", "list", "e03")
    assert listed.exit_code == 0, listed.output
    withdrawn = run("consent", "withdraw", "e03", "999999", "--by", "district")
    assert withdrawn.exit_code == 2
    recorded = run(
        "consent",
        "record",
        "e03",
        "--purpose",
        "monitoring",
        "--method",
        "in_person",
        "--by",
        "district",
    )
    assert recorded.exit_code == 2  # one current consent per purpose
    assert "withdraw it first" in recorded.output
    out = tmp_path / "e03.zip"
    exported = run("export", "e03", "--out", str(out), "--by", "district")
    assert exported.exit_code == 0, exported.output
    with zipfile.ZipFile(out) as zf:
        assert json.loads(zf.read("manifest.json"))["elder_id"] == "e03"
        assert "readings.csv" in zf.namelist()
    refused = run("erase", "e03", "--by", "district")
    assert refused.exit_code == 2
    assert "--yes" in refused.output
    not_district = run("erase", "e03", "--yes", "--by", "worker-v3")
    assert not_district.exit_code == 2
    erased = run("erase", "e03", "--yes", "--by", "district", "--reason", "deceased")
    assert erased.exit_code == 0, erased.output
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM elders WHERE id = 'e03'").fetchone() == (0,)
        row = conn.execute("SELECT via, reason FROM elder_erasures").fetchone()
        assert row == ("cli", "deceased")
        audited = conn.execute("SELECT count(*) FROM health_reads WHERE what = 'export'").fetchone()
        assert audited == (0,)  # the export's audit row went with the elder
