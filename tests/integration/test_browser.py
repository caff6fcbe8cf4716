"""End to end in a real browser (Debian's Chromium, headless, driven by Playwright): the
running service with real Mosquitto and PostgreSQL; staff see an SOS arrive live and
acknowledge and resolve it; a family member sees their elder and nobody else's.

Set ELDERCARE_SCREENSHOTS to a directory to keep the pages' screenshots (docs/ uses them)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from devices.payload import Reading
from devstack.broker import EmbeddedBroker
from devstack.seed import DEMO_PASSWORD
from simulators.publisher import MqttPublisher
from tests.integration.helpers import eventually, make_settings, running_service, scalar

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless (installed by scripts/test when missing)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/test as root or apt-get install chromium")
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def base_url(db_url: str, mosquitto: EmbeddedBroker) -> AsyncIterator[str]:
    """The whole service (ingest, alerts, gateway) running on the test database."""
    settings = make_settings(db_url, mosquitto, alerts={"care_poll_s": 0.5})
    async with running_service(settings) as svc:
        yield f"http://127.0.0.1:{svc.http_port}"


async def screenshot(page: Page, tmp_path: Path, name: str) -> None:
    """Save a full-page PNG (and copy it to $ELDERCARE_SCREENSHOTS when set)."""
    path = tmp_path / name
    await page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keep = os.environ.get("ELDERCARE_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / name)


async def sign_in(page: Page, base_url: str, username: str) -> None:
    await page.goto(f"{base_url}/login")
    await page.fill("#username", username)
    await page.fill("#password", DEMO_PASSWORD)
    await page.click("button[type=submit]")


def press(home: str, seq: int) -> Reading:
    return Reading(home, f"{home}-sos", "sos_button", 1, seq, datetime.now(UTC), "press", 1.0)


async def test_staff_see_an_sos_live_then_acknowledge_and_resolve(
    browser: Browser, base_url: str, db_url: str, mosquitto: EmbeddedBroker, tmp_path: Path
) -> None:
    page = await browser.new_page(viewport={"width": 1280, "height": 720})
    await sign_in(page, base_url, "worker-v1")
    await expect(page).to_have_url(f"{base_url}/console")
    await expect(page.locator("#live-status.on")).to_be_visible(timeout=15000)
    await expect(page.locator("#alerts tbody tr.empty")).to_be_visible()

    async with MqttPublisher(mosquitto.url, "dev-h01-sos") as pub:
        await pub.publish_readings([press("h01", 1)])
    row = page.locator("#alerts tbody tr.sev-critical")
    await expect(row).to_have_count(1, timeout=15000)  # arrived over SSE, no reload
    await expect(row).to_contain_text("Willow Village")
    await expect(row).to_contain_text("open")
    alert_id = await scalar(db_url, "SELECT id FROM alerts WHERE home_id = 'h01'")
    await screenshot(page, tmp_path, "console.png")

    await row.locator("button.ack").click()
    await expect(row).to_contain_text("acknowledged")
    await expect(row).to_contain_text("Village worker v1")
    assert await scalar(db_url, "SELECT status FROM alerts WHERE id = %s", alert_id) == (
        "acknowledged"
    )

    await row.locator("button.resolve").click()
    await expect(page.locator("#resolve-dialog")).to_be_visible()
    await page.click("#resolve-submit")  # no outcome chosen: refused in the page
    await expect(page.locator("#resolve-error")).to_be_visible()
    await page.select_option("#resolve-outcome", "visited_fine")
    await page.fill("#resolve-note", "Pressed by mistake; visited, all well.")
    await page.click("#resolve-submit")
    await expect(page.locator("#alerts tbody tr.empty")).to_be_visible()
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cur = await conn.execute("SELECT status, outcome FROM alerts WHERE id = %s", (alert_id,))
        assert await cur.fetchone() == ("resolved", "visited_fine")
        cur = await conn.execute(
            "SELECT detail->>'note' FROM alert_events WHERE alert_id = %s AND action = 'resolved'",
            (alert_id,),
        )
        assert await cur.fetchone() == ("Pressed by mistake; visited, all well.",)

    # The elder's file: record a visit from the console.
    await page.goto(f"{base_url}/console/elders/e01")
    await page.fill("#visit-note", "Weekly visit")
    await page.click("#record-visit")
    await expect(page.locator("#visits")).to_contain_text("Weekly visit")
    await screenshot(page, tmp_path, "elder-file.png")
    for other in ("/console/devices", "/console/rota", "/console/visits"):
        response = await page.goto(base_url + other)
        assert response is not None
        assert response.status == 200


async def _seed_day(db_url: str) -> None:
    """A morning in home h01 (and an SOS in h02, which h01's family must never see)."""
    now = datetime.now(UTC)
    rows: list[tuple[str, int, datetime, str, float]] = []
    for i in range(12):
        at = now - timedelta(minutes=5 + 15 * i)
        rows.append(("h01-pir-kitchen" if i % 2 else "h01-pir-living", i, at, "motion", 1.0))
        rows.append(("h01-temp", i, at, "temperature", 21.0 + i / 10))
    rows.append(("h01-bed", 1, now - timedelta(hours=4), "occupied", 0.0))
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        for device, seq, at, metric, value in rows:
            await conn.execute(
                "INSERT INTO readings (device_id, boot, seq, ts, home_id, metric, value)"
                " VALUES (%s, 1, %s, %s, 'h01', %s, %s)",
                (device, seq, at, metric, value),
            )
        await conn.commit()


async def test_family_see_their_elder_and_no_one_else(
    browser: Browser, base_url: str, db_url: str, mosquitto: EmbeddedBroker, tmp_path: Path
) -> None:
    await _seed_day(db_url)
    async with MqttPublisher(mosquitto.url, "dev-h02-sos") as pub:
        await pub.publish_readings([press("h02", 1)])
    other_alert = await eventually(
        lambda: scalar(db_url, "SELECT id FROM alerts WHERE home_id = 'h02'"), what="h02 SOS"
    )
    names: dict[str, Any] = {}
    for elder in ("e01", "e02"):
        names[elder] = await scalar(db_url, "SELECT full_name FROM elders WHERE id = %s", elder)

    page = await browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    await sign_in(page, base_url, "family-h01")
    await expect(page).to_have_url(f"{base_url}/family/e01")
    await expect(page.locator("h1")).to_contain_text(names["e01"])
    await expect(page.locator("#presence")).to_contain_text("At home")
    await expect(page.locator("#temperature")).to_contain_text("21.0 °C")
    await expect(page.locator("#family-devices")).to_contain_text("is working")
    await expect(page.locator("#timeline .tl-row").first).to_be_visible()
    assert names["e02"] not in await page.content()
    # The family page's screenshots come from test_browser_family.py.

    response = await page.goto(f"{base_url}/family/e02")
    assert response is not None
    assert response.status == 404
    assert names["e02"] not in await page.content()
    for url in (
        "/api/v1/elders/e02",
        "/api/v1/elders/e02/status",
        "/api/v1/homes/h02",
        f"/api/v1/alerts/{other_alert}",
    ):
        status = await page.evaluate(f"fetch('{url}').then(r => r.status)")
        assert status == 404, url
    listed = await page.evaluate("fetch('/api/v1/alerts').then(r => r.json())")
    assert listed["items"] == []  # h02's SOS is not theirs

    # Chinese, chosen by this user.
    await page.goto(f"{base_url}/family/e01")
    await page.click("#switch-language")
    await expect(page.locator("h1")).to_contain_text("今天好吗")
    await expect(page.locator("#presence")).to_contain_text("在家")
    assert await page.get_attribute("html", "lang") == "zh-Hans"


async def test_console_in_chinese(browser: Browser, base_url: str, tmp_path: Path) -> None:
    page = await browser.new_page(viewport={"width": 1280, "height": 720})
    await sign_in(page, base_url, "district")
    await page.click("#switch-language")
    await expect(page.locator("h1")).to_contain_text("未处理和已确认的警报")
    await expect(page.locator("#live-status")).to_contain_text("实时", timeout=15000)
    await screenshot(page, tmp_path, "console-zh.png")
    await page.goto(f"{base_url}/console/visits")
    await expect(page.locator("h1")).to_contain_text("本周探访未达标")
    await page.click("#switch-language")
    await expect(page.locator("h1")).to_contain_text("Below target this week")
