"""Homes: create one in a village (address, location, time zone), change them."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

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
    check_timezone,
    in_scope,
    invalid,
    outside,
)

HomeId = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(check_id)]
Zone = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(check_timezone)]
Lat = Annotated[float, Field(ge=-90, le=90)]
Lon = Annotated[float, Field(ge=-180, le=180)]
ExternalId = Annotated[str, Field(min_length=1, max_length=80)]


def _both_or_neither(lon: float | None, info: ValidationInfo) -> float | None:
    if "lat" in info.data and (info.data["lat"] is None) != (lon is None):
        raise ValueError("give both lat and lon, or neither")
    return lon


class HomeCreate(Input):
    """A new home in a village. `id` is made up when absent (h-xxxxxxxxxx); `timezone`
    defaults to the deployment's (ELDERCARE_ALERTS__TIMEZONE)."""

    id: HomeId | None = None
    village_id: Annotated[str, Field(min_length=1, max_length=64)]
    address: Annotated[str, Field(min_length=1, max_length=300)]
    lat: Lat | None = None
    lon: Lon | None = Field(default=None, validate_default=True)
    timezone: Zone | None = None
    external_id: ExternalId | None = None

    _lon = field_validator("lon")(_both_or_neither)


class HomeUpdate(Input):
    """A home's changes; absent fields are left alone (`clear_location` removes it)."""

    address: Annotated[str, Field(min_length=1, max_length=300)] | None = None
    lat: Lat | None = None
    lon: Lon | None = Field(default=None, validate_default=True)
    clear_location: bool = False
    timezone: Zone | None = None

    _lon = field_validator("lon")(_both_or_neither)

    @model_validator(mode="after")
    def _location(self) -> HomeUpdate:
        if self.clear_location and self.lat is not None:
            raise ValueError("give a location or clear_location, not both")
        return self


class HomeOut(Result):
    """A home as stored."""

    id: str
    village_id: str
    address: str
    lat: float | None
    lon: float | None
    timezone: str
    external_id: str | None
    closed_at: datetime | None = None


_SELECT = "SELECT id, village_id, address, lat, lon, timezone, external_id, closed_at FROM homes"


def _home(row: Any) -> HomeOut:
    i, v, a, lat, lon, tz, ext, closed = row
    return HomeOut(
        id=i, village_id=v, address=a, lat=lat, lon=lon, timezone=tz, external_id=ext,
        closed_at=closed,
    )  # fmt: skip


async def get_home(conn: Conn, home_id: str) -> HomeOut | None:
    """A home by id (no scope: callers check it)."""
    cur = await conn.execute(_SELECT + " WHERE id = %s", (home_id,))
    row = await cur.fetchone()
    return None if row is None else _home(row)


async def home_by_external_id(conn: Conn, external_id: str) -> HomeOut | None:
    """A home by its external id (no scope)."""
    cur = await conn.execute(_SELECT + " WHERE external_id = %s", (external_id,))
    row = await cur.fetchone()
    return None if row is None else _home(row)


async def scoped_home(conn: Conn, actor: Actor, home_id: str) -> HomeOut:
    """A home in the actor's region (403 otherwise, whether it exists or not)."""
    found = await get_home(conn, home_id)
    if found is None or not await in_scope(conn, actor, found.village_id):
        if actor.everywhere:
            raise NotFound(f"no home {home_id}")
        raise outside("home", home_id)
    return found


async def check_village(conn: Conn, actor: Actor, village_id: str, field: str) -> None:
    """The village exists, is a village and is in the actor's region."""
    if not await in_scope(conn, actor, village_id):
        raise outside("village", village_id)
    cur = await conn.execute("SELECT tier FROM regions WHERE id = %s", (village_id,))
    row = await cur.fetchone()
    if row is None:
        raise invalid(field, f"no village {village_id}")
    if row[0] != "village":
        raise invalid(field, f"{village_id} is a {row[0]}, not a village")


def new_id(prefix: str) -> str:
    """A fresh id for a home or elder (``h-3f9a0c1b2d``)."""
    return f"{prefix}-{secrets.token_hex(5)}"


async def insert_home(conn: Conn, actor: Actor, body: HomeCreate, default_tz: str) -> HomeOut:
    """Insert a checked home and its audit row (inside the caller's transaction)."""
    home_id = body.id or new_id("h")
    cur = await conn.execute(
        "INSERT INTO homes (id, village_id, address, lat, lon, timezone, external_id)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING id",
        (
            home_id,
            body.village_id,
            body.address,
            body.lat,
            body.lon,
            body.timezone or default_tz,
            body.external_id,
        ),
    )
    if await cur.fetchone() is None:
        taken = "id" if await get_home(conn, home_id) else "external id"
        raise Conflict(f"home {taken} {body.external_id if taken != 'id' else home_id} is taken")
    out = await get_home(conn, home_id)
    assert out is not None
    await audit(conn, actor, "home", home_id, "create", None, out.model_dump())
    return out


async def create_home(
    conn: Conn, actor: Actor, body: HomeCreate, default_tz: str = "Asia/Shanghai"
) -> HomeOut:
    """Create a home in a village of the actor's region."""
    allow(actor, Op.HOMES)
    await check_village(conn, actor, body.village_id, "village_id")
    async with conn.transaction():
        return await insert_home(conn, actor, body, default_tz)


async def update_home(conn: Conn, actor: Actor, home_id: str, body: HomeUpdate) -> HomeOut:
    """Change a home's address, location or time zone."""
    allow(actor, Op.HOMES)
    async with conn.transaction():
        before = await scoped_home(conn, actor, home_id)
        changes: dict[str, Any] = body.model_dump(exclude_none=True, exclude={"clear_location"})
        if body.clear_location:
            changes.update(lat=None, lon=None)
        after = before.model_copy(update=changes)
        if after != before:
            await conn.execute(
                "UPDATE homes SET address = %s, lat = %s, lon = %s, timezone = %s WHERE id = %s",
                (after.address, after.lat, after.lon, after.timezone, home_id),
            )
            await audit(
                conn, actor, "home", home_id, "update", before.model_dump(), after.model_dump()
            )
    return after
