"""Notifications in each recipient's language, with the home's address and the time in the
deployment's zone (labelled), and the acknowledge page in the recipient's language; real
PostgreSQL and a real SMTP server."""

from __future__ import annotations

import re
from typing import Any

import httpx
import psycopg
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from psycopg_pool import AsyncConnectionPool

from alerts.config import AlertMetrics, AlertSettings
from alerts.emergency.fallback import EmergencyFallback, unstored_alert
from alerts.notify.channels import Channel, EmailChannel, SmtpConfig, headline
from alerts.notify.dispatch import Dispatcher
from gateway.app import create_app
from gateway.context import AppContext
from tests.conftest import SmtpServer
from tests.integration.helpers import scalar
from tests.integration.test_alerting import Clock, raise_, sos, start_time


async def test_each_recipient_reads_their_language_and_the_ack_page_too(
    pool: AsyncConnectionPool[Any], db_url: str, smtp_server: SmtpServer, ctx: AppContext
) -> None:
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await conn.execute("UPDATE users SET locale = 'zh' WHERE username = 'worker-v1'")
        await conn.execute("UPDATE users SET locale = 'en' WHERE username = 'family-h01'")
        await conn.execute("UPDATE homes SET address = '幸福路 1 号' WHERE id = 'h01'")
        await conn.execute("UPDATE elders SET full_name = '王芳' WHERE home_id = 'h01'")
    t0 = start_time()
    clock = Clock(t0)
    settings = AlertSettings(retry_base_s=5, max_attempts=3, late_after_s=3600)
    channels: dict[str, Channel] = {
        "email": EmailChannel(SmtpConfig(smtp_server.host, smtp_server.port, "alerts@test"))
    }
    dispatcher = Dispatcher(
        settings,
        pool,
        channels,
        AlertMetrics(CollectorRegistry()),
        "http://console.test/console",
        clock=clock,
    )
    await raise_(pool, dispatcher, sos("h01", t0), t0)
    await dispatcher.step()
    by = {m.rcpt_tos[0].split("@")[0]: m for m in smtp_server.messages}
    local = t0.astimezone(settings.zone())

    worker = by["worker-v1"]
    assert worker.subject == "【紧急】王芳（幸福路 1 号，Willow Village）：按下了紧急呼叫按钮"
    assert "地址：幸福路 1 号，Willow Village\n" in worker.text
    assert f"时间：{local:%Y-%m-%d %H:%M} (北京时间)\n" in worker.text
    match = re.search(r"我来处理（确认接手）：(http://console\.test/ack/\S+)", worker.text)
    assert match, worker.text

    family = by["family-h01"]
    family_text = family.text.replace("\r\n", "\n")
    assert family.subject == "[CRITICAL] SOS button pressed - 王芳 (幸福路 1 号, Willow Village)"
    assert f"When:     {local:%Y-%m-%d %H:%M} (Asia/Shanghai)\n" in family_text
    assert "/ack/" not in family.text  # no acknowledge link for the family

    # The worker's link opens a page in Chinese, the time in the deployment's zone.
    app: FastAPI = create_app(
        AppContext(
            settings=ctx.settings,
            pool=pool,
            broadcaster=ctx.broadcaster,
            metrics=CollectorRegistry(),
            health=ctx.health,
            alert_settings=settings,
        )
    )
    path = match.group(1).removeprefix("http://console.test")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        page = await client.get(path)
        assert page.status_code == 200
        assert "<html lang=zh-CN>" in page.text
        assert "确认接手警报" in page.text
        assert "我来处理</button>" in page.text
        assert f"发生于 {local:%Y-%m-%d %H:%M} (北京时间)" in page.text
        done = await client.post(path)
        assert done.status_code == 200
        assert "此警报由您处理" in done.text
        again = await client.post(path)
        assert again.status_code == 409
        assert "已经接手了此警报" in again.text
        forged = await client.get(path[:-3] + "AAA")
        assert forged.status_code == 403
        assert "Link not valid" not in forged.text  # the deployment's language: Chinese
        assert "链接无效" in forged.text


async def test_the_fast_path_and_fallback_notices_are_localized_too(
    pool: AsyncConnectionPool[Any], db_url: str
) -> None:
    """The emergency contacts cached for the fast path and the fallback carry each person's
    language and the home's address (read in the same query as the contacts)."""
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await conn.execute("UPDATE users SET locale = 'zh' WHERE username = 'worker-v1'")
        await conn.execute("UPDATE users SET locale = 'en' WHERE username = 'family-h01'")
        await conn.execute("UPDATE homes SET address = '幸福路 1 号' WHERE id = 'h01'")
    fallback = EmergencyFallback(pool, {}, "http://console.test/console", timezone="Asia/Shanghai")
    await fallback.refresh()
    home = fallback.contacts("h01")
    assert home is not None
    assert home.address == "幸福路 1 号"
    ids = {
        await scalar(db_url, "SELECT id FROM users WHERE username = %s", u): u
        for u in ("worker-v1", "family-h01")
    }
    alert = unstored_alert(sos("h01", start_time()), home, 7, start_time(), "SOS button pressed")
    seen = {}
    for contact in home.contacts:
        if contact.user_id in ids:
            notice = fallback.notice(alert, home, contact, None)
            seen[ids[contact.user_id]] = (notice.locale, notice.address, headline(notice))
    assert seen["worker-v1"][0] == "zh"
    assert seen["worker-v1"][2].startswith("【紧急】")
    assert seen["family-h01"][:2] == ("en", "幸福路 1 号")
    assert seen["family-h01"][2].startswith("[CRITICAL] SOS button pressed")
