"""The database URL's failover rule and the transaction retry (ingest.db)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg_pool import PoolTimeout
from pydantic import ValidationError

from ingest.db import DatabaseSettings, Retry, in_transaction, is_transient, retrying


def test_multi_host_url_needs_read_write() -> None:
    ok = "postgresql://u:p@h1:5432,h2:5433/care?target_session_attrs=read-write"
    assert DatabaseSettings(url=ok).dsn() == ok
    DatabaseSettings(url="postgresql://u:p@h1:5432/care")
    with pytest.raises(ValidationError, match="target_session_attrs=read-write"):
        DatabaseSettings(url="postgresql://u:p@h1:5432,h2:5433/care")
    with pytest.raises(ValidationError, match="target_session_attrs=read-write"):
        DatabaseSettings(url="postgresql://u:p@h1,h2/care?target_session_attrs=any")


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (psycopg.OperationalError("server closed the connection unexpectedly"), True),
        (psycopg.errors.AdminShutdown("terminating connection"), True),
        (psycopg.errors.CannotConnectNow("the database system is starting up"), True),
        (psycopg.errors.ReadOnlySqlTransaction("read-only transaction"), True),
        (PoolTimeout("couldn't get a connection"), True),
        (TimeoutError(), True),
        (psycopg.errors.UniqueViolation("duplicate key"), False),
        (psycopg.errors.UndefinedTable("no such table"), False),
        (ValueError("a bug"), False),
    ],
)
def test_transient_errors(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays `retrying` waits (without waiting them)."""
    waited: list[float] = []

    async def sleep(delay: float) -> None:
        waited.append(delay)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    return waited


async def test_retried_until_it_succeeds(sleeps: list[float]) -> None:
    calls: list[int] = []
    errors: list[BaseException] = []

    async def op() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise psycopg.errors.AdminShutdown("terminating connection")
        return "committed"

    async def on_error(exc: BaseException) -> None:
        errors.append(exc)

    policy = Retry(attempts=5, base_s=0.1, cap_s=1.0)
    assert await retrying(op, policy, "a write", on_error) == "committed"
    assert len(calls) == 3
    assert [type(e) for e in errors] == [psycopg.errors.AdminShutdown] * 2
    assert len(sleeps) == 2
    # devices.backoff.jittered_delay: try n waits in [base/2, min(cap, base * 2**n)]
    assert 0.05 <= sleeps[0] <= 0.2
    assert 0.05 <= sleeps[1] <= 0.4


async def test_bounded_attempts_raise_the_last_error(sleeps: list[float]) -> None:
    calls = 0

    async def op() -> None:
        nonlocal calls
        calls += 1
        raise psycopg.OperationalError(f"down {calls}")

    with pytest.raises(psycopg.OperationalError, match="down 3"):
        await retrying(op, Retry(attempts=3, base_s=0.1, cap_s=0.2), "a write")
    assert calls == 3
    assert len(sleeps) == 2
    assert all(d <= 0.2 for d in sleeps)


async def test_other_errors_are_not_retried(sleeps: list[float]) -> None:
    calls = 0

    async def op() -> None:
        nonlocal calls
        calls += 1
        raise psycopg.errors.UniqueViolation("duplicate key")

    with pytest.raises(psycopg.errors.UniqueViolation):
        await retrying(op, Retry(attempts=None), "a write")
    assert calls == 1
    assert sleeps == []


async def test_timeouts_left_to_the_fallback(sleeps: list[float]) -> None:
    calls = 0

    async def op() -> None:
        nonlocal calls
        calls += 1
        raise PoolTimeout("couldn't get a connection after 1.00 sec")

    with pytest.raises(PoolTimeout):
        await retrying(op, Retry(attempts=5, timeouts=False), "an SOS store")
    assert calls == 1


class FakeConnection:
    """Only what in_transaction touches."""

    def __init__(self) -> None:
        self.closed = False

    async def close(self) -> None:
        self.closed = True


class FakePool:
    """A pool that hands out fresh fake connections and counts its checks."""

    def __init__(self) -> None:
        self.handed: list[FakeConnection] = []
        self.checks = 0

    @contextlib.asynccontextmanager
    async def connection(self, timeout: float | None = None) -> AsyncIterator[FakeConnection]:
        conn = FakeConnection()
        self.handed.append(conn)
        yield conn

    async def check(self) -> None:
        self.checks += 1


async def test_in_transaction_drops_a_standby_connection(sleeps: list[float]) -> None:
    pool = FakePool()

    async def work(conn: Any) -> int:
        if len(pool.handed) == 1:
            raise psycopg.errors.ReadOnlySqlTransaction("cannot execute INSERT")
        return 7

    assert await in_transaction(pool, work, Retry(attempts=3), "a write") == 7  # type: ignore[arg-type]
    assert [c.closed for c in pool.handed] == [True, False]  # the standby's is not reused
    assert pool.checks == 1  # the pool's other idle connections are checked too
