"""The family's daily summary: the setting through the API, and `alerts.digest` on a fixed
clock against a real PostgreSQL, a real SMTP receiver and a local push service (encrypted
for the subscribed browser): sent once a day at the chosen hour in the member's language,
not again after a restart, and again the next day."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from alerts.digest import DigestTask, Senders
from alerts.notify import push_store
from alerts.notify.channels import SmtpConfig, WebPushChannel
from alerts.notify.webpush import subscription
from alerts.vapid import generate_private_key, load_keys
from tests.conftest import HttpReceiver, SmtpServer
from tests.integration.helpers import Pool, assert_error, login, raise_sos, scalar
from tests.integration.test_family_page import seed_usual_days
from tests.push_browser import Browser

pytestmark = pytest.mark.integration

TZ = ZoneInfo("Asia/Shanghai")


async def test_the_setting_through_the_api(client: httpx.AsyncClient) -> None:
    family = await login(client, "family-h01")
    got = (await client.get("/api/v1/me/daily-summary", headers=family)).json()
    assert got == {
        "hour": None,
        "channels": ["email", "webpush"],
        "timezone": "Asia/Shanghai",
        "reachable": ["email"],
    }
    put = await client.put(
        "/api/v1/me/daily-summary", json={"hour": 20, "channels": ["email"]}, headers=family
    )
    assert put.status_code == 200, put.text
    assert put.json()["hour"] == 20
    assert put.json()["channels"] == ["email"]
    assert (await client.get("/api/v1/me/daily-summary", headers=family)).json()["hour"] == 20
    for bad in ({"hour": 24}, {"hour": -1}, {"hour": 8, "channels": ["sms"]}):
        assert_error(
            await client.put("/api/v1/me/daily-summary", json=bad, headers=family),
            422,
            "invalid_request",
        )
    none = await client.put(
        "/api/v1/me/daily-summary", json={"hour": 8, "channels": []}, headers=family
    )
    assert_error(none, 422, "invalid_request")
    off = await client.put("/api/v1/me/daily-summary", json={"hour": None}, headers=family)
    assert off.json()["hour"] is None
    worker = await login(client, "worker-v1")
    refused = await client.get("/api/v1/me/daily-summary", headers=worker)
    assert_error(refused, 403, "forbidden")
    assert (await client.get("/api/v1/me/daily-summary")).status_code == 401
    page = await client.get("/family/e01", headers=family)
    assert 'id="digest-hour"' in page.text


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _task(
    pool: Pool, smtp: SmtpServer, http: httpx.AsyncClient, clock: Clock, gone: list[str]
) -> DigestTask:
    keys = load_keys(generate_private_key(), None, "mailto:ops@example.org", None)

    async def on_gone(target: str) -> None:
        gone.append(target)

    push = WebPushChannel(http, keys, on_gone)
    senders = Senders(SmtpConfig(smtp.host, smtp.port, "summary@test"), push, http)
    return DigestTask(pool, senders, "http://family.test", clock=clock, on_gone=on_gone)


def _to(smtp: SmtpServer, who: str) -> list[Any]:
    return [m for m in smtp.messages if any(r.startswith(who + "@") for r in m.rcpt_tos)]


async def test_sent_once_a_day_at_the_chosen_hour_by_email_and_push(
    pool: Pool, db_url: str, smtp_server: SmtpServer, http_receiver: HttpReceiver
) -> None:
    today = datetime.now(TZ).date()
    at_20 = datetime.combine(today, time(20, 0), tzinfo=TZ)
    await seed_usual_days(pool, "h01", at_20)
    await raise_sos(pool, "h01")  # opened now: in today's summary if now is today
    browser = Browser(http_receiver.url + "/push/family-h01")
    sub = browser.subscription()
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE users SET summary_hour = 20 WHERE username IN ('family-h01', 'family-h02')"
        )
        await conn.execute("UPDATE users SET locale = 'zh' WHERE username = 'family-h02'")
        uid = await scalar(db_url, "SELECT id FROM users WHERE username = 'family-h01'")
        made = subscription(sub["endpoint"], sub["keys"]["p256dh"], sub["keys"]["auth"], True)
        await push_store.subscribe(conn, int(uid), made)
    gone: list[str] = []
    clock = Clock(at_20 - timedelta(minutes=1))
    async with httpx.AsyncClient() as http:
        task = _task(pool, smtp_server, http, clock, gone)
        assert await task.step() == 0  # 19:59: not yet
        assert smtp_server.messages == []
        clock.now = at_20
        assert await task.step() == 2  # family-h01 and family-h02
        mine = _to(smtp_server, "family-h01")
        assert len(mine) == 1
        name = await scalar(db_url, "SELECT full_name FROM elders WHERE id = 'e01'")
        assert mine[0].subject.startswith(f"Daily summary: {name} — Up at 07:12 as usual")
        body = mine[0].message.get_content()
        assert "Up at: 07:12 / 07:" in body
        assert "http://family.test/family/e01" in body
        if datetime.now(TZ).date() == today:
            assert "Alerts: 1 (SOS)." in body
            assert "Still open now: 1." in body
        zh = _to(smtp_server, "family-h02")
        assert len(zh) == 1
        assert zh[0].subject.startswith("每日小结：")
        assert "家属页面：http://family.test/family/e02" in zh[0].message.get_content()
        pushed = [browser.decrypt(r.body) for r in http_receiver.requests]
        assert len(pushed) == 1
        assert pushed[0]["notice"] == "daily_summary"
        assert pushed[0]["title"] == f"{name} today"
        assert pushed[0]["summary"].startswith(f"{name}: Up at 07:12 as usual")
        assert pushed[0]["console_url"] == "http://family.test/family/e01"

        clock.now = at_20 + timedelta(minutes=30)
        assert await task.step() == 0  # once a day
        restarted = _task(pool, smtp_server, http, clock, gone)
        assert await restarted.step() == 0  # a restart remembers
        assert len(smtp_server.messages) == 2
        assert len(http_receiver.requests) == 1

        clock.now = at_20 + timedelta(days=1)
        assert await restarted.step() == 2  # the next day
    assert len(_to(smtp_server, "family-h01")) == 2
    rows = await scalar(
        db_url,
        "SELECT array_agg(status || ':' || day ORDER BY day) FROM daily_summaries s"
        " JOIN users u ON u.id = s.user_id WHERE u.username = 'family-h01'",
    )
    assert rows == [f"sent:{today}", f"sent:{today + timedelta(days=1)}"]
    assert gone == []


async def test_a_failing_channel_is_retried_without_resending_the_other(
    pool: Pool, db_url: str, smtp_server: SmtpServer, http_receiver: HttpReceiver
) -> None:
    browser = Browser(http_receiver.url + "/push/family-h01")
    sub = browser.subscription()
    uid = int(await scalar(db_url, "SELECT id FROM users WHERE username = 'family-h01'"))
    async with pool.connection() as conn:
        await conn.execute("UPDATE users SET summary_hour = 7 WHERE id = %s", (uid,))
        made = subscription(sub["endpoint"], sub["keys"]["p256dh"], sub["keys"]["auth"], True)
        await push_store.subscribe(conn, uid, made)
    at_7 = datetime.combine(datetime.now(TZ).date(), time(7, 0), tzinfo=TZ)
    clock = Clock(at_7)
    http_receiver.status = 500  # the push service is down
    gone: list[str] = []
    async with httpx.AsyncClient() as http:
        task = _task(pool, smtp_server, http, clock, gone)
        assert await task.step() == 0  # e-mail went, push did not: not done yet
        assert len(smtp_server.messages) == 1
        # A morning summary is about the day before.
        yesterday = (at_7 - timedelta(days=1)).date().isoformat()
        assert f"Yesterday ({yesterday})" in smtp_server.messages[0].message.get_content()
        assert "HTTP 500" in str(
            await scalar(db_url, "SELECT last_error FROM daily_summaries WHERE user_id = %s", uid)
        )
        clock.now = at_7 + timedelta(minutes=1)
        assert await task.step() == 0  # not before the retry time
        http_receiver.status = 201
        clock.now = at_7 + timedelta(minutes=6)
        assert await task.step() == 1
    assert len(smtp_server.messages) == 1  # the e-mail was not sent twice
    assert len(http_receiver.requests) == 2
    assert browser.decrypt(http_receiver.requests[1].body)["notice"] == "daily_summary"
    status = await scalar(db_url, "SELECT status FROM daily_summaries WHERE user_id = %s", uid)
    assert status == "sent"


async def test_no_summary_about_an_elder_without_consent_to_share_with_the_family(
    pool: Pool, db_url: str, smtp_server: SmtpServer, http_receiver: HttpReceiver
) -> None:
    today = datetime.now(TZ).date()
    at_20 = datetime.combine(today, time(20, 0), tzinfo=TZ)
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE users SET summary_hour = 20 WHERE username IN ('family-h01', 'family-h02')"
        )
        await conn.execute(
            "UPDATE elder_consents SET withdrawn_at = now() WHERE elder_id = 'e02'"
            " AND purpose = 'share_family' AND withdrawn_at IS NULL"
        )
    async with httpx.AsyncClient() as http:
        task = _task(pool, smtp_server, http, Clock(at_20), [])
        await task.step()
    assert len(_to(smtp_server, "family-h01")) == 1
    assert _to(smtp_server, "family-h02") == []
    status = await scalar(
        db_url,
        "SELECT s.status FROM daily_summaries s JOIN users u ON u.id = s.user_id"
        " WHERE u.username = 'family-h02'",
    )
    assert status != "sent"
