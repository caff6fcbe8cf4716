"""Web push end to end: a village worker subscribes a browser through the API, an SOS over
MQTT is pushed to the (local) push service encrypted for that browser, acknowledging stops the
repeats; a push service answering 410 removes the subscription and the e-mail fallback is used."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from devstack.broker import EmbeddedBroker
from devstack.seed import DEMO_PASSWORD
from simulators.publisher import MqttPublisher
from tests.conftest import HttpReceiver, SmtpServer
from tests.integration.helpers import eventually, make_settings, running_service, scalar
from tests.integration.test_pipeline import reading
from tests.push_browser import Browser, vapid_claims


async def _login(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    login = await client.post(
        "/api/v1/auth/login", json={"username": username, "password": DEMO_PASSWORD}
    )
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['token']}"}


async def _sos(mosquitto: EmbeddedBroker) -> None:
    async with MqttPublisher(mosquitto.url, "dev-h01-sos") as pub:
        await pub.publish_readings([reading("h01-sos", "h01", "sos_button", "press", 1, 1)])


async def test_subscribed_worker_gets_decryptable_push_and_ack_stops_repeats(
    db_url: str, mosquitto: EmbeddedBroker, http_receiver: HttpReceiver, smtp_server: SmtpServer
) -> None:
    settings = make_settings(
        db_url,
        mosquitto,
        alerts={
            "demo_speed": 150,  # repeat every 2 s
            "smtp": {"host": smtp_server.host, "port": smtp_server.port},
            "fallback_refresh_s": 0.2,
        },
    )
    browser = Browser(http_receiver.url + "/push/worker-v1")
    async with running_service(settings) as svc:
        base = f"http://127.0.0.1:{svc.http_port}"
        async with httpx.AsyncClient(base_url=base) as client:
            assert (await client.get("/api/v1/push/key")).status_code == 401
            auth = await _login(client, "worker-v1")
            key = (await client.get("/api/v1/push/key", headers=auth)).json()["public_key"]
            bad = browser.subscription() | {"endpoint": "http://push.example/x"}
            refused = await client.post("/api/v1/push/subscriptions", json=bad, headers=auth)
            assert refused.status_code == 422
            assert "https" in refused.json()["error"]["message"]
            made = await client.post(
                "/api/v1/push/subscriptions", json=browser.subscription(), headers=auth
            )
            assert made.status_code == 201, made.text
            listed = (await client.get("/api/v1/push/subscriptions", headers=auth)).json()
            assert [s["endpoint"] for s in listed["subscriptions"]] == [browser.endpoint]
            worker_sw = await client.get("/sw.js")
            assert worker_sw.status_code == 200
            assert "showNotification" in worker_sw.text

            # The fast path's cached contacts (refreshed every fallback_refresh_s) know the
            # new subscription; until they do it would use the worker's previous first channel.
            await asyncio.sleep(0.6)
            await _sos(mosquitto)

            def pushes() -> list[dict[str, Any]]:
                return [browser.decrypt(r.body) for r in http_receiver.requests]

            async def two_rounds() -> bool:
                return sum(bool(p["notice"] == "alert") for p in pushes()) >= 2

            await eventually(two_rounds, timeout=20, what="two pushed rounds")
            first = pushes()[0]
            alert_id = await scalar(db_url, "SELECT id FROM alerts WHERE home_id = 'h01'")
            assert first["alert_id"] == alert_id
            assert first["kind"] == "sos"
            assert first["severity"] == "critical"
            assert first["ack_url"].startswith(settings.gateway.base_url() + "/ack/")
            request = http_receiver.requests[0]
            assert vapid_claims(request.headers["authorization"], key)["aud"] == (http_receiver.url)
            # The worker's e-mail stays a fallback: push came first and worked.
            assert not any(m.rcpt_tos == ["worker-v1@example.org"] for m in smtp_server.messages)

            acked = await client.post(f"/api/v1/alerts/{alert_id}/ack", headers=auth)
            assert acked.status_code == 200, acked.text

            async def nothing_pending() -> bool:
                return bool(
                    await scalar(
                        db_url,
                        "SELECT count(*) = 0 FROM notifications WHERE alert_id = %s"
                        " AND status = 'pending'",
                        alert_id,
                    )
                )

            await eventually(nothing_pending, what="notices after the acknowledgement")
            rounds = sum(p["notice"] == "alert" for p in pushes())
            await asyncio.sleep(3)  # longer than the 2 s repeat period
            assert sum(p["notice"] == "alert" for p in pushes()) == rounds, "repeats went on"

            gone = await client.delete(
                "/api/v1/push/subscriptions", params={"endpoint": browser.endpoint}, headers=auth
            )
            assert gone.status_code == 204
            again = await client.delete(
                "/api/v1/push/subscriptions", params={"endpoint": browser.endpoint}, headers=auth
            )
            assert again.status_code == 404


async def test_gone_subscription_is_removed_and_email_fallback_used(
    db_url: str, mosquitto: EmbeddedBroker, http_receiver: HttpReceiver, smtp_server: SmtpServer
) -> None:
    settings = make_settings(
        db_url,
        mosquitto,
        alerts={
            "smtp": {"host": smtp_server.host, "port": smtp_server.port},
            "fallback_refresh_s": 0.2,
        },
    )
    http_receiver.status = 410
    browser = Browser(http_receiver.url + "/push/expired")
    async with running_service(settings) as svc:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{svc.http_port}") as client:
            auth = await _login(client, "worker-v1")
            made = await client.post(
                "/api/v1/push/subscriptions", json=browser.subscription(), headers=auth
            )
            assert made.status_code == 201, made.text
            await asyncio.sleep(0.6)  # the fast path's cached contacts know it (see above)
        await _sos(mosquitto)

        async def mailed() -> bool:
            return any(m.rcpt_tos == ["worker-v1@example.org"] for m in smtp_server.messages)

        await eventually(mailed, timeout=20, what="e-mail fallback to the worker")
        assert len(http_receiver.requests) >= 1
        assert (
            await scalar(db_url, "SELECT count(*) FROM contact_channels WHERE channel = 'webpush'")
            == 0
        )
        error = await scalar(
            db_url,
            "SELECT a.error FROM notification_attempts a JOIN notifications n"
            " ON n.id = a.notification_id WHERE n.channel = 'webpush' ORDER BY a.id LIMIT 1",
        )
        assert "HTTP 410, subscription gone" in error
        # Gone is final: the same subscription is not retried.
        await asyncio.sleep(1.0)
        assert (
            await scalar(
                db_url,
                "SELECT count(*) FROM notification_attempts a JOIN notifications n"
                " ON n.id = a.notification_id WHERE n.channel = 'webpush' AND n.round = 0",
            )
            == 1
        )
