"""Accounts: staff (role, region, phone, language, how they are reached; the password set
through an invitation link), and closing a staff or family account."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from gateway.admin.common import (
    Actor,
    Conflict,
    Conn,
    Forbidden,
    Input,
    NotFound,
    Op,
    Result,
    allow,
    audit,
    in_scope,
    invalid,
    outside,
    scope_regions,
)
from gateway.admin.invitations import (
    Email,
    InvitationOut,
    Links,
    Locale,
    Phone,
    Username,
    invite_staff,
)

StaffRole = Literal["district_staff", "town_staff", "village_worker", "operator"]
TIER_OF_ROLE = {"district_staff": "district", "town_staff": "town", "village_worker": "village"}
"""The tier of the region a staff role works in."""
Channel = Literal["sms", "voice", "email", "console"]
DEFAULT_CHANNELS: tuple[Channel, ...] = ("sms", "email", "console")
UNUSABLE = "!no-password"
"""The password hash of an account whose password is not set (never verifies: not argon2)."""


class StaffCreate(Input):
    """A new staff account. `channels`: how alerts reach them, in order (sms and voice need
    the phone, email the address; the live console always works while they are signed in).
    An operator account (no region) only from the command line."""

    username: Username
    display_name: Annotated[str, Field(min_length=1, max_length=120)]
    role: StaffRole
    region_id: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        default=None, validate_default=True
    )
    phone: Phone = ""
    email: Email = ""
    locale: Locale = "zh"
    channels: list[Channel] = Field(default_factory=lambda: list(DEFAULT_CHANNELS))
    invite_hours: Annotated[int, Field(ge=1, le=24 * 30)] = 72

    @field_validator("region_id")
    @classmethod
    def _region(cls, value: str | None, info: ValidationInfo) -> str | None:
        role = info.data.get("role")
        if role is not None and (role == "operator") != (value is None):
            raise ValueError("staff need a region_id (of their tier); an operator has none")
        return value

    @field_validator("channels")
    @classmethod
    def _reachable(cls, value: list[Channel], info: ValidationInfo) -> list[Channel]:
        if {"sms", "voice"} & set(value) and not info.data.get("phone"):
            raise ValueError("channels sms and voice need a phone")
        if "email" in value and not info.data.get("email"):
            raise ValueError("channel email needs an email")
        return value


class StaffUpdate(Input):
    """Changes to a staff account; absent fields are left alone."""

    display_name: Annotated[str, Field(min_length=1, max_length=120)] | None = None
    phone: Phone | None = None
    locale: Locale | None = None


class AccountOut(Result):
    """An account as the administration sees it (never its password)."""

    id: int
    username: str
    display_name: str
    role: str
    region_id: str | None
    phone: str
    locale: str
    closed_at: datetime | None
    channels: list[str]
    password_set: bool


class StaffCreated(Result):
    """A staff account just made, and the link that sets its password (shown once)."""

    account: AccountOut
    invitation: InvitationOut


_SELECT = """
SELECT u.id, u.username, u.display_name, u.role, u.region_id, u.phone, u.locale, u.closed_at,
       ARRAY(SELECT c.channel FROM contact_channels c WHERE c.user_id = u.id
             ORDER BY c.position, c.id),
       u.password_hash NOT LIKE '!%%'
FROM users u
"""
_NAMES = [
    "id",
    "username",
    "display_name",
    "role",
    "region_id",
    "phone",
    "locale",
    "closed_at",
    "channels",
    "password_set",
]


def _account(row: Any) -> AccountOut:
    return AccountOut(**dict(zip(_NAMES, row, strict=True)))


async def get_account(conn: Conn, username: str) -> AccountOut | None:
    """An account by username (no scope)."""
    cur = await conn.execute(_SELECT + " WHERE u.username = %s", (username,))
    row = await cur.fetchone()
    return None if row is None else _account(row)


async def _check_region(conn: Conn, actor: Actor, role: str, region_id: str | None) -> None:
    if role == "operator":
        if actor.role != "system":
            raise Forbidden("operator accounts are made from the command line")
        return
    assert region_id is not None
    if not await in_scope(conn, actor, region_id):
        raise outside("region", region_id)
    cur = await conn.execute("SELECT tier FROM regions WHERE id = %s", (region_id,))
    row = await cur.fetchone()
    if row is None:
        raise invalid("region_id", f"no region {region_id}")
    if row[0] != TIER_OF_ROLE[role]:
        raise invalid(
            "region_id", f"a {role} works in a {TIER_OF_ROLE[role]}; {region_id} is a {row[0]}"
        )


async def create_staff(conn: Conn, links: Links, actor: Actor, body: StaffCreate) -> StaffCreated:
    """Create a staff account in the actor's region, with its contact channels and an
    invitation link that sets its password."""
    allow(actor, Op.STAFF)
    await _check_region(conn, actor, body.role, body.region_id)
    targets = {"sms": body.phone, "voice": body.phone, "email": body.email, "console": "console"}
    channels = [(c, targets[c]) for c in dict.fromkeys(body.channels) if targets[c]]
    async with conn.transaction():
        cur = await conn.execute(
            "INSERT INTO users (username, password_hash, display_name, role, region_id, phone,"
            " locale) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (username) DO NOTHING"
            " RETURNING id",
            (
                body.username,
                f"{UNUSABLE}-{secrets.token_hex(8)}",
                body.display_name,
                body.role,
                body.region_id,
                body.phone,
                body.locale,
            ),
        )
        row = await cur.fetchone()
        if row is None:
            raise invalid("username", f"{body.username} is taken: choose another")
        user_id = int(row[0])
        for position, (channel, target) in enumerate(channels):
            await conn.execute(
                "INSERT INTO contact_channels (user_id, channel, target, position)"
                " VALUES (%s, %s, %s, %s)",
                (user_id, channel, target, position),
            )
        account = await get_account(conn, body.username)
        assert account is not None
        await audit(conn, actor, "user", str(user_id), "create", None, account.model_dump())
        invitation = await invite_staff(conn, links, actor, user_id, body.invite_hours)
    return StaffCreated(account=account, invitation=invitation)


async def _scoped_account(conn: Conn, actor: Actor, username: str) -> AccountOut:
    found = await get_account(conn, username)
    if found is None:
        if actor.everywhere:
            raise NotFound(f"no account {username}")
        raise outside("account", username)
    if found.role == "family":
        allow(actor, Op.FAMILY)
        cur = await conn.execute(
            "SELECT h.village_id FROM family_links f JOIN elders e ON e.id = f.elder_id"
            " JOIN homes h ON h.id = e.home_id WHERE f.user_id = %s",
            (found.id,),
        )
        villages = [str(r[0]) for r in await cur.fetchall()]
        ok = [v for v in villages if await in_scope(conn, actor, v)]
        if actor.role != "system" and (not villages or not ok):
            raise outside("account", username)
        return found
    allow(actor, Op.STAFF)
    if found.role == "operator" or found.region_id is None:
        if actor.role != "system":
            raise outside("account", username)
    elif not await in_scope(conn, actor, found.region_id):
        raise outside("account", username)
    return found


async def update_staff(conn: Conn, actor: Actor, username: str, body: StaffUpdate) -> AccountOut:
    """Change a staff member's name, phone or language."""
    async with conn.transaction():
        before = await _scoped_account(conn, actor, username)
        if before.role == "family":
            raise Forbidden("family members change their own details")
        after = before.model_copy(update=body.model_dump(exclude_none=True))
        if after != before:
            await conn.execute(
                "UPDATE users SET display_name = %s, phone = %s, locale = %s WHERE id = %s",
                (after.display_name, after.phone, after.locale, before.id),
            )
            # The sms / voice channels follow the phone.
            await conn.execute(
                "UPDATE contact_channels SET target = %s WHERE user_id = %s"
                " AND channel IN ('sms', 'voice') AND %s <> ''",
                (after.phone, before.id, after.phone),
            )
            await audit(conn, actor, "user", str(before.id), "update", before.model_dump(),
                        after.model_dump())  # fmt: skip
    return after


async def reset_password(conn: Conn, links: Links, actor: Actor, username: str) -> InvitationOut:
    """A new link that sets a staff member's password (the old password stops working)."""
    async with conn.transaction():
        found = await _scoped_account(conn, actor, username)
        if found.role == "family":
            raise Forbidden("a family member is invited again instead")
        if found.closed_at is not None:
            raise Conflict(f"account {username} is closed")
        await conn.execute(
            "UPDATE users SET password_hash = %s WHERE id = %s",
            (f"{UNUSABLE}-{secrets.token_hex(8)}", found.id),
        )
        await conn.execute("DELETE FROM sessions WHERE user_id = %s", (found.id,))
        await audit(conn, actor, "user", str(found.id), "reset_password", None, None)
        return await invite_staff(conn, links, actor, found.id)


async def close_account(
    conn: Conn, actor: Actor, username: str, now: datetime | None = None
) -> AccountOut:
    """Close a staff or family account: it cannot sign in any more (sessions ended, password
    unusable), its rota shifts from now on are removed (a running one ends now), a family
    member's links to elders and channels go (they are told nothing more). The row stays
    for the alerts and audit rows that name it."""
    now = now or datetime.now(UTC)
    async with conn.transaction():
        before = await _scoped_account(conn, actor, username)
        if before.closed_at is not None:
            raise Conflict(f"account {username} is already closed")
        if before.id == actor.user_id:
            raise Conflict("you cannot close your own account")
        await conn.execute(
            "UPDATE users SET closed_at = %s, password_hash = %s WHERE id = %s",
            (now, f"{UNUSABLE}-closed", before.id),
        )
        await conn.execute("DELETE FROM sessions WHERE user_id = %s", (before.id,))
        await conn.execute(
            "DELETE FROM duty_shifts WHERE user_id = %s AND starts_at >= %s", (before.id, now)
        )
        await conn.execute(
            "UPDATE duty_shifts SET ends_at = %s WHERE user_id = %s AND ends_at > %s",
            (now, before.id, now),
        )
        await conn.execute(
            "DELETE FROM invitations WHERE user_id = %s AND used_at IS NULL", (before.id,)
        )
        links: list[str] = []
        if before.role == "family":
            cur = await conn.execute(
                "DELETE FROM family_links WHERE user_id = %s RETURNING elder_id", (before.id,)
            )
            links = [str(r[0]) for r in await cur.fetchall()]
            await conn.execute("DELETE FROM contact_channels WHERE user_id = %s", (before.id,))
        after = await get_account(conn, username)
        assert after is not None
        await audit(conn, actor, "user", str(before.id), "close",
                    {**before.model_dump(), "elders": links}, after.model_dump())  # fmt: skip
    return after


async def list_accounts(
    conn: Conn, actor: Actor, role: str | None = None, include_closed: bool = False
) -> list[AccountOut]:
    """Staff accounts of the actor's region (every account for the command line), by role
    and name; `role="family"`: the family members of the region's elders."""
    if role == "family":
        allow(actor, Op.FAMILY)
    else:
        allow(actor, Op.STAFF)
    regions = await scope_regions(conn, actor)
    cur = await conn.execute(
        _SELECT  # noqa: S608 - constant SQL
        + " WHERE (CASE WHEN %(role)s::text IS NULL THEN u.role <> 'family'"
        "        ELSE u.role = %(role)s END)"
        " AND (%(closed)s OR u.closed_at IS NULL)"
        " AND (%(regions)s::text[] IS NULL"
        "      OR (u.role <> 'family' AND u.region_id = ANY(%(regions)s))"
        "      OR (u.role = 'family' AND EXISTS (SELECT 1 FROM family_links f"
        "          JOIN elders e ON e.id = f.elder_id JOIN homes h ON h.id = e.home_id"
        "          WHERE f.user_id = u.id AND h.village_id = ANY(%(regions)s))))"
        " ORDER BY u.role, u.display_name, u.id",
        {"role": role, "closed": include_closed, "regions": regions},
    )
    return [_account(r) for r in await cur.fetchall()]
