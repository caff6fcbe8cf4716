"""Database settings and connection helpers shared by every stage."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping
from typing import Any, LiteralString

import psycopg
from pydantic import BaseModel, Field, SecretStr, field_validator


class DatabaseSettings(BaseModel):
    """How to reach PostgreSQL (or TimescaleDB)."""

    url: SecretStr | None = Field(
        default=None, description="postgresql://user:password@host:5432/dbname"
    )
    pool_min: int = Field(
        default=4,
        ge=1,
        description="connections each process keeps open (an SOS after a quiet night must not"
        " wait for a new one)",
    )
    pool_max: int = Field(default=10, ge=1)
    timescale: bool | None = Field(
        default=None,
        description="force the TimescaleDB path on (true) or off (false); detect when unset",
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(
            ("postgresql://", "postgres://")
        ):
            raise ValueError("database URL must start with postgresql://")
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
