"""Who an alert's round reaches: the people on duty for its home per tier (from the rota),
the family first contacts, and each one's first usable contact channel."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from alerts.model import Recipient

Conn = psycopg.AsyncConnection[Any]


async def on_duty(
    conn: Conn, home_id: str | None, at: datetime
) -> dict[str, list[tuple[int, str]]]:
    """Who is on duty for a home at `at`, per tier: (user id, display name), in user id order.

    The tier of a shift is its region's tier (the role must match it), or `operator` for an
    operator's shift at any region above the home. For an alert about the service itself
    (no home), the operators and the district staff on duty anywhere."""
    return _by_tier(await (await on_duty_query(conn, home_id, at)).fetchall())


def _by_tier(rows: list[Any]) -> dict[str, list[tuple[int, str]]]:
    found: dict[str, list[tuple[int, str]]] = {}
    for tier, uid, name in rows:
        found.setdefault(str(tier), []).append((int(uid), str(name)))
    return found


def _people(rows: list[Any]) -> list[tuple[int, str]]:
    return [(int(u), str(n)) for u, n in rows]


# Each person's contact channels in their order, as rows of [channel, target, position]
# (NULL when none): joined to who is on duty / the family first contact, so a round's
# recipients are known after one wait instead of two.
_CHANNELS = sql.SQL(
    ", (SELECT array_agg(ARRAY[c.channel, c.target, c.position::text] ORDER BY c.position, c.id)"
    " FROM contact_channels c WHERE c.user_id = u.id)"
)


async def on_duty_query(
    conn: Conn, home_id: str | None, at: datetime, channels: bool = False
) -> Any:
    """Send the query of who is on duty for a home at `at` (rows: tier, user id, name, and
    with `channels` their contact channels); in pipeline mode it does not wait."""
    extra = _CHANNELS if channels else sql.SQL("")
    if home_id is None:
        return await conn.execute(
            sql.SQL(
                "SELECT DISTINCT CASE WHEN u.role = 'operator' THEN 'operator' ELSE 'district'"
                " END, u.id, u.display_name{extra} FROM duty_shifts d"
                " JOIN users u ON u.id = d.user_id JOIN regions r ON r.id = d.region_id"
                " WHERE d.starts_at <= %(at)s AND d.ends_at > %(at)s"
                " AND (u.role = 'operator' OR (r.tier = 'district' AND u.role = 'district_staff'))"
                " ORDER BY 1, 2"
            ).format(extra=extra),
            {"at": at},
        )
    # The shifts on now over this home's regions first (a handful of rows), then each one's
    # person by key (the LIMIT keeps the planner from turning it back into a join): joined
    # the other way round, the planner read every user (10 000 family members in the
    # benchmark) to find the few on duty.
    return await conn.execute(
        sql.SQL("""
        WITH RECURSIVE anc(id, tier, parent_id) AS (
            SELECT r.id, r.tier, r.parent_id FROM regions r JOIN homes h ON h.village_id = r.id
            WHERE h.id = %(home)s
            UNION ALL
            SELECT r.id, r.tier, r.parent_id FROM regions r JOIN anc ON r.id = anc.parent_id
        ),
        d AS MATERIALIZED (
            SELECT d.user_id, anc.tier FROM duty_shifts d JOIN anc ON anc.id = d.region_id
            WHERE d.starts_at <= %(at)s AND d.ends_at > %(at)s
        )
        SELECT DISTINCT CASE WHEN u.role = 'operator' THEN 'operator' ELSE d.tier END AS tier,
               u.id, u.display_name{extra}
        FROM d CROSS JOIN LATERAL (
            SELECT u.id, u.display_name, u.role FROM users u WHERE u.id = d.user_id LIMIT 1
        ) u
        WHERE (u.role = 'operator'
               OR (d.tier = 'village' AND u.role = 'village_worker')
               OR (d.tier = 'town' AND u.role = 'town_staff')
               OR (d.tier = 'district' AND u.role = 'district_staff'))
        ORDER BY 1, 2
        """).format(extra=extra),
        {"home": home_id, "at": at},
    )


async def family_query(conn: Conn, home_id: str, channels: bool = False) -> Any:
    """Send the query of the family first contacts of a home's elder (rows: user id, name,
    and with `channels` their contact channels); in pipeline mode it does not wait."""
    return await conn.execute(
        sql.SQL(
            "SELECT u.id, u.display_name{extra} FROM family_links f"
            " JOIN users u ON u.id = f.user_id JOIN elders e ON e.id = f.elder_id"
            " WHERE e.home_id = %s AND f.first_contact ORDER BY u.id"
        ).format(extra=_CHANNELS if channels else sql.SQL("")),
        (home_id,),
    )


@dataclass(slots=True)
class Contacts:
    """Who a home's alert can reach at one instant, read once: everyone on duty for it (all
    tiers) and the family first contacts, each with their channels in order."""

    duty: dict[str, list[tuple[int, str]]]
    family: list[tuple[int, str]]
    channels: dict[int, list[tuple[str, str, int]]]


async def send_contacts_query(conn: Conn, home_id: str, at: datetime) -> tuple[Any, Any]:
    """Send (in pipeline mode, without waiting) the queries `read_contacts` reads."""
    return (
        await on_duty_query(conn, home_id, at, channels=True),
        await family_query(conn, home_id, channels=True),
    )


async def read_contacts(cursors: tuple[Any, Any]) -> Contacts:
    """The answer to `send_contacts_query`."""
    duty_cur, family_cur = cursors
    duty: dict[str, list[tuple[int, str]]] = {}
    channels: dict[int, list[tuple[str, str, int]]] = {}

    def keep(uid: int, listed: list[list[str]] | None) -> None:
        channels[uid] = [(str(c), str(t), int(p)) for c, t, p in listed or []]

    for tier, uid, name, listed in await duty_cur.fetchall():
        duty.setdefault(str(tier), []).append((int(uid), str(name)))
        keep(int(uid), listed)
    family = []
    for uid, name, listed in await family_cur.fetchall():
        family.append((int(uid), str(name)))
        keep(int(uid), listed)
    return Contacts(duty, family, channels)


async def _channels_of(conn: Conn, user_ids: list[int]) -> dict[int, list[tuple[str, str, int]]]:
    cur = await conn.execute(
        "SELECT user_id, channel, target, position FROM contact_channels"
        " WHERE user_id = ANY(%s) ORDER BY user_id, position, id",
        (user_ids,),
    )
    found: dict[int, list[tuple[str, str, int]]] = {}
    for uid, channel, target, position in await cur.fetchall():
        found.setdefault(int(uid), []).append((str(channel), str(target), int(position)))
    return found


class Unknown:
    """The type of `UNKNOWN`: a value not known to the caller (then it is read)."""


UNKNOWN = Unknown()
"""An alert's home not known to the caller of `recipients`: read from the alert."""


async def recipients(
    conn: Conn,
    alert_id: int,
    tiers: tuple[str, ...],
    at: datetime,
    usable: frozenset[str],
    home: str | Unknown | None = UNKNOWN,
    contacts: Contacts | None = None,
) -> tuple[list[Recipient], dict[str, list[int]], list[int]]:
    """Who a round reaches: for each tier, the people on duty (or the family first contact),
    each over their first usable channel. Returns (recipients, tier -> reachable user ids,
    user ids skipped because none of their channels is usable). `home`: the alert's home,
    when the caller knows it; `contacts`: the home's contacts at `at`, when already read."""
    if contacts is not None:
        return _reach(tiers, contacts, usable)
    if isinstance(home, Unknown):
        cur = await conn.execute("SELECT home_id FROM alerts WHERE id = %s", (alert_id,))
        row = await cur.fetchone()
        assert row is not None
        home_id = None if row[0] is None else str(row[0])
    else:
        home_id = home
    # Both asked before either answer is read: one wait, not two (pipeline mode).
    duty_cur = await on_duty_query(conn, home_id, at)
    family_cur = (
        await family_query(conn, home_id) if home_id is not None and "family" in tiers else None
    )
    duty = _by_tier(await duty_cur.fetchall())
    family = [] if family_cur is None else _people(await family_cur.fetchall())
    ids = sorted({uid for t in tiers for uid, _ in (family if t == "family" else duty.get(t, []))})
    return _reach(tiers, Contacts(duty, family, await _channels_of(conn, ids)), usable)


def _reach(
    tiers: tuple[str, ...], contacts: Contacts, usable: frozenset[str]
) -> tuple[list[Recipient], dict[str, list[int]], list[int]]:
    people = {t: contacts.family if t == "family" else contacts.duty.get(t, []) for t in tiers}
    channels = contacts.channels
    found: list[Recipient] = []
    reachable: dict[str, list[int]] = {t: [] for t in tiers}
    skipped: list[int] = []
    done: set[int] = set()
    for tier in tiers:
        for uid, _name in people[tier]:
            usable_channels = [c for c in channels.get(uid, []) if c[0] in usable]
            if not usable_channels:
                if uid not in skipped:
                    skipped.append(uid)
                continue
            reachable[tier].append(uid)
            if uid in done:
                continue
            done.add(uid)
            channel, target, position = usable_channels[0]
            found.append(Recipient(uid, tier, channel, target, position))
    return found, reachable, skipped
