"""`/metrics` behind a bearer token (ELDERCARE_GATEWAY__METRICS_TOKEN), `/healthz` open."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from gateway.app import create_app
from gateway.config import GatewaySettings
from gateway.context import AppContext
from gateway.routes.operations import bearer_matches

pytestmark = pytest.mark.integration

TOKEN = "metrics-token-0123456789abcdef"


@pytest.fixture
async def guarded(ctx: AppContext) -> httpx.AsyncClient:
    ctx.settings = GatewaySettings(metrics_token=SecretStr(TOKEN))
    transport = httpx.ASGITransport(app=create_app(ctx))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_metrics_need_the_bearer_token(guarded: httpx.AsyncClient) -> None:
    async with guarded as client:
        headers: dict[str, str] | dict[bytes, bytes]
        for headers in (
            {},
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": "Bearer wrong-token"},
            {"Authorization": f"Bearer {TOKEN[:-1]}"},
            {"Authorization": f"Bearer {TOKEN}x"},
            {"Authorization": "Bearer"},
            {b"Authorization": "Bearer 令牌".encode()},  # not ASCII: refused, no error
        ):
            refused = await client.get("/metrics", headers=headers)
            assert refused.status_code == 401, headers
            assert refused.headers["www-authenticate"].startswith("Bearer")
            assert refused.json()["error"]["code"] == "metrics_token_required"
            assert "eldercare_" not in refused.text
        ok = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200
        assert "eldercare_gateway_stream_clients" in ok.text
        lower = await client.get("/metrics", headers={"Authorization": f"bearer {TOKEN}"})
        assert lower.status_code == 200  # the scheme is case-insensitive (RFC 7235)


async def test_healthz_stays_open_with_a_metrics_token(guarded: httpx.AsyncClient) -> None:
    async with guarded as client:
        health = await client.get("/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"


async def test_without_a_token_metrics_are_open(client: httpx.AsyncClient) -> None:
    assert (await client.get("/metrics")).status_code == 200


def test_bearer_matches_only_the_exact_token() -> None:
    assert bearer_matches(f"Bearer {TOKEN}", TOKEN)
    assert bearer_matches(f"BEARER  {TOKEN} ", TOKEN)
    assert not bearer_matches(None, TOKEN)
    assert not bearer_matches(TOKEN, TOKEN)
    assert not bearer_matches(f"Bearer {TOKEN.upper()}", TOKEN)
