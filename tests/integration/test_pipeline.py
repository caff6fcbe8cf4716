"""The whole path on real parts: device -> Mosquitto -> ingest -> PostgreSQL, and an SOS
press -> alert -> webhook and e-mail -> acknowledged through the API."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import httpx
import psycopg
import pytest

from alerts.notify.channels import SIGNATURE_HEADER, verify
from devices import topics
from devices.payload import Reading, encode
from devstack.broker import EmbeddedBroker
from devstack.seed import DEMO_PASSWORD
from runtime.settings import Settings
from simulators.home import SimDevice, SimulatedHome
from simulators.publisher import MqttPublisher
from tests.integration.helpers import (
    eventually,
    make_settings,
    running_service,
    scalar,
    webhook_first,
)

if TYPE_CHECKING:
    from tests.conftest import HttpReceiver, SmtpServer

pytestmark = pytest.mark.integration


def reading(device: str, home: str, kind: str, metric: str, seq: int, value: float) -> Reading:
    return Reading(home, device, kind, 1, seq, datetime.now(UTC), metric, value)


async def test_a_simulated_reading_is_stored_once(db_url: str, mosquitto: EmbeddedBroker) -> None:
    settings = make_settings(db_url, mosquitto)
    home = SimulatedHome(
        "h01",
        [
            SimDevice("h01-pir-living", "pir_motion", "living room"),
            SimDevice("h01-temp", "temperature", "living room"),
        ],
        seed=3,
    )
    now = datetime.now(UTC)
    window = home.events_between(now - timedelta(hours=2), now)
    temps = [r for r in window if r.device_id == "h01-temp"]
    assert temps, "two hours of a home always has temperature readings"
    async with running_service(settings, ("ingest",)):
        async with MqttPublisher(mosquitto.url, "dev-h01-temp") as pub:
            await pub.publish_readings(temps)
            await pub.publish_readings(temps[:1])  # a device resending after a lost PUBACK
        await eventually(
            lambda: scalar(db_url, "SELECT count(*) = %s FROM readings", len(temps)),
            what="readings stored",
        )
        await asyncio.sleep(0.3)  # give a second copy every chance to land, if it would
    assert await scalar(db_url, "SELECT count(*) FROM readings") == len(temps)
    first = temps[0]
    stored = await scalar(
        db_url,
        "SELECT value FROM readings WHERE device_id = %s AND boot = %s AND seq = %s",
        first.device_id,
        first.boot,
        first.seq,
    )
    assert stored == pytest.approx(first.value)


async def test_sos_reaches_people_and_ack_through_the_api_stops_repeats(
    db_url: str, mosquitto: EmbeddedBroker, http_receiver: HttpReceiver, smtp_server: SmtpServer
) -> None:
    secret = "test-webhook-secret-0123456789"
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        await conn.execute(
            "INSERT INTO contact_channels (user_id, channel, target)"
            " SELECT id, 'webhook', %s FROM users WHERE username = 'worker-v1'",
            (http_receiver.url + "/worker-v1",),
        )
        await conn.commit()
    settings = make_settings(
        db_url,
        mosquitto,
        alerts={
            "demo_speed": 500,  # the critical policy's 5 min repeat becomes 0.6 s
            "webhook_secret": secret,
            "smtp": {"host": smtp_server.host, "port": smtp_server.port},
        },
    )
    async with running_service(settings) as svc:
        async with MqttPublisher(mosquitto.url, "dev-h01-sos") as pub:
            await pub.publish_readings([reading("h01-sos", "h01", "sos_button", "press", 7, 1)])
            alert_id = await eventually(
                lambda: scalar(
                    db_url,
                    "SELECT id FROM alerts WHERE home_id = 'h01'"
                    " AND kind = 'sos' AND status = 'open'",
                ),
                what="an open SOS alert",
            )
            # A second press adds evidence to the same alert instead of opening another.
            await pub.publish_readings([reading("h01-sos", "h01", "sos_button", "press", 8, 1)])
            await eventually(
                lambda: scalar(
                    db_url, "SELECT evidence_count = 2 FROM alerts WHERE id = %s", alert_id
                ),
                what="second press as evidence",
            )
        assert await scalar(db_url, "SELECT count(*) FROM alerts") == 1
        assert (
            await scalar(
                db_url, "SELECT severity || '/' || category FROM alerts WHERE id = %s", alert_id
            )
            == "critical/emergency"
        )

        hooks = await http_receiver.wait_for(1)
        hook = hooks[0]
        assert hook.path == "/worker-v1"
        assert verify(
            secret.encode(), hook.headers[SIGNATURE_HEADER.lower()], hook.body, time.time()
        )
        assert not verify(
            b"another-secret", hook.headers[SIGNATURE_HEADER.lower()], hook.body, time.time()
        )
        body = hook.json()
        assert body["alert"]["id"] == alert_id
        assert body["alert"]["kind"] == "sos"
        assert body["alert"]["severity"] == "critical"

        # The family first contact by e-mail (the worker's first channel is the webhook;
        # e-mail is the worker's fallback), then the town staff as the alert escalates. The
        # escalation round also repeats to the family, in no set order: wait for the town.
        async def town_mailed() -> bool:
            return any("town-t1@example.org" in m.rcpt_tos for m in smtp_server.messages)

        await eventually(town_mailed, what="the town staff's escalation mail")
        mails = list(smtp_server.messages)
        rcpts = {r for m in mails for r in m.rcpt_tos}
        assert {"family-h01@example.org", "town-t1@example.org"} <= rcpts
        assert "worker-v1@example.org" not in rcpts
        assert all("SOS" in m.subject for m in mails)
        assert not any("worker-v2" in r for r in rcpts)

        # Unacknowledged, it repeats.
        await http_receiver.wait_for(2, timeout=10)

        base = f"http://127.0.0.1:{svc.http_port}"
        async with httpx.AsyncClient(base_url=base) as client:
            login = await client.post(
                "/api/v1/auth/login", json={"username": "worker-v1", "password": DEMO_PASSWORD}
            )
            assert login.status_code == 200, login.text
            token = login.json()["token"]
            listed = await client.get(
                "/api/v1/alerts", headers={"Authorization": f"Bearer {token}"}
            )
            assert [a["id"] for a in listed.json()["items"]] == [alert_id]
            ack = await client.post(
                f"/api/v1/alerts/{alert_id}/ack", headers={"Authorization": f"Bearer {token}"}
            )
            assert ack.status_code == 200, ack.text
            assert ack.json()["status"] == "acknowledged"
        hooks_at_ack = len(http_receiver.requests)
        mails_at_ack = len(smtp_server.messages)
        await asyncio.sleep(2.0)  # more than three repeat periods
        # No more alert rounds: only the "acknowledged by" notices to the others.
        assert len(http_receiver.requests) == hooks_at_ack
        after = smtp_server.messages[mails_at_ack:]
        assert all(m.subject.startswith("Acknowledged by") for m in after)
        assert not any("worker-v1" in r for m in after for r in m.rcpt_tos)
    assert (
        await scalar(
            db_url,
            "SELECT count(*) FROM notifications WHERE alert_id = %s"
            " AND notice = 'acknowledged' AND status = 'sent'",
            alert_id,
        )
        >= 1
    ), "the others were not told who owns the alert"
    who = await scalar(
        db_url,
        "SELECT u.username FROM alerts a JOIN users u ON u.id = a.acknowledged_by WHERE a.id = %s",
        alert_id,
    )
    assert who == "worker-v1"
    assert (
        await scalar(
            db_url,
            "SELECT count(*) FROM alert_events WHERE alert_id = %s AND action = 'acknowledged'",
            alert_id,
        )
        == 1
    )
    assert (
        await scalar(
            db_url,
            "SELECT count(*) FROM notifications WHERE alert_id = %s AND status = 'pending'",
            alert_id,
        )
        == 0
    )


async def test_bad_input_is_dead_lettered_and_the_loop_keeps_going(
    db_url: str, mosquitto: EmbeddedBroker
) -> None:
    settings = make_settings(db_url, mosquitto)
    good = reading("h01-pir-living", "h01", "pir_motion", "motion", 1, 1)
    spoof = reading("h02-sos", "h02", "sos_button", "press", 1, 1)
    async with running_service(settings, ("ingest", "alerts")):
        async with MqttPublisher(mosquitto.url, "attacker") as pub:
            base = "eldercare/h01/h01-pir-living/readings"
            await pub.publish(base, b"{not json")
            await pub.publish(base, b'{"seq": "one", "ts": 1, "value": 1}')
            await pub.publish(base, b'{"seq": 1, "ts": 1763900000, "value": 7}')
            await pub.publish(base, b"[" * 100_000)
            far = (datetime.now(UTC) + timedelta(days=2)).timestamp()
            await pub.publish(base, f'{{"seq": 2, "ts": {far}, "value": 1}}'.encode())
            await pub.publish(
                "eldercare/h01/ghost-device/readings", b'{"seq": 1, "ts": 1763900000, "value": 1}'
            )
            # h02's SOS button published under h01's topic: a spoofed topic.
            await pub.publish(
                topics.topic("h01", "h02-sos", topics.Channel.READINGS), encode([spoof])
            )
            await pub.publish(
                topics.topic("h01", good.device_id, topics.Channel.READINGS), encode([good])
            )
        await eventually(
            lambda: scalar(db_url, "SELECT count(*) FROM readings"), what="the valid reading"
        )
        await eventually(
            lambda: scalar(db_url, "SELECT count(*) >= 7 FROM dead_letters"),
            what="seven dead letters",
        )
    assert await scalar(db_url, "SELECT count(*) FROM readings") == 1
    reasons = await scalar(
        db_url, "SELECT string_agg(reason, ',' ORDER BY reason) FROM dead_letters"
    )
    assert sorted(reasons.split(",")) == sorted(
        [
            "malformed",
            "schema",
            "out_of_range",
            "oversized",
            "future_timestamp",
            "unknown_device",
            "wrong_home",
        ]
    )
    assert await scalar(db_url, "SELECT sum(count) FROM reject_counts WHERE source = 'ingest'") == 7
    # The spoofed SOS opened no alert.
    assert await scalar(db_url, "SELECT count(*) FROM alerts") == 0


async def test_the_urgent_path_in_its_own_process_raises_each_sos_once(
    db_url: str, mosquitto: EmbeddedBroker, http_receiver: HttpReceiver
) -> None:
    await webhook_first(db_url, "worker-v1", http_receiver.url + "/worker-v1")
    rest = make_settings(db_url, mosquitto, alerts={"urgent_separate": True})
    async with (
        running_service(rest, ("ingest", "alerts")) as main_svc,
        running_service(make_settings(db_url, mosquitto), ("urgent",)) as urgent_svc,
    ):
        assert "alerts_urgent" not in main_svc.subscribers
        assert set(urgent_svc.subscribers) == {"alerts_urgent"}
        async with MqttPublisher(mosquitto.url, "dev-h01-sos-2") as pub:
            await pub.publish_readings([reading("h01-sos", "h01", "sos_button", "press", 3, 1)])
        alert_id = await eventually(
            lambda: scalar(db_url, "SELECT id FROM alerts WHERE home_id = 'h01' AND kind = 'sos'"),
            what="the SOS alert from the urgent process",
        )
        hooks = await http_receiver.wait_for(1)
        assert hooks[0].json()["alert"]["id"] == alert_id
        await asyncio.sleep(0.5)  # the full stream saw the same reading: no second alert
        assert await scalar(db_url, "SELECT count(*) FROM alerts") == 1
        assert (
            await scalar(db_url, "SELECT evidence_count FROM alerts WHERE id = %s", alert_id) == 1
        )


async def test_shared_workers_find_the_real_seq_gaps_and_no_others(
    db_url: str, mosquitto: EmbeddedBroker
) -> None:
    """Two workers behind $share each see every other message of a device: only the
    database scan over what both stored can tell a lost seq from one the other worker took."""
    missing = {50, 51, 120}
    now = datetime.now(UTC)
    sent = [
        reading("h01-temp", "h01", "temperature", "temperature", seq, 21.0)
        for seq in range(1, 201)
        if seq not in missing
    ]
    for i, r in enumerate(sent):  # device time one second apart, ending a minute ago
        sent[i] = Reading(
            r.home_id, r.device_id, r.kind, r.boot, r.seq,
            now - timedelta(seconds=60 + len(sent) - i), r.metric, r.value,
        )  # fmt: skip

    def worker(name: str) -> Settings:
        return make_settings(
            db_url,
            mosquitto,
            ingest={
                "shared_group": "gaps",
                "client_id": name,
                "gap_scan_s": 0.3,
                "heartbeat_s": 0.2,
                "batch_max_delay_ms": 10,
                "registry_refresh_s": 0.5,
            },
        )

    async with (
        running_service(worker("ingest-a"), ("ingest",)),
        running_service(worker("ingest-b"), ("ingest",)),
    ):
        async with MqttPublisher(mosquitto.url, "dev-h01-temp") as pub:
            for r in sent:
                await pub.publish_readings([r])
        await eventually(
            lambda: scalar(db_url, "SELECT count(*) = %s FROM readings", len(sent)),
            what="readings stored",
        )
        expected = [(49, 52), (119, 121)]

        async def gaps_now() -> bool:
            async with await psycopg.AsyncConnection.connect(db_url) as conn:
                cur = await conn.execute(
                    "SELECT after_seq, before_seq FROM seq_gaps WHERE device_id = 'h01-temp'"
                    " ORDER BY after_seq"
                )
                return await cur.fetchall() == expected

        # A scan may run while one worker has committed its part and the other not yet: the
        # next scan corrects that.
        await eventually(gaps_now, what="exactly the lost seqs recorded as gaps")
        await asyncio.sleep(1.0)  # further scans change nothing
        took = await scalar(
            db_url,
            "SELECT count(*) FROM ingest_heartbeats WHERE worker IN ('ingest-a', 'ingest-b')"
            " AND received > 0",
        )
    assert took == 2, "both workers took part (each saw only some of the device's seqs)"
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cur = await conn.execute(
            "SELECT after_seq, before_seq FROM seq_gaps WHERE device_id = 'h01-temp'"
            " ORDER BY after_seq"
        )
        gaps = await cur.fetchall()
    assert gaps == expected
