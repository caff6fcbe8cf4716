"""The family page against a real PostgreSQL (demo region seeded): the headline follows an
alert from "help requested" to "arrived" and back to the reassuring line; the live stream
never carries another elder's alert to a family member."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest
import uvicorn

from alerts import store, usual
from alerts.model import Category, Severity, Signal
from devstack.ports import free_port
from gateway.app import create_app
from gateway.context import AppContext
from tests.integration.helpers import Pool, login, raise_sos
from tests.integration.test_api import next_event

pytestmark = pytest.mark.integration

PHONE = "+86 138-0013-8000"


async def _set_phone(pool: Pool, username: str, phone: str) -> None:
    async with pool.connection() as conn:
        await conn.execute("UPDATE users SET phone = %s WHERE username = %s", (phone, username))


def _now_block(html: str) -> str:
    """The `#family-now` part of a page or of the live fragment."""
    found = re.search(r'<div id="family-now".*?</div>', html, re.S)  # no inner <div>
    assert found is not None, html[:500]
    return found.group(0)


async def test_headline_follows_an_sos_to_arrived_then_resolved(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    await _set_phone(pool, "worker-v1", PHONE)
    family = await login(client, "family-h01")
    calm = await client.get("/family/e01", headers=family)
    assert calm.status_code == 200
    assert 'class="hl hl-' in calm.text
    assert "hl-emergency" not in calm.text

    alert_id = await raise_sos(pool, "h01")
    page = await client.get("/family/e01", headers=family)
    now = _now_block(page.text)
    assert "hl-emergency" in now
    assert re.search(r"Help requested at \d\d:\d\d", now), now
    assert "Waiting for a worker to respond" in now
    assert "tel:" not in now  # nobody owns it yet: no one to call
    assert "<title>⚠ " in page.text

    worker = await login(client, "worker-v1")
    ack = await client.post(f"/api/v1/alerts/{alert_id}/ack", headers=worker)
    assert ack.status_code == 200
    live = await client.get("/family/e01/live", headers=family)
    assert live.status_code == 200
    assert live.headers["cache-control"] == "no-store"
    now = _now_block(live.text)
    assert "hl-emergency" in now
    assert re.search(r"Taken by Village worker v1 at \d\d:\d\d", now), now
    assert 'href="tel:+8613800138000"' in now
    assert "Not on the way yet" in now

    assert (await client.post(f"/api/v1/alerts/{alert_id}/en-route", headers=worker)).is_success
    now = _now_block((await client.get("/family/e01/live", headers=family)).text)
    assert re.search(r"On the way: Village worker v1, since \d\d:\d\d", now), now
    assert (await client.post(f"/api/v1/alerts/{alert_id}/arrived", headers=worker)).is_success
    now = _now_block((await client.get("/family/e01/live", headers=family)).text)
    assert re.search(r"Arrived: Village worker v1 at \d\d:\d\d", now), now

    done = await client.post(
        f"/api/v1/alerts/{alert_id}/resolve", json={"outcome": "visited_fine"}, headers=worker
    )
    assert done.status_code == 200
    live = await client.get("/family/e01/live", headers=family)
    now = _now_block(live.text)
    assert "hl-emergency" not in now
    assert "tel:" not in now
    assert "visited, all fine" in live.text  # in the past alerts

    # In Chinese, the same headline in the reader's language.
    assert (await client.put("/api/v1/me/locale", json={"locale": "zh"}, headers=family)).is_success
    await raise_sos(pool, "h01")
    now = _now_block((await client.get("/family/e01/live", headers=family)).text)
    assert re.search(r"\d\d:\d\d 按下了紧急呼叫", now), now


async def test_a_wellbeing_alert_gets_the_amber_headline(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    signal = Signal(
        "h01", "not_up", Category.WELLBEING, Severity.WARNING, datetime.now(UTC), "not up"
    )
    async with pool.connection() as conn:
        await store.raise_signal(conn, signal, datetime.now(UTC), timedelta(minutes=5))
    family = await login(client, "family-h01")
    now = _now_block((await client.get("/family/e01/live", headers=family)).text)
    assert "hl-attention" in now
    assert "Worth checking: not up at the usual time" in now


async def test_other_elders_live_part_is_not_found(client: httpx.AsyncClient) -> None:
    family = await login(client, "family-h01")
    response = await client.get("/family/e02/live", headers=family)
    assert response.status_code == 404


async def test_the_stream_never_carries_another_elders_alert_to_a_family_member(
    ctx: AppContext, pool: Pool, db_url: str
) -> None:
    app = create_app(ctx)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    serving = asyncio.create_task(server.serve(), name="uvicorn")
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.02)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            family = await login(client, "family-h01")
            worker = await login(client, "worker-v2")  # village v2: home h02
            async with client.stream("GET", "/api/v1/alerts/stream", headers=family) as response:
                lines = response.aiter_lines()
                async with asyncio.timeout(10):
                    assert (await next_event(lines))["event"] == "hello"
                # Everything that can happen to h02's alert, then one alert of their own.
                other = await raise_sos(pool, "h02")
                for step in ("ack", "en-route", "arrived"):
                    answer = await client.post(f"/api/v1/alerts/{other}/{step}", headers=worker)
                    assert answer.status_code == 200, answer.text
                answer = await client.post(
                    f"/api/v1/alerts/{other}/resolve", json={"outcome": "false_alarm"},
                    headers=worker,
                )  # fmt: skip
                assert answer.status_code == 200
                async with await psycopg.AsyncConnection.connect(db_url) as conn:
                    cur = await conn.execute(
                        "SELECT count(*) FROM alert_events WHERE alert_id = %s", (other,)
                    )
                    row = await cur.fetchone()
                    assert row is not None
                    assert row[0] >= 5
                mine = await raise_sos(pool, "h01")
                seen = []
                async with asyncio.timeout(10):
                    while True:
                        event = await next_event(lines)
                        if event.get("event") != "alert":
                            continue
                        data = json.loads(event["data"])
                        seen.append((data["id"], data["home_id"], data["elder_id"]))
                        if data["id"] == mine:
                            break
                # Their own arrives, in order after the other home's changes; none of those.
                assert seen == [(mine, "h01", "e01")]
    finally:
        server.should_exit = True
        await serving


async def seed_usual_days(pool: Pool, home: str, now: datetime, days: int = 14) -> datetime:
    """`days` ordinary days in `home` before today (bed at 21:30, up at 07:00-07:19, the
    kitchen, living room and bathroom every 20 minutes until 21:00), and this morning up
    to `now`: up at 07:12. Returns today's up time."""
    tz = ZoneInfo("Asia/Shanghai")
    today = now.astimezone(tz).date()
    rows: list[tuple[str, datetime, str, float]] = []

    def day(d: date, up: time, until: datetime) -> None:
        bed = datetime.combine(d - timedelta(days=1), time(21, 30), tzinfo=tz)
        woke = datetime.combine(d, up, tzinfo=tz)
        rows.extend([(f"{home}-bed", bed, "occupied", 1.0), (f"{home}-bed", woke, "occupied", 0.0)])
        t = woke + timedelta(minutes=3)
        rooms = ("pir-bath", "pir-kitchen", "pir-living")
        i = 0
        while t < min(datetime.combine(d, time(21, 0), tzinfo=tz), until):
            rows.append((f"{home}-{rooms[i % 3]}", t, "motion", 1.0))
            t += timedelta(minutes=20)
            i += 1

    for n in range(days, 0, -1):
        d = today - timedelta(days=n)
        day(d, time(7, n % 20), datetime.combine(d, time(23, 0), tzinfo=tz))
    up = datetime.combine(today, time(7, 12), tzinfo=tz)
    if now > up:
        day(today, time(7, 12), now)
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO readings (device_id, boot, seq, ts, home_id, metric, value)"
            " VALUES (%s, 1, %s, %s, %s, %s, %s)",
            [(dev, i, ts, home, m, v) for i, (dev, ts, m, v) in enumerate(rows)],
        )
    return up


async def test_today_against_usual_from_the_stored_readings(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    tz = ZoneInfo("Asia/Shanghai")
    now = datetime.now(tz)
    if now.time() < time(9, 30):  # before the morning being compared: use yesterday's
        now = now - timedelta(days=1)
        now = now.replace(hour=10, minute=0)
    await seed_usual_days(pool, "h01", now)
    async with pool.connection() as conn:
        cmp = await usual.compare(conn, "h01", "Asia/Shanghai", now)
    assert cmp.days_seen == 14
    assert cmp.usual is not None
    assert cmp.today.up_at is not None
    assert cmp.today.up_at.astimezone(tz).strftime("%H:%M") == "07:12"
    assert cmp.today.rooms == 3
    assert usual.sentence(cmp, now, "en").startswith("Up at 07:12 as usual; 3 rooms used")
    assert usual.sentence(cmp, now, "zh").startswith("07:12 起床，与平时一样；")
    if now.date() == datetime.now(tz).date():  # the page compares today
        family = await login(client, "family-h01")
        page = await client.get("/family/e01", headers=family)
        assert "Up at 07:12 as usual" in page.text
        assert "the last 14 days" in page.text
