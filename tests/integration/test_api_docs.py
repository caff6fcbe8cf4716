"""`/api/docs` works with no way out to the internet (issue #16): the page names no other
host, the script and style it loads are served by the service itself, and in a real browser
with every non-local request refused the operations are listed."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Browser, Route, async_playwright, expect

from devstack.broker import EmbeddedBroker
from tests.integration.helpers import make_settings, running_service
from tests.integration.test_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.integration


class _Refs(HTMLParser):
    """Every `src` and `href` of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.refs.extend(v for k, v in attrs if k in ("src", "href") and v)


async def test_docs_page_names_no_other_host_and_its_files_are_served(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/api/docs")
    assert page.status_code == 200
    html = page.text
    assert "SwaggerUIBundle" in html
    # No absolute URL anywhere in the page (CDNs, fonts, the FastAPI favicon).
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html), html
    parser = _Refs()
    parser.feed(html)
    assert parser.refs
    kinds = {}
    for ref in parser.refs:
        assert not urlsplit(ref).netloc, ref
        answer = await client.get(ref)
        assert answer.status_code == 200, ref
        assert answer.content, ref
        kinds[Path(urlsplit(ref).path).suffix] = answer.headers["content-type"]
    assert kinds[".js"].startswith(("text/javascript", "application/javascript"))
    assert kinds[".css"].startswith("text/css")
    # The script is Swagger UI 5 (renders OpenAPI 3.1, which FastAPI writes).
    spec = (await client.get("/api/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    redirect = await client.get("/api/docs/oauth2-redirect")
    assert redirect.status_code == 200
    assert not re.search(r"https?://", redirect.text)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/test as root or apt-get install chromium")
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


async def test_docs_list_the_operations_with_the_internet_blocked(
    browser: Browser, db_url: str, mosquitto: EmbeddedBroker
) -> None:
    settings = make_settings(db_url, mosquitto)
    async with running_service(settings) as svc:
        base = f"http://127.0.0.1:{svc.http_port}"
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        blocked: list[str] = []
        local: list[str] = []

        async def only_local(route: Route) -> None:
            host = urlsplit(route.request.url).hostname
            if host in ("127.0.0.1", "localhost"):
                local.append(route.request.url)
                await route.continue_()
            else:
                blocked.append(route.request.url)
                await route.abort()

        await page.route("**/*", only_local)
        await page.goto(f"{base}/api/docs")
        # Operations of the API, rendered by Swagger UI from /api/openapi.json.
        await expect(page.locator(".opblock").first).to_be_visible(timeout=20000)
        assert await page.locator(".opblock").count() > 20
        await expect(
            page.locator(".opblock-summary-path", has_text="/api/v1/alerts").first
        ).to_be_visible()
        assert blocked == [], blocked
        assert any(u.endswith("/api/openapi.json") for u in local), local
        await page.close()
