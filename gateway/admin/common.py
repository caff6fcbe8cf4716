"""What every administrative operation shares: who acts (`Actor`), what their role may do
and where (`allow`, `in_scope`), the errors (each names the field or the object), the audit
row, and the field rules (ids, phones, time zones, languages)."""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from pydantic import BaseModel, ConfigDict

from devices.topics import valid_id
from gateway.access import SUBTREE
from gateway.auth import STAFF_ROLES, Principal

Conn = psycopg.AsyncConnection[Any]

SYSTEM_ROLE = "system"
"""The role of the command line run by whoever holds the database (every region)."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who performs an administrative operation: a signed-in person, or the command line
    (`system`, which holds the database and so every region)."""

    user_id: int | None
    name: str
    role: str
    region_id: str | None

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        """The actor of a signed-in person."""
        return cls(principal.user_id, principal.username, principal.role, principal.region_id)

    @classmethod
    def system(cls, name: str) -> Actor:
        """The command line, audited as `name` (e.g. ``cli:root``)."""
        return cls(None, name, SYSTEM_ROLE, None)

    @property
    def everywhere(self) -> bool:
        """Whether the actor's region is the whole tree (the command line, an operator)."""
        return self.role in (SYSTEM_ROLE, "operator")


class Op(enum.StrEnum):
    """Kinds of administrative operation, for the role check."""

    REGIONS = "regions"  # create, rename, close regions
    HOMES = "homes"  # create and edit homes
    ELDERS = "elders"  # enrol, close elders; import a village
    EDIT_ELDER = "edit_elder"  # edit an elder's file and contacts
    STAFF = "staff"  # staff accounts
    FAMILY = "family"  # invite family members, close family accounts
    AUDIT = "audit"  # read the administrative audit


_ALLOWED: dict[str, frozenset[Op]] = {
    SYSTEM_ROLE: frozenset(Op),
    "district_staff": frozenset(Op),
    "town_staff": frozenset(Op),
    # First responders who know the elders: they keep the files of their village up to date
    # and invite families; enrolment, closing and accounts are the town's and district's.
    "village_worker": frozenset({Op.EDIT_ELDER, Op.FAMILY}),
    # Devices and the places they are in, never personal data.
    "operator": frozenset({Op.REGIONS, Op.HOMES}),
}


class AdminError(Exception):
    """An operation refused; nothing was changed. `status` and `code` are the API's."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Forbidden(AdminError):
    """The actor's role may not do this, or the object is outside their region."""

    status = 403
    code = "forbidden"


class NotFound(AdminError):
    """No such object (only said to actors whose region is everywhere)."""

    status = 404
    code = "not_found"


class Conflict(AdminError):
    """The object's state does not allow it (taken id, region not empty, used link...)."""

    status = 409
    code = "conflict"


class Gone(AdminError):
    """An invitation that was used or has expired."""

    status = 410
    code = "gone"


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """What is wrong with one field of the input."""

    field: str
    message: str


class Invalid(AdminError):
    """Fields that cannot be accepted, each with a message naming it."""

    status = 422
    code = "invalid_request"

    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems


def plain(message: str) -> str:
    """A validation message without pydantic's "Value error, " prefix."""
    return message.removeprefix("Value error, ")


def invalid(field: str, message: str) -> Invalid:
    """One field's problem."""
    return Invalid([FieldProblem(field, message)])


def allow(actor: Actor, op: Op) -> None:
    """403 unless the actor's role may do `op` at all (regions are checked separately)."""
    if op not in _ALLOWED.get(actor.role, frozenset()):
        raise Forbidden(f"a {actor.role} may not change {op.value}")


async def in_scope(conn: Conn, actor: Actor, region_id: str) -> bool:
    """Whether `region_id` is in the actor's part of the tree (their region and below; the
    whole tree for the command line and operators)."""
    if actor.everywhere:
        return True
    if actor.role not in STAFF_ROLES or actor.region_id is None:
        return False
    cur = await conn.execute(
        SUBTREE + " SELECT %(target)s IN (SELECT id FROM subtree)",  # noqa: S608 - constant
        {"scope_region": actor.region_id, "target": region_id},
    )
    row = await cur.fetchone()
    return bool(row and row[0])


async def scope_regions(conn: Conn, actor: Actor) -> list[str] | None:
    """The region ids in the actor's part of the tree (None: every region)."""
    if actor.everywhere:
        return None
    if actor.role not in STAFF_ROLES or actor.region_id is None:
        return []
    cur = await conn.execute(
        SUBTREE + " SELECT id FROM subtree",  # noqa: S608 - constant SQL
        {"scope_region": actor.region_id},
    )
    return [str(r[0]) for r in await cur.fetchall()]


def outside(what: str, ident: str) -> Forbidden:
    """The refusal of an object outside the actor's region (the same whether it exists or
    not, so ids cannot be probed)."""
    return Forbidden(f"no {what} {ident} in your region")


async def audit(
    conn: Conn,
    actor: Actor,
    entity: str,
    entity_id: str,
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    """Write the audit row of one change (callers leave secrets out of before and after)."""
    await conn.execute(
        "INSERT INTO admin_audit (actor_id, actor, actor_role, entity, entity_id, action,"
        " before, after) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (
            actor.user_id,
            actor.name,
            actor.role,
            entity,
            entity_id,
            action,
            None if before is None else json.dumps(before, default=str, ensure_ascii=False),
            None if after is None else json.dumps(after, default=str, ensure_ascii=False),
        ),
    )


class Input(BaseModel):
    """An operation's input: unknown fields refused, strings stripped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Result(BaseModel):
    """An operation's result."""

    model_config = ConfigDict(from_attributes=True)


# --------------------------------------------------------------------------- field rules

ID_RULE = "lower-case letters, digits, '-' or '_', starting with a letter or digit, at most 64"


def check_id(value: str) -> str:
    """An id usable in MQTT topics and URLs (homes, devices, regions, elders)."""
    if not valid_id(value):
        raise ValueError(f"{value!r} is not a valid id: use {ID_RULE}")
    return value


_PHONE_JUNK = re.compile(r"[\s\-().·]")
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


def normalize_phone(value: str) -> str:
    """A phone number in E.164 form (+8613800000000). Accepts spaces, dashes and brackets,
    a Chinese mobile without +86 (13800000000), a Chinese landline with its area code
    (0571-88888888) and 00 for +. Empty stays empty."""
    raw = _PHONE_JUNK.sub("", value)
    if not raw:
        return ""
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    elif re.fullmatch(r"1[3-9][0-9]{9}", raw):
        raw = "+86" + raw
    elif re.fullmatch(r"0[1-9][0-9]{8,10}", raw):
        raw = "+86" + raw[1:]
    if not E164.fullmatch(raw):
        raise ValueError(
            f"{value!r} is not a phone number: write it as +86 138 0000 0000, a mobile "
            "13800000000 or a landline with its area code 0571-88888888"
        )
    return raw


def check_timezone(value: str) -> str:
    """An IANA time zone name (Asia/Shanghai)."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not a time zone: use a name like Asia/Shanghai") from None
    return value


_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


def check_language(value: str) -> str:
    """A language tag (zh, en, yue, zh-Hant...)."""
    if not _LANGUAGE.fullmatch(value):
        raise ValueError(f"{value!r} is not a language tag: use zh, en, yue, zh-Hant...")
    return value


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def check_email(value: str) -> str:
    """An e-mail address (empty allowed)."""
    if value and not _EMAIL.fullmatch(value):
        raise ValueError(f"{value!r} is not an e-mail address")
    return value
