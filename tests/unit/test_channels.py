"""Unit tests for webhook signing and the webhook channel (alerts.notify.channels)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.model import Alert, Category, Severity, Status
from alerts.notify.channels import (
    SIGNATURE_HEADER,
    DeliveryError,
    Notice,
    WebhookChannel,
    notice_body,
    sign,
    verify,
)

SECRET = b"a-webhook-secret-of-some-length"
BODY = b'{"version":1,"type":"alert"}'
T = 1_795_438_800
EVENT_AT = datetime(2026, 11, 23, 13, 0, 0, tzinfo=UTC)
OPENED_AT = datetime(2026, 11, 23, 13, 0, 1, 250000, tzinfo=UTC)
URL = "https://receiver.example/hook"


def make_alert(**changes: object) -> Alert:
    fields: dict[str, object] = {
        "id": 42,
        "home_id": "h01",
        "kind": "sos",
        "category": Category.EMERGENCY,
        "severity": Severity.CRITICAL,
        "status": Status.OPEN,
        "event_at": EVENT_AT,
        "opened_at": OPENED_AT,
        "summary": "SOS button pressed",
        "evidence_count": 2,
        "last_evidence_at": OPENED_AT,
        "acknowledged_at": None,
        "acknowledged_by": None,
        "acknowledged_by_name": None,
        "resolved_at": None,
        "outcome": None,
        "elder_name": "Wang Fang",
        "village": "Xiaohe",
    }
    fields.update(changes)
    return Alert(**fields)  # type: ignore[arg-type]


NOTICE = Notice(
    alert=make_alert(), round=3, user_id=17, console_url="https://care.example/a/42", locale="en"
)


# --------------------------------------------------------------------------- sign / verify


def test_signature_has_the_documented_shape() -> None:
    header = sign(SECRET, T, BODY)
    t_part, v1_part = header.split(",")
    assert t_part == f"t={T}"
    assert v1_part.startswith("v1=")
    mac = v1_part.removeprefix("v1=")
    assert len(mac) == 64
    assert set(mac) <= set("0123456789abcdef")


def test_signature_is_deterministic_and_depends_on_every_input() -> None:
    header = sign(SECRET, T, BODY)
    assert sign(SECRET, T, BODY) == header
    assert sign(SECRET + b"x", T, BODY) != header
    assert sign(SECRET, T + 1, BODY).split(",")[1] != header.split(",")[1]
    assert sign(SECRET, T, BODY + b" ") != header


@given(st.binary(max_size=200), st.binary(min_size=1, max_size=64), st.integers(0, 2**40))
def test_valid_signature_verifies(body: bytes, secret: bytes, timestamp: int) -> None:
    assert verify(secret, sign(secret, timestamp, body), body, now=float(timestamp))


def test_tampered_body_fails() -> None:
    header = sign(SECRET, T, BODY)
    assert not verify(SECRET, header, BODY.replace(b"1", b"2"), now=T)
    assert not verify(SECRET, header, BODY + b"\n", now=T)


def test_wrong_secret_fails() -> None:
    assert not verify(b"another-secret", sign(SECRET, T, BODY), BODY, now=T)


def test_replayed_timestamp_with_old_mac_fails() -> None:
    """Changing `t` to look fresh invalidates the MAC, since the MAC covers it."""
    mac = sign(SECRET, T, BODY).split(",")[1]
    assert not verify(SECRET, f"t={T + 600},{mac}", BODY, now=T + 600)


@pytest.mark.parametrize(
    ("offset", "ok"),
    [(0, True), (300, True), (-300, True), (301, False), (-301, False), (86_400, False)],
)
def test_freshness_window(offset: int, ok: bool) -> None:
    """A signature older (or further ahead) than the tolerance is refused."""
    header = sign(SECRET, T, BODY)
    assert verify(SECRET, header, BODY, now=T + offset) is ok


def test_tolerance_is_a_parameter() -> None:
    header = sign(SECRET, T, BODY)
    assert not verify(SECRET, header, BODY, now=T + 61, tolerance_s=60)
    assert verify(SECRET, header, BODY, now=T + 3000, tolerance_s=3600)


GOOD_MAC = sign(SECRET, T, BODY).split("v1=")[1]


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("", id="empty"),
        pytest.param("garbage", id="no fields"),
        pytest.param(f"v1={GOOD_MAC}", id="no t"),
        pytest.param(f"t={T}", id="no v1"),
        pytest.param(f"t=abc,v1={GOOD_MAC}", id="t not a number"),
        pytest.param(f"t={T}.0,v1={GOOD_MAC}", id="t as float"),
        pytest.param(f"t={T},v1=", id="empty mac"),
        pytest.param(f"t={T},v1={GOOD_MAC[:-1]}", id="short mac"),
        pytest.param(f"t={T},v1={GOOD_MAC.upper()}", id="mac in upper case"),
        pytest.param(f"t={T},v1={GOOD_MAC[:-1]}é", id="non-ascii mac"),
        pytest.param(f"t={T},v1=\ud800", id="lone surrogate"),
        pytest.param(f"t={'9' * 400},v1={GOOD_MAC}", id="t beyond float"),
        pytest.param(f"t={T};v1={GOOD_MAC}", id="wrong separator"),
    ],
)
def test_malformed_header_fails_without_raising(header: str) -> None:
    assert verify(SECRET, header, BODY, now=T) is False


@given(st.text(max_size=120))
def test_verify_never_raises(header: str) -> None:
    assert verify(SECRET, header, BODY, now=T) in (True, False)


def test_extra_header_fields_are_tolerated() -> None:
    header = sign(SECRET, T, BODY) + ",v0=legacy"
    assert verify(SECRET, header, BODY, now=T)


# --------------------------------------------------------------------------- notice body


def test_notice_body_fields() -> None:
    body = notice_body(NOTICE)
    text = body.pop("text")
    assert text.startswith("[CRITICAL] SOS button pressed - Wang Fang (Xiaohe)\n")
    assert "When:     2026-11-23 21:00 (Asia/Shanghai)\n" in text
    assert body == {
        "version": 1,
        "type": "alert",
        "notice": "alert",
        "locale": "en",
        "headline": "[CRITICAL] SOS button pressed - Wang Fang (Xiaohe)",
        "round": 3,
        "recipient": 17,
        "alert": {
            "id": 42,
            "home_id": "h01",
            "elder": "Wang Fang",
            "village": "Xiaohe",
            "address": None,
            "kind": "sos",
            "what": "SOS button pressed",
            "category": "emergency",
            "severity": "critical",
            "status": "open",
            "summary": "SOS button pressed",
            "event_at": "2026-11-23T13:00:00+00:00",
            "opened_at": "2026-11-23T13:00:01.250000+00:00",
            "evidence_count": 2,
            "acknowledged_by": None,
        },
        "console_url": "https://care.example/a/42",
        "ack_url": None,
    }


def test_notice_body_is_json_for_a_family_notice_without_names() -> None:
    notice = Notice(
        alert=make_alert(elder_name=None, village=None, status=Status.ACKNOWLEDGED),
        round=1,
        user_id=None,
        console_url="",
    )
    body = json.loads(json.dumps(notice_body(notice)))
    assert body["recipient"] is None
    assert (body["alert"]["elder"], body["alert"]["village"]) == (None, None)
    assert body["alert"]["status"] == "acknowledged"


# --------------------------------------------------------------------------- webhook channel


class Receiver:
    """An httpx.MockTransport handler that records requests and answers with `status`."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status, text="ok")


async def send(handler: Receiver | None = None, error: Exception | None = None) -> None:
    def failing(request: httpx.Request) -> httpx.Response:
        assert error is not None
        raise error

    transport = httpx.MockTransport(failing if handler is None else handler)
    async with httpx.AsyncClient(transport=transport) as client:
        await WebhookChannel(client, SECRET).send(URL, NOTICE)


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
async def test_2xx_is_delivered(status: int) -> None:
    receiver = Receiver(status)
    await send(receiver)
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("status", [500, 503, 404, 401, 301, 199])
async def test_non_2xx_is_a_delivery_error(status: int) -> None:
    receiver = Receiver(status)
    with pytest.raises(DeliveryError, match=f"HTTP {status}"):
        await send(receiver)
    assert len(receiver.requests) == 1


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("peer closed connection"),
    ],
)
async def test_transport_error_is_a_delivery_error(error: Exception) -> None:
    with pytest.raises(DeliveryError, match=r"receiver\.example") as info:
        await send(error=error)
    assert info.value.__cause__ is error


async def test_request_is_a_signed_json_post() -> None:
    receiver = Receiver()
    before = time.time()
    await send(receiver)
    after = time.time()

    [request] = receiver.requests
    assert request.method == "POST"
    assert str(request.url) == URL
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == "eldercare-notifier/1"
    body = request.content
    assert json.loads(body) == notice_body(NOTICE)

    header = request.headers[SIGNATURE_HEADER]
    signed_at = int(header.split(",")[0].removeprefix("t="))
    assert int(before) <= signed_at <= after
    assert verify(SECRET, header, body, now=time.time())
    assert not verify(b"not-the-secret", header, body, now=time.time())
    assert not verify(SECRET, header, body + b" ", now=time.time())
