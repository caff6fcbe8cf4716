"""Fixtures for integration tests: a migrated, seeded database per test."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from psycopg_pool import AsyncConnectionPool

from devstack.postgres import EmbeddedPostgres
from devstack.seed import seed_demo
from gateway.app import create_app
from gateway.config import GatewaySettings
from gateway.context import AppContext
from gateway.live import Broadcaster
from ingest.migrate import migrate

if TYPE_CHECKING:
    from tests.conftest import ExternalPostgres
from tests.conftest import ExternalPostgres

_counter = itertools.count()
TEMPLATE = "eldercare_template"


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def template_url(pg_server: EmbeddedPostgres | ExternalPostgres) -> str:
    """A database migrated and seeded with the demo region once per session."""
    admin = pg_server.url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
        conn.execute(f"CREATE DATABASE {TEMPLATE}")
    url = _with_db(admin, TEMPLATE)

    async def prepare() -> None:
        await migrate(url)
        async with await psycopg.AsyncConnection.connect(url) as conn:
            await seed_demo(conn, homes=8, webhook_url=None)

    asyncio.run(prepare())
    return url


@pytest.fixture
def db_url(pg_server: EmbeddedPostgres | ExternalPostgres, template_url: str) -> Iterator[str]:
    """A fresh copy of the seeded template for one test."""
    name = f"t_{next(_counter)}_{id(template_url) % 10000}"
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    with psycopg.connect(_with_db(pg_server.url, name), autocommit=True) as conn:
        # Installed now, not when the session seeded the template: the alerts stage expects
        # every registered device to report from its install time on, and a device silent
        # past its heartbeat (37 min for a thermometer) would raise `device_silent` in a
        # test that starts late in a long session.
        conn.execute("UPDATE devices SET created_at = now(), installed_at = now()")
    yield _with_db(pg_server.url, name)
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    """A connection pool on the test's database."""
    async with AsyncConnectionPool(db_url, min_size=1, max_size=5, open=False) as p:
        yield p


# ---------------------------------------------------------------- the gateway app, in-process


@pytest.fixture
async def broadcaster(db_url: str) -> AsyncIterator[Broadcaster]:
    """A running Broadcaster listening on the test database."""
    b = Broadcaster(db_url, min_backoff_s=0.1)
    task = asyncio.create_task(b.run(), name="broadcaster")
    try:
        async with asyncio.timeout(10):
            await b.wait_listening()
        yield b
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
def ctx(pool: AsyncConnectionPool[Any], broadcaster: Broadcaster) -> AppContext:
    """The app's context on the test database, with a low login limit."""
    return AppContext(
        settings=GatewaySettings(login_attempts_per_minute=3),
        pool=pool,
        broadcaster=broadcaster,
        metrics=CollectorRegistry(),
        health=lambda: {"alert_stream": broadcaster.connected},
    )


@pytest.fixture
def app(ctx: AppContext) -> FastAPI:
    """The gateway app."""
    return create_app(ctx)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client driving the app in-process."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c
