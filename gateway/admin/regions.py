"""The region tree: create a district, town or village, rename one, close an empty one."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

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
    check_id,
    in_scope,
    invalid,
    outside,
)

Tier = Literal["district", "town", "village"]
PARENT_TIER: dict[str, str | None] = {"district": None, "town": "district", "village": "town"}
"""The tier a region's parent must have."""

RegionId = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(check_id)]
Name = Annotated[str, Field(min_length=1, max_length=120)]


class RegionCreate(Input):
    """A new region: a district (no parent), a town in a district or a village in a town."""

    id: RegionId
    name: Name
    tier: Tier
    parent_id: RegionId | None = None


class RegionRename(Input):
    """A region's new name."""

    name: Name


class RegionOut(Result):
    """A region as stored."""

    id: str
    name: str
    tier: str
    parent_id: str | None


async def get_region(conn: Conn, region_id: str) -> RegionOut | None:
    """A region by id (no scope: callers check it)."""
    cur = await conn.execute(
        "SELECT id, name, tier, parent_id FROM regions WHERE id = %s", (region_id,)
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return RegionOut(id=row[0], name=row[1], tier=row[2], parent_id=row[3])


async def _scoped(conn: Conn, actor: Actor, region_id: str) -> RegionOut:
    if not await in_scope(conn, actor, region_id):
        raise outside("region", region_id)
    found = await get_region(conn, region_id)
    if found is None:
        raise NotFound(f"no region {region_id}")
    return found


async def create_region(conn: Conn, actor: Actor, body: RegionCreate) -> RegionOut:
    """Create a region under a parent of the tier above, in the actor's region (a district:
    the command line and operators only)."""
    allow(actor, Op.REGIONS)
    want = PARENT_TIER[body.tier]
    if want is None:
        if body.parent_id is not None:
            raise invalid("parent_id", "a district has no parent")
        if not actor.everywhere:
            raise Forbidden("only an operator or the command line creates a district")
    else:
        if body.parent_id is None:
            raise invalid("parent_id", f"a {body.tier} needs its {want} as parent_id")
        if not await in_scope(conn, actor, body.parent_id):
            raise outside("region", body.parent_id)
        parent = await get_region(conn, body.parent_id)
        if parent is None:
            raise invalid("parent_id", f"no region {body.parent_id}")
        if parent.tier != want:
            raise invalid(
                "parent_id", f"a {body.tier} belongs to a {want}; {parent.id} is a {parent.tier}"
            )
    async with conn.transaction():
        cur = await conn.execute(
            "INSERT INTO regions (id, name, tier, parent_id) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (id) DO NOTHING RETURNING id",
            (body.id, body.name, body.tier, body.parent_id),
        )
        if await cur.fetchone() is None:
            raise Conflict(f"region id {body.id} is taken")
        out = RegionOut(id=body.id, name=body.name, tier=body.tier, parent_id=body.parent_id)
        await audit(conn, actor, "region", body.id, "create", None, out.model_dump())
    return out


async def rename_region(conn: Conn, actor: Actor, region_id: str, body: RegionRename) -> RegionOut:
    """Give a region in the actor's region a new name."""
    allow(actor, Op.REGIONS)
    async with conn.transaction():
        before = await _scoped(conn, actor, region_id)
        await conn.execute("UPDATE regions SET name = %s WHERE id = %s", (body.name, region_id))
        after = before.model_copy(update={"name": body.name})
        if after != before:
            await audit(
                conn, actor, "region", region_id, "rename", before.model_dump(), after.model_dump()
            )
    return after


async def close_region(conn: Conn, actor: Actor, region_id: str) -> RegionOut:
    """Remove a region that holds nothing: no regions under it, no homes, no accounts and no
    rota shifts (409 says what is left). Staff cannot close their own region."""
    allow(actor, Op.REGIONS)
    if actor.region_id == region_id and not actor.everywhere:
        raise Conflict("you cannot close your own region")
    async with conn.transaction():
        before = await _scoped(conn, actor, region_id)
        cur = await conn.execute(
            "SELECT (SELECT count(*) FROM regions WHERE parent_id = %(r)s),"
            " (SELECT count(*) FROM homes WHERE village_id = %(r)s),"
            " (SELECT count(*) FROM users WHERE region_id = %(r)s),"
            " (SELECT count(*) FROM duty_shifts WHERE region_id = %(r)s)",
            {"r": region_id},
        )
        row = await cur.fetchone()
        assert row is not None
        left = [
            f"{n} {what}"
            for n, what in zip(row, ("regions", "homes", "accounts", "rota shifts"), strict=True)
            if n
        ]
        if left:
            raise Conflict(f"region {region_id} is not empty: it still has {', '.join(left)}")
        await conn.execute("DELETE FROM regions WHERE id = %s", (region_id,))
        await audit(conn, actor, "region", region_id, "close", before.model_dump(), None)
    return before
