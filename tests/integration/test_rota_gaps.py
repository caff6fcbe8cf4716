"""A gap in 24-hour duty coverage (issue #16: it was only logged) is a technical system alert
(one per gap, to the district centre and the operator on duty at once, cleared when covered) and
a red box on the rota page in the deployment's zone; with the whole service running on a real
PostgreSQL and broker."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest
from prometheus_client import CollectorRegistry

from alerts.config import AlertMetrics, AlertSettings
from alerts.coverage import RotaGapAlerts, gap_kind
from alerts.escalate.rota import Gap
from alerts.escalate.routing import Routing
from devstack.broker import EmbeddedBroker
from devstack.seed import DEMO_PASSWORD
from tests.integration.helpers import Pool, eventually, make_settings, running_service

pytestmark = pytest.mark.integration
SHANGHAI = ZoneInfo("Asia/Shanghai")


async def gap_alerts(db_url: str) -> list[dict[str, Any]]:
    async with (
        await psycopg.AsyncConnection.connect(db_url) as conn,
        conn.cursor(row_factory=psycopg.rows.dict_row) as cur,
    ):
        await cur.execute(
            "SELECT id, kind, category, severity, status, outcome, summary, evidence_count"
            " FROM alerts WHERE home_id IS NULL AND kind LIKE 'rota_gap:%%' ORDER BY id"
        )
        return list(await cur.fetchall())


async def signed_in(base: str, username: str) -> httpx.AsyncClient:
    """A client with `username`'s session cookie."""
    client = httpx.AsyncClient(base_url=base)
    answer = await client.post(
        "/api/v1/auth/login", json={"username": username, "password": DEMO_PASSWORD}
    )
    assert answer.status_code == 200, answer.text
    return client


def run(db_url: str, query: str, *params: Any) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(query.encode(), params)


async def test_a_rota_gap_is_alerted_shown_and_cleared_when_covered(
    db_url: str, mosquitto: EmbeddedBroker
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    gap_from = now + timedelta(hours=2)
    # West Town (t2) is covered for two more hours only.
    run(db_url, "DELETE FROM duty_shifts WHERE region_id = 't2'")
    run(
        db_url,
        "INSERT INTO duty_shifts (user_id, region_id, starts_at, ends_at)"
        " SELECT id, 't2', %s, %s FROM users WHERE username = 'town-t2'",
        now - timedelta(hours=1),
        gap_from,
    )
    run(db_url, "UPDATE users SET locale = 'en' WHERE username = 'district'")
    run(db_url, "UPDATE users SET locale = 'zh' WHERE username IN ('town-t2', 'town-t1')")
    settings = make_settings(db_url, mosquitto, alerts={"rota_check_s": 0.3})
    async with running_service(settings) as svc:
        base = f"http://127.0.0.1:{svc.http_port}"
        [alert] = await eventually(lambda: gap_alerts(db_url), what="the rota gap alert")
        kind = gap_kind(Gap("t2", "town", gap_from, gap_from), now - timedelta(days=7))
        assert alert["kind"] == kind == f"rota_gap:town:t2:{gap_from:%Y%m%dT%H%M%S}Z"
        assert (alert["category"], alert["severity"], alert["status"]) == (
            "technical",
            "warning",  # not begun yet
            "open",
        )
        local_from = f"{gap_from.astimezone(SHANGHAI):%Y-%m-%d %H:%M}"
        # The deployment's language (zh by default) and zone.
        assert alert["summary"].startswith(f"镇级（West Town）无人值班：{local_from} 至 ")
        assert alert["summary"].endswith("或更晚（Asia/Shanghai）")

        # Sent to the district centre on duty and the operator at once.
        async def told() -> list[str]:
            async with await psycopg.AsyncConnection.connect(db_url) as conn:
                cur = await conn.execute(
                    "SELECT u.username FROM notifications n JOIN users u ON u.id = n.user_id"
                    " WHERE n.alert_id = %s AND n.round = 0",
                    (alert["id"],),
                )
                return [str(u) for (u,) in await cur.fetchall()]

        first_round = await eventually(told, what="the operator told")
        assert "operator" in first_round
        assert "district" in first_round
        policy = await _scalar(db_url, "SELECT policy FROM alerts WHERE id = %s", alert["id"])
        assert [s["tiers"] for s in policy["steps"]] == [["operator", "district"]]

        # Visible: in the operator's alert list, and as a red box on the rota page.
        operator = await signed_in(base, "operator")
        district = await signed_in(base, "district")
        town_t2 = await signed_in(base, "town-t2")
        town_t1 = await signed_in(base, "town-t1")
        try:
            listed = await operator.get("/api/v1/alerts")
            assert listed.status_code == 200, listed.text
            assert kind in [a["kind"] for a in listed.json()["items"]]
            # The district centre follows service alerts in its console too; a town does not.
            in_district = (await district.get("/api/v1/alerts")).json()["items"]
            assert kind in [a["kind"] for a in in_district]
            in_town = (await town_t2.get("/api/v1/alerts")).json()["items"]
            assert kind not in [a["kind"] for a in in_town]

            page = (await district.get("/console/rota")).text
            boxes = re.findall(r'<div class="error rota-gap" role="alert">(.*?)</div>', page, re.S)
            assert len(boxes) == 1, page
            assert f"No one on duty at tier town (West Town) from {local_from} to " in boxes[0]
            assert "or later" in boxes[0]
            assert "China time" in boxes[0]  # the zone, labelled
            zh_page = (await town_t2.get("/console/rota")).text
            assert f"镇级（West Town）无人值班：{local_from} 至 " in zh_page
            assert "北京时间" in zh_page
            other = (await town_t1.get("/console/rota")).text  # East Town's staff: not their gap
            assert 'class="error rota-gap"' not in other
            assert 'id="rota-covered"' in other

            # Checked again and again: still one alert, no evidence added each time.
            await asyncio.sleep(1.0)
            [again] = await gap_alerts(db_url)
            assert (again["id"], again["evidence_count"]) == (alert["id"], 1)

            # Covered: the alert is cleared by the data, the box goes.
            run(
                db_url,
                "INSERT INTO duty_shifts (user_id, region_id, starts_at, ends_at)"
                " SELECT id, 't2', %s, %s FROM users WHERE username = 'town-t2'",
                gap_from,
                now + timedelta(days=30),
            )

            async def cleared() -> list[dict[str, Any]]:
                rows = await gap_alerts(db_url)
                return [r for r in rows if r["status"] == "resolved"]

            [done] = await eventually(cleared, what="the gap alert cleared")
            assert (done["id"], done["outcome"]) == (alert["id"], "cleared_by_data")
            page = (await district.get("/console/rota")).text
            assert 'class="error rota-gap"' not in page
            assert 'id="rota-covered"' in page
        finally:
            for c in (operator, district, town_t2, town_t1):
                await c.aclose()
    assert len(await gap_alerts(db_url)) == 1


class Quiet:
    """A sender that only plans (the test looks at the alerts, nobody sends)."""

    def __init__(self, routing: Routing) -> None:
        self.routing = routing

    def wake(self) -> None:
        pass


async def test_a_gap_under_way_is_critical_and_covering_its_start_clears_it(
    db_url: str, pool: Pool
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    ended = now - timedelta(hours=3)
    run(db_url, "DELETE FROM duty_shifts WHERE region_id = 'v3'")
    run(
        db_url,
        "INSERT INTO duty_shifts (user_id, region_id, starts_at, ends_at)"
        " SELECT id, 'v3', %s, %s FROM users WHERE username = 'worker-v3'",
        now - timedelta(days=2),
        ended,
    )
    run(
        db_url,
        "INSERT INTO duty_shifts (user_id, region_id, starts_at, ends_at)"
        " SELECT id, 'v3', %s, %s FROM users WHERE username = 'worker-v3'",
        now + timedelta(hours=1),
        now + timedelta(days=30),
    )
    clock = [now]
    watch = RotaGapAlerts(
        AlertSettings(locale="en"),
        pool,
        AlertMetrics(CollectorRegistry()),
        Quiet(Routing(frozenset({"email"}))),
        clock=lambda: clock[0],
    )
    [found] = await watch.check()
    assert found.started
    assert not found.open_ended
    assert found.gap.starts_at == ended  # its real start, not "now"
    [alert] = await gap_alerts(db_url)
    assert alert["severity"] == "critical"
    until = f"{(now + timedelta(hours=1)).astimezone(SHANGHAI):%Y-%m-%d %H:%M}"
    assert alert["summary"] == (
        f"No one on duty at tier village (Lotus Village) from "
        f"{ended.astimezone(SHANGHAI):%Y-%m-%d %H:%M} to {until} (Asia/Shanghai)"
    )
    # Ten minutes on, the same gap: the same alert, nothing added.
    clock[0] = now + timedelta(minutes=10)
    await watch.check()
    [same] = await gap_alerts(db_url)
    assert (same["id"], same["evidence_count"]) == (alert["id"], 1)
    # The next shift starts later now: the same gap, longer: evidence, not a new alert.
    run(
        db_url,
        "UPDATE duty_shifts SET starts_at = %s WHERE region_id = 'v3' AND starts_at > now()",
        now + timedelta(hours=2),
    )
    await watch.check()
    [longer] = await gap_alerts(db_url)
    assert (longer["id"], longer["evidence_count"]) == (alert["id"], 2)
    # The start covered (someone stepped in until the next shift): that gap is over, the
    # alert cleared; nothing else is uncovered.
    run(
        db_url,
        "INSERT INTO duty_shifts (user_id, region_id, starts_at, ends_at)"
        " SELECT id, 'v3', %s, %s FROM users WHERE username = 'worker-v3'",
        ended,
        now + timedelta(hours=2),
    )
    assert await watch.check() == []
    [over] = await gap_alerts(db_url)
    assert (over["status"], over["outcome"]) == ("resolved", "cleared_by_data")


async def _scalar(db_url: str, query: str, *params: Any) -> Any:
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cur = await conn.execute(query.encode(), params)
        row = await cur.fetchone()
        return None if row is None else row[0]
