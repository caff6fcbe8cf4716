"""Unit tests of web push: keys, subscription validation, and the channel against a real
local HTTP receiver acting as the push service (the body is decrypted like a browser would)."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import httpx
import pytest

from alerts.model import Severity
from alerts.notify.channels import DeliveryError, Notice, SubscriptionGone, WebPushChannel
from alerts.notify.webpush import parse_target, subscription
from alerts.vapid import VapidKeys, generate_private_key, load_keys, public_key_of
from tests.conftest import HttpReceiver
from tests.push_browser import Browser, vapid_claims
from tests.unit.test_channels import make_alert

PRIVATE = generate_private_key()
KEYS = VapidKeys(PRIVATE, public_key_of(PRIVATE), "mailto:ops@example.org")
ACK = "https://care.example/ack/tok"


def notice(**changes: object) -> Notice:
    return Notice(make_alert(**changes), 2, 17, "https://care.example/console", "alert", ACK, "en")


async def test_push_is_encrypted_for_the_subscriber_and_vapid_signed(
    http_receiver: HttpReceiver,
) -> None:
    browser = Browser(http_receiver.url + "/push/abc")
    target = subscription(
        browser.endpoint, **browser.subscription()["keys"], allow_loopback=True
    ).target()
    gone: list[str] = []

    async def on_gone(t: str) -> None:
        gone.append(t)

    async with httpx.AsyncClient() as client:
        await WebPushChannel(client, KEYS, on_gone, ttl_s=600).send(target, notice())
    [request] = await http_receiver.wait_for(1)
    assert request.path == "/push/abc"
    assert request.headers["content-encoding"] == "aes128gcm"
    assert request.headers["ttl"] == "600"
    assert request.headers["urgency"] == "high"
    assert b"SOS" not in request.body  # encrypted, not plain JSON
    doc = browser.decrypt(request.body)
    assert doc["alert_id"] == 42
    assert doc["kind"] == "sos"
    assert doc["severity"] == "critical"
    assert doc["elder"] == "Wang Fang"
    assert doc["village"] == "Xiaohe"
    assert doc["summary"] == "SOS button pressed · 2026-11-23 21:00 (Asia/Shanghai)"
    assert doc["detail"] == "SOS button pressed"
    assert doc["locale"] == "en"
    assert doc["ack_url"] == ACK
    assert doc["ack_label"] == "I'll take it"  # the notification's button, in the locale
    assert doc["console_url"] == "https://care.example/console"
    assert doc["title"].startswith("[CRITICAL] SOS button pressed")
    claims = vapid_claims(request.headers["authorization"], KEYS.public_key)
    assert claims["aud"] == http_receiver.url
    assert claims["sub"] == "mailto:ops@example.org"
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600
    assert gone == []


async def test_another_browser_cannot_read_the_push(http_receiver: HttpReceiver) -> None:
    browser = Browser(http_receiver.url + "/push/1")
    stranger = Browser(browser.endpoint)
    target = json.dumps(browser.subscription())

    async def on_gone(t: str) -> None:
        raise AssertionError("not gone")

    async with httpx.AsyncClient() as client:
        await WebPushChannel(client, KEYS, on_gone).send(target, notice())
    [request] = await http_receiver.wait_for(1)
    with pytest.raises(Exception, match=r"(?i)decrypt|tag|invalid"):
        stranger.decrypt(request.body)
    assert browser.decrypt(request.body)["alert_id"] == 42


@pytest.mark.parametrize("status", [404, 410])
async def test_gone_subscription_is_removed_and_fails(
    http_receiver: HttpReceiver, status: int
) -> None:
    http_receiver.status = status
    target = json.dumps(Browser(http_receiver.url + "/push/old").subscription())
    gone: list[str] = []

    async def on_gone(t: str) -> None:
        gone.append(t)

    async with httpx.AsyncClient() as client:
        with pytest.raises(SubscriptionGone, match=f"HTTP {status}"):
            await WebPushChannel(client, KEYS, on_gone).send(target, notice())
    assert gone == [target]
    assert issubclass(SubscriptionGone, DeliveryError)


async def test_other_failures_are_delivery_errors_and_keep_the_subscription(
    http_receiver: HttpReceiver, unused_tcp_port: int
) -> None:
    gone: list[str] = []

    async def on_gone(t: str) -> None:
        gone.append(t)

    http_receiver.status = 429
    target = json.dumps(Browser(http_receiver.url + "/push/busy").subscription())
    refused = json.dumps(Browser(f"http://127.0.0.1:{unused_tcp_port}/push").subscription())
    async with httpx.AsyncClient() as client:
        channel = WebPushChannel(client, KEYS, on_gone)
        with pytest.raises(DeliveryError, match="HTTP 429") as info:
            await channel.send(target, notice())
        assert not isinstance(info.value, SubscriptionGone)
        with pytest.raises(DeliveryError, match="ConnectError"):
            await channel.send(refused, notice())
        with pytest.raises(DeliveryError, match="stored subscription unusable"):
            await channel.send("{not json", notice())
    assert gone == []


async def test_follow_up_notice_has_no_ack_link_and_normal_urgency(
    http_receiver: HttpReceiver,
) -> None:
    browser = Browser(http_receiver.url + "/p")

    async def on_gone(t: str) -> None:
        raise AssertionError("not gone")

    acked = Notice(
        make_alert(acknowledged_by_name="Li Wei", severity=Severity.WARNING),
        1,
        3,
        "https://care.example/console",
        "acknowledged",
    )
    async with httpx.AsyncClient() as client:
        await WebPushChannel(client, KEYS, on_gone).send(json.dumps(browser.subscription()), acked)
    [request] = await http_receiver.wait_for(1)
    doc = browser.decrypt(request.body)
    assert doc["notice"] == "acknowledged"
    assert doc["ack_url"] is None
    assert "Li Wei" in doc["title"]
    assert request.headers["urgency"] == "normal"


# --------------------------------------------------------------------------- validation


def test_subscription_validation_explains_what_is_wrong() -> None:
    good = Browser("https://fcm.googleapis.com/fcm/send/x").subscription()["keys"]
    assert subscription("https://push.example/x", **good).endpoint == "https://push.example/x"
    cases = {
        "http://push.example/x": "https",
        "http://127.0.0.1:9/x": "https",  # only with allow_loopback
        "ftp://push.example/x": "https",
        "https://user:pw@push.example/x": "credentials",
        "/relative": "host",
        "https://push.example/" + "x" * 3000: "longer",
    }
    for endpoint, why in cases.items():
        with pytest.raises(ValueError, match=why):
            subscription(endpoint, **good)
    assert subscription("http://127.0.0.1:9/x", **good, allow_loopback=True)
    with pytest.raises(ValueError, match="https"):
        subscription("http://localhost:9/x", **good, allow_loopback=True)
    bad_keys = [
        ({"p256dh": "not base64!", "auth": good["auth"]}, "p256dh is not base64url"),
        ({"p256dh": good["p256dh"][:20], "auth": good["auth"]}, "65 bytes"),
        ({"p256dh": "BA" + "A" * 85, "auth": good["auth"]}, "not a point"),
        ({"p256dh": good["p256dh"], "auth": "AAAA"}, "16 bytes"),
        ({"p256dh": good["p256dh"], "auth": "+/+/"}, "auth is not base64url"),
    ]
    for keys, why in bad_keys:
        with pytest.raises(ValueError, match=why):
            subscription("https://push.example/x", **keys)


def test_target_round_trips_canonically() -> None:
    keys = Browser("https://push.example/x").subscription()["keys"]
    sub = subscription("https://push.example/x", keys["p256dh"] + "=", keys["auth"])
    assert parse_target(sub.target()) == sub
    assert json.loads(sub.target()) == {"endpoint": "https://push.example/x", "keys": keys}
    with pytest.raises(ValueError, match="not a push subscription"):
        parse_target('{"endpoint": "x"}')


# --------------------------------------------------------------------------- keys


def test_development_key_is_created_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "vapid_private_key"
    first = load_keys(None, None, "mailto:a@b.example", path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_keys(None, None, "mailto:a@b.example", path)
    assert again == first
    assert first.public_key == public_key_of(first.private_key)
    assert len(first.public_key) == 87  # 65 bytes, unpadded base64url


def test_keys_from_settings_win_and_must_match(tmp_path: Path) -> None:
    path = tmp_path / "vapid"
    keys = load_keys(PRIVATE, KEYS.public_key, "https://care.example", path)
    assert keys.private_key == PRIVATE
    assert not path.exists()
    with pytest.raises(ValueError, match="does not belong"):
        load_keys(PRIVATE, public_key_of(generate_private_key()), "mailto:a@b.example", None)
    with pytest.raises(ValueError, match="no VAPID private key"):
        load_keys(None, None, "mailto:a@b.example", None)


def test_pem_private_key_is_accepted() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    keys = load_keys(pem, None, "mailto:a@b.example", None)
    assert load_keys(keys.private_key, keys.public_key, "mailto:a@b.example", None) == keys
