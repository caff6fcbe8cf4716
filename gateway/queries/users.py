"""SQL of the people who use the gateway: their names and their language."""

from __future__ import annotations

from collections.abc import Iterable

from gateway.queries.base import Conn


async def display_names(conn: Conn, user_ids: Iterable[int]) -> dict[int, str]:
    """The display name of each of `user_ids` that exists."""
    ids = list(set(user_ids))
    if not ids:
        return {}
    cur = await conn.execute("SELECT id, display_name FROM users WHERE id = ANY(%s)", (ids,))
    return {int(i): str(n) for i, n in await cur.fetchall()}


async def set_locale(conn: Conn, user_id: int, locale: str) -> None:
    """Change the language a user sees."""
    await conn.execute("UPDATE users SET locale = %s WHERE id = %s", (locale, user_id))
