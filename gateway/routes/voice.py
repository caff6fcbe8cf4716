"""The voice provider's receipts: a staff member who pressed 1 in an alert's interactive
call (Aliyun IvrCall, alerts/notify/cn_cloud.py) owns the alert.

Aliyun pushes its receipts (HTTP batch push: a JSON array) unsigned, so a receipt is trusted
only as far as two things go: the unguessable token in the URL configured in the provider's
console (`ELDERCARE_ALERTS__VOICE__CALLBACK_TOKEN`), and each record's OutId, which this
service signed when placing the call (alert + user, HMAC; checked with compare_digest). A
report failing either is refused with 4xx, counted (eldercare_voice_receipts{result}) and
logged; nothing changes. A genuine record whose key is "1" acknowledges the alert as that
person through the alerts store, audited as every acknowledgement (how: voice).
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

import psycopg
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter

from alerts import store
from alerts.notify.cn_sign import check_out_id
from gateway.deps import AlertConfig, Ctx, Pool

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
MAX_BODY = 256 * 1024
"""A receipt batch larger than this is refused (413)."""


def _counter(request: Request, ctx: Ctx) -> Counter:
    """The receipts counter of this app (registered in the app's metrics registry once)."""
    counter = getattr(request.app.state, "voice_receipts", None)
    if counter is None:
        counter = Counter(
            "eldercare_voice_receipts",
            "voice provider receipts by result (acknowledged, already, no_key, bad_token,"
            " malformed, forged, unavailable)",
            ["result"],
            registry=ctx.metrics,
        )
        request.app.state.voice_receipts = counter
    assert isinstance(counter, Counter)
    return counter


def _answer(status: int, msg: str) -> JSONResponse:
    # Aliyun's HTTP batch push reads {"code": 0} as received.
    return JSONResponse({"code": 0 if status == 200 else status, "msg": msg}, status_code=status)


def _records(body: bytes) -> list[dict[str, Any]] | None:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    items = doc if isinstance(doc, list) else [doc]
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    return items


def _key(record: dict[str, Any]) -> str:
    """The key pressed (the receipts name it `dtmf`; the IVR guide calls it `digits`)."""
    return str(record.get("dtmf") or record.get("digits") or "").strip()


@router.post("/voice/aliyun/{token}")
async def aliyun_receipt(
    token: str, request: Request, settings: AlertConfig, pool: Pool, ctx: Ctx
) -> JSONResponse:
    """Receive a batch of Aliyun voice receipts; key 1 in a genuine one acknowledges."""
    counter = _counter(request, ctx)
    expected = settings.voice.callback_token.get_secret_value()
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        counter.labels("bad_token").inc()
        log.warning("voice receipt refused: wrong callback token (from %s)", request.client)
        return _answer(403, "forbidden")
    body = await request.body()
    if len(body) > MAX_BODY:
        counter.labels("malformed").inc()
        log.warning("voice receipt refused: %d bytes", len(body))
        return _answer(413, "too large")
    records = _records(body)
    if records is None:
        counter.labels("malformed").inc()
        log.warning("voice receipt refused: not a JSON object or array of objects")
        return _answer(400, "malformed")
    secret = settings.ack_link_secret.get_secret_value().encode()
    grants = [check_out_id(secret, str(r.get("out_id") or "")) for r in records]
    if any(g is None for g in grants):
        counter.labels("forged").inc()
        log.warning(
            "voice receipt refused: %d of %d records with an OutId not signed by us",
            sum(g is None for g in grants),
            len(grants),
        )
        return _answer(403, "forbidden")
    try:
        async with pool.connection() as conn:
            for record, grant in zip(records, grants, strict=True):
                assert grant is not None
                alert_id, user_id = grant
                if _key(record) != "1":
                    counter.labels("no_key").inc()
                    continue
                done = await store.acknowledge(conn, alert_id, user_id, "voice")
                counter.labels("acknowledged" if done else "already").inc()
                log.info(
                    "voice: user %d pressed 1 for alert %d (call %s): %s",
                    user_id,
                    alert_id,
                    record.get("call_id"),
                    "acknowledged" if done else "already taken",
                )
    except psycopg.Error as exc:
        counter.labels("unavailable").inc()
        log.warning("voice receipt not processed (database): %r", exc)
        return _answer(503, "unavailable")  # the provider pushes it again
    return _answer(200, "成功")
