"""The family page in a real browser (Debian's Chromium through Playwright) on the running
service (real Mosquitto and PostgreSQL), at a desktop and a 390 px phone viewport, in English
and Chinese: an SOS turns the headline red without a reload (the alert stream), then shows
who took it with a tel: link, on the way, arrived, and the reassuring headline once resolved;
nothing scrolls sideways on the phone; the timeline's text is at least 12 px.

Set ELDERCARE_SCREENSHOTS=docs/screenshots to refresh family.png, family-zh.png,
family-phone.png and family-sos-phone.png (and family-sos.png, family-sos-phone-zh.png)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.async_api import Browser, Page, expect
from psycopg_pool import AsyncConnectionPool

from devstack.broker import EmbeddedBroker
from simulators.publisher import MqttPublisher
from tests.integration.helpers import eventually, login, scalar
from tests.integration.test_browser import base_url, browser, press, screenshot, sign_in
from tests.integration.test_family_page import seed_usual_days

pytestmark = pytest.mark.integration
__all__ = ["base_url", "browser"]  # the fixtures, shared with test_browser.py

PHONE = "+86 138 0013 8000"
WORDS = {
    "en": {
        "red": "Help requested at",
        "taken": "Taken by Village worker v1",
        "call": "Call Village worker v1",
        "going": "On the way: Village worker v1",
        "there": "Arrived: Village worker v1",
        "home": "At home",
        "usual": "as usual",
    },
    "zh": {
        "red": "按下了紧急呼叫",
        "taken": "已接手",
        "call": "拨打 Village worker v1 的电话",
        "going": "起在路上",
        "there": "已到达",
        "home": "在家",
        "usual": "与平时一样",
    },
}
VIEWS: dict[str, dict[str, Any]] = {
    "desktop": {"viewport": {"width": 1280, "height": 900}},
    "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True},
}
SHOTS = {
    ("desktop", "en"): ("family.png", "family-sos.png"),
    ("desktop", "zh"): ("family-zh.png", None),
    ("phone", "en"): ("family-phone.png", "family-sos-phone.png"),
    ("phone", "zh"): (None, "family-sos-phone-zh.png"),
}


async def _no_sideways_scroll(page: Page, width: int) -> None:
    scroll = await page.evaluate("document.scrollingElement.scrollWidth")
    assert scroll <= width, f"the page is {scroll} px wide in a {width} px viewport"


async def _timeline_text_sizes(page: Page) -> list[float]:
    sizes: list[float] = await page.evaluate(
        """[...document.querySelectorAll(
             '#timeline .tl-hour, #timeline .tl-label, #timeline .tl-legend li')]
           .filter((e) => e.getClientRects().length > 0)
           .map((e) => parseFloat(getComputedStyle(e).fontSize))"""
    )
    return sizes


@pytest.mark.parametrize(("view", "locale"), list(SHOTS))
async def test_family_page_follows_an_sos_live(
    browser: Browser,
    base_url: str,
    db_url: str,
    mosquitto: EmbeddedBroker,
    tmp_path: Path,
    view: str,
    locale: str,
) -> None:
    words = WORDS[locale]
    calm_shot, sos_shot = SHOTS[(view, locale)]
    async with AsyncConnectionPool(db_url, min_size=1, max_size=2, open=False) as pool:
        await seed_usual_days(pool, "h01", datetime.now(ZoneInfo("Asia/Shanghai")))
        async with pool.connection() as conn:
            await conn.execute("UPDATE users SET phone = %s WHERE username = 'worker-v1'", (PHONE,))
            await conn.execute(
                "UPDATE users SET locale = %s WHERE username = 'family-h01'", (locale,)
            )
    options: dict[str, Any] = VIEWS[view]
    width = options["viewport"]["width"]
    page = await browser.new_page(**options)
    await sign_in(page, base_url, "family-h01")
    await expect(page).to_have_url(f"{base_url}/family/e01")
    await expect(page.locator("#family-live.on")).to_be_visible(timeout=15000)  # stream open
    now = page.locator("#family-now")
    await expect(now).not_to_have_class("hl hl-emergency")
    if datetime.now(ZoneInfo("Asia/Shanghai")).hour >= 8:  # after this morning's 07:12
        await expect(page.locator("#usual-sentence")).to_contain_text(words["usual"])
    await expect(page.locator("#timeline .tl-row").first).to_be_visible()
    sizes = await _timeline_text_sizes(page)
    assert sizes, "no timeline text shown"
    assert min(sizes) >= 12, sizes
    await _no_sideways_scroll(page, width)
    if calm_shot:
        await screenshot(page, tmp_path, calm_shot)
    await page.evaluate("window.__same_page = true")  # gone if the page reloads

    async with MqttPublisher(mosquitto.url, "dev-h01-sos") as pub:
        await pub.publish_readings([press("h01", 1)])
    await expect(page.locator("#family-now.hl-emergency")).to_be_visible(timeout=15000)
    await expect(page.locator("#headline")).to_contain_text(words["red"])
    await expect(page.locator("#call-worker")).to_have_count(0)  # nobody owns it yet
    assert await page.title() != ""
    assert (await page.title()).startswith("⚠")
    alert_id = await eventually(
        lambda: scalar(db_url, "SELECT id FROM alerts WHERE home_id = 'h01'"), what="the SOS"
    )

    async with httpx.AsyncClient(base_url=base_url) as api:
        worker = await login(api, "worker-v1")
        assert (await api.post(f"/api/v1/alerts/{alert_id}/ack", headers=worker)).is_success
        steps = page.locator("#headline-steps")
        await expect(steps).to_contain_text(words["taken"], timeout=10000)
        call = page.locator("a#call-worker")
        await expect(call).to_have_attribute("href", "tel:+8613800138000")
        await expect(call).to_contain_text(words["call"])
        assert (await api.post(f"/api/v1/alerts/{alert_id}/en-route", headers=worker)).is_success
        await expect(steps).to_contain_text(words["going"], timeout=10000)
        await _no_sideways_scroll(page, width)
        if sos_shot:
            await screenshot(page, tmp_path, sos_shot)
        assert (await api.post(f"/api/v1/alerts/{alert_id}/arrived", headers=worker)).is_success
        await expect(steps).to_contain_text(words["there"], timeout=10000)
        resolved = await api.post(
            f"/api/v1/alerts/{alert_id}/resolve",
            json={"outcome": "visited_fine"},
            headers=worker,
        )
        assert resolved.is_success
    await expect(page.locator("#family-now.hl-emergency")).to_have_count(0, timeout=10000)
    await expect(page.locator("#call-worker")).to_have_count(0)
    tone = await now.get_attribute("data-tone")
    assert tone in ("home", "out", "asleep", "unknown")
    if tone == "home":
        await expect(page.locator("#headline")).to_have_text(words["home"])
    assert not (await page.title()).startswith("⚠")
    assert await page.evaluate("window.__same_page === true"), "the page was reloaded"
    await _no_sideways_scroll(page, width)
