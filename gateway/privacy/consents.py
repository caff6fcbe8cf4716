"""Consent records per elder: record, list, withdraw; and the gate that refuses an elder's
health data (readings, status, timeline) without a current consent (403 `consent_missing`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg.rows import dict_row

from alerts.consent import Conn, GivenBy, Method, Purpose, missing
from gateway.errors import ApiError

HEALTH_DATA = frozenset({"readings", "status", "timeline", "day"})
"""The `what`s of health-data reads (`health_reads.what`) that need a current consent."""


@dataclass(frozen=True, slots=True)
class Consent:
    """One consent record."""

    id: int
    elder_id: str
    purpose: str
    given_by: str
    guardian_name: str
    guardian_relation: str
    method: str
    reference: str
    given_at: datetime
    recorded_at: datetime
    recorded_by: int | None
    recorded_by_name: str | None
    withdrawn_at: datetime | None
    withdrawn_by: int | None
    withdrawn_by_name: str | None
    withdrawal_note: str
    current: bool


class ConsentError(ValueError):
    """A consent that cannot be recorded or withdrawn as asked (the message says why)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


_SELECT = """
SELECT c.id, c.elder_id, c.purpose, c.given_by, c.guardian_name, c.guardian_relation,
       c.method, c.reference, c.given_at, c.recorded_at, c.recorded_by,
       ur.display_name AS recorded_by_name, c.withdrawn_at, c.withdrawn_by,
       uw.display_name AS withdrawn_by_name, c.withdrawal_note,
       (c.withdrawn_at IS NULL AND c.given_at <= %(now)s) AS current
FROM elder_consents c
LEFT JOIN users ur ON ur.id = c.recorded_by
LEFT JOIN users uw ON uw.id = c.withdrawn_by
"""


async def consents(conn: Conn, elder_id: str, now: datetime) -> list[Consent]:
    """Every consent record of the elder, current ones first, then newest first."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            _SELECT + " WHERE c.elder_id = %(elder)s"
            " ORDER BY (c.withdrawn_at IS NULL) DESC, c.given_at DESC, c.id DESC",
            {"elder": elder_id, "now": now},
        )
        return [Consent(**r) for r in await cur.fetchall()]


async def consent(conn: Conn, elder_id: str, consent_id: int, now: datetime) -> Consent | None:
    """One consent record of the elder."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            _SELECT + " WHERE c.elder_id = %(elder)s AND c.id = %(id)s",
            {"elder": elder_id, "id": consent_id, "now": now},
        )
        row = await cur.fetchone()
    return None if row is None else Consent(**row)


async def record(
    conn: Conn,
    elder_id: str,
    *,
    purpose: Purpose,
    given_by: GivenBy,
    method: Method,
    given_at: datetime,
    recorded_by: int | None,
    now: datetime,
    guardian_name: str = "",
    guardian_relation: str = "",
    reference: str = "",
) -> int:
    """Record a consent; returns its id. A guardian needs a name and relation; a consent
    cannot be dated in the future, and an elder has one current consent per purpose
    (withdraw the old one first)."""
    if given_by is GivenBy.GUARDIAN and not (guardian_name.strip() and guardian_relation.strip()):
        raise ConsentError(
            "invalid_consent", "a guardian's consent needs guardian_name and guardian_relation"
        )
    if given_by is GivenBy.ELDER and (guardian_name or guardian_relation):
        raise ConsentError(
            "invalid_consent", "guardian_name / guardian_relation are for given_by=guardian only"
        )
    if given_at.tzinfo is None:
        raise ConsentError("invalid_consent", "given_at needs a time zone")
    if given_at > now:
        raise ConsentError("invalid_consent", "given_at is in the future")
    cur = await conn.execute(
        "SELECT id FROM elder_consents WHERE elder_id = %s AND purpose = %s"
        " AND withdrawn_at IS NULL",
        (elder_id, purpose.value),
    )
    held = await cur.fetchone()
    if held is not None:
        raise ConsentError(
            "consent_exists",
            f"elder {elder_id} has a current {purpose.value} consent already (#{held[0]});"
            " withdraw it first",
        )
    cur = await conn.execute(
        "INSERT INTO elder_consents (elder_id, purpose, given_by, guardian_name,"
        " guardian_relation, method, reference, given_at, recorded_at, recorded_by)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (
            elder_id,
            purpose.value,
            given_by.value,
            guardian_name.strip(),
            guardian_relation.strip(),
            method.value,
            reference.strip(),
            given_at,
            now,
            recorded_by,
        ),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def withdraw(
    conn: Conn, elder_id: str, consent_id: int, *, by: int | None, now: datetime, note: str = ""
) -> None:
    """Withdraw a current consent now (from then on its purpose is refused)."""
    cur = await conn.execute(
        "UPDATE elder_consents SET withdrawn_at = greatest(%s, given_at), withdrawn_by = %s,"
        " withdrawal_note = %s WHERE elder_id = %s AND id = %s AND withdrawn_at IS NULL"
        " RETURNING id",
        (now, by, note.strip(), elder_id, consent_id),
    )
    if await cur.fetchone() is None:
        found = await consent(conn, elder_id, consent_id, now)
        if found is None:
            raise ConsentError("not_found", f"elder {elder_id} has no consent #{consent_id}")
        raise ConsentError("already_withdrawn", f"consent #{consent_id} was withdrawn already")


async def needed(conn: Conn, user_id: int, elder_id: str) -> frozenset[Purpose]:
    """What a health-data read of `elder_id` by `user_id` needs: monitoring, and for a
    linked family member sharing with the family too."""
    cur = await conn.execute("SELECT role FROM users WHERE id = %s", (user_id,))
    row = await cur.fetchone()
    if row is not None and row[0] == "family":
        return frozenset({Purpose.MONITORING, Purpose.SHARE_FAMILY})
    return frozenset({Purpose.MONITORING})


async def require(conn: Conn, user_id: int, elder_id: str, what: str, now: datetime) -> None:
    """403 `consent_missing` when `what` is health data (`HEALTH_DATA`) and the elder has no
    current consent to the purposes this reader needs."""
    if what not in HEALTH_DATA:
        return
    lacking = await missing(conn, elder_id, await needed(conn, user_id, elder_id), now)
    if lacking:
        names = ", ".join(sorted(p.value for p in lacking))
        raise ApiError(
            403,
            "consent_missing",
            f"elder {elder_id} has no current consent to {names}: their health data is not"
            " shown (record the consent in the elder's file)",
        )
