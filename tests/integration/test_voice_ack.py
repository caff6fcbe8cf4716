"""Press 1 to acknowledge, through the real service (PostgreSQL, Mosquitto, the HTTP
gateway): an SOS over MQTT calls the on-duty worker through the (fake, signature-checking)
Aliyun voice API with an interactive call; the provider's receipt "pressed 1" at the callback
URL acknowledges the alert as that worker; forged receipts are refused, counted and change
nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from devstack.broker import EmbeddedBroker
from simulators.publisher import MqttPublisher
from tests.cn_fake import KEY_ID, SECRET, FakeProvider, serve_fake
from tests.integration.helpers import eventually, make_settings, running_service, scalar
from tests.integration.test_pipeline import reading

TOKEN = "cb-" + "k3y" * 12
PHONE = "+8613800000001"


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    yield from serve_fake()


async def test_pressing_1_in_the_call_acknowledges_and_forgeries_change_nothing(
    db_url: str, mosquitto: EmbeddedBroker, fake: FakeProvider
) -> None:
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await conn.execute(
            "INSERT INTO contact_channels (user_id, channel, target, position)"
            " SELECT id, 'voice', %s, -1 FROM users WHERE username = 'worker-v1'",
            (PHONE,),
        )
        with pytest.raises(psycopg.errors.CheckViolation):  # migration 0016: E.164 only
            await conn.execute(
                "INSERT INTO contact_channels (user_id, channel, target)"
                " SELECT id, 'sms', '138 0000 0001' FROM users WHERE username = 'worker-v1'"
            )
    settings = make_settings(
        db_url,
        mosquitto,
        alerts={
            "voice": {
                "provider": "aliyun",
                "access_key_id": KEY_ID,
                "access_key_secret": SECRET,
                "endpoint": fake.url,
                "called_show_number": "057112345678",
                "tts_code": "TTS_100000001",
                "ivr_start_code": "TTS_100000002",
                "ivr_ack_code": "TTS_100000003",
                "callback_token": TOKEN,
            }
        },
    )
    worker = await scalar(db_url, "SELECT id FROM users WHERE username = 'worker-v1'")
    async with running_service(settings) as svc:
        async with MqttPublisher(mosquitto.url, "dev-h01-sos") as pub:
            await pub.publish_readings([reading("h01-sos", "h01", "sos_button", "press", 1, 1)])

        async def called() -> list[dict[str, str]]:
            return [r.params for r in fake.requests if r.action == "IvrCall"]

        [call] = await eventually(called, what="the worker's interactive call")
        assert call["CalledNumber"] == "13800000001"
        assert all(r.signed for r in fake.requests)
        alert_id = await scalar(db_url, "SELECT id FROM alerts WHERE home_id = 'h01'")
        out_id = call["OutId"]
        assert out_id.startswith(f"{alert_id}.{worker}.")

        base = f"http://127.0.0.1:{svc.http_port}"
        pressed = [
            {
                "call_id": "116012354148^10281378****",
                "start_time": "2026-12-07 21:03:20",
                "dtmf": "1",
                "status_code": "200000",
                "out_id": out_id,
            }
        ]
        async with httpx.AsyncClient(base_url=base) as client:
            # Forged: the wrong token, an OutId naming another person, not JSON.
            other = out_id.split(".")
            wrong_person = f"{other[0]}.1.{other[2]}"
            refused = [
                await client.post("/voice/aliyun/not-the-token", json=pressed),
                await client.post(
                    f"/voice/aliyun/{TOKEN}", json=[{**pressed[0], "out_id": wrong_person}]
                ),
                await client.post(
                    f"/voice/aliyun/{TOKEN}", json=[{**pressed[0], "out_id": f"{alert_id}.1.x"}]
                ),
                await client.post(f"/voice/aliyun/{TOKEN}", content=b"dtmf=1"),
            ]
            assert [r.status_code for r in refused] == [403, 403, 403, 400]
            assert await scalar(db_url, "SELECT status FROM alerts WHERE id = %s", alert_id) == (
                "open"
            )
            # Another key does nothing either.
            other_key = await client.post(
                f"/voice/aliyun/{TOKEN}", json=[{**pressed[0], "dtmf": "2"}]
            )
            assert other_key.status_code == 200
            assert await scalar(db_url, "SELECT status FROM alerts WHERE id = %s", alert_id) == (
                "open"
            )
            # The provider's genuine receipt: key 1.
            done = await client.post(f"/voice/aliyun/{TOKEN}", json=pressed)
            assert done.status_code == 200
            assert done.json() == {"code": 0, "msg": "成功"}
            again = await client.post(f"/voice/aliyun/{TOKEN}", json=pressed)
            assert again.status_code == 200
            metrics = (await client.get("/metrics")).text

        owner = await scalar(
            db_url,
            "SELECT u.username || '/' || a.acknowledged_how || '/' || a.status FROM alerts a"
            " JOIN users u ON u.id = a.acknowledged_by WHERE a.id = %s",
            alert_id,
        )
        assert owner == "worker-v1/voice/acknowledged"
        audit = await scalar(
            db_url,
            "SELECT json_agg(json_build_object('actor', actor_id, 'detail', detail))"
            " FROM alert_events WHERE alert_id = %s AND action = 'acknowledged'",
            alert_id,
        )
        assert audit == [{"actor": worker, "detail": {"how": "voice"}}]
        for result, count in (
            ("bad_token", 1),
            ("forged", 2),
            ("malformed", 1),
            ("no_key", 1),
            ("acknowledged", 1),
            ("already", 1),
        ):
            line = f'eldercare_voice_receipts_total{{result="{result}"}} {count:.1f}'
            assert line in metrics, (line, json.dumps(metrics[-2000:]))
