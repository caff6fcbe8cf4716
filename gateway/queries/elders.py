"""SQL of the elders' files and of the audit of reads of their health data."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row

from gateway.access import HomeFilter
from gateway.privacy import consents
from gateway.queries.base import Conn, compose, fetch_dicts
from gateway.queries.places import HOME_SELECT, Home


@dataclass(frozen=True, slots=True)
class Contact:
    """Someone to call about an elder."""

    name: str
    relation: str
    phone: str
    is_user: bool
    holds_key: bool = False


@dataclass(frozen=True, slots=True)
class Elder:
    """The elder's file (without devices and alerts, which have their own queries)."""

    id: str
    home_id: str
    full_name: str
    born: date | None
    sex: str
    phone: str
    lives_alone: bool
    notes: str
    conditions: list[str]
    thresholds: dict[str, Any]
    # Away / hospital mode, from the home's `home_modes` row (None / "" when it has none):
    # `away_from` and `away_until` are its window, which may be over or still to come.
    away_mode: str | None
    away_from: datetime | None
    away_until: datetime | None
    away_reason: str
    village_id: str
    village: str
    address: str
    timezone: str
    contacts: list[Contact]


_ELDER_SELECT = """
SELECT e.id, e.home_id, e.full_name, e.born, e.sex, e.phone, e.lives_alone, e.notes,
       e.conditions, e.thresholds, m.mode AS away_mode, m.since AS away_from,
       m.until AS away_until, coalesce(m.reason, '') AS away_reason,
       h.village_id, v.name AS village, h.address, h.timezone
FROM elders e JOIN homes h ON h.id = e.home_id JOIN regions v ON v.id = h.village_id
LEFT JOIN home_modes m ON m.home_id = e.home_id
"""


async def elders(
    conn: Conn, f: HomeFilter, village: str | None, search: str | None, limit: int, offset: int
) -> tuple[list[Home], int]:
    """Elders in the filter as (home, elder) summaries, by name; and how many in all."""
    params = {
        **f.params,
        "village": village,
        "q": None if not search else f"%{search}%",
        "limit": limit,
        "offset": offset,
    }
    query = compose(
        f,
        HOME_SELECT,
        """WHERE {where} AND e.id IS NOT NULL
               AND (%(village)s::text IS NULL OR h.village_id = %(village)s)
               AND (%(q)s::text IS NULL OR e.full_name ILIKE %(q)s)
             ORDER BY e.full_name, e.id""",
    )
    rows = await fetch_dicts(conn, query, params)
    return [Home(**r) for r in rows[offset : offset + limit]], len(rows)


async def elder(conn: Conn, f: HomeFilter, elder_id: str) -> Elder | None:
    """The elder's file, if the filter lets it through."""
    query = compose(f, _ELDER_SELECT, " WHERE {where} AND e.id = %(id)s")
    rows = await fetch_dicts(conn, query, {**f.params, "id": elder_id})
    if not rows:
        return None
    row = rows[0]
    cur = await conn.execute(
        "SELECT name, relation, phone, false, holds_key, 1, position FROM elder_contacts"
        " WHERE elder_id = %s"
        " UNION ALL"
        " SELECT u.display_name, l.relation, u.phone, true, l.holds_key, 0,"
        " CASE WHEN l.first_contact THEN 0 ELSE 1 END FROM family_links l"
        " JOIN users u ON u.id = l.user_id WHERE l.elder_id = %s"
        " ORDER BY 6, 7, 1",
        (elder_id, elder_id),
    )
    contacts = [
        Contact(str(n), str(r), str(p), bool(u), bool(k))
        for n, r, p, u, k, _, _ in await cur.fetchall()
    ]
    return Elder(**row, contacts=contacts)


async def elder_for_home(conn: Conn, home_id: str) -> str | None:
    """The elder living in `home_id` (no scope: call after the home was checked)."""
    cur = await conn.execute("SELECT id FROM elders WHERE home_id = %s", (home_id,))
    row = await cur.fetchone()
    return None if row is None else str(row[0])


async def update_elder(
    conn: Conn, elder_id: str, changes: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Set some of an elder's editable fields (names are checked by the caller's model);
    returns those fields before and after, for the audit row."""
    if not changes:
        return {}, {}
    columns = sql.SQL(", ").join(sql.Identifier(k) for k in changes)
    cur = await conn.execute(
        sql.SQL("SELECT {} FROM elders WHERE id = %s FOR UPDATE").format(columns), (elder_id,)
    )
    row = await cur.fetchone()
    before = {} if row is None else dict(zip(changes, row, strict=True))
    values = {k: json.dumps(v) if k == "thresholds" else v for k, v in changes.items()}
    query = sql.SQL("UPDATE elders SET {} WHERE id = %(id)s").format(
        sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in values
        )
    )
    await conn.execute(query, {**values, "id": elder_id})
    return before, dict(changes)


# --------------------------------------------------------------------------- audit


async def audit_health_read(
    conn: Conn, user_id: int, elder_id: str, what: str, detail: dict[str, Any] | None = None
) -> None:
    """Write the audit row of one read of an elder's health data; 403 `consent_missing`
    first (and nothing written) when it is health data the elder has no current consent
    for (`gateway.privacy.consents.require`)."""
    cur = await conn.execute("SELECT now()")
    row = await cur.fetchone()
    assert row is not None
    await consents.require(conn, user_id, elder_id, what, row[0])
    await conn.execute(
        "INSERT INTO health_reads (user_id, elder_id, what, detail) VALUES (%s, %s, %s, %s)",
        (user_id, elder_id, what, json.dumps(detail or {}, default=str)),
    )


async def health_reads(conn: Conn, elder_id: str, limit: int) -> list[dict[str, Any]]:
    """The latest audit rows of reads of one elder's health data (`at`, `user_id`,
    `reader`, `role`, `what`, `detail`)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT r.at, r.user_id, u.display_name AS reader, u.role, r.what, r.detail"
            " FROM health_reads r JOIN users u ON u.id = r.user_id WHERE r.elder_id = %s"
            " ORDER BY r.at DESC, r.id DESC LIMIT %s",
            (elder_id, limit),
        )
        return list(await cur.fetchall())
