"""Database settings and connection helpers shared by every stage."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, LiteralString, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from pydantic import BaseModel, Field, SecretStr, field_validator

from devices.backoff import jittered_delay

log = logging.getLogger(__name__)
T = TypeVar("T")


class DatabaseSettings(BaseModel):
    """How to reach PostgreSQL (or TimescaleDB)."""

    url: SecretStr | None = Field(
        default=None,
        description="postgresql://user:password@host:5432/dbname; with a standby, every node"
        " and target_session_attrs=read-write: postgresql://user:password@h1:5432,h2:5432/"
        "dbname?target_session_attrs=read-write (libpq connects to whichever takes writes)",
    )
    pool_min: int = Field(
        default=4,
        ge=1,
        description="connections each process keeps open (an SOS after a quiet night must not"
        " wait for a new one)",
    )
    pool_max: int = Field(default=10, ge=1)
    reconnect_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="how long the pool retries (backing off 1, 2, 4 s) to replace a lost "
        "connection before it gives up and connects anew at the next request: short, so that "
        "after a failover the pool is not asleep in a long backoff when the new primary is up",
    )
    timescale: bool | None = Field(
        default=None,
        description="force the TimescaleDB path on (true) or off (false); detect when unset",
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        url = value.get_secret_value()
        if not url.startswith(("postgresql://", "postgres://")):
            raise ValueError("database URL must start with postgresql://")
        try:
            params = conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise ValueError(f"database URL cannot be parsed: {exc}") from None
        hosts = str(params.get("host", "")).split(",")
        if len(hosts) > 1 and params.get("target_session_attrs") not in (
            "read-write",
            "primary",
        ):
            raise ValueError(
                f"the database URL lists {len(hosts)} hosts but not "
                "target_session_attrs=read-write: the service could connect to a read-only "
                "standby (add ?target_session_attrs=read-write)"
            )
        return value

    def dsn(self) -> str:
        """The connection string; raises a clear error when none is configured."""
        if self.url is None:
            raise ValueError(
                "no database configured: set ELDERCARE_DATABASE__URL=postgresql://... "
                "(or use `eldercare up`, which starts an embedded PostgreSQL)"
            )
        return self.url.get_secret_value()


async def read_in_chunks(
    conn: psycopg.AsyncConnection[Any],
    name: str,
    query: LiteralString,
    params: Mapping[str, Any] | None = None,
    chunk: int = 1000,
) -> AsyncGenerator[list[Any], None]:
    """The rows of `query`, `chunk` at a time, through a server-side cursor `name` (in a
    transaction of its own, planned for reading to the end), letting the event loop run
    between chunks: a big table read in one go holds it while every row is received and
    converted (70-200 ms for 70 000 devices), and an SOS arriving then waits. Consume it
    inside `contextlib.aclosing`, so the transaction ends with the connection's use."""
    async with conn.transaction(), conn.cursor(name=name) as cur:
        await conn.execute("SET LOCAL cursor_tuple_fraction = 1.0")
        await cur.execute(query, params)
        while rows := await cur.fetchmany(chunk):
            yield rows
            await asyncio.sleep(0)


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` is what a database outage or failover raises, so that the transaction
    may succeed when tried again: the connection lost (mid-transaction too), the server
    shutting down or starting (AdminShutdown, CannotConnectNow), no node taking writes yet, a
    pool without a connection in time, or a node that has become a read-only standby."""
    return isinstance(
        exc, psycopg.OperationalError | psycopg.errors.ReadOnlySqlTransaction | TimeoutError
    )


@dataclass(frozen=True, slots=True)
class Retry:
    """How a transaction is retried: `attempts` in all (None: until it succeeds, for a writer
    that must not give up: it acknowledges only after its commit), waiting
    `devices.backoff.jittered_delay(n, base_s, cap_s)` before try n + 1."""

    attempts: int | None = 3
    base_s: float = 0.1
    cap_s: float = 5.0
    timeouts: bool = True
    """Whether a timeout (no connection within the caller's wait) is tried again too; not
    where a fallback should start instead (the SOS path)."""

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed try number `attempt` (1, 2, ...)."""
        return jittered_delay(attempt, self.base_s, self.cap_s)


WRITE_RETRY = Retry(attempts=None, base_s=0.2, cap_s=2.0)
"""The writers that never give up (ingest's batches, the detection feed's reader): they
acknowledge, or delete a feed row, only after their commit."""


async def retrying(
    op: Callable[[], Awaitable[T]],
    policy: Retry,
    what: str,
    on_error: Callable[[BaseException], Awaitable[object]] | None = None,
) -> T:
    """`await op()`, tried again after a transient error (`is_transient`) as `policy` says;
    `on_error` runs after each such failure (e.g. to drop a dead connection). Other errors,
    and the last transient one, propagate. `op` must be safe to run twice: a commit whose
    answer was lost may have happened (every writer here is idempotent: ON CONFLICT keys)."""
    attempt = 0
    while True:
        try:
            return await op()
        except Exception as exc:
            timed_out = isinstance(exc, TimeoutError | PoolTimeout)
            if not is_transient(exc) or (timed_out and not policy.timeouts):
                raise
            attempt += 1
            if policy.attempts is not None and attempt >= policy.attempts:
                raise
            if on_error is not None:
                await on_error(exc)
            delay = policy.delay(attempt)
            log.warning("%s failed (%r); try %d in %.2f s", what, exc, attempt + 1, delay)
            await asyncio.sleep(delay)


async def in_transaction(
    pool: AsyncConnectionPool[Any],
    work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]],
    policy: Retry,
    what: str,
    timeout_s: float | None = None,
) -> T:
    """Run `work` on a pooled connection and commit (the pool commits when it returns),
    retried as `policy` says after a transient error. After a failover the pool's idle
    connections all lead to the dead primary: each failure checks them (`pool.check`, which
    drops the dead ones and connects anew, to the promoted node). A connection that landed on
    a read-only standby is closed so that the pool does not hand it out again."""

    async def once() -> T:
        async with pool.connection(timeout=timeout_s) as conn:
            try:
                return await work(conn)
            except psycopg.errors.ReadOnlySqlTransaction:
                await conn.close()
                raise

    async def check(_exc: BaseException) -> None:
        try:
            await pool.check()
        except psycopg.Error as exc:  # checking may fail too while no node takes writes
            log.debug("pool check failed: %r", exc)

    return await retrying(once, policy, what, on_error=check)
