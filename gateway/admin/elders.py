"""Elders: enrol one (in an existing home or with a new one), change the file, the
emergency contacts and the limits, and close the file when the elder leaves the service."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from alerts import mutes
from gateway.admin.common import (
    Actor,
    Conflict,
    Conn,
    Input,
    NotFound,
    Op,
    Result,
    allow,
    audit,
    check_id,
    check_language,
    in_scope,
    invalid,
    normalize_phone,
    outside,
    scope_regions,
)
from gateway.admin.homes import (
    ExternalId,
    HomeCreate,
    check_village,
    insert_home,
    new_id,
    scoped_home,
)
from gateway.admin.limits import ElderLimits

Phone = Annotated[str, Field(max_length=40), AfterValidator(normalize_phone)]
Language = Annotated[str, Field(min_length=2, max_length=16), AfterValidator(check_language)]
Condition = Annotated[str, Field(min_length=1, max_length=80)]
Name = Annotated[str, Field(min_length=1, max_length=120)]


class ContactIn(Input):
    """An emergency contact who is not a user: a neighbour, relative, doctor..."""

    name: Name
    relation: Annotated[str, Field(max_length=60)] = ""
    phone: Annotated[str, Field(min_length=1, max_length=40), AfterValidator(normalize_phone)]
    holds_key: bool = False
    """Holds a key to the elder's home."""


class ContactOut(Result):
    """An emergency contact as stored."""

    id: int
    name: str
    relation: str
    phone: str
    holds_key: bool
    position: int


def _born(value: date | None) -> date | None:
    if value is not None and not date(1890, 1, 1) <= value <= datetime.now(UTC).date():
        raise ValueError("born must be a past date after 1890, e.g. 1942-03-01")
    return value


Born = Annotated[date | None, AfterValidator(_born)]


class ElderCreate(Input):
    """A new elder: in an existing home (`home_id`) or a new one (`home`), exactly one.
    `id` is made up when absent (e-xxxxxxxxxx)."""

    id: Annotated[str, Field(min_length=1, max_length=64), AfterValidator(check_id)] | None = None
    home_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    home: HomeCreate | None = Field(default=None, validate_default=True)
    full_name: Name
    born: Born = None
    sex: Literal["", "female", "male"] = ""
    phone: Phone = ""
    language: Language = "zh"
    lives_alone: bool = True
    conditions: list[Condition] = Field(default_factory=list, max_length=40)
    notes: Annotated[str, Field(max_length=4000)] = ""
    thresholds: ElderLimits = Field(default_factory=ElderLimits)
    contacts: list[ContactIn] = Field(default_factory=list, max_length=10)
    external_id: ExternalId | None = None

    @field_validator("home")
    @classmethod
    def _one_home(cls, value: HomeCreate | None, info: ValidationInfo) -> HomeCreate | None:
        if "home_id" in info.data and (info.data["home_id"] is None) == (value is None):
            raise ValueError("give home_id (an existing home) or home (a new one), not both")
        return value


class ElderUpdate(Input):
    """Changes to an elder's file; absent fields are left alone. `thresholds` replaces the
    limits (an empty object: the detectors' defaults)."""

    full_name: Name | None = None
    born: Born = None
    sex: Literal["", "female", "male"] | None = None
    phone: Phone | None = None
    language: Language | None = None
    lives_alone: bool | None = None
    conditions: list[Condition] | None = Field(default=None, max_length=40)
    notes: Annotated[str, Field(max_length=4000)] | None = None
    thresholds: ElderLimits | None = None


class ElderClose(Input):
    """Why the elder leaves the service (moved, passed away, into care...)."""

    reason: Annotated[str, Field(min_length=1, max_length=200)]

    @field_validator("reason")
    @classmethod
    def _said(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("say why the elder leaves the service")
        return value


class ElderOut(Result):
    """An elder's file as the administration sees it."""

    id: str
    home_id: str
    village_id: str
    address: str
    full_name: str
    born: date | None
    sex: str
    phone: str
    language: str
    lives_alone: bool
    conditions: list[str]
    notes: str
    thresholds: dict[str, float]
    external_id: str | None
    closed_at: datetime | None
    closed_reason: str
    contacts: list[ContactOut]


_SELECT = """
SELECT e.id, e.home_id, h.village_id, h.address, e.full_name, e.born, e.sex, e.phone,
       e.language, e.lives_alone, e.conditions, e.notes, e.thresholds, e.external_id,
       e.closed_at, e.closed_reason
FROM elders e JOIN homes h ON h.id = e.home_id
"""
_COLUMNS = [
    "id",
    "home_id",
    "village_id",
    "address",
    "full_name",
    "born",
    "sex",
    "phone",
    "language",
    "lives_alone",
    "conditions",
    "notes",
    "thresholds",
    "external_id",
    "closed_at",
    "closed_reason",
]


async def _contacts(conn: Conn, elder_id: str) -> list[ContactOut]:
    cur = await conn.execute(
        "SELECT id, name, relation, phone, holds_key, position FROM elder_contacts"
        " WHERE elder_id = %s ORDER BY position, id",
        (elder_id,),
    )
    return [
        ContactOut(id=i, name=n, relation=r, phone=p, holds_key=k, position=pos)
        for i, n, r, p, k, pos in await cur.fetchall()
    ]


async def get_elder(conn: Conn, elder_id: str, *, by: str = "id") -> ElderOut | None:
    """An elder by id (or `by="external_id"`), no scope: callers check it."""
    column = "e.external_id" if by == "external_id" else "e.id"
    cur = await conn.execute(_SELECT + f" WHERE {column} = %s", (elder_id,))
    row = await cur.fetchone()
    if row is None:
        return None
    values: dict[str, Any] = dict(zip(_COLUMNS, row, strict=True))
    return ElderOut(**values, contacts=await _contacts(conn, str(values["id"])))


async def scoped_elder(conn: Conn, actor: Actor, elder_id: str) -> ElderOut:
    """An elder in the actor's region (403 otherwise, whether it exists or not)."""
    found = await get_elder(conn, elder_id)
    if found is None or not await in_scope(conn, actor, found.village_id):
        if actor.everywhere:
            raise NotFound(f"no elder {elder_id}")
        raise outside("elder", elder_id)
    return found


async def read_elder(conn: Conn, actor: Actor, elder_id: str) -> ElderOut:
    """An elder's record, for those who may edit it."""
    allow(actor, Op.EDIT_ELDER)
    return await scoped_elder(conn, actor, elder_id)


async def insert_contacts(conn: Conn, elder_id: str, contacts: list[ContactIn], start: int) -> None:
    """Add contacts after position `start`."""
    for i, c in enumerate(contacts):
        await conn.execute(
            "INSERT INTO elder_contacts (elder_id, name, relation, phone, holds_key, position)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (elder_id, c.name, c.relation, c.phone, c.holds_key, start + i),
        )


async def insert_elder(
    conn: Conn, actor: Actor, body: ElderCreate, home_id: str, action: str = "create"
) -> ElderOut:
    """Insert a checked elder in a checked home, with contacts and the audit row (inside the
    caller's transaction)."""
    elder_id = body.id or new_id("e")
    cur = await conn.execute(
        "INSERT INTO elders (id, home_id, full_name, born, sex, phone, language, lives_alone,"
        " conditions, notes, thresholds, external_id)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT DO NOTHING RETURNING id",
        (
            elder_id,
            home_id,
            body.full_name,
            body.born,
            body.sex,
            body.phone,
            body.language,
            body.lives_alone,
            body.conditions,
            body.notes,
            json.dumps(body.thresholds.stored()),
            body.external_id,
        ),
    )
    if await cur.fetchone() is None:
        raise Conflict(
            f"elder id {elder_id}, external id {body.external_id} or an elder of home"
            f" {home_id} already exists"
        )
    await insert_contacts(conn, elder_id, body.contacts, 0)
    out = await get_elder(conn, elder_id)
    assert out is not None
    await audit(conn, actor, "elder", elder_id, action, None, out.model_dump())
    return out


async def create_elder(
    conn: Conn, actor: Actor, body: ElderCreate, default_tz: str = "Asia/Shanghai"
) -> ElderOut:
    """Enrol an elder in a home of the actor's region (the home created with it when
    `home` is given): one transaction, audited."""
    allow(actor, Op.ELDERS)
    if body.home is not None:
        await check_village(conn, actor, body.home.village_id, "home.village_id")
    async with conn.transaction():
        if body.home is not None:
            home_id = (await insert_home(conn, actor, body.home, default_tz)).id
        else:
            assert body.home_id is not None
            home = await scoped_home(conn, actor, body.home_id)
            if home.closed_at is not None:
                raise invalid("home_id", f"home {home.id} is closed")
            home_id = home.id
        return await insert_elder(conn, actor, body, home_id)


async def update_elder(conn: Conn, actor: Actor, elder_id: str, body: ElderUpdate) -> ElderOut:
    """Change an elder's file (staff of the elder's region, village workers too)."""
    allow(actor, Op.EDIT_ELDER)
    async with conn.transaction():
        before = await scoped_elder(conn, actor, elder_id)
        changes: dict[str, Any] = body.model_dump(exclude_unset=True, exclude={"thresholds"})
        changes = {k: v for k, v in changes.items() if v is not None or k == "born"}
        if body.thresholds is not None:
            changes["thresholds"] = body.thresholds.stored()
        after = before.model_copy(update=changes)
        if after == before:
            return before
        await conn.execute(
            "UPDATE elders SET full_name = %s, born = %s, sex = %s, phone = %s, language = %s,"
            " lives_alone = %s, conditions = %s, notes = %s, thresholds = %s WHERE id = %s",
            (
                after.full_name,
                after.born,
                after.sex,
                after.phone,
                after.language,
                after.lives_alone,
                after.conditions,
                after.notes,
                json.dumps(after.thresholds),
                elder_id,
            ),
        )
        await audit(
            conn, actor, "elder", elder_id, "update", before.model_dump(), after.model_dump()
        )
    return after


async def close_elder(
    conn: Conn, actor: Actor, elder_id: str, body: ElderClose, now: datetime | None = None
) -> ElderOut:
    """The elder leaves the service: monitoring ends (the home in away mode with no end, so
    no wellbeing alert or care-visit target; the home closed; its devices retired,
    their credentials revoked), and every record is kept (deleting it is a separate right)."""
    allow(actor, Op.ELDERS)
    now = now or datetime.now(UTC)
    async with conn.transaction():
        before = await scoped_elder(conn, actor, elder_id)
        if before.closed_at is not None:
            raise Conflict(f"elder {elder_id} left the service on {before.closed_at:%Y-%m-%d}")
        await conn.execute(
            "UPDATE elders SET closed_at = %s, closed_reason = %s WHERE id = %s",
            (now, body.reason, elder_id),
        )
        await conn.execute("UPDATE homes SET closed_at = %s WHERE id = %s", (now, before.home_id))
        await mutes.set_home_mode(
            conn,
            before.home_id,
            "away",
            since=now,
            reason=f"left the service: {body.reason}"[:200],
            user_id=actor.user_id,
        )
        revoked = await _retire_devices(conn, actor, before.home_id, now)
        after = before.model_copy(update={"closed_at": now, "closed_reason": body.reason})
        await audit(
            conn,
            actor,
            "elder",
            elder_id,
            "close",
            before.model_dump(),
            {**after.model_dump(), "retired_devices": revoked},
        )
    return after


async def _retire_devices(conn: Conn, actor: Actor, home_id: str, now: datetime) -> list[str]:
    """Retire the home's devices as ingest.device_lifecycle does (out of the registry and
    the device watch, credential revoked, a `device_events` row each); the broker's files
    follow at the next `eldercare broker config` or device change."""
    cur = await conn.execute(
        "UPDATE devices SET retired_at = %s WHERE home_id = %s AND retired_at IS NULL RETURNING id",
        (now, home_id),
    )
    retired = sorted(str(r[0]) for r in await cur.fetchall())
    await conn.execute(
        "UPDATE device_credentials SET revoked_at = %s WHERE device_id = ANY(%s)"
        " AND revoked_at IS NULL",
        (now, retired),
    )
    for device_id in retired:
        await conn.execute(
            "INSERT INTO device_events (device_id, action, user_id, actor, at, detail)"
            " VALUES (%s, 'retire', %s, %s, %s, %s)",
            (device_id, actor.user_id, actor.name, now,
             json.dumps({"reason": "the elder left the service"})),
        )  # fmt: skip
    return retired


async def add_contact(conn: Conn, actor: Actor, elder_id: str, body: ContactIn) -> ContactOut:
    """Add an emergency contact at the end of the elder's list."""
    allow(actor, Op.EDIT_ELDER)
    async with conn.transaction():
        elder = await scoped_elder(conn, actor, elder_id)
        start = max((c.position for c in elder.contacts), default=-1) + 1
        await insert_contacts(conn, elder_id, [body], start)
        added = (await _contacts(conn, elder_id))[-1]
        await audit(conn, actor, "contact", str(added.id), "create", None, _with(added, elder_id))
    return added


def _with(contact: ContactOut, elder_id: str) -> dict[str, Any]:
    return {**contact.model_dump(), "elder_id": elder_id}


async def update_contact(
    conn: Conn, actor: Actor, elder_id: str, contact_id: int, body: ContactIn
) -> ContactOut:
    """Replace an emergency contact's name, relation, phone and key holding."""
    allow(actor, Op.EDIT_ELDER)
    async with conn.transaction():
        elder = await scoped_elder(conn, actor, elder_id)
        before = next((c for c in elder.contacts if c.id == contact_id), None)
        if before is None:
            raise NotFound(f"elder {elder_id} has no contact {contact_id}")
        after = before.model_copy(update=body.model_dump())
        if after != before:
            await conn.execute(
                "UPDATE elder_contacts SET name = %s, relation = %s, phone = %s, holds_key = %s"
                " WHERE id = %s",
                (body.name, body.relation, body.phone, body.holds_key, contact_id),
            )
            await audit(
                conn, actor, "contact", str(contact_id), "update",
                _with(before, elder_id), _with(after, elder_id),
            )  # fmt: skip
    return after


async def remove_contact(conn: Conn, actor: Actor, elder_id: str, contact_id: int) -> ContactOut:
    """Remove an emergency contact."""
    allow(actor, Op.EDIT_ELDER)
    async with conn.transaction():
        elder = await scoped_elder(conn, actor, elder_id)
        before = next((c for c in elder.contacts if c.id == contact_id), None)
        if before is None:
            raise NotFound(f"elder {elder_id} has no contact {contact_id}")
        await conn.execute("DELETE FROM elder_contacts WHERE id = %s", (contact_id,))
        await audit(
            conn, actor, "contact", str(contact_id), "delete", _with(before, elder_id), None
        )
    return before


class ElderRow(Result):
    """One line of the administration's list of elders."""

    id: str
    full_name: str
    home_id: str
    village_id: str
    village: str
    address: str
    phone: str
    closed_at: datetime | None
    contacts: int
    family: int


async def list_elders(
    conn: Conn,
    actor: Actor,
    village: str | None = None,
    include_closed: bool = True,
    limit: int = 500,
) -> list[ElderRow]:
    """The elders of the actor's region (or one village of it), by village and name."""
    allow(actor, Op.EDIT_ELDER)
    regions = await scope_regions(conn, actor)
    if village is not None and regions is not None and village not in regions:
        raise outside("village", village)
    cur = await conn.execute(
        "SELECT e.id, e.full_name, e.home_id, h.village_id, v.name, h.address, e.phone,"
        " e.closed_at,"
        " (SELECT count(*) FROM elder_contacts c WHERE c.elder_id = e.id),"
        " (SELECT count(*) FROM family_links f WHERE f.elder_id = e.id)"
        " FROM elders e JOIN homes h ON h.id = e.home_id JOIN regions v ON v.id = h.village_id"
        " WHERE (%(regions)s::text[] IS NULL OR h.village_id = ANY(%(regions)s))"
        " AND (%(village)s::text IS NULL OR h.village_id = %(village)s)"
        " AND (%(closed)s OR e.closed_at IS NULL)"
        " ORDER BY v.name, e.full_name, e.id LIMIT %(limit)s",
        {"regions": regions, "village": village, "closed": include_closed, "limit": limit},
    )
    names = [
        "id",
        "full_name",
        "home_id",
        "village_id",
        "village",
        "address",
        "phone",
        "closed_at",
        "contacts",
        "family",
    ]
    return [ElderRow(**dict(zip(names, r, strict=True))) for r in await cur.fetchall()]
