"""Personal information on real PostgreSQL: consent records over the API, health data
refused without a current consent (403 `consent_missing`), no wellbeing/environment alert
without it while an SOS still alerts (the real service and broker), and the audit of list
and stream reads."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from alerts.consent import Purpose
from devices.payload import Reading
from devstack.broker import EmbeddedBroker
from devstack.seed import DEMO_PASSWORD
from simulators.publisher import MqttPublisher
from tests.integration.helpers import (
    Pool,
    assert_error,
    eventually,
    login,
    make_settings,
    raise_sos,
    running_service,
    scalar,
)
from tests.integration.test_api import next_event

pytestmark = pytest.mark.integration


async def consent_id(pool: Pool, elder: str, purpose: str) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id FROM elder_consents WHERE elder_id = %s AND purpose = %s"
            " AND withdrawn_at IS NULL",
            (elder, purpose),
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def list_reads(pool: Pool, username: str, what: str) -> list[tuple[Any, ...]]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT r.rows, r.elder_ids, r.detail FROM list_reads r JOIN users u"
            " ON u.id = r.user_id WHERE u.username = %s AND r.what = %s ORDER BY r.id",
            (username, what),
        )
        return list(await cur.fetchall())


# ------------------------------------------------------------------ consent records, the gate


async def test_consents_recorded_listed_withdrawn_and_health_data_refused_without(
    client: httpx.AsyncClient, pool: Pool, db_url: str
) -> None:
    staff = await login(client, "worker-v1")
    family = await login(client, "family-h01")
    listed = await client.get("/api/v1/elders/e01/consents", headers=staff)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["missing"] == []
    assert sorted(c["purpose"] for c in body["items"] if c["current"]) == [
        "monitoring",
        "share_family",
    ]
    for path in ("status", "readings", "timeline.svg"):
        ok = await client.get(f"/api/v1/elders/e01/{path}", headers=staff)
        assert ok.status_code == 200, (path, ok.text)
    # One current consent per purpose; a guardian needs a name and relation.
    again = {"purpose": "monitoring", "method": "in_person"}
    assert_error(
        await client.post("/api/v1/elders/e01/consents", json=again, headers=staff),
        409,
        "consent_exists",
    )
    # Family members and strangers do not manage consent.
    assert_error(await client.get("/api/v1/elders/e01/consents", headers=family), 403, "forbidden")
    assert_error(await client.get("/api/v1/elders/e02/consents", headers=staff), 404, "not_found")

    monitoring = await consent_id(pool, "e01", "monitoring")
    withdrawn = await client.post(
        f"/api/v1/elders/e01/consents/{monitoring}/withdraw",
        json={"note": "the daughter phoned: stop the sensors"},
        headers=staff,
    )
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["current"] is False
    assert withdrawn.json()["withdrawn_by_name"] == "Village worker v1"
    assert_error(
        await client.post(
            f"/api/v1/elders/e01/consents/{monitoring}/withdraw", json={}, headers=staff
        ),
        409,
        "already_withdrawn",
    )
    assert (await client.get("/api/v1/elders/e01/consents", headers=staff)).json()["missing"] == [
        "monitoring"
    ]

    reads_before = await scalar(db_url, "SELECT count(*) FROM health_reads WHERE elder_id = 'e01'")
    for who in (staff, family):
        for path in ("status", "readings", "timeline.svg"):
            error = assert_error(
                await client.get(f"/api/v1/elders/e01/{path}", headers=who), 403, "consent_missing"
            )
            assert "monitoring" in error["message"]
    # The family page (HTML) refuses too; a refused read writes no audit row.
    assert_error(await client.get("/family/e01", headers=family), 403, "consent_missing")
    assert (
        await scalar(db_url, "SELECT count(*) FROM health_reads WHERE elder_id = 'e01'")
        == reads_before
    )
    # The file itself (to record consent) and the alerts are still there.
    assert (await client.get("/api/v1/elders/e01", headers=staff)).status_code == 200

    # The file page: the consent section with the red line, no status or timeline.
    client.cookies.clear()
    signed = await client.post(
        "/api/v1/auth/login", json={"username": "worker-v1", "password": DEMO_PASSWORD}
    )
    assert signed.status_code == 200
    page = await client.get("/console/elders/e01")
    assert page.status_code == 200, page.text
    assert 'id="consent-missing"' in page.text
    assert "Monitoring and health data" in page.text
    assert "timeline.svg" not in page.text
    assert 'id="no-health-data"' in page.text
    client.cookies.clear()

    # A guardian's consent brings it back (a guardian needs a name and relation).
    assert_error(
        await client.post(
            "/api/v1/elders/e01/consents",
            json={"purpose": "monitoring", "method": "paper_form", "given_by": "guardian"},
            headers=staff,
        ),
        422,
        "invalid_consent",
    )
    given = await client.post(
        "/api/v1/elders/e01/consents",
        json={
            "purpose": "monitoring",
            "method": "paper_form",
            "given_by": "guardian",
            "guardian_name": "Li Ming",
            "guardian_relation": "son",
            "reference": "form 2026-114",
        },
        headers=staff,
    )
    assert given.status_code == 201, given.text
    assert given.json()["current"] is True
    assert given.json()["recorded_by_name"] == "Village worker v1"
    assert (await client.get("/api/v1/elders/e01/status", headers=staff)).status_code == 200
    assert (await client.get("/family/e01", headers=family)).status_code == 200

    # Sharing with the family withdrawn: staff still see the status, the family does not.
    share = await consent_id(pool, "e01", "share_family")
    w = await client.post(f"/api/v1/elders/e01/consents/{share}/withdraw", json={}, headers=staff)
    assert w.status_code == 200
    assert (await client.get("/api/v1/elders/e01/status", headers=staff)).status_code == 200
    error = assert_error(
        await client.get("/api/v1/elders/e01/status", headers=family), 403, "consent_missing"
    )
    assert "share_family" in error["message"]


# ------------------------------------------------------- the alerts stage and the real broker


def temperature(home: str, seq: int, ts: datetime, value: float) -> Reading:
    return Reading(home, f"{home}-temp", "temperature", 1, seq, ts, "temperature", value)


async def test_no_consent_no_environment_alert_but_sos_still_alerts(
    db_url: str, mosquitto: EmbeddedBroker
) -> None:
    settings = make_settings(db_url, mosquitto)
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        await conn.execute(
            "UPDATE elder_consents SET withdrawn_at = now() - interval '1 minute'"
            " WHERE elder_id = 'e02' AND purpose = %s",
            (Purpose.MONITORING.value,),
        )
        await conn.commit()
    now = datetime.now(UTC)
    # Three hours at 10 °C in h02 (no consent) and in h03 (consent): too cold for too long.
    start = now - timedelta(hours=3)
    cold = {
        home: [temperature(home, i + 1, start + timedelta(minutes=10 * i), 10.0) for i in range(19)]
        for home in ("h02", "h03")
    }
    async with running_service(settings) as running:
        port = running.http_port
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            headers = await login(http, "district")
            async with http.stream("GET", "/api/v1/alerts/stream", headers=headers) as stream:
                lines = stream.aiter_lines()
                async with asyncio.timeout(10):
                    assert (await next_event(lines))["event"] == "hello"
                for home, rows in cold.items():
                    async with MqttPublisher(mosquitto.url, f"dev-{home}-temp") as pub:
                        await pub.publish_readings(rows)
                await eventually(
                    lambda: scalar(
                        db_url,
                        "SELECT count(*) FROM alerts WHERE home_id = 'h03'"
                        " AND kind = 'indoor_cold'",
                    ),
                    timeout=20,
                    what="the consented home's cold alert",
                )
                await eventually(
                    lambda: scalar(
                        db_url,
                        "SELECT count(*) FROM suppressed_signals WHERE home_id = 'h02'"
                        " AND kind = 'indoor_cold' AND muted_by = 'consent'",
                    ),
                    timeout=20,
                    what="h02's cold signal held back for want of consent",
                )
                async with MqttPublisher(mosquitto.url, "dev-h02-sos") as pub:
                    await pub.publish_readings(
                        [
                            Reading(
                                "h02",
                                "h02-sos",
                                "sos_button",
                                1,
                                1,
                                datetime.now(UTC),
                                "press",
                                1.0,
                            )
                        ]
                    )
                sos_id = await eventually(
                    lambda: scalar(
                        db_url, "SELECT id FROM alerts WHERE home_id = 'h02' AND kind = 'sos'"
                    ),
                    timeout=20,
                    what="the SOS of the home without consent",
                )
                # The stream carries alert events; the audit has one row for the connection.
                seen: set[int] = set()
                async with asyncio.timeout(10):
                    while sos_id not in seen:
                        event = await next_event(lines)
                        if event.get("event") == "alert":
                            seen.add(json.loads(event["data"])["id"])
        counted = running.metrics.get_sample_value(
            "eldercare_signals_without_consent_total", {"kind": "indoor_cold"}
        )
    assert counted is not None
    assert counted >= 1
    assert (
        await scalar(
            db_url, "SELECT count(*) FROM alerts WHERE home_id = 'h02' AND kind = 'indoor_cold'"
        )
        == 0
    )
    assert await scalar(db_url, "SELECT status FROM alerts WHERE id = %s", sos_id) == "open"
    assert (
        await scalar(
            db_url,
            "SELECT count(*) FROM list_reads r JOIN users u ON u.id = r.user_id"
            " WHERE u.username = 'district' AND r.what = 'alert_stream'",
        )
        == 1
    )


# ------------------------------------------------------------------------ list read audit


async def test_list_reads_audited_once_per_request(client: httpx.AsyncClient, pool: Pool) -> None:
    await raise_sos(pool, "h01")
    await raise_sos(pool, "h02")
    worker = await login(client, "worker-v1")
    elders = await client.get("/api/v1/elders", headers=worker)
    assert elders.status_code == 200
    assert await list_reads(pool, "worker-v1", "elders") == [
        (2, ["e01", "e05"], {"searched": False})
    ]
    alerts = await client.get("/api/v1/alerts", headers=worker)
    assert [a["home_id"] for a in alerts.json()["items"]] == ["h01"]
    assert await list_reads(pool, "worker-v1", "alerts") == [(1, ["e01"], {})]
    district = await login(client, "district")
    history = await client.get("/api/v1/alerts/history", headers=district)
    assert history.status_code == 200
    assert await list_reads(pool, "district", "alert_history") == [(2, ["e01", "e02"], {})]
    csv = await client.get("/api/v1/alerts/history.csv", headers=district)
    assert csv.status_code == 200
    assert await list_reads(pool, "district", "alert_history_csv") == [(2, ["e01", "e02"], {})]
    for path, what in (
        ("/console", "console"),
        ("/console/elders", "elders_page"),
        ("/console/history", "history_page"),
    ):
        page = await client.get(path, headers=district)
        assert page.status_code == 200, (path, page.text)
        rows = await list_reads(pool, "district", what)
        assert len(rows) == 1, (what, rows)
        expected = 8 if what == "elders_page" else 2
        assert rows[0][0] == expected, (what, rows)
        assert len(rows[0][1]) == expected, (what, rows)
    # A search is recorded as such, never its text (it may be a name).
    assert all("q" not in r[2] for r in await list_reads(pool, "district", "elders_page"))
    # The family's list page (two linked elders).
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO family_links (user_id, elder_id, relation) SELECT id, 'e02', 'child'"
            " FROM users WHERE username = 'family-h01'"
        )
    family = await login(client, "family-h01")
    page = await client.get("/family", headers=family)
    assert page.status_code == 200
    assert await list_reads(pool, "family-h01", "family_list") == [(2, ["e01", "e02"], {})]
