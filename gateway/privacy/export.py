"""Everything held about one elder as one zip archive (PIPL art. 45, GDPR art. 15/20): per
table a JSON file (an array of objects) and a CSV file, and `manifest.json` with what each
holds. Written in chunks into a file, so a long history of readings does not sit in memory."""

from __future__ import annotations

import csv
import io
import json
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

from alerts.consent import Conn

CHUNK = 2000
"""Rows fetched per round trip."""

TABLES: tuple[tuple[str, str, str], ...] = (
    (
        "profile",
        "the elder's file and home",
        "SELECT e.id, e.full_name, e.born, e.sex, e.phone, e.lives_alone, e.conditions,"
        " e.thresholds, e.notes, e.home_id, h.address, h.timezone, h.village_id,"
        " v.name AS village FROM elders e JOIN homes h ON h.id = e.home_id"
        " JOIN regions v ON v.id = h.village_id WHERE e.id = %(elder)s",
    ),
    (
        "contacts",
        "people to call: the elder's contacts and linked family accounts",
        "SELECT 'contact' AS kind, c.name, c.relation, c.phone, c.holds_key, NULL::bigint"
        " AS user_id, false AS first_contact FROM elder_contacts c WHERE c.elder_id = %(elder)s"
        " UNION ALL SELECT 'family', u.display_name, l.relation, u.phone, l.holds_key, u.id,"
        " l.first_contact FROM family_links l JOIN users u ON u.id = l.user_id"
        " WHERE l.elder_id = %(elder)s ORDER BY 1, 2",
    ),
    (
        "consents",
        "consent records",
        "SELECT id, purpose, given_by, guardian_name, guardian_relation, method, reference,"
        " given_at, recorded_at, recorded_by, withdrawn_at, withdrawn_by, withdrawal_note"
        " FROM elder_consents WHERE elder_id = %(elder)s ORDER BY given_at, id",
    ),
    (
        "devices",
        "devices installed in the home",
        "SELECT id, kind, room, label, created_at FROM devices WHERE home_id = %(home)s"
        " ORDER BY id",
    ),
    (
        "readings",
        "every stored reading of the home's devices",
        "SELECT ts, device_id, metric, value, boot, seq, received_at FROM readings"
        " WHERE home_id = %(home)s ORDER BY ts, device_id, seq",
    ),
    (
        "alerts",
        "alerts of the home",
        "SELECT id, kind, category, severity, status, event_at, opened_at, acknowledged_at,"
        " acknowledged_by, acknowledged_how, en_route_at, arrived_at, resolved_at, resolved_by,"
        " outcome, resolution_note, summary, evidence_count, last_evidence_at FROM alerts"
        " WHERE home_id = %(home)s ORDER BY id",
    ),
    (
        "alert_events",
        "every step of those alerts (the audit trail)",
        "SELECT alert_id, at, actor_id, action, detail FROM alert_events"
        " WHERE alert_id IN (SELECT id FROM alerts WHERE home_id = %(home)s)"
        " ORDER BY alert_id, at, id",
    ),
    (
        "alert_evidence",
        "readings that raised or added to those alerts",
        "SELECT alert_id, at, device_id, boot, seq, detail FROM alert_evidence"
        " WHERE alert_id IN (SELECT id FROM alerts WHERE home_id = %(home)s)"
        " ORDER BY alert_id, at, id",
    ),
    (
        "suppressed_signals",
        "alerts held back (away mode, silences, no consent...)",
        "SELECT at, kind, severity, event_at, muted_by, reason FROM suppressed_signals"
        " WHERE home_id = %(home)s ORDER BY at, id",
    ),
    (
        "visits",
        "care visits by staff",
        "SELECT visited_at, user_id, source, device_id, note, recorded_at, recorded_by"
        " FROM care_visits WHERE elder_id = %(elder)s ORDER BY visited_at, id",
    ),
    (
        "care_weeks",
        "weeks checked against the three-visits rule",
        "SELECT week_start, visits, short, alert_id, closed_at FROM care_weeks"
        " WHERE elder_id = %(elder)s ORDER BY week_start",
    ),
    (
        "home_modes",
        "away / hospital mode of the home",
        "SELECT mode, since, until, reason, set_by FROM home_modes WHERE home_id = %(home)s",
    ),
    (
        "notifications",
        "notifications sent about the elder's alerts: to whom, how, with what result",
        "SELECT alert_id, round, notice, user_id, channel, target, status, due_at, attempts,"
        " sent_at, last_error FROM notifications"
        " WHERE alert_id IN (SELECT id FROM alerts WHERE home_id = %(home)s)"
        " ORDER BY alert_id, round, id",
    ),
    (
        "daily_summaries",
        "daily summaries sent to family members linked to this elder only",
        "SELECT user_id, day, status, sent_at, delivered, body FROM daily_summaries"
        " WHERE user_id IN (SELECT user_id FROM family_links WHERE elder_id = %(elder)s)"
        " AND user_id NOT IN (SELECT user_id FROM family_links WHERE elder_id <> %(elder)s)"
        " ORDER BY day, user_id",
    ),
    (
        "health_reads",
        "audit: who read the elder's health data, when, what",
        "SELECT r.at, r.user_id, u.display_name AS reader, u.role, r.what, r.detail"
        " FROM health_reads r JOIN users u ON u.id = r.user_id WHERE r.elder_id = %(elder)s"
        " ORDER BY r.at, r.id",
    ),
    (
        "list_reads",
        "audit: lists and live streams that showed the elder",
        "SELECT r.at, r.user_id, u.display_name AS reader, u.role, r.what, r.rows"
        " FROM list_reads r JOIN users u ON u.id = r.user_id"
        " WHERE r.elder_ids @> ARRAY[%(elder)s]::text[] ORDER BY r.at, r.id",
    ),
)
"""(file name, what it holds, query by `elder` and `home`) of every table in the archive."""


@dataclass(frozen=True, slots=True)
class Exported:
    """What an export wrote: rows per table."""

    elder_id: str
    rows: dict[str, int]


class NoSuchElder(LookupError):
    """The elder to export or erase does not exist."""


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return value


def _cell(value: Any) -> str:
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


async def _table(conn: Conn, zf: zipfile.ZipFile, name: str, query: str, params: Any) -> int:
    """One table as `name.json` (streamed into the zip) and `name.csv` (spooled beside it:
    a zip takes one open entry at a time)."""
    count = 0
    with tempfile.TemporaryFile() as spool:
        cout = io.TextIOWrapper(spool, encoding="utf-8", newline="")
        with (
            zf.open(f"{name}.json", "w") as jraw,
            io.TextIOWrapper(jraw, encoding="utf-8", newline="") as jout,
        ):
            writer = csv.writer(cout)
            jout.write("[")
            async with conn.cursor(name=f"export_{name}") as cur:
                await cur.execute(query, params)
                assert cur.description is not None
                columns = [c.name for c in cur.description]
                writer.writerow(columns)
                while rows := await cur.fetchmany(CHUNK):
                    for row in rows:
                        jout.write(",\n" if count else "\n")
                        obj = {c: _plain(v) for c, v in zip(columns, row, strict=True)}
                        jout.write(json.dumps(obj, ensure_ascii=False, default=str))
                        writer.writerow([_cell(v) for v in row])
                        count += 1
            jout.write("\n]\n")
        cout.flush()
        cout.detach()  # the spool stays open for the copy
        spool.seek(0)
        with zf.open(f"{name}.csv", "w") as craw:
            shutil.copyfileobj(spool, craw)
    return count


async def export_elder(
    conn: Conn,
    elder_id: str,
    out: IO[bytes] | Path,
    *,
    generated_by: str,
    now: datetime,
    progress: Callable[[str, int], None] | None = None,
) -> Exported:
    """Write everything held about `elder_id` to `out` as a zip (no scope check: the caller
    checked it). Reads in one repeatable-read snapshot when the connection is idle."""
    cur = await conn.execute("SELECT home_id FROM elders WHERE id = %s", (elder_id,))
    row = await cur.fetchone()
    if row is None:
        raise NoSuchElder(elder_id)
    params = {"elder": elder_id, "home": str(row[0])}
    counts: dict[str, int] = {}
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, _, query in TABLES:
            counts[name] = await _table(conn, zf, name, query, params)
            if progress is not None:
                progress(name, counts[name])
        manifest = {
            "format": "eldercare-elder-export/1",
            "elder_id": elder_id,
            "generated_at": now.isoformat(),
            "generated_by": generated_by,
            "tables": [
                {"name": n, "about": about, "rows": counts[n], "files": [f"{n}.json", f"{n}.csv"]}
                for n, about, _ in TABLES
            ],
        }
        zf.writestr("manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2))
    return Exported(elder_id, counts)
