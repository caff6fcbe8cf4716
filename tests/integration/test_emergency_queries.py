"""The emergency path's lookups find their rows by key, whatever the size of the deployment.

Every emergency reads who is on duty for the home and the elder's family first contacts. Both
read the whole `users` / `family_links` tables before (10 000 homes: 1.5 and 0.9 ms of the
database's CPU per emergency, up to 80 ms of a press on the loaded benchmark machine). Here
the demo region gets 3 000 more homes, each with an elder and a family member with a
channel, and the people, their links, channels and elders must be read through an index
condition (the region ancestry and the current shifts are a handful of rows).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, cast

import psycopg
import pytest
from psycopg import sql

from alerts.escalate import recipients

pytestmark = pytest.mark.integration


def _scans(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan] if "Relation Name" in plan else []
    for child in plan.get("Plans", []):
        found += _scans(child)
    return found


class _Explain:
    """A connection whose `execute` returns the plan of the statement instead of its rows."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn

    async def execute(self, query: Any, params: Any = None) -> Any:
        body = sql.SQL(query) if isinstance(query, str) else query
        return await self._conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) ") + body, params)


async def _scans_of(cur: Any) -> list[dict[str, Any]]:
    row = await cur.fetchone()
    assert row is not None
    plan = row[0] if isinstance(row[0], list) else json.loads(row[0])
    return _scans(plan[0]["Plan"])


async def test_on_duty_and_family_lookups_use_an_index_condition(db_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        for statement in (
            "INSERT INTO homes (id, village_id) SELECT 'x' || i, (SELECT village_id FROM homes"
            " WHERE id = 'h01') FROM generate_series(1, 3000) i",
            "INSERT INTO elders (id, home_id, full_name) SELECT 'xe' || i, 'x' || i, 'Elder'"
            " FROM generate_series(1, 3000) i",
            "INSERT INTO users (username, password_hash, display_name, role)"
            " SELECT 'xf' || i, '!', 'Family', 'family' FROM generate_series(1, 3000) i",
            "INSERT INTO family_links (user_id, elder_id, first_contact)"
            " SELECT id, 'xe' || substr(username, 3), true FROM users WHERE username LIKE 'xf%'",
            "INSERT INTO contact_channels (user_id, channel, target, position)"
            " SELECT id, 'email', username || '@example.org', 0 FROM users"
            " WHERE username LIKE 'xf%'",
        ):
            await conn.execute(statement)
        await conn.commit()
        await conn.execute("ANALYZE")
        home = "h01"
        now = datetime.now(UTC)
        duty = await recipients.on_duty_query(conn, home, now, channels=True)
        family = await recipients.family_query(conn, home, channels=True)
        assert await duty.fetchall(), "the demo has someone on duty for h01"
        assert await family.fetchall(), "the demo elder of h01 has a family first contact"
        explain = cast(recipients.Conn, _Explain(conn))
        for cur in (
            await recipients.on_duty_query(explain, home, now, channels=True),
            await recipients.family_query(explain, home, channels=True),
        ):
            scans = await _scans_of(cur)
            assert {s["Relation Name"] for s in scans} >= {"users", "contact_channels"}
            for table in ("users", "family_links", "contact_channels", "elders"):
                for scan in (s for s in scans if s["Relation Name"] == table):
                    assert "Index Cond" in scan, (table, scan["Node Type"], scans)
