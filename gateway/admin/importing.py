"""Bulk import of a village's homes and elders from a register (CSV or .xlsx, columns in
`gateway.admin.spreadsheet.COLUMNS`). A dry run lists every row's problems (row number,
column, message) and writes nothing; the import itself is one transaction (all or
nothing) and idempotent: rows are matched by their external id, so a re-run changes only
what changed in the file."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any, Literal
from zoneinfo import ZoneInfo

import psycopg
from pydantic import ValidationError

from alerts.consent import GivenBy, Method, Purpose
from gateway.admin import spreadsheet
from gateway.admin.common import (
    Actor,
    AdminError,
    Conn,
    Op,
    Result,
    allow,
    audit,
    plain,
)
from gateway.admin.elders import (
    ContactIn,
    ElderCreate,
    ElderOut,
    get_elder,
    insert_contacts,
    insert_elder,
)
from gateway.admin.homes import check_village, get_home, home_by_external_id, insert_home
from gateway.privacy import consents

Action = Literal["create", "update", "unchanged", "closed"]


class RowProblem(Result):
    """What is wrong in one row: its number in the file (the header is row 1), the column
    as written in the file's header, and what to do."""

    row: int
    column: str
    message: str


class RowResult(Result):
    """What the import does (or did) with one row."""

    row: int
    external_id: str
    full_name: str
    home_id: str | None
    elder_id: str | None
    action: Action


class ImportReport(Result):
    """The outcome of an import or of its dry run. `written`: whether anything was stored
    (never with a problem, never in a dry run)."""

    village_id: str
    dry_run: bool
    written: bool
    rows: int
    problems: list[RowProblem]
    items: list[RowResult]
    created: int
    updated: int
    unchanged: int


def _column_of(loc: tuple[Any, ...]) -> str:
    if loc[:1] == ("home",) and len(loc) > 1:
        return {"id": "home_id"}.get(str(loc[1]), str(loc[1]))
    if loc[:1] == ("contacts",) and len(loc) > 2:
        prefix = "contact" if loc[1] == 0 else f"contact{int(loc[1]) + 1}"
        return f"{prefix}_{loc[2]}"
    return str(loc[0]) if loc else ""


def _contact(cells: dict[str, Any], prefix: str, problems: dict[str, str]) -> dict[str, Any] | None:
    name = spreadsheet.text(cells.get(f"{prefix}_name"))
    phone = spreadsheet.text(cells.get(f"{prefix}_phone"))
    relation = spreadsheet.text(cells.get(f"{prefix}_relation"))
    if not (name or phone or relation):
        return None
    try:
        holds = spreadsheet.yes_no(cells.get(f"{prefix}_holds_key"), False)
    except ValueError as exc:
        problems[f"{prefix}_holds_key"] = str(exc)
        holds = False
    return {"name": name, "relation": relation, "phone": phone, "holds_key": holds}


def parse_row(cells: dict[str, Any], village_id: str) -> tuple[ElderCreate | None, dict[str, str]]:
    """One row as an elder with a new home, or the problems of its cells (key -> message)."""
    problems: dict[str, str] = {}
    values: dict[str, Any] = {}

    def take(key: str, convert: Any, *args: Any) -> Any:
        try:
            return convert(cells.get(key), *args)
        except ValueError as exc:
            problems[key] = str(exc)
            return None

    ext = spreadsheet.text(cells.get("external_id"))
    home: dict[str, Any] = {
        "village_id": village_id,
        "address": spreadsheet.text(cells.get("address")),
        "external_id": ext or None,
    }
    for key in ("home_id", "timezone"):
        if spreadsheet.text(cells.get(key)):
            home["id" if key == "home_id" else key] = spreadsheet.text(cells.get(key))
    for key in ("lat", "lon"):
        if spreadsheet.text(cells.get(key)):
            home[key] = spreadsheet.text(cells.get(key))
    values["home"] = home
    values["external_id"] = ext or None
    values["full_name"] = spreadsheet.text(cells.get("full_name"))
    values["born"] = take("born", spreadsheet.a_date)
    values["sex"] = take("sex", spreadsheet.sex) or ""
    values["phone"] = spreadsheet.text(cells.get("phone"))
    values["language"] = spreadsheet.text(cells.get("language")) or "zh"
    values["lives_alone"] = take("lives_alone", spreadsheet.yes_no, True)
    values["conditions"] = spreadsheet.conditions(cells.get("conditions"))
    values["notes"] = spreadsheet.text(cells.get("notes"))
    contacts = []
    for prefix in ("contact", "contact2"):
        found = _contact(cells, prefix, problems)
        if found is not None:
            contacts.append(found)
    values["contacts"] = contacts
    if not ext:
        problems["external_id"] = "every row needs an external id (the office's own id)"
    try:
        body = ElderCreate.model_validate(
            {k: v for k, v in values.items() if v is not None or k == "born"}
        )
    except ValidationError as exc:
        for err in exc.errors():
            problems.setdefault(_column_of(tuple(err["loc"])), plain(str(err["msg"])))
        return None, problems
    return (None, problems) if problems else (body, problems)


def _same_contact(a: ContactIn, b: Any) -> bool:
    return (a.name, a.relation, a.phone, a.holds_key) == (b.name, b.relation, b.phone, b.holds_key)


async def _apply(
    conn: Conn, actor: Actor, body: ElderCreate, village_id: str, default_tz: str
) -> tuple[Action, str, str]:
    """Create or update one row's home and elder; (action, home id, elder id)."""
    assert body.home is not None
    assert body.external_id is not None
    existing = await get_elder(conn, body.external_id, by="external_id")
    if existing is None:
        home = await home_by_external_id(conn, body.external_id)
        if home is not None and home.village_id != village_id:
            raise AdminError(f"external id {body.external_id} is a home of {home.village_id}")
        if home is None:
            if body.home.id is not None and await get_home(conn, body.home.id) is not None:
                raise AdminError(f"home id {body.home.id} is taken by another home")
            home = await insert_home(conn, actor, body.home, default_tz)
        elder = await insert_elder(conn, actor, body, home.id, action="import")
        return "create", home.id, elder.id
    if existing.village_id != village_id:
        raise AdminError(f"external id {body.external_id} is an elder of {existing.village_id}")
    if existing.closed_at is not None:
        return "closed", existing.home_id, existing.id
    if body.home.id is not None and body.home.id != existing.home_id:
        raise AdminError(f"elder {body.external_id} lives in home {existing.home_id}, not "
                         f"{body.home.id}")  # fmt: skip
    changed = await _update(conn, actor, existing, body)
    return ("update" if changed else "unchanged"), existing.home_id, existing.id


async def _update(conn: Conn, actor: Actor, existing: ElderOut, body: ElderCreate) -> bool:
    assert body.home is not None
    home = await get_home(conn, existing.home_id)
    assert home is not None
    new_home = home.model_copy(
        update={"address": body.home.address, "lat": body.home.lat, "lon": body.home.lon}
    )
    if body.home.timezone:
        new_home = new_home.model_copy(update={"timezone": body.home.timezone})
    changed = False
    if new_home != home:
        await conn.execute(
            "UPDATE homes SET address = %s, lat = %s, lon = %s, timezone = %s WHERE id = %s",
            (new_home.address, new_home.lat, new_home.lon, new_home.timezone, home.id),
        )
        await audit(conn, actor, "home", home.id, "import", home.model_dump(),
                    new_home.model_dump())  # fmt: skip
        changed = True
    fields = ("full_name", "born", "sex", "phone", "language", "lives_alone", "conditions",
              "notes")  # fmt: skip
    after = existing.model_copy(update={f: getattr(body, f) for f in fields})
    new_contacts = [c for c in body.contacts
                    if not any(_same_contact(c, o) for o in existing.contacts)]  # fmt: skip
    if after != existing or new_contacts:
        await conn.execute(
            "UPDATE elders SET full_name = %s, born = %s, sex = %s, phone = %s, language = %s,"
            " lives_alone = %s, conditions = %s, notes = %s WHERE id = %s",
            (*(getattr(after, f) for f in fields), existing.id),
        )
        for c in new_contacts:  # a contact with the same phone is changed, others added
            cur = await conn.execute(
                "UPDATE elder_contacts SET name = %s, relation = %s, holds_key = %s"
                " WHERE elder_id = %s AND phone = %s RETURNING id",
                (c.name, c.relation, c.holds_key, existing.id, c.phone),
            )
            if await cur.fetchone() is None:
                start = max((o.position for o in existing.contacts), default=-1) + 1
                await insert_contacts(conn, existing.id, [c], start)
        fresh = await get_elder(conn, existing.id)
        assert fresh is not None
        await audit(conn, actor, "elder", existing.id, "import", existing.model_dump(),
                    fresh.model_dump())  # fmt: skip
        changed = True
    return changed


@dataclass(frozen=True, slots=True)
class _Consent:
    """The consent a row records: the signed paper form's day, who signed, the form's number,
    and whether sharing with the family was agreed too."""

    given_at: datetime
    guardian: str
    relation: str
    family: bool
    reference: str


def _consent_of(cells: dict[str, Any], problems: dict[str, str], tz: str) -> _Consent | None:
    day_text = spreadsheet.text(cells.get("consent_date"))
    others = [k for k in ("consent_guardian", "consent_guardian_relation", "consent_family",
                          "consent_reference") if spreadsheet.text(cells.get(k))]  # fmt: skip
    if not day_text:
        if others:
            problems[others[0]] = "needs consent_date (the day the consent form was signed)"
        return None
    try:
        day = spreadsheet.a_date(cells.get("consent_date"))
        family = spreadsheet.yes_no(cells.get("consent_family"), False)
    except ValueError as exc:
        problems["consent_date" if "date" in str(exc) else "consent_family"] = str(exc)
        return None
    assert day is not None
    guardian = spreadsheet.text(cells.get("consent_guardian"))
    relation = spreadsheet.text(cells.get("consent_guardian_relation"))
    if guardian and not relation:
        problems["consent_guardian_relation"] = "a guardian's consent needs the relation"
    if relation and not guardian:
        problems["consent_guardian"] = "the relation needs the guardian's name"
    given_at = datetime.combine(day, time(12), ZoneInfo(tz))
    if day > datetime.now(ZoneInfo(tz)).date():
        problems["consent_date"] = "the consent date is in the future"
    return _Consent(given_at, guardian, relation, family, spreadsheet.text(
        cells.get("consent_reference")))  # fmt: skip


async def _record_consent(conn: Conn, actor: Actor, elder_id: str, c: _Consent) -> None:
    """Record the row's consent (monitoring, and sharing with the family if agreed) unless
    a current one of that purpose is there already."""
    now = datetime.now(UTC)
    current = {k.purpose for k in await consents.consents(conn, elder_id, now) if k.current}
    wanted = [Purpose.MONITORING] + ([Purpose.SHARE_FAMILY] if c.family else [])
    for purpose in wanted:
        if purpose in current:
            continue
        await consents.record(
            conn, elder_id, purpose=purpose,
            given_by=GivenBy.GUARDIAN if c.guardian else GivenBy.ELDER,
            method=Method.PAPER_FORM, given_at=c.given_at, recorded_by=actor.user_id,
            now=now, guardian_name=c.guardian, guardian_relation=c.relation,
            reference=c.reference,
        )  # fmt: skip


class _Refused(Exception):
    """Raised inside the import's transaction to roll it back."""


async def import_village(
    conn: Conn,
    actor: Actor,
    village_id: str,
    data: bytes,
    filename: str,
    *,
    dry_run: bool,
    default_tz: str = "Asia/Shanghai",
) -> ImportReport:
    """Check (dry run) or import a village's register. Every row is checked, against the
    database too, inside a transaction that a dry run or any problem rolls back."""
    allow(actor, Op.ELDERS)
    await check_village(conn, actor, village_id, "village")
    sheet = spreadsheet.read_sheet(data, filename)
    header = sheet.headers
    problems = [RowProblem(row=p.row, column=p.column, message=p.message) for p in sheet.problems]
    parsed: list[tuple[int, ElderCreate, _Consent | None]] = []
    seen: dict[str, dict[str, int]] = {"external_id": {}, "home_id": {}}
    for number, cells in sheet.rows:
        body, cell_problems = parse_row(cells, village_id)
        consent = _consent_of(cells, cell_problems, default_tz)
        for key, message in cell_problems.items():
            problems.append(RowProblem(row=number, column=header.get(key, key), message=message))
        for key in ("external_id", "home_id"):
            value = spreadsheet.text(cells.get(key))
            if value and value in seen[key]:
                problems.append(RowProblem(row=number, column=header.get(key, key),
                                message=f"{value} is also in row {seen[key][value]}"))  # fmt: skip
            elif value:
                seen[key][value] = number
        if body is not None and not cell_problems:
            parsed.append((number, body, consent))
    items: list[RowResult] = []
    try:
        async with conn.transaction():
            for number, body, consent in parsed:
                try:
                    async with conn.transaction():
                        action, home_id, elder_id = await _apply(
                            conn, actor, body, village_id, default_tz
                        )
                        if consent is not None and action != "closed":
                            await _record_consent(conn, actor, elder_id, consent)
                except (AdminError, psycopg.errors.IntegrityError, consents.ConsentError) as exc:
                    message = (
                        exc.message
                        if isinstance(exc, AdminError)
                        else str(exc)
                        if isinstance(exc, consents.ConsentError)
                        else str(exc.diag.message_primary)
                    )
                    problems.append(RowProblem(row=number, column="", message=message))
                    continue
                assert body.external_id is not None
                items.append(RowResult(row=number, external_id=body.external_id,
                                       full_name=body.full_name, home_id=home_id,
                                       elder_id=elder_id, action=action))  # fmt: skip
            if dry_run or problems:
                raise _Refused
            await audit(conn, actor, "import", village_id, "import", None, {
                "file": filename, "sha256": hashlib.sha256(data).hexdigest(),
                "rows": len(parsed),
                "actions": {i.external_id: i.action for i in items},
            })  # fmt: skip
    except _Refused:
        pass
    problems.sort(key=lambda p: (p.row, p.column))
    written = not dry_run and not problems
    count = {a: sum(i.action == a for i in items) for a in ("create", "update", "unchanged")}
    return ImportReport(
        village_id=village_id,
        dry_run=dry_run,
        written=written,
        rows=len(sheet.rows),
        problems=problems,
        items=items if not problems else [],
        created=count["create"] if not problems else 0,
        updated=count["update"] if not problems else 0,
        unchanged=count["unchanged"] if not problems else 0,
    )
