"""The console's administration pages and the invitation page: forms checked on the server
with each problem next to its field, in English and Chinese; the import page's upload →
dry-run report → confirm; and the elder form on a 390 px phone in a real browser."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psycopg
import pytest
from playwright.async_api import Browser, async_playwright, expect

from devstack.broker import EmbeddedBroker
from devstack.seed import DEMO_PASSWORD
from tests.integration.helpers import make_settings, running_service

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"


async def sign_in(client: httpx.AsyncClient, username: str) -> None:
    r = await client.post("/login", data={"username": username, "password": DEMO_PASSWORD})
    assert r.status_code == 303, r.text


def count(db_url: str, query: str) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(query.encode()).fetchone()
    assert row is not None
    return int(row[0])


async def test_elder_form_shows_problems_next_to_fields(
    client: httpx.AsyncClient, db_url: str
) -> None:
    await sign_in(client, "town-t1")
    page = await client.get("/console/admin")
    assert page.status_code == 200
    assert 'href="/console/admin/elders/e01"' in page.text  # v1 is in t1
    assert 'href="/console/admin/elders/e03"' not in page.text  # v3 is not
    form = {
        "village_id": "v1", "address": "9 Willow Lane", "full_name": "Zhou Guiying",
        "born": "1939-09-09", "sex": "female", "phone": "not a phone", "lives_alone": "on",
        "conditions": "hypertension\narthritis", "spo2_low": "150",
        "contact_name": "Zhou Jun", "contact_phone": "13900002222",
    }  # fmt: skip
    r = await client.post("/console/admin/elders/new", data=form)
    assert r.status_code == 422
    assert re.search(r'id="f-phone"[^>]*aria-invalid="true"', r.text)
    assert 'id="e-phone"' in r.text
    assert 'id="e-spo2_low"' in r.text
    assert 'value="Zhou Guiying"' in r.text  # what was typed is kept
    assert count(db_url, "SELECT count(*) FROM elders WHERE full_name = 'Zhou Guiying'") == 0
    r = await client.post(
        "/console/admin/elders/new", data={**form, "phone": "13800002222", "spo2_low": "88"}
    )
    assert r.status_code == 303, r.text
    page = await client.get(r.headers["location"])
    assert "Saved." in page.text
    assert "Zhou Jun" in page.text
    elder_id = r.headers["location"].split("/")[-1].split("?")[0]
    # Close it from its page: a reason is needed.
    r = await client.post(f"/console/admin/elders/{elder_id}", data={"action": "close"})
    assert r.status_code == 422
    assert 'id="e-reason"' in r.text
    r = await client.post(
        f"/console/admin/elders/{elder_id}", data={"action": "close", "reason": "moved away"}
    )
    assert r.status_code == 303
    with psycopg.connect(db_url) as conn:
        closed = conn.execute("SELECT closed_at FROM elders WHERE id = %s", (elder_id,))
        assert (closed.fetchone() or (None,))[0] is not None
    # Another town's elder is not found here.
    assert (await client.get("/console/admin/elders/e03")).status_code == 404


async def test_invitation_pages_in_chinese(client: httpx.AsyncClient, db_url: str) -> None:
    await sign_in(client, "worker-v1")
    await client.post("/locale", data={"locale": "zh"})
    page = await client.get("/console/admin/invite")
    assert "邀请家属" in page.text
    r = await client.post(
        "/console/admin/invite",
        data={"elder_id": "e01", "display_name": "", "relation": "女儿", "first_contact": "on"},
    )
    assert r.status_code == 422
    assert 'id="e-display_name"' in r.text
    r = await client.post(
        "/console/admin/invite",
        data={"elder_id": "e01", "display_name": "刘芳", "relation": "女儿",
              "phone": "13900003333", "first_contact": "on", "expires_hours": "48"},
    )  # fmt: skip
    assert r.status_code == 200
    link = re.search(r'value="(http[^"]+/invite/([^"]+))"', r.text)
    assert link is not None
    token = link[2]
    client.cookies.clear()
    page = await client.get(f"/invite/{token}", headers={"accept-language": "zh-CN"})
    assert "刘芳" in page.text
    assert "设置密码" in page.text
    r = await client.post(
        f"/invite/{token}",
        data={"username": "liu-fang", "password": "osmanthus-88", "password_again": "x"},
        headers={"accept-language": "zh-CN"},
    )
    assert r.status_code == 422
    assert "两次输入的密码不一致" in r.text
    r = await client.post(
        f"/invite/{token}",
        data={"username": "liu-fang", "password": "osmanthus-88",
              "password_again": "osmanthus-88"},
    )  # fmt: skip
    assert r.status_code == 200
    assert 'id="invite-done"' in r.text
    again = await client.get(f"/invite/{token}")
    assert again.status_code == 410
    assert 'id="invite-refused"' in again.text
    r = await client.post("/login", data={"username": "liu-fang", "password": "osmanthus-88"})
    assert (r.status_code, r.headers["location"]) == (303, "/family")


async def test_import_page_dry_run_then_confirm(client: httpx.AsyncClient, db_url: str) -> None:
    await sign_in(client, "town-t1")
    bad = "external_id,full_name,address,born\nW-1,Gao Lan,1 Lane,1941-02-30\n"
    r = await client.post(
        "/console/admin/import",
        data={"village": "v2"},
        files={"file": ("v2.csv", bad.encode(), "text/csv")},
    )
    assert r.status_code == 422
    assert 'id="import-problems"' in r.text
    assert '<td data-label="Row">2</td>' in r.text
    good = "external_id,full_name,address\nW-1,Gao Lan,1 Lane\nW-2,Ma Li,2 Lane\n"
    r = await client.post(
        "/console/admin/import",
        data={"village": "v2"},
        files={"file": ("v2.csv", good.encode(), "text/csv")},
    )
    assert r.status_code == 200
    assert 'id="import-clean"' in r.text
    assert count(db_url, "SELECT count(*) FROM elders WHERE external_id LIKE 'W-%'") == 0
    content = re.search(r'name="content" value="([^"]+)"', r.text)
    assert content is not None
    r = await client.post(
        "/console/admin/import",
        data={"village": "v2", "filename": "v2.csv", "content": content[1]},
    )
    assert r.status_code == 200
    assert 'id="import-done"' in r.text
    assert count(db_url, "SELECT count(*) FROM elders WHERE external_id LIKE 'W-%'") == 2
    # A village worker has no import page.
    client.cookies.clear()
    await sign_in(client, "worker-v1")
    assert (await client.get("/console/admin/import")).status_code == 404


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium")
    async with async_playwright() as p:
        b = await p.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            yield b
        finally:
            await b.close()


async def test_elder_form_on_a_phone(
    browser: Browser, db_url: str, mosquitto: EmbeddedBroker, tmp_path: Path
) -> None:
    settings = make_settings(db_url, mosquitto)
    async with running_service(settings, ("gateway",)) as svc:
        base = f"http://127.0.0.1:{svc.http_port}"
        page = await browser.new_page(viewport={"width": 390, "height": 844})
        await page.goto(f"{base}/login")
        await page.fill("#username", "town-t1")
        await page.fill("#password", DEMO_PASSWORD)
        await page.click("button[type=submit]")
        await page.goto(f"{base}/console/admin/elders/new")
        await page.fill("#f-address", "12 Willow Lane")
        await page.fill("#f-full_name", "Xu Lan")
        await page.fill("#f-phone", "12")
        await page.click("#save-elder")
        await expect(page.locator("#e-phone")).to_be_visible()
        box = await page.locator("#e-phone").bounding_box()
        field = await page.locator("#f-phone").bounding_box()
        assert box is not None
        assert field is not None
        assert 0 <= box["y"] - (field["y"] + field["height"]) < 40  # right under its field
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390  # nothing wider than the phone
        await page.screenshot(path=str(tmp_path / "admin-elder-phone.png"), full_page=True)
        await page.fill("#f-phone", "13800004444")
        await page.click("#save-elder")
        await expect(page.locator("p.saved")).to_be_visible()
        await page.goto(f"{base}/console/admin")
        await expect(page.locator("#admin-elders")).to_contain_text("Xu Lan")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390
