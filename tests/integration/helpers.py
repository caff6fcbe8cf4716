"""Helpers shared by the integration tests: run the service in-process, wait for things."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx
import psycopg
from psycopg_pool import AsyncConnectionPool

from alerts import store
from alerts.model import Category, Severity, Signal
from alerts.vapid import generate_private_key
from devstack.seed import DEMO_PASSWORD
from runtime.service import Running, serve
from runtime.settings import Settings


class BrokerLike(Protocol):
    """What the settings need of a broker a test started."""

    @property
    def url(self) -> str: ...

    @property
    def protocol(self) -> str: ...


def make_settings(db_url: str, broker: BrokerLike, **overrides: Any) -> Settings:
    """Settings for a test: its database, its broker, fast timers, a free HTTP port."""
    values: dict[str, Any] = {
        "database": {"url": db_url, "pool_max": 5},
        "mqtt": {"url": broker.url, "protocol": broker.protocol},
        "ingest": {"batch_max_delay_ms": 10, "registry_refresh_s": 0.5},
        "alerts": {
            "poll_s": 0.1,
            "retry_base_s": 0.1,
            "vapid_private_key": generate_private_key(),
            "webpush_allow_loopback": True,
        },
        "gateway": {"port": 0},
    }
    for key, value in overrides.items():
        values[key] = {**values.get(key, {}), **value}
    return Settings(**values)


@contextlib.asynccontextmanager
async def running_service(
    settings: Settings, components: tuple[str, ...] = ("ingest", "alerts", "gateway")
) -> AsyncIterator[Running]:
    """Run the service in this event loop for the duration of the block."""
    stop = asyncio.Event()
    ready: asyncio.Future[Running] = asyncio.get_running_loop().create_future()
    task: asyncio.Future[Any] = asyncio.create_task(
        serve(settings, components, stop=stop, on_ready=ready.set_result, handle_signals=False)
    )
    done, _ = await asyncio.wait([task, ready], timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # raises what went wrong
        raise AssertionError("service stopped before it was ready")
    assert ready in done, "service not ready within 30 s"
    try:
        yield ready.result()
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def eventually(
    probe: Callable[[], Awaitable[Any]], timeout: float = 15.0, what: str = "condition"
) -> Any:
    """Poll `probe` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


async def webhook_first(db_url: str, username: str, url: str) -> None:
    """Give `username` a webhook to `url` ahead of their other channels."""
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        await conn.execute(
            "INSERT INTO contact_channels (user_id, channel, target, position)"
            " SELECT id, 'webhook', %s, -1 FROM users WHERE username = %s",
            (url, username),
        )
        await conn.commit()


async def scalar(db_url: str, query: str, *params: Any) -> Any:
    """One value from the test database."""
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cur = await conn.execute(query.encode(), params or None)
        row = await cur.fetchone()
        return None if row is None else row[0]


# ---------------------------------------------------------------- the gateway API, in-process

Pool = AsyncConnectionPool[Any]


def sos(home: str, seq: int = 1) -> Signal:
    """An SOS button press in `home`."""
    return Signal(
        home_id=home,
        kind="sos",
        category=Category.EMERGENCY,
        severity=Severity.CRITICAL,
        event_at=datetime.now(UTC),
        summary=f"SOS button pressed in {home}",
        device_id=f"{home}-sos",
        boot=1,
        seq=seq,
    )


async def raise_sos(pool: Pool, home: str) -> int:
    """Open an SOS alert for `home`; returns its id."""
    async with pool.connection() as conn:
        raised = await store.raise_signal(conn, sos(home), datetime.now(UTC), timedelta(minutes=5))
    return raised.alert_id


async def login(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    """Sign in through the API; returns bearer headers (and forgets the cookie)."""
    response = await client.post(
        "/api/v1/auth/login", json={"username": username, "password": DEMO_PASSWORD}
    )
    assert response.status_code == 200, response.text
    client.cookies.clear()
    return {"Authorization": f"Bearer {response.json()['token']}"}


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Check the one error body shape; returns the error object."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str)
    assert error["message"]
    return error
