"""The demo inbox (issue #16: it showed no message body, so the "I'll take it" link could
not be followed): each message with its text, links clickable and everything else escaped,
newest first, times in the deployment's zone and labelled; and end to end, an SOS's
notification arrives over the real webhook channel and SMTP, and its acknowledge link,
followed from the inbox page, takes the alert."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.message import EmailMessage
from html.parser import HTMLParser
from typing import Any
from zoneinfo import ZoneInfo

import aiosmtplib
import httpx
import psycopg
import pytest
from fastapi import FastAPI

from alerts.notify.channels import SIGNATURE_HEADER, sign
from devstack.broker import EmbeddedBroker
from devstack.inbox import DemoInbox, linkify
from devstack.ports import free_port
from runtime.service import Running, serve
from runtime.settings import Settings
from simulators.publisher import MqttPublisher
from tests.integration.helpers import eventually, make_settings, scalar
from tests.integration.test_browser import press

pytestmark = pytest.mark.integration

SECRET = b"inbox-test-secret"
SHANGHAI = ZoneInfo("Asia/Shanghai")


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links.extend(v for k, v in attrs if k == "href" and v)


def links(page: str) -> list[str]:
    parser = _Links()
    parser.feed(page)
    return parser.links


@contextlib.asynccontextmanager
async def started(inbox: DemoInbox) -> AsyncIterator[int]:
    port = inbox.start()
    try:
        yield port
    finally:
        inbox.stop()


def test_linkify_escapes_and_links_only_web_addresses() -> None:
    text = 'Take it: http://h/ack/x?a=1&b=2. <b>"hi"</b> javascript:alert(1) https://e/p)'
    out = linkify(text)
    assert '<a href="http://h/ack/x?a=1&amp;b=2">http://h/ack/x?a=1&amp;b=2</a>.' in out
    assert '<a href="https://e/p">https://e/p</a>)' in out
    assert "&lt;b&gt;&quot;hi&quot;&lt;/b&gt;" in out
    assert "<b>" not in out
    assert out.count("<a ") == 2


async def test_inbox_shows_bodies_newest_first_in_the_deployment_zone() -> None:
    inbox = DemoInbox(SECRET, tz=SHANGHAI)
    app = FastAPI()
    app.include_router(inbox.router)
    async with (
        started(inbox) as smtp_port,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        mail = EmailMessage()
        mail["From"] = "alerts@example.org"
        mail["To"] = "family-h01@example.org"
        mail["Subject"] = "王桂英：求助按钮被按下"
        mail.set_content(
            "王桂英按了求助按钮。\n我来处理：http://127.0.0.1:8000/ack/tok1?a=1&b=2\n"
            "<script>alert(1)</script>\n"
        )
        await aiosmtplib.send(mail, hostname="127.0.0.1", port=smtp_port)
        doc = {
            "version": 1,
            "headline": "SOS — Wang Guiying",
            "text": "Wang Guiying pressed the SOS button.\nI'll take it: http://127.0.0.1:8000/ack/tok2",
            "round": 0,
            "alert": {"id": 7, "summary": "SOS"},
            "ack_url": "http://127.0.0.1:8000/ack/tok2",
        }
        body = json.dumps(doc).encode()
        signed = {SIGNATURE_HEADER: sign(SECRET, int(time.time()), body)}
        ok = await c.post("/demo/webhook/worker-v1", content=body, headers=signed)
        assert ok.status_code == 200
        forged = await c.post(
            "/demo/webhook/worker-v2", content=body, headers={SIGNATURE_HEADER: "t=1,v1=00"}
        )
        assert forged.status_code == 401

        page = (await c.get("/demo/inbox")).text
        css = await c.get("/demo/inbox.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert "<style" not in page  # the pages' CSP refuses inline styles
    # Newest first: the forged webhook, the signed one, then the e-mail.
    order = [page.index(s) for s in ("to worker-v2", "to worker-v1", "to family-h01@example.org")]
    assert order == sorted(order)
    assert "signature NOT valid" in page
    # The bodies, escaped, with their links clickable.
    assert "王桂英按了求助按钮。" in page
    assert "王桂英：求助按钮被按下" in page  # the subject decoded (RFC 2047)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>" not in page
    assert "Wang Guiying pressed the SOS button." in page
    hrefs = links(page)
    assert "http://127.0.0.1:8000/ack/tok1?a=1&b=2" in hrefs
    assert hrefs.count("http://127.0.0.1:8000/ack/tok2") == 2  # the signed and the forged
    # Times in the deployment's zone, labelled.
    assert "Times in Asia/Shanghai, UTC+08:00" in page
    items = inbox.items()
    for item in items:
        local = item.at.astimezone(SHANGHAI)
        assert f">{local:%Y-%m-%d %H:%M:%S}</time> (Asia/Shanghai)" in page


@contextlib.asynccontextmanager
async def service_with_inbox(settings: Settings, inbox: DemoInbox) -> AsyncIterator[Running]:
    """The whole service with the demo inbox's routes, as `eldercare up` runs it."""
    stop = asyncio.Event()
    ready: asyncio.Future[Running] = asyncio.get_running_loop().create_future()
    task: asyncio.Future[Any] = asyncio.create_task(
        serve(
            settings,
            routers=(inbox.router,),
            stop=stop,
            on_ready=ready.set_result,
            handle_signals=False,
        )
    )
    done, _ = await asyncio.wait([task, ready], timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
        raise AssertionError("service stopped before it was ready")
    try:
        yield ready.result()
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def test_the_ack_link_of_an_sos_is_followed_from_the_inbox(
    db_url: str, mosquitto: EmbeddedBroker
) -> None:
    inbox = DemoInbox(SECRET, tz=SHANGHAI)
    async with started(inbox) as smtp_port:
        port = free_port()
        web = f"http://127.0.0.1:{port}"
        settings = make_settings(
            db_url,
            mosquitto,
            alerts={
                "webhook_secret": SECRET.decode(),
                "smtp": {"host": "127.0.0.1", "port": smtp_port},
            },
            gateway={"port": port, "public_url": web},
        )
        # As the demo seed does: the village worker's first channel is the inbox's webhook.
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            await conn.execute(
                "INSERT INTO contact_channels (user_id, channel, target, position)"
                " SELECT id, 'webhook', %s, 0 FROM users WHERE username = 'worker-v1'",
                (f"{web}/demo/webhook/worker-v1",),
            )
        async with service_with_inbox(settings, inbox), httpx.AsyncClient() as client:
            async with MqttPublisher(mosquitto.url, "dev-h01-sos") as pub:
                await pub.publish_readings([press("h01", 1)])

            async def arrived() -> list[Any]:
                return [i for i in inbox.items() if i.channel == "webhook" and i.verified]

            webhook = (await eventually(arrived, what="the SOS webhook in the inbox"))[0]
            assert webhook.to == "worker-v1"
            assert webhook.body
            # The family's e-mail (their first channel) came through SMTP, with its text.
            mails = await eventually(
                lambda: _async([i for i in inbox.items() if i.channel == "email"]),
                what="the family's e-mail",
            )
            assert mails[0].body.strip()

            page = (await client.get(f"{web}/demo/inbox")).text
            acks = [h for h in links(page) if re.match(rf"{re.escape(web)}/ack/[^/]+$", h)]
            assert acks, page
            worker_card = page[page.index("to worker-v1") :]
            link = next(h for h in acks if h.replace("&", "&amp;") in worker_card)
            shown = await client.get(link)
            assert shown.status_code == 200
            assert "<form method=post" in shown.text
            taken = await client.post(link)
            assert taken.status_code == 200, taken.text
            alert_id = await scalar(db_url, "SELECT id FROM alerts WHERE home_id = 'h01'")
            row = await scalar(
                db_url,
                "SELECT u.username FROM alerts a JOIN users u ON u.id = a.acknowledged_by"
                " WHERE a.id = %s AND a.status = 'acknowledged'",
                alert_id,
            )
            assert row == "worker-v1"
    assert datetime.now(UTC) >= webhook.at


async def _async(value: Any) -> Any:
    return value
