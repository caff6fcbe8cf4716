"""Behind a reverse proxy: the gateway (uvicorn as the service runs it) believes
X-Forwarded-For and X-Forwarded-Proto only from ELDERCARE_GATEWAY__TRUSTED_PROXIES, so a
client cannot spoof its address past the login limit nor its scheme."""

from __future__ import annotations

import httpx
import pytest

from devstack.broker import EmbeddedBroker
from devstack.seed import DEMO_PASSWORD
from tests.integration.helpers import make_settings, running_service

pytestmark = pytest.mark.integration

PUBLIC = "care.example.org"


async def _login_results(base: str, forwarded_for: list[str]) -> list[int]:
    """Status of one failed API login per address in `forwarded_for`, in order."""
    statuses = []
    async with httpx.AsyncClient(base_url=base) as client:
        for address in forwarded_for:
            response = await client.post(
                "/api/v1/auth/login",
                json={"username": "worker-v1", "password": "wrong password"},
                headers={"X-Forwarded-For": address},
            )
            statuses.append(response.status_code)
    return statuses


async def _locale_redirect(base: str) -> str:
    """Where the language form sends a browser back to, from an https:// page."""
    async with httpx.AsyncClient(base_url=base) as client:
        signed_in = await client.post(
            "/api/v1/auth/login", json={"username": "town-t1", "password": DEMO_PASSWORD}
        )
        assert signed_in.status_code == 200, signed_in.text
        response = await client.post(
            "/locale",
            data={"locale": "en"},
            headers={
                "Host": PUBLIC,
                "X-Forwarded-Proto": "https",
                "Referer": f"https://{PUBLIC}/console/alerts",
            },
        )
    assert response.status_code == 303, response.text
    return response.headers["location"]


@pytest.mark.parametrize("trusted", [True, False])
async def test_forwarded_headers_count_only_from_a_trusted_proxy(
    db_url: str, mosquitto: EmbeddedBroker, trusted: bool
) -> None:
    proxies = "127.0.0.1" if trusted else "192.0.2.10, 10.0.0.0/24"  # the test is 127.0.0.1
    settings = make_settings(
        db_url,
        mosquitto,
        gateway={"trusted_proxies": proxies, "login_attempts_per_minute": 2},
    )
    async with running_service(settings, ("gateway",)) as running:
        base = f"http://127.0.0.1:{running.http_port}"
        # Two failures from one address use up its attempts; a third address differs only
        # in X-Forwarded-For.
        got = await _login_results(base, ["198.51.100.1", "198.51.100.1", "198.51.100.1"])
        assert got == [401, 401, 429]
        other = await _login_results(base, ["198.51.100.2"])
        # Trusted: another person behind the proxy. Not trusted: the header is ignored and
        # it is the same client (127.0.0.1) that is out of attempts.
        assert other == ([401] if trusted else [429])
        # The scheme: a page reached over https:// (told by the proxy) is "our own" only
        # when the proxy is believed; otherwise the form falls back to the console.
        back = await _locale_redirect(base)
        assert back == ("/console/alerts" if trusted else "/console")
