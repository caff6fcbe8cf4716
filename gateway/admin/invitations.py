"""Invitation links: signed, expiring, single use. A family invitation is linked to one
elder and the relation; the invitee chooses a username and password at `/invite/{token}`
and then sees that elder only. A staff invitation sets the password of an account an
administrator created. Passwords are argon2id, like every other one (gateway.auth)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from argon2 import PasswordHasher
from pydantic import AfterValidator, Field

from gateway.admin.common import (
    Actor,
    Conn,
    Gone,
    Input,
    NotFound,
    Op,
    Result,
    allow,
    audit,
    check_email,
    invalid,
    normalize_phone,
)
from gateway.admin.elders import scoped_elder
from gateway.auth import MAX_PASSWORD_LENGTH

MIN_PASSWORD = 10
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
_HASHER = PasswordHasher()  # argon2id, the parameters of gateway.auth


def check_username(value: str) -> str:
    """A username: 3-64 lower-case letters, digits, '.', '-' or '_'."""
    if not _USERNAME.fullmatch(value):
        raise ValueError(
            "use 3-64 lower-case letters, digits, '.', '-' or '_', starting with a letter or digit"
        )
    return value


Username = Annotated[str, Field(min_length=3, max_length=64), AfterValidator(check_username)]
Phone = Annotated[str, Field(max_length=40), AfterValidator(normalize_phone)]
Email = Annotated[str, Field(max_length=200), AfterValidator(check_email)]
Locale = Literal["zh", "en"]


@dataclass(frozen=True, slots=True)
class Links:
    """How invitation links are made: the signing key (the gateway's session secret) and
    the public URL of the pages."""

    secret: bytes
    base_url: str

    def url(self, token: str) -> str:
        """The page where the invitee sets their password."""
        return f"{self.base_url.rstrip('/')}/invite/{token}"


def _mac(secret: bytes, payload: str) -> str:
    digest = hmac.new(secret, b"invite." + payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:20]).decode().rstrip("=")


def sign(secret: bytes, invitation_id: int, expires: datetime) -> str:
    """A token ``<id>.<expiry unix>.<nonce>.<signature>``."""
    payload = f"{invitation_id}.{int(expires.timestamp())}.{secrets.token_urlsafe(12)}"
    return f"{payload}.{_mac(secret, payload)}"


def verify(secret: bytes, token: str) -> int | None:
    """The invitation id of a well-formed, correctly signed token (expiry checked later)."""
    parts = token.split(".")
    if len(token) > 200 or len(parts) != 4 or not all(p.isascii() for p in parts):
        return None
    if not hmac.compare_digest(_mac(secret, ".".join(parts[:3])), parts[3]):
        return None
    try:
        return int(parts[0])
    except ValueError:
        return None


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class FamilyInvite(Input):
    """An invitation for a family member (or paid carer) of one elder."""

    elder_id: Annotated[str, Field(min_length=1, max_length=64)]
    display_name: Annotated[str, Field(min_length=1, max_length=120)]
    relation: Annotated[str, Field(min_length=1, max_length=60)]
    phone: Phone = ""
    email: Email = ""
    locale: Locale = "zh"
    first_contact: bool = True
    """Told at once of the elder's alerts."""
    holds_key: bool = False
    expires_hours: Annotated[int, Field(ge=1, le=24 * 30)] = 72


class InvitationOut(Result):
    """An invitation just made: the link (shown once; only its hash is kept)."""

    id: int
    kind: str
    url: str
    token: str
    expires_at: datetime
    elder_id: str | None
    user_id: int | None


async def _insert(
    conn: Conn, links: Links, actor: Actor, hours: int, values: dict[str, Any]
) -> InvitationOut:
    cur = await conn.execute("SELECT nextval(pg_get_serial_sequence('invitations', 'id'))")
    row = await cur.fetchone()
    assert row is not None
    invitation_id = int(row[0])
    now = datetime.now(UTC)
    expires = now + timedelta(hours=hours)
    token = sign(links.secret, invitation_id, expires)
    columns = ["id", "token_hash", "created_by", "created_at", "expires_at", *values]
    await conn.execute(
        f"INSERT INTO invitations ({', '.join(columns)})"  # noqa: S608 - constant names
        f" VALUES ({', '.join(['%s'] * len(columns))})",
        (invitation_id, _digest(token), actor.user_id, now, expires, *values.values()),
    )
    await audit(
        conn,
        actor,
        "invitation",
        str(invitation_id),
        "create",
        None,
        {**values, "expires_at": expires.isoformat()},
    )
    return InvitationOut(
        id=invitation_id,
        kind=str(values["kind"]),
        url=links.url(token),
        token=token,
        expires_at=expires,
        elder_id=values.get("elder_id"),
        user_id=values.get("user_id"),
    )


async def invite_family(
    conn: Conn, links: Links, actor: Actor, body: FamilyInvite
) -> InvitationOut:
    """An invitation link for a family member of an elder in the actor's region."""
    allow(actor, Op.FAMILY)
    async with conn.transaction():
        elder = await scoped_elder(conn, actor, body.elder_id)
        if elder.closed_at is not None:
            raise invalid("elder_id", f"elder {elder.id} has left the service")
        values = body.model_dump(exclude={"expires_hours"})
        return await _insert(conn, links, actor, body.expires_hours, {"kind": "family", **values})


async def invite_staff(
    conn: Conn, links: Links, actor: Actor, user_id: int, hours: int = 72
) -> InvitationOut:
    """A link that sets the password of staff account `user_id` (checked by the caller)."""
    return await _insert(conn, links, actor, hours, {"kind": "staff", "user_id": user_id})


class InvitationView(Result):
    """What the invitation page shows before the password is set."""

    id: int
    kind: str
    display_name: str
    elder_name: str | None
    relation: str
    username: str | None
    expires_at: datetime


_VIEW = """
SELECT i.id, i.kind, i.token_hash, i.expires_at, i.used_at, i.elder_id, i.user_id,
       coalesce(u.display_name, i.display_name), e.full_name, i.relation, u.username,
       e.closed_at, u.closed_at, i.phone, i.email, i.locale, i.first_contact, i.holds_key,
       u.role
FROM invitations i LEFT JOIN elders e ON e.id = i.elder_id LEFT JOIN users u ON u.id = i.user_id
WHERE i.id = %s
"""


async def _open(conn: Conn, links: Links, token: str, lock: bool = False) -> tuple[Any, ...]:
    invitation_id = verify(links.secret, token)
    if invitation_id is None:
        raise NotFound("this invitation link is not valid: check that it was copied whole")
    cur = await conn.execute(_VIEW + (" FOR UPDATE OF i" if lock else ""), (invitation_id,))
    row = await cur.fetchone()
    if row is None or not hmac.compare_digest(bytes(row[2]), _digest(token)):
        raise NotFound("this invitation link is not valid: check that it was copied whole")
    if row[4] is not None:
        raise Gone("this invitation link was already used: sign in, or ask for a new link")
    if row[3] <= datetime.now(UTC):
        raise Gone("this invitation link has expired: ask whoever sent it for a new one")
    if row[11] is not None or row[12] is not None:
        raise Gone("this invitation is no longer valid: ask whoever sent it for a new one")
    return tuple(row)


async def view_invitation(conn: Conn, links: Links, token: str) -> InvitationView:
    """The invitation behind a link (404 forged, 410 used or expired)."""
    row = await _open(conn, links, token)
    return InvitationView(
        id=row[0],
        kind=row[1],
        expires_at=row[3],
        display_name=row[7],
        elder_name=row[8],
        relation=row[9],
        username=row[10],
    )


class AcceptInvite(Input):
    """Accepting an invitation: the password (and for a family member the username)."""

    username: Username | None = None
    password: Annotated[str, Field(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD_LENGTH)]


class Accepted(Result):
    """The account an accepted invitation opened."""

    user_id: int
    username: str
    role: str
    elder_id: str | None


async def accept_invitation(conn: Conn, links: Links, token: str, body: AcceptInvite) -> Accepted:
    """Use an invitation once: a family member's account and link to the elder, or a staff
    member's password. A second use, an expired or a forged link is refused."""
    password_hash = await asyncio.to_thread(_HASHER.hash, body.password)
    async with conn.transaction():
        row = await _open(conn, links, token, lock=True)
        (iid, kind, _, _, _, elder_id, user_id, name, _, relation, username) = row[:11]
        phone, email, locale, first_contact, holds_key, role = row[13:]
        if kind == "family":
            if body.username is None:
                raise invalid("username", "choose a username")
            if body.password == body.username:
                raise invalid("password", "the password must not be the username")
            cur = await conn.execute(
                "INSERT INTO users (username, password_hash, display_name, role, locale, phone)"
                " VALUES (%s, %s, %s, 'family', %s, %s) ON CONFLICT (username) DO NOTHING"
                " RETURNING id",
                (body.username, password_hash, name, locale, phone),
            )
            created = await cur.fetchone()
            if created is None:
                raise invalid("username", f"{body.username} is taken: choose another")
            user_id, username = int(created[0]), body.username
            await conn.execute(
                "INSERT INTO family_links (user_id, elder_id, relation, first_contact, holds_key)"
                " VALUES (%s, %s, %s, %s, %s)",
                (user_id, elder_id, relation, first_contact, holds_key),
            )
            channels = [("sms", phone), ("email", email)]
            for position, (channel, target) in enumerate(c for c in channels if c[1]):
                await conn.execute(
                    "INSERT INTO contact_channels (user_id, channel, target, position)"
                    " VALUES (%s, %s, %s, %s)",
                    (user_id, channel, target, position),
                )
        else:
            if body.password == username:
                raise invalid("password", "the password must not be the username")
            await conn.execute(
                "UPDATE users SET password_hash = %s WHERE id = %s", (password_hash, user_id)
            )
        await conn.execute(
            "UPDATE invitations SET used_at = now(), used_by = %s WHERE id = %s", (user_id, iid)
        )
        actor = Actor(int(user_id), str(username), kind, None)
        after = {"user_id": user_id, "username": username, "elder_id": elder_id}
        await audit(conn, actor, "invitation", str(iid), "accept", None, after)
        if kind == "family":
            link = {"relation": relation, "first_contact": first_contact, "holds_key": holds_key}
            await audit(conn, actor, "family_link", f"{user_id}:{elder_id}", "create", None,
                        {**after, **link})  # fmt: skip
    return Accepted(
        user_id=int(user_id),
        username=str(username),
        role="family" if kind == "family" else str(role),
        elder_id=elder_id,
    )
