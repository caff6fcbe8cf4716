"""What every query module shares: the connection type and composing SQL with a filter."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from gateway.access import HomeFilter

Conn = psycopg.AsyncConnection[Any]


def compose(f: HomeFilter, *parts: str) -> sql.Composed:
    """The constant SQL `parts` after the filter's CTE, with `{where}` set to its clause."""
    text = " ".join(("{cte}", *parts))
    return sql.SQL(text).format(cte=f.cte, where=f.where)


async def fetch_dicts(
    conn: Conn, query: sql.Composed, params: dict[str, Any]
) -> list[dict[str, Any]]:
    """The rows of `query` as dicts keyed by column name."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return list(await cur.fetchall())


async def ping(conn: Conn) -> None:
    """A round trip to the database (raises when it is not answering)."""
    await conn.execute("SELECT 1")
