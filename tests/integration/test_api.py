"""The gateway's HTTP API and pages against a real PostgreSQL (demo region seeded)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from devstack.ports import free_port
from devstack.seed import DEMO_PASSWORD
from gateway.app import create_app
from gateway.config import GatewaySettings
from gateway.context import AppContext
from gateway.live import Broadcaster
from gateway.sessions import COOKIE_NAME
from tests.integration.helpers import Pool, assert_error, login, raise_sos

pytestmark = pytest.mark.integration

SEES_H01 = ("worker-v1", "town-t1", "district", "family-h01")
BLIND_TO_H01 = ("worker-v2", "town-t2", "family-h02", "operator")


# --------------------------------------------------------------------------- helpers


async def next_event(lines: AsyncIterator[str]) -> dict[str, str]:
    """Read one server-sent event (skipping comments such as pings)."""
    event: dict[str, str] = {}
    async for line in lines:
        if not line:
            if event:
                return event
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        event[name] = value.removeprefix(" ")
    raise AssertionError(f"stream ended; partial event {event}")


# --------------------------------------------------------------------------- auth


async def test_login_returns_token_user_and_cookie(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/login", json={"username": "worker-v1", "password": DEMO_PASSWORD}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["token"]) >= 43
    assert body["user"]["username"] == "worker-v1"
    assert body["user"]["role"] == "village_worker"
    assert body["user"]["region_id"] == "v1"
    assert body["user"]["can_acknowledge"] is True
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}={body['token']};")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "SameSite=Lax" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie

    # The cookie alone authenticates; so does the bearer token alone.
    me = await client.get("/api/v1/me")
    assert me.status_code == 200
    assert me.json()["username"] == "worker-v1"
    client.cookies.clear()
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.json()["display_name"] == "Village worker v1"


async def test_secure_cookie_when_configured(pool: Pool, broadcaster: Broadcaster) -> None:
    ctx = AppContext(GatewaySettings(cookie_secure=True), pool, broadcaster, CollectorRegistry())
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="https://test") as client:
        response = await client.post(
            "/api/v1/auth/login", json={"username": "district", "password": DEMO_PASSWORD}
        )
    assert response.status_code == 200
    assert "Secure" in response.headers["set-cookie"]


async def test_only_the_token_hash_is_stored(client: httpx.AsyncClient, pool: Pool) -> None:
    headers = await login(client, "district")
    token = headers["Authorization"].removeprefix("Bearer ")
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT token_hash, expires_at - created_at FROM sessions")
        rows = await cur.fetchall()
    assert len(rows) == 1
    token_hash, lifetime = rows[0]
    assert bytes(token_hash) != token.encode()
    assert len(bytes(token_hash)) == 32
    assert lifetime.total_seconds() == pytest.approx(12 * 3600, abs=5)


async def test_wrong_password_and_unknown_user_are_401(client: httpx.AsyncClient) -> None:
    wrong = await client.post(
        "/api/v1/auth/login", json={"username": "worker-v1", "password": "nope"}
    )
    assert_error(wrong, 401, "invalid_credentials")
    assert "set-cookie" not in wrong.headers
    unknown = await client.post(
        "/api/v1/auth/login", json={"username": "nobody", "password": DEMO_PASSWORD}
    )
    assert assert_error(unknown, 401, "invalid_credentials") == wrong.json()["error"]


async def test_login_rate_limit(client: httpx.AsyncClient, app: FastAPI) -> None:
    for _ in range(3):
        response = await client.post(
            "/api/v1/auth/login", json={"username": "worker-v1", "password": "guess"}
        )
        assert_error(response, 401, "invalid_credentials")
    limited = await client.post(
        "/api/v1/auth/login", json={"username": "worker-v1", "password": DEMO_PASSWORD}
    )
    assert_error(limited, 429, "rate_limited")
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    # Other users (and the same user from elsewhere) are not affected.
    await login(client, "worker-v2")
    transport = httpx.ASGITransport(app=app, client=("10.9.8.7", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as other:
        await login(other, "worker-v1")


async def test_unauthenticated_requests_are_401(client: httpx.AsyncClient) -> None:
    for path in ("/api/v1/me", "/api/v1/alerts", "/api/v1/alerts/1", "/api/v1/alerts/stream"):
        response = await client.get(path)
        assert_error(response, 401, "unauthenticated")
        assert response.headers["www-authenticate"] == "Bearer"
    response = await client.post("/api/v1/alerts/1/ack")
    assert_error(response, 401, "unauthenticated")
    bogus = await client.get("/api/v1/me", headers={"Authorization": "Bearer not-a-token"})
    assert_error(bogus, 401, "unauthenticated")


async def test_logout_ends_the_session(client: httpx.AsyncClient) -> None:
    headers = await login(client, "worker-v1")
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 200
    response = await client.post("/api/v1/auth/logout", headers=headers)
    assert response.status_code == 204
    assert_error(await client.get("/api/v1/me", headers=headers), 401, "unauthenticated")


async def test_expired_session_is_refused(client: httpx.AsyncClient, pool: Pool) -> None:
    headers = await login(client, "worker-v1")
    async with pool.connection() as conn:
        await conn.execute("UPDATE sessions SET expires_at = now() - interval '1 second'")
    assert_error(await client.get("/api/v1/me", headers=headers), 401, "unauthenticated")


async def test_invalid_json_is_422_with_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/login",
        content=b'{"username": "worker-v1", "password": ',
        headers={"Content-Type": "application/json"},
    )
    error = assert_error(response, 422, "invalid_request")
    assert error["details"]
    missing = await client.post("/api/v1/auth/login", json={"username": "worker-v1"})
    error = assert_error(missing, 422, "invalid_request")
    assert [d["field"] for d in error["details"]] == ["body.password"]
    # Validation errors never echo what was sent (it may be a password).
    short = await client.post(
        "/api/v1/auth/login", json={"username": "", "password": "hunter2-secret"}
    )
    assert "hunter2-secret" not in short.text
    headers = await login(client, "district")
    bad_query = await client.get("/api/v1/alerts?status=bogus&limit=0", headers=headers)
    error = assert_error(bad_query, 422, "invalid_request")
    assert {d["field"] for d in error["details"]} == {"query.status.0", "query.limit"}


async def test_unknown_route_uses_error_shape(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/api/v1/nothing-here"), 404, "not_found")
    assert_error(await client.delete("/api/v1/me"), 405, "method_not_allowed")


# --------------------------------------------------------------------------- alerts


async def test_alert_visibility_by_role_and_region(client: httpx.AsyncClient, pool: Pool) -> None:
    alert_id = await raise_sos(pool, "h01")
    for user in SEES_H01:
        headers = await login(client, user)
        listed = await client.get("/api/v1/alerts", headers=headers)
        assert listed.status_code == 200, listed.text
        assert [a["id"] for a in listed.json()["items"]] == [alert_id], user
        one = await client.get(f"/api/v1/alerts/{alert_id}", headers=headers)
        assert one.status_code == 200, user
    for user in BLIND_TO_H01:
        headers = await login(client, user)
        listed = await client.get("/api/v1/alerts", headers=headers)
        assert listed.json() == {"items": [], "next_before": None}, user
        one = await client.get(f"/api/v1/alerts/{alert_id}", headers=headers)
        assert_error(one, 404, "not_found")


async def test_alert_json(client: httpx.AsyncClient, pool: Pool) -> None:
    alert_id = await raise_sos(pool, "h01")
    headers = await login(client, "worker-v1")
    items = (await client.get("/api/v1/alerts", headers=headers)).json()["items"]
    (item,) = items
    assert item["id"] == alert_id
    assert item["home_id"] == "h01"
    assert item["elder"]
    assert item["village"] == "Willow Village"
    assert item["kind"] == "sos"
    assert item["category"] == "emergency"
    assert item["severity"] == "critical"
    assert item["status"] == "open"
    assert item["summary"] == "SOS button pressed in h01"
    assert item["evidence_count"] == 1
    assert datetime.fromisoformat(item["event_at"]).tzinfo is not None
    for key in ("opened_at", "last_evidence_at"):
        datetime.fromisoformat(item[key])
    for key in ("acknowledged_at", "acknowledged_by", "resolved_at", "outcome"):
        assert item[key] is None
    detail = (await client.get(f"/api/v1/alerts/{alert_id}", headers=headers)).json()
    assert detail["events"][0]["action"] == "opened"
    assert detail["events"][0]["actor"] is None


async def test_alert_list_pages_and_filters(client: httpx.AsyncClient, pool: Pool) -> None:
    ids = [await raise_sos(pool, home) for home in ("h01", "h02", "h03")]
    headers = await login(client, "district")
    first = (await client.get("/api/v1/alerts?limit=2", headers=headers)).json()
    assert [a["id"] for a in first["items"]] == [ids[2], ids[1]]
    assert first["next_before"] == ids[1]
    second = (await client.get(f"/api/v1/alerts?limit=2&before={ids[1]}", headers=headers)).json()
    assert [a["id"] for a in second["items"]] == [ids[0]]
    assert second["next_before"] is None

    ack = await client.post(f"/api/v1/alerts/{ids[0]}/ack", headers=headers)
    assert ack.status_code == 200
    only_open = (await client.get("/api/v1/alerts?status=open", headers=headers)).json()
    assert [a["id"] for a in only_open["items"]] == [ids[2], ids[1]]
    acked = (await client.get("/api/v1/alerts?status=acknowledged", headers=headers)).json()
    assert [a["id"] for a in acked["items"]] == [ids[0]]
    default = (await client.get("/api/v1/alerts", headers=headers)).json()
    assert len(default["items"]) == 3


async def test_acknowledge(client: httpx.AsyncClient, pool: Pool) -> None:
    alert_id = await raise_sos(pool, "h01")

    family = await login(client, "family-h01")
    assert_error(
        await client.post(f"/api/v1/alerts/{alert_id}/ack", headers=family), 403, "forbidden"
    )
    outsider = await login(client, "worker-v2")
    assert_error(
        await client.post(f"/api/v1/alerts/{alert_id}/ack", headers=outsider), 404, "not_found"
    )
    assert_error(await client.post("/api/v1/alerts/999999/ack", headers=outsider), 404, "not_found")

    worker = await login(client, "worker-v1")
    response = await client.post(f"/api/v1/alerts/{alert_id}/ack", headers=worker)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == alert_id
    assert body["status"] == "acknowledged"
    assert body["acknowledged_by"] == "Village worker v1"
    assert body["acknowledged_at"] is not None

    detail = (await client.get(f"/api/v1/alerts/{alert_id}", headers=worker)).json()
    acked = [e for e in detail["events"] if e["action"] == "acknowledged"]
    assert len(acked) == 1
    assert acked[0]["actor"] == "Village worker v1"
    assert acked[0]["detail"] == {"how": "api"}

    again = await client.post(f"/api/v1/alerts/{alert_id}/ack", headers=worker)
    error = assert_error(again, 409, "not_open")
    assert "Village worker v1" in error["message"]
    town = await login(client, "town-t1")
    assert_error(await client.post(f"/api/v1/alerts/{alert_id}/ack", headers=town), 409, "not_open")


async def test_concurrent_acks_have_one_winner(client: httpx.AsyncClient, pool: Pool) -> None:
    alert_id = await raise_sos(pool, "h01")
    people = [await login(client, u) for u in ("worker-v1", "town-t1", "district")]
    responses = await asyncio.gather(
        *(client.post(f"/api/v1/alerts/{alert_id}/ack", headers=h) for h in people)
    )
    assert sorted(r.status_code for r in responses) == [200, 409, 409]


# --------------------------------------------------------------------------- live stream


async def test_stream_delivers_visible_alerts(ctx: AppContext, pool: Pool) -> None:
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
            headers = await login(client, "worker-v1")
            async with client.stream("GET", "/api/v1/alerts/stream", headers=headers) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                lines = response.aiter_lines()
                async with asyncio.timeout(10):
                    hello = await next_event(lines)
                assert hello["event"] == "hello"
                assert json.loads(hello["data"])["user"] == "worker-v1"

                hidden = await raise_sos(pool, "h02")  # village v2: not for worker-v1
                visible = await raise_sos(pool, "h01")
                assert hidden != visible
                async with asyncio.timeout(10):
                    event = await next_event(lines)
                assert event["event"] == "alert"
                data = json.loads(event["data"])
                assert data["id"] == visible
                assert data["home_id"] == "h01"
                assert data["status"] == "open"

                # An acknowledgement is pushed too.
                ack = await client.post(f"/api/v1/alerts/{visible}/ack", headers=headers)
                assert ack.status_code == 200
                async with asyncio.timeout(10):
                    event = await next_event(lines)
                data = json.loads(event["data"])
                assert (data["id"], data["status"]) == (visible, "acknowledged")
                assert ctx.broadcaster.subscriber_count == 1
    finally:
        server.should_exit = True
        await serving
    assert ctx.broadcaster.subscriber_count == 0


async def test_broadcaster_drops_slow_subscribers(db_url: str) -> None:
    b = Broadcaster(db_url, queue_size=2)
    async with b.subscribe() as slow, b.subscribe() as fast:
        for alert_id in (1, 2):
            b.publish(alert_id)
            assert await fast.get() == alert_id
        b.publish(3)  # slow is now full
        assert await fast.get() == 3
        assert slow.get_nowait() is None  # dropped: told to resync
        assert slow.empty()
        assert b.subscriber_count == 1
        b.publish(4)
        assert await fast.get() == 4
        assert slow.empty()


async def test_broadcaster_reconnects(db_url: str, pool: Pool) -> None:
    b = Broadcaster(db_url, min_backoff_s=0.05, probe_every_s=0.1)
    task = asyncio.create_task(b.run())
    try:
        async with asyncio.timeout(10):
            await b.wait_listening()
        async with b.subscribe() as feed:
            async with pool.connection() as conn:
                await conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE query LIKE 'LISTEN%%' AND pid <> pg_backend_pid()"
                )
            async with asyncio.timeout(10):
                assert await feed.get() is None  # told that changes may have been missed
            async with asyncio.timeout(10):
                await b.wait_listening()
        await asyncio.sleep(0.3)  # a few idle liveness probes
        assert b.connected
        async with b.subscribe() as feed:
            alert_id = await raise_sos(pool, "h03")
            async with asyncio.timeout(10):
                assert await feed.get() == alert_id
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# --------------------------------------------------------------------------- operations


async def test_favicon_is_served_and_linked_from_the_pages(client: httpx.AsyncClient) -> None:
    icon = await client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")
    assert icon.content.startswith(b"<svg")
    login = await client.get("/login")
    assert '<link rel="icon" href="/static/favicon.svg"' in login.text
    assert (await client.get("/static/favicon.svg")).status_code == 200


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": True, "alert_stream": True},
    }


async def test_healthz_reports_failing_checks(pool: Pool, broadcaster: Broadcaster) -> None:
    ctx = AppContext(
        GatewaySettings(), pool, broadcaster, CollectorRegistry(), lambda: {"mqtt": False}
    )
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": True, "mqtt": False}
    assert response.json()["failing"] == ["mqtt"]


async def test_metrics(client: httpx.AsyncClient) -> None:
    await login(client, "worker-v1")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'eldercare_gateway_logins_total{result="ok"} 1.0' in text
    assert 'route="/api/v1/auth/login"' in text
    assert "eldercare_gateway_stream_clients 0.0" in text


# --------------------------------------------------------------------------- pages


async def test_pages_redirect_to_login_when_signed_out(client: httpx.AsyncClient) -> None:
    for path in ("/", "/console"):
        response = await client.get(path)
        assert response.status_code == 303
        assert response.headers["location"] == "/login"
    page = await client.get("/login")
    assert page.status_code == 200
    assert '<form class="card login" method="post" action="/login">' in page.text
    assert "content-security-policy" in page.headers
    css = await client.get("/static/style.css")
    assert css.status_code == 200
    js = await client.get("/static/console.js")
    assert "EventSource" in js.text


async def test_console_for_staff(client: httpx.AsyncClient, pool: Pool) -> None:
    await raise_sos(pool, "h01")
    bad = await client.post("/login", data={"username": "worker-v1", "password": "wrong"})
    assert bad.status_code == 401
    assert "Unknown username or wrong password." in bad.text

    response = await client.post(
        "/login", data={"username": "worker-v1", "password": DEMO_PASSWORD}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/console"
    assert COOKIE_NAME in client.cookies

    assert (await client.get("/")).headers["location"] == "/console"
    page = await client.get("/console")
    assert page.status_code == 200
    assert "SOS button pressed in h01" in page.text
    assert "Willow Village" in page.text
    assert 'class="sev-critical st-open"' in page.text
    assert "Acknowledge</button>" in page.text
    assert "/static/console.js" in page.text
    assert page.headers["cache-control"] == "no-store"

    # The page's cookie works for the API (what the inline script does).
    me = await client.get("/api/v1/me")
    assert me.json()["username"] == "worker-v1"

    out = await client.post("/logout")
    assert out.status_code == 303
    assert (await client.get("/console")).headers["location"] == "/login"


async def test_console_for_family_has_no_acknowledge(client: httpx.AsyncClient, pool: Pool) -> None:
    await raise_sos(pool, "h01")
    await raise_sos(pool, "h02")
    response = await client.post(
        "/login", data={"username": "family-h01", "password": DEMO_PASSWORD}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/family"
    assert (await client.get("/console")).headers["location"] == "/family"
    page = await client.get("/family", follow_redirects=True)
    assert page.url.path == "/family/e01"
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT id, full_name FROM elders WHERE id IN ('e01', 'e02')")
        names = dict(await cur.fetchall())
    assert names["e01"] in page.text
    assert names["e02"] not in page.text
    open_list = page.text.split('id="family-open-alerts"')[1].split("</ul>")[0]
    assert "help requested" in open_list  # the SOS, in words a family reads
    assert "Acknowledge</button>" not in page.text


async def test_cookie_post_from_another_site_is_refused(
    client: httpx.AsyncClient, pool: Pool
) -> None:
    alert_id = await raise_sos(pool, "h01")
    await client.post("/login", data={"username": "worker-v1", "password": DEMO_PASSWORD})
    response = await client.post(
        f"/api/v1/alerts/{alert_id}/ack", headers={"Origin": "https://evil.example"}
    )
    assert_error(response, 403, "cross_origin")
    same = await client.post(f"/api/v1/alerts/{alert_id}/ack", headers={"Origin": "http://test"})
    assert same.status_code == 200
