"""Schema migrations: numbered SQL files, applied once, in order, under an advisory lock.

A file named ``NNNN_name.sql`` applies everywhere; ``NNNN_name.timescale.sql`` and
``NNNN_name.native.sql`` are the two variants of one step, chosen by whether the
``timescaledb`` extension is available (or by the `timescale` setting).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg

log = logging.getLogger(__name__)

_LOCK_KEY = 0x454C4445  # "ELDE"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+?)(?:\.(timescale|native))?\.sql$")


@dataclass(slots=True, frozen=True)
class Migration:
    """One step of the schema."""

    version: int
    name: str
    sql: str


def plan(timescale: bool) -> list[Migration]:
    """The migrations to apply, in order, for the chosen storage path."""
    wanted = "timescale" if timescale else "native"
    steps: dict[int, Migration] = {}
    for entry in resources.files("ingest.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match is None:
            continue
        version, name, variant = int(match[1]), match[2], match[3]
        if variant is not None and variant != wanted:
            continue
        if version in steps:
            raise RuntimeError(f"two migrations numbered {version:04d}")
        steps[version] = Migration(version, name, entry.read_text(encoding="utf-8"))
    return [steps[v] for v in sorted(steps)]


async def timescale_available(conn: psycopg.AsyncConnection[Any]) -> bool:
    """True when the server can create the timescaledb extension."""
    cur = await conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
    return await cur.fetchone() is not None


async def migrate(dsn: str, timescale: bool | None = None) -> list[int]:
    """Bring the schema up to date; returns the versions applied now."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version int PRIMARY KEY, name text NOT NULL, storage text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur = await conn.execute("SELECT version, storage FROM schema_migrations")
            done = {int(v): str(s) for v, s in await cur.fetchall()}
            if timescale is None:
                stored = set(done.values()) - {"any"}
                timescale = stored == {"timescale"} if stored else await timescale_available(conn)
            storage = "timescale" if timescale else "native"
            applied: list[int] = []
            for step in plan(timescale):
                if step.version in done:
                    continue
                log.info("applying migration %04d_%s (%s)", step.version, step.name, storage)
                async with conn.transaction():
                    await conn.execute(step.sql.encode())
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, storage)"
                        " VALUES (%s, %s, %s)",
                        (step.version, step.name, storage),
                    )
                applied.append(step.version)
            return applied
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


async def storage_kind(conn: psycopg.AsyncConnection[Any]) -> str:
    """'timescale' or 'native': which readings path this database was migrated with."""
    cur = await conn.execute("SELECT storage FROM schema_migrations WHERE version = 2")
    row = await cur.fetchone()
    return str(row[0]) if row else "unmigrated"
