"""The audit of reads of lists and live streams that carry names: one `list_reads` row per
list request or stream connection (never per event): who, when, which list, how many rows
and which elders it showed. Search text is not kept (it may be a name)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from psycopg.rows import dict_row

from alerts.consent import Conn


async def audit_list_read(
    conn: Conn,
    user_id: int,
    what: str,
    elder_ids: Iterable[str | None],
    rows: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Write one audit row of a list (or stream) read: `what` it was, the elders it showed
    (`rows`: how many rows, default the number of elders)."""
    ids = sorted({e for e in elder_ids if e})
    await conn.execute(
        "INSERT INTO list_reads (user_id, what, rows, elder_ids, detail) VALUES (%s, %s, %s,"
        " %s, %s)",
        (
            user_id,
            what,
            len(ids) if rows is None else rows,
            ids,
            json.dumps(detail or {}, default=str),
        ),
    )


async def list_reads_of(conn: Conn, elder_id: str, limit: int) -> list[dict[str, Any]]:
    """The latest list reads that showed `elder_id` (`at`, `user_id`, `reader`, `role`,
    `what`, `rows`)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT r.at, r.user_id, u.display_name AS reader, u.role, r.what, r.rows"
            " FROM list_reads r JOIN users u ON u.id = r.user_id"
            " WHERE r.elder_ids @> ARRAY[%s]::text[] ORDER BY r.at DESC, r.id DESC LIMIT %s",
            (elder_id, limit),
        )
        return list(await cur.fetchall())
