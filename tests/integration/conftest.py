"""Fixtures for integration tests: a migrated, seeded database per test."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from gateway.embedded import EmbeddedPostgres
from gateway.seed import seed_demo
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
    yield _with_db(pg_server.url, name)
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    """A connection pool on the test's database."""
    async with AsyncConnectionPool(db_url, min_size=1, max_size=5, open=False) as p:
        yield p
