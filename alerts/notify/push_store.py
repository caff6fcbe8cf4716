"""Queries of web push subscriptions (contact channels of kind ``webpush``)."""

from __future__ import annotations

from typing import Any

import psycopg

from alerts.notify.webpush import Subscription

Conn = psycopg.AsyncConnection[Any]


async def subscribe(conn: Conn, user_id: int, sub: Subscription) -> int:
    """Make `sub` the user's first contact channel (the device they just enabled comes
    first; their other channels stay as fallbacks). A browser subscription belongs to one
    person: the same endpoint held by anyone else is moved. Returns the channel id."""
    async with conn.transaction():
        await conn.execute(
            "DELETE FROM contact_channels"
            " WHERE channel = 'webpush' AND target::jsonb->>'endpoint' = %s",
            (sub.endpoint,),
        )
        cur = await conn.execute(
            "INSERT INTO contact_channels (user_id, channel, target, position)"
            " SELECT %s, 'webpush', %s,"
            " coalesce((SELECT min(position) FROM contact_channels WHERE user_id = %s), 1) - 1"
            " RETURNING id",
            (user_id, sub.target(), user_id),
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def unsubscribe(conn: Conn, user_id: int, endpoint: str) -> bool:
    """Remove the user's subscription with this endpoint; False if they had none."""
    cur = await conn.execute(
        "DELETE FROM contact_channels WHERE user_id = %s"
        " AND channel = 'webpush' AND target::jsonb->>'endpoint' = %s",
        (user_id, endpoint),
    )
    return cur.rowcount > 0


async def forget_target(conn: Conn, target: str) -> int:
    """Remove a subscription the push service says is gone; returns how many rows went."""
    cur = await conn.execute(
        "DELETE FROM contact_channels WHERE channel = 'webpush' AND target = %s", (target,)
    )
    return cur.rowcount


async def subscriptions(conn: Conn, user_id: int) -> list[tuple[int, str, int]]:
    """The user's subscriptions: (channel id, endpoint, position)."""
    cur = await conn.execute(
        "SELECT id, target::jsonb->>'endpoint', position FROM contact_channels"
        " WHERE user_id = %s AND channel = 'webpush' ORDER BY position, id",
        (user_id,),
    )
    return [(int(i), str(e), int(p)) for i, e, p in await cur.fetchall()]
