"""The demo path end to end: an SOS over MQTT escalates village -> town -> district on the demo
clock, the one-click link acknowledges it, the home unit hears "help is on the way", and the
KPI report shows the time to acknowledge."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import httpx

from devices import topics
from devstack.broker import EmbeddedBroker
from devstack.seed import DEMO_PASSWORD
from ingest.mqtt import Subscriber
from simulators.publisher import MqttPublisher
from tests.conftest import SmtpServer
from tests.integration.helpers import eventually, make_settings, running_service, scalar
from tests.integration.test_pipeline import reading


async def test_sos_escalates_link_acks_command_sent_and_kpi(
    db_url: str, mosquitto: EmbeddedBroker, smtp_server: SmtpServer
) -> None:
    settings = make_settings(
        db_url,
        mosquitto,
        alerts={
            "demo_speed": 150,  # town at 2 s, district at 4 s, repeat every 2 s
            "smtp": {"host": smtp_server.host, "port": smtp_server.port},
        },
    )
    async with (
        running_service(settings) as svc,
        Subscriber(
            settings.mqtt,
            "test-home-unit",
            [topics.topic("h01", "h01-sos", topics.Channel.COMMANDS)],
        ) as unit,
    ):
        async with MqttPublisher(mosquitto.url, "dev-h01-sos") as pub:
            await pub.publish_readings([reading("h01-sos", "h01", "sos_button", "press", 1, 1)])

        def reached() -> set[str]:
            return {r.split("@")[0] for m in smtp_server.messages for r in m.rcpt_tos}

        async def district_reached() -> bool:
            return "district" in reached()

        await eventually(district_reached, timeout=20, what="escalation to the district")
        assert {"worker-v1", "family-h01", "town-t1", "district"} <= reached()
        alert_id = await scalar(db_url, "SELECT id FROM alerts WHERE home_id = 'h01'")
        order = await scalar(
            db_url,
            "SELECT string_agg(detail->'tiers'->>0, ',' ORDER BY id) FROM alert_events"
            " WHERE alert_id = %s AND action = 'escalated'",
            alert_id,
        )
        assert order.startswith("town,district")

        # The village worker's mail has a one-click link; following it asks, the button acts.
        mail = next(m for m in smtp_server.messages if m.rcpt_tos == ["worker-v1@example.org"])
        match = re.search(r"(http://\S+/ack/\S+)", mail.text)
        assert match, mail.text
        link = match.group(1).replace(
            settings.gateway.base_url(), f"http://127.0.0.1:{svc.http_port}"
        )
        async with httpx.AsyncClient() as client:
            page = await client.get(link)
            assert page.status_code == 200
            assert "take it" in page.text
            assert await scalar(db_url, "SELECT status FROM alerts WHERE id = %s", alert_id) == (
                "open"
            )
            done = await client.post(link)
            assert done.status_code == 200, done.text
            again = await client.post(link)
            assert again.status_code == 409
            forged = await client.post(link[:-3] + "AAA")
            assert forged.status_code == 403
        assert (
            await scalar(
                db_url,
                "SELECT u.username || '/' || a.acknowledged_how FROM alerts a"
                " JOIN users u ON u.id = a.acknowledged_by WHERE a.id = %s",
                alert_id,
            )
            == "worker-v1/link"
        )

        command = await unit.messages.get()
        body = json.loads(command.payload)
        assert body["command"] == "help_on_the_way"
        assert body["alert_id"] == alert_id
        unit.ack(command)

        async def nothing_pending() -> bool:
            return bool(
                await scalar(
                    db_url,
                    "SELECT count(*) = 0 FROM notifications WHERE alert_id = %s"
                    " AND status = 'pending'",
                    alert_id,
                )
            )

        await eventually(nothing_pending, what="acknowledged notices sent")
        rounds = await scalar(
            db_url,
            "SELECT count(*) FROM alert_events WHERE alert_id = %s AND action = 'round_planned'",
            alert_id,
        )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{svc.http_port}") as client:
            login = await client.post(
                "/api/v1/auth/login", json={"username": "district", "password": DEMO_PASSWORD}
            )
            token = login.json()["token"]
            month = datetime.now(UTC).strftime("%Y-%m")
            report = await client.get(
                "/api/v1/reports/alerts",
                params={"month": month},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert report.status_code == 200, report.text
        total = report.json()["rows"][0]
        assert total["grouping"] == "total"
        assert total["alerts"] == 1
        assert total["acknowledged"] == 1
        assert total["ack_p50_s"] > 4  # acknowledged after the district step (4 s)
        assert (
            await scalar(
                db_url,
                "SELECT count(*) FROM alert_events"
                " WHERE alert_id = %s AND action = 'round_planned'",
                alert_id,
            )
            == rounds
        ), "an acknowledged alert kept escalating"
