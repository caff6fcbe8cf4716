"""Erasure of an elder who left the service (PIPL art. 47, GDPR art. 17), in one transaction.

Deleted: the elder's file, contacts, family links, visits and care weeks, the home's readings,
detector state, modes, silences and held-back signals, the audit of reads of their data, the
notifications and evidence of their alerts; the accounts of family members linked to this
elder only are closed (name, phone, sign-in, channels and push subscriptions, summaries).
Anonymised: the alerts keep kind, category, severity, times, outcome and village (the KPIs)
but lose the home, the summary, notes and the steps' details; consent records keep purpose,
method and dates without the guardian's name or the form's reference. Kept: one
`elder_erasures` row with who, when, why (a code) and how many rows went; no personal data.
Refused while an alert of the elder is unresolved. `erase_elder` is the one entry point (the
API, the CLI and the enrolment's "elder leaves" flow call it).
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from datetime import datetime

from psycopg import sql

from alerts.consent import Conn


class Reason(enum.StrEnum):
    """Why an elder's data was erased (a code: free text could carry names)."""

    LEFT_SERVICE = "left_service"
    MOVED_AWAY = "moved_away"
    DECEASED = "deceased"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    OTHER = "other"


class ErasureRefused(ValueError):
    """The elder cannot be erased now (the message says why and what to do)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Erasure:
    """What an erasure did: its record's id, when, and rows per kind."""

    id: int
    at: datetime
    counts: dict[str, int]


async def _count(conn: Conn, query: str, params: tuple[object, ...]) -> int:
    cur = await conn.execute(query, params)
    return cur.rowcount


async def _has_table(conn: Conn, name: str) -> bool:
    cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
    row = await cur.fetchone()
    return bool(row and row[0])


async def _home_columns(conn: Conn) -> set[str]:
    cur = await conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'homes'"
        " AND table_schema = current_schema()"
    )
    return {str(c) for (c,) in await cur.fetchall()}


async def erase_elder(
    conn: Conn, elder_id: str, *, by: int | None, via: str, reason: Reason, now: datetime
) -> Erasure:
    """Erase `elder_id` (no scope check: the caller checked it). Commits nothing itself: it
    runs in a transaction (a savepoint inside the caller's), all or nothing."""
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT e.home_id, h.village_id, e.full_name FROM elders e"
            " JOIN homes h ON h.id = e.home_id WHERE e.id = %s FOR UPDATE OF e",
            (elder_id,),
        )
        row = await cur.fetchone()
        if row is None:
            raise ErasureRefused("not_found", f"no elder {elder_id}")
        home, village, name = str(row[0]), str(row[1]), str(row[2])
        cur = await conn.execute(
            "SELECT id, kind FROM alerts WHERE home_id = %s AND status <> 'resolved' ORDER BY id",
            (home,),
        )
        open_alerts = await cur.fetchall()
        if open_alerts:
            listed = ", ".join(f"#{i} {k}" for i, k in open_alerts)
            raise ErasureRefused(
                "alerts_unresolved",
                f"elder {elder_id} has unresolved alerts ({listed}): resolve them first",
            )
        cur = await conn.execute(
            "INSERT INTO elder_erasures (at, erased_by, via, reason, village_id)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (now, by, via, reason.value, village),
        )
        erased = await cur.fetchone()
        assert erased is not None
        eid = int(erased[0])
        cur = await conn.execute(
            "SELECT l.user_id, NOT EXISTS (SELECT 1 FROM family_links o"
            " WHERE o.user_id = l.user_id AND o.elder_id <> l.elder_id)"
            " FROM family_links l WHERE l.elder_id = %s",
            (elder_id,),
        )
        links = await cur.fetchall()
        family = [int(u) for u, _ in links]
        only_here = [int(u) for u, only in links if only]
        cur = await conn.execute("SELECT id FROM alerts WHERE home_id = %s", (home,))
        alert_ids = [int(a) for (a,) in await cur.fetchall()]
        n: dict[str, int] = {}
        q = _count
        # The alerts: what carries a name or an address goes, what the KPIs need stays.
        n["alert_evidence"] = await q(
            conn, "DELETE FROM alert_evidence WHERE alert_id = ANY(%s)", (alert_ids,)
        )
        n["notifications"] = await q(
            conn, "DELETE FROM notifications WHERE alert_id = ANY(%s)", (alert_ids,)
        )
        await q(conn, "DELETE FROM alert_timers WHERE alert_id = ANY(%s)", (alert_ids,))
        n["device_commands"] = await q(
            conn, "DELETE FROM device_commands WHERE home_id = %s", (home,)
        )
        n["alert_events"] = await q(
            conn,
            "UPDATE alert_events SET detail = '{}'::jsonb,"
            " actor_id = CASE WHEN actor_id = ANY(%s) THEN NULL ELSE actor_id END"
            " WHERE alert_id = ANY(%s)",
            (only_here, alert_ids),
        )
        n["alerts_anonymised"] = await q(
            conn,
            "UPDATE alerts SET home_id = NULL, village_id = %s, erasure_id = %s, summary = '',"
            " resolution_note = NULL, policy = NULL,"
            " acknowledged_by = CASE WHEN acknowledged_by = ANY(%s) THEN NULL"
            "   ELSE acknowledged_by END,"
            " resolved_by = CASE WHEN resolved_by = ANY(%s) THEN NULL ELSE resolved_by END"
            " WHERE id = ANY(%s)",
            (village, eid, only_here, only_here, alert_ids),
        )
        # The home's data.
        n["readings"] = await q(conn, "DELETE FROM readings WHERE home_id = %s", (home,))
        for table in ("detector_state", "detector_baselines", "home_modes", "silences"):
            n[table] = await q(conn, f"DELETE FROM {table} WHERE home_id = %s", (home,))  # noqa: S608 - fixed names
        n["suppressed_signals"] = await q(
            conn, "DELETE FROM suppressed_signals WHERE home_id = %s", (home,)
        )
        await q(conn, "DELETE FROM sim_incidents WHERE home_id = %s", (home,))
        cols = await _home_columns(conn)
        wipe = ["address = ''"] + [
            f"{c} = NULL" for c in ("lat", "lon", "external_id") if c in cols
        ]
        await conn.execute(f"UPDATE homes SET {', '.join(wipe)} WHERE id = %s", (home,))  # noqa: S608 - fixed names
        # The elder's file and what hangs off it.
        n["consents"] = await q(
            conn,
            "UPDATE elder_consents SET elder_id = NULL, erasure_id = %s, guardian_name = '',"
            " guardian_relation = '', reference = '', withdrawal_note = '',"
            " withdrawn_at = coalesce(withdrawn_at, greatest(%s, given_at)),"
            " withdrawn_by = coalesce(withdrawn_by, %s) WHERE elder_id = %s",
            (eid, now, by, elder_id),
        )
        n["list_reads"] = await q(
            conn,
            "UPDATE list_reads SET elder_ids = array_remove(elder_ids, %s)"
            " WHERE elder_ids @> ARRAY[%s]::text[]",
            (elder_id, elder_id),
        )
        n["daily_summaries"] = await q(
            conn, "DELETE FROM daily_summaries WHERE user_id = ANY(%s)", (family,)
        )
        for table in ("health_reads", "care_visits", "care_weeks", "elder_contacts"):
            n[table] = await q(conn, f"DELETE FROM {table} WHERE elder_id = %s", (elder_id,))  # noqa: S608 - fixed names
        n["family_links"] = await q(
            conn, "DELETE FROM family_links WHERE elder_id = %s", (elder_id,)
        )
        if await _has_table(conn, "admin_audit"):
            # The enrolment's audit of changes to this elder (names, phones in before/after).
            n["admin_audit"] = await q(
                conn,
                "UPDATE admin_audit SET entity_id = %s, before = NULL, after = NULL"
                " WHERE entity_id = %s OR before::text LIKE %s OR after::text LIKE %s"
                " OR before::text LIKE %s OR after::text LIKE %s",
                (
                    f"erasure-{eid}",
                    elder_id,
                    f'%"{elder_id}"%',
                    f'%"{elder_id}"%',
                    f"%{name}%",
                    f"%{name}%",
                ),
            )
        n.update(await _sweep(conn, "home_id", home, KEEP_HOME_ROWS))
        n.update(await _sweep(conn, "elder_id", elder_id, KEEP_ELDER_ROWS))
        n["family_accounts_closed"] = await _close_accounts(conn, only_here)
        await conn.execute("DELETE FROM elders WHERE id = %s", (elder_id,))
        n["elder"] = 1
        await conn.execute(
            "UPDATE elder_erasures SET counts = %s WHERE id = %s", (json.dumps(n), eid)
        )
    return Erasure(eid, now, n)


KEEP_HOME_ROWS = frozenset({"homes", "devices", "alerts", "elders"})
"""Tables with a `home_id` whose rows an erasure keeps (anonymised above, or technical)."""
KEEP_ELDER_ROWS = frozenset({"elders", "elder_consents"})
"""Tables with an `elder_id` whose rows an erasure keeps (handled above)."""


async def _sweep(conn: Conn, column: str, value: str, keep: frozenset[str]) -> dict[str, int]:
    """Delete the rows of `column` = `value` from every other table of the schema that has
    that column (the rollups and any table added after this module was written), so that
    nothing of the home or elder is left behind by a table this module does not name.
    Partitions are reached through their parent; views are left alone."""
    cur = await conn.execute(
        "SELECT c.relname FROM pg_class c"
        " JOIN pg_namespace s ON s.oid = c.relnamespace AND s.nspname = current_schema()"
        " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = %s AND NOT a.attisdropped"
        " WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY c.relname",
        (column,),
    )
    out: dict[str, int] = {}
    for (table,) in await cur.fetchall():
        if table in keep:
            continue
        done = await conn.execute(
            sql.SQL("DELETE FROM {} WHERE {} = %s").format(
                sql.Identifier(str(table)), sql.Identifier(column)
            ),
            (value,),
        )
        if done.rowcount:
            out[str(table)] = out.get(str(table), 0) + done.rowcount
    return out


async def _close_accounts(conn: Conn, user_ids: list[int]) -> int:
    """Close family accounts whose only purpose (following this elder) has ended: no name,
    phone, sign-in, channels (push subscriptions included) or list-read audit left."""
    if not user_ids:
        return 0
    for table in ("sessions", "contact_channels", "list_reads"):
        await conn.execute(f"DELETE FROM {table} WHERE user_id = ANY(%s)", (user_ids,))  # noqa: S608 - fixed names
    cur = await conn.execute(
        "UPDATE users SET username = 'closed-' || id, display_name = 'closed account',"
        " phone = '', password_hash = '!' WHERE id = ANY(%s) AND role = 'family'",
        (user_ids,),
    )
    return cur.rowcount
