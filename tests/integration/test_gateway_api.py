"""The elder's file, readings, status, visits, care weeks, resolve and languages, against a
real PostgreSQL with the demo region."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from prometheus_client import CollectorRegistry

from alerts.care import CareMetrics, CareTask, close_weeks, import_tag_visits, week_start
from alerts.mutes import set_home_mode
from tests.integration.helpers import Pool, assert_error, login, raise_sos

pytestmark = pytest.mark.integration
SHANGHAI = ZoneInfo("Asia/Shanghai")


async def add_readings(pool: Pool, rows: list[tuple[str, datetime, str, float]]) -> None:
    """Store readings of home h01 directly: (device suffix, ts, metric, value)."""
    async with pool.connection() as conn:
        await conn.execute("SELECT eldercare_ensure_partitions(current_date - 40, current_date)")
        for seq, (device, ts, metric, value) in enumerate(rows):
            await conn.execute(
                "INSERT INTO readings (device_id, boot, seq, ts, home_id, metric, value)"
                " VALUES (%s, 1, %s, %s, 'h01', %s, %s)",
                (f"h01-{device}", seq, ts, metric, value),
            )


async def test_elder_file_has_profile_contacts_devices_and_alerts(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    await raise_sos(pool, "h01")
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO elder_contacts (elder_id, name, relation, phone)"
            " VALUES ('e01', 'Neighbour Li', 'neighbour', '+86 138 0000 0000')"
        )
    headers = await login(client, "worker-v1")
    patched = await client.patch(
        "/api/v1/elders/e01",
        json={"conditions": ["diabetes", "hypertension"], "thresholds": {"temperature_min_c": 16}},
        headers=headers,
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["conditions"] == ["diabetes", "hypertension"]
    assert body["thresholds"] == {"temperature_min_c": 16}
    assert body["village"] == "Willow Village"
    names = {c["name"] for c in body["contacts"]}
    assert "Neighbour Li" in names
    assert any(c["is_user"] for c in body["contacts"])  # the family member
    assert {d["id"] for d in body["devices"]} >= {"h01-sos", "h01-bed", "h01-temp"}
    assert [a["kind"] for a in body["open_alerts"]] == ["sos"]
    assert body["away_now"] is False

    away = await client.put(
        "/api/v1/elders/e01/away",
        json={"away_from": "2020-01-01T00:00:00Z", "reason": "hospital"},
        headers=headers,
    )
    assert away.status_code == 200
    assert away.json()["away_now"] is True
    assert away.json()["away_reason"] == "hospital"
    assert away.json()["away_mode"] == "away"
    back = await client.delete("/api/v1/elders/e01/away", headers=headers)
    assert back.json()["away_now"] is False
    assert back.json()["away_mode"] is None

    bad = await client.put(
        "/api/v1/elders/e01/away",
        json={"away_from": "2026-01-02T00:00:00Z", "away_until": "2026-01-01T00:00:00Z"},
        headers=headers,
    )
    error = assert_error(bad, 422, "invalid_request")
    assert "away_until must be after away_from" in str(error["details"])


async def test_readings_raw_paged_and_rolled_up(client: httpx.AsyncClient, pool: Pool) -> None:
    start = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
    rows = [("temp", start + timedelta(minutes=10 * i), "temperature", 20.0 + i) for i in range(12)]
    rows.append(("pir-living", start + timedelta(minutes=5), "motion", 1.0))
    await add_readings(pool, rows)
    headers = await login(client, "town-t1")
    window = {"start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat()}

    first = await client.get(
        "/api/v1/elders/e01/readings",
        params={**window, "metric": "temperature", "limit": 5},
        headers=headers,
    )
    assert first.status_code == 200, first.text
    page1 = first.json()
    assert [r["value"] for r in page1["items"]] == [20.0, 21.0, 22.0, 23.0, 24.0]
    rest = await client.get(
        "/api/v1/elders/e01/readings",
        params={**window, "metric": "temperature", "limit": 500, "after": page1["next_after"]},
        headers=headers,
    )
    assert [r["value"] for r in rest.json()["items"]] == [25.0 + i for i in range(7)]
    assert rest.json()["next_after"] is None

    rolled = await client.get(
        "/api/v1/elders/e01/readings",
        params={**window, "metric": "temperature", "bucket_s": 3600},
        headers=headers,
    )
    buckets = rolled.json()["items"]
    assert [(b["count"], b["min"], b["max"], b["avg"]) for b in buckets] == [
        (6, 20.0, 25.0, 22.5),
        (6, 26.0, 31.0, 28.5),
    ]

    naive = await client.get(
        "/api/v1/elders/e01/readings", params={"start": "2026-01-05T00:00:00"}, headers=headers
    )
    assert_error(naive, 422, "invalid_request")
    too_long = await client.get(
        "/api/v1/elders/e01/readings",
        params={"start": "2025-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
        headers=headers,
    )
    assert "31 days" in assert_error(too_long, 422, "invalid_request")["message"]


async def test_status_timeline_and_audit(client: httpx.AsyncClient, pool: Pool) -> None:
    now = datetime.now(UTC)
    await add_readings(
        pool,
        [
            ("pir-kitchen", now - timedelta(minutes=50), "motion", 1.0),
            ("temp", now - timedelta(minutes=10), "temperature", 21.5),
            ("door-entry", now - timedelta(minutes=30), "open", 1.0),
            ("door-entry", now - timedelta(minutes=29), "open", 0.0),
        ],
    )
    headers = await login(client, "family-h01")
    status = await client.get("/api/v1/elders/e01/status", headers=headers)
    assert status.status_code == 200
    body = status.json()
    assert body["presence"] == "out"  # door moved half an hour ago, no motion since
    assert body["temperature"] == 21.5
    assert body["last_activity"]["room"] == "hall"
    assert body["summary"]["door_openings"] >= 0
    online = {d["id"]: d["online"] for d in body["devices"]}
    assert online["h01-temp"] is True
    assert online["h01-bed"] is False  # never reported

    async with pool.connection() as conn:
        cur = await conn.execute("SELECT timezone FROM homes WHERE id = 'h01'")
        row = await cur.fetchone()
    assert row is not None
    # The home's day of the motion reading (just after local midnight, "today" has not
    # seen it yet).
    day = (now - timedelta(minutes=50)).astimezone(ZoneInfo(row[0])).date().isoformat()
    svg = await client.get("/api/v1/elders/e01/timeline.svg", params={"day": day}, headers=headers)
    assert svg.status_code == 200
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.startswith("<svg")
    assert ">kitchen</text>" in svg.text  # its row
    assert '<rect class="mark"' in svg.text  # the movement in it

    audit = await client.get("/api/v1/elders/e01/audit", headers=headers)
    assert_error(audit, 403, "forbidden")
    staff = await login(client, "worker-v1")
    rows = (await client.get("/api/v1/elders/e01/audit", headers=staff)).json()["items"]
    reads = [(r["reader"], r["what"]) for r in rows]
    assert ("Family of " + body["name"], "status") in reads
    assert ("Family of " + body["name"], "timeline") in reads


async def test_resolve_with_outcome_and_note(client: httpx.AsyncClient, pool: Pool) -> None:
    alert_id = await raise_sos(pool, "h01")
    headers = await login(client, "worker-v1")
    bad = await client.post(
        f"/api/v1/alerts/{alert_id}/resolve", json={"outcome": "fine"}, headers=headers
    )
    assert_error(bad, 422, "invalid_request")
    done = await client.post(
        f"/api/v1/alerts/{alert_id}/resolve",
        json={"outcome": "visited_fine", "note": "pressed by accident"},
        headers=headers,
    )
    assert done.status_code == 200, done.text
    alert = done.json()
    assert alert["status"] == "resolved"
    assert alert["outcome"] == "visited_fine"
    assert alert["acknowledged_by"] == "Village worker v1"
    again = await client.post(
        f"/api/v1/alerts/{alert_id}/resolve", json={"outcome": "other"}, headers=headers
    )
    assert_error(again, 409, "not_open")
    detail = (await client.get(f"/api/v1/alerts/{alert_id}", headers=headers)).json()
    resolved = [e for e in detail["events"] if e["action"] == "resolved"]
    assert len(resolved) == 1
    assert resolved[0]["actor"] == "Village worker v1"
    assert resolved[0]["detail"]["outcome"] == "visited_fine"
    assert resolved[0]["detail"]["note"] == "pressed by accident"
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM notifications WHERE alert_id = %s AND status = 'pending'",
            (alert_id,),
        )
        assert (await cur.fetchone()) == (0,)
        cur = await conn.execute(
            "SELECT count(*) FROM alert_timers WHERE alert_id = %s", (alert_id,)
        )
        assert (await cur.fetchone()) == (0,)
    history = await client.get("/api/v1/elders/e01/alerts?status=resolved", headers=headers)
    assert [a["id"] for a in history.json()["items"]] == [alert_id]


async def test_visits_recorded_listed_and_compliance(client: httpx.AsyncClient, pool: Pool) -> None:
    headers = await login(client, "worker-v1")
    for _ in range(3):
        made = await client.post(
            "/api/v1/elders/e01/visits", json={"note": "ok", "source": "phone"}, headers=headers
        )
        assert made.status_code == 201, made.text
    assert made.json()["staff"] == "Village worker v1"
    assert made.json()["source"] == "phone"
    future = await client.post(
        "/api/v1/elders/e01/visits",
        json={"visited_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()},
        headers=headers,
    )
    assert_error(future, 422, "invalid_request")

    listed = await client.get("/api/v1/elders/e01/visits?limit=2", headers=headers)
    assert listed.json()["total"] == 3
    assert listed.json()["next_offset"] == 2

    comp = (await client.get("/api/v1/visits/compliance", headers=headers)).json()
    assert comp["target"] == 3
    below = {e["elder_id"] for v in comp["villages"] for e in v["below"]}
    assert "e01" not in below  # three visits this week
    assert "e05" in below  # the other elder of Willow Village had none
    assert {v["village_id"] for v in comp["villages"]} == {"v1"}


async def test_tag_check_in_becomes_a_visit(pool: Pool) -> None:
    now = datetime.now(UTC)
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO devices (id, home_id, kind, room) VALUES"
            " ('h01-reader', 'h01', 'visit_reader', 'hall')"
        )
        await conn.execute(
            "INSERT INTO staff_tags (tag, user_id) SELECT 4242, id FROM users"
            " WHERE username = 'worker-v1'"
        )
        for seq, value in enumerate((4242.0, 9999.0)):  # a known tag and an unknown one
            await conn.execute(
                "INSERT INTO readings (device_id, boot, seq, ts, home_id, metric, value)"
                " VALUES ('h01-reader', 1, %s, %s, 'h01', 'tag', %s)",
                (seq, now - timedelta(minutes=5), value),
            )
        assert await import_tag_visits(conn, now) == 1
        assert await import_tag_visits(conn, now) == 0  # idempotent
        cur = await conn.execute(
            "SELECT c.elder_id, u.username, c.source FROM care_visits c"
            " JOIN users u ON u.id = c.user_id"
        )
        assert await cur.fetchall() == [("e01", "worker-v1", "tag")]


async def test_a_short_week_raises_one_care_alert(pool: Pool) -> None:
    now = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)  # a Wednesday
    last_week = week_start(now.astimezone(SHANGHAI).date()) - timedelta(days=7)
    assert last_week == date(2026, 3, 2)
    async with pool.connection() as conn:
        await conn.execute("UPDATE homes SET created_at = '2026-01-01'")
        # e03 (home h03) is in hospital from before that week.
        await set_home_mode(conn, "h03", "hospital", since=datetime(2026, 3, 1, tzinfo=SHANGHAI))
        visit_day = datetime(2026, 3, 4, 10, 0, tzinfo=SHANGHAI)
        for elder, count in (("e01", 3), ("e02", 2)):
            for _ in range(count):
                await conn.execute(
                    "INSERT INTO care_visits (elder_id, visited_at, source)"
                    " VALUES (%s, %s, 'console')",
                    (elder, visit_day),
                )
        closed = await close_weeks(conn, now, timedelta(minutes=5))
        by_elder = {c.elder_id: c for c in closed}
        assert len(closed) == 8
        assert not by_elder["e01"].short
        assert by_elder["e02"].short
        assert by_elder["e02"].visits == 2
        assert not by_elder["e03"].short  # away (in hospital) that week
        assert by_elder["e04"].short
        assert by_elder["e04"].visits == 0
        assert await close_weeks(conn, now, timedelta(minutes=5)) == []  # once per week
        cur = await conn.execute(
            "SELECT home_id, kind, category, severity, summary FROM alerts ORDER BY home_id"
        )
        alerts: list[tuple[Any, ...]] = list(await cur.fetchall())
    homes = [a[0] for a in alerts]
    assert homes == ["h02", "h04", "h05", "h06", "h07", "h08"]
    assert {a[1:4] for a in alerts} == {("care_visits", "care", "warning")}
    assert alerts[0][4] == "2 of 3 care visits in the week of 2026-03-02"


async def test_language_is_per_user(client: httpx.AsyncClient) -> None:
    await client.post("/login", data={"username": "worker-v1", "password": "demo-password"})
    english = await client.get("/console")
    assert "Open and acknowledged alerts" in english.text
    assert '<html lang="en">' in english.text
    changed = await client.post("/locale", data={"locale": "zh"}, headers={"Origin": "http://test"})
    assert changed.status_code == 303
    chinese = await client.get("/console")
    assert "未处理和已确认的警报" in chinese.text
    assert '<html lang="zh-Hans">' in chinese.text
    me = await client.get("/api/v1/me")
    assert me.json()["locale"] == "zh"
    # Someone else still sees English.
    client.cookies.clear()
    await client.post("/login", data={"username": "worker-v2", "password": "demo-password"})
    assert "Open and acknowledged alerts" in (await client.get("/console")).text
    bad = await client.put("/api/v1/me/locale", json={"locale": "fr"})
    assert_error(bad, 422, "invalid_request")


async def test_pagination_and_clear_errors(client: httpx.AsyncClient) -> None:
    headers = await login(client, "district")
    first = (await client.get("/api/v1/homes?limit=3", headers=headers)).json()
    assert [h["id"] for h in first["items"]] == ["h01", "h02", "h03"]
    assert (first["total"], first["next_offset"]) == (8, 3)
    last = (await client.get("/api/v1/homes?limit=3&offset=6", headers=headers)).json()
    assert [h["id"] for h in last["items"]] == ["h07", "h08"]
    assert last["next_offset"] is None
    assert_error(await client.get("/api/v1/homes?limit=0", headers=headers), 422, "invalid_request")
    missing = await client.get("/api/v1/elders/nobody", headers=headers)
    assert assert_error(missing, 404, "not_found")["message"] == "no elder nobody"
    town = (await client.get("/api/v1/homes?region=t2", headers=headers)).json()
    assert {h["id"] for h in town["items"]} == {"h03", "h04", "h07", "h08"}
    tree = (await client.get("/api/v1/regions", headers=headers)).json()["items"]
    assert [r["id"] for r in tree] == ["d1"]
    assert tree[0]["homes"] == 8
    assert sorted(c["id"] for c in tree[0]["children"]) == ["t1", "t2"]
    offline = (await client.get("/api/v1/devices?state=offline&limit=1", headers=headers)).json()
    assert offline["total"] == 8 * 7  # nothing has reported in a fresh database


async def test_care_task_refreshes_alert_gauges_and_escalation_lag(pool: Pool) -> None:
    registry = CollectorRegistry()
    first = await raise_sos(pool, "h01")
    await raise_sos(pool, "h02")
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE alerts SET opened_at = now() - interval '10 minutes' WHERE id = %s", (first,)
        )
    task = CareTask(pool, timedelta(minutes=5), metrics=CareMetrics(registry))
    await task.step()
    open_critical = registry.get_sample_value(
        "eldercare_alerts_current", {"status": "open", "severity": "critical"}
    )
    assert open_critical == 2
    lag = registry.get_sample_value("eldercare_alert_unacknowledged_oldest_seconds")
    assert lag is not None
    assert 590 <= lag <= 900
    async with pool.connection() as conn:
        await conn.execute("UPDATE alerts SET status = 'acknowledged'")
    await task.step()
    assert registry.get_sample_value("eldercare_alert_unacknowledged_oldest_seconds") == 0
    acked = registry.get_sample_value(
        "eldercare_alerts_current", {"status": "acknowledged", "severity": "critical"}
    )
    assert acked == 2
