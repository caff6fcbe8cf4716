"""The administration API (`/api/v1/admin`): regions, homes, elders and their emergency
contacts. Each route calls `gateway.admin` (scoped to the caller's region, audited); field
problems answer 422 with the field names, a region outside the caller's 403."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Annotated, Generic, TypeVar

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from gateway.admin import elders, homes, leaving, regions
from gateway.admin.common import Actor, AdminError, Invalid
from gateway.admin.invitations import Links
from gateway.context import AppContext
from gateway.deps import ApiUser, Ctx, Db
from gateway.errors import ApiError
from gateway.queries import elders as elder_queries
from ingest.broker_files import BrokerReloadError

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

T = TypeVar("T")


class Listing(BaseModel, Generic[T]):
    """A list of results."""

    items: list[T]


@contextlib.contextmanager
def api_errors() -> Iterator[None]:
    """The administration's refusals as the API's errors: a field problem as 422 with
    `details` naming each field (like a malformed body), the others with their status."""
    try:
        yield
    except Invalid as exc:
        raise RequestValidationError(
            [
                {"loc": ("body", *p.field.split(".")), "msg": p.message, "type": "value_error"}
                for p in exc.problems
            ]
        ) from None
    except ValidationError as exc:  # a model checked inside an operation
        raise RequestValidationError(exc.errors()) from None
    except AdminError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None


def links(ctx: AppContext) -> Links:
    """How this deployment signs invitation links and where its pages are."""
    return Links(ctx.settings.session_secret.get_secret_value().encode(), ctx.settings.base_url())


# --------------------------------------------------------------------------- regions


@router.post("/regions", status_code=201)
async def create_region(
    body: regions.RegionCreate, principal: ApiUser, conn: Db
) -> regions.RegionOut:
    """Create a district (operators), a town in a district or a village in a town of the
    caller's region."""
    with api_errors():
        return await regions.create_region(conn, Actor.of(principal), body)


@router.patch("/regions/{region_id}")
async def rename_region(
    region_id: str, body: regions.RegionRename, principal: ApiUser, conn: Db
) -> regions.RegionOut:
    """Rename a region."""
    with api_errors():
        return await regions.rename_region(conn, Actor.of(principal), region_id, body)


@router.delete("/regions/{region_id}")
async def close_region(region_id: str, principal: ApiUser, conn: Db) -> regions.RegionOut:
    """Close (remove) an empty region: 409 names what it still holds."""
    with api_errors():
        return await regions.close_region(conn, Actor.of(principal), region_id)


# --------------------------------------------------------------------------- homes


@router.post("/homes", status_code=201)
async def create_home(
    body: homes.HomeCreate, principal: ApiUser, conn: Db, ctx: Ctx
) -> homes.HomeOut:
    """Create a home in a village (time zone: the deployment's unless given)."""
    with api_errors():
        return await homes.create_home(conn, Actor.of(principal), body, ctx.local_tz.key)


@router.patch("/homes/{home_id}")
async def update_home(
    home_id: str, body: homes.HomeUpdate, principal: ApiUser, conn: Db
) -> homes.HomeOut:
    """Change a home's address, location or time zone."""
    with api_errors():
        return await homes.update_home(conn, Actor.of(principal), home_id, body)


# --------------------------------------------------------------------------- elders


@router.get("/elders")
async def list_elders(
    principal: ApiUser,
    conn: Db,
    village: Annotated[str | None, Query(max_length=64)] = None,
    include_closed: bool = True,
) -> Listing[elders.ElderRow]:
    """The elders of the caller's region (or of one village), closed ones too by default."""
    with api_errors():
        rows = await elders.list_elders(conn, Actor.of(principal), village, include_closed)
    return Listing[elders.ElderRow](items=rows)


@router.post("/elders", status_code=201)
async def create_elder(
    body: elders.ElderCreate, principal: ApiUser, conn: Db, ctx: Ctx
) -> elders.ElderOut:
    """Enrol an elder: in an existing home (`home_id`) or a new one (`home`)."""
    with api_errors():
        return await elders.create_elder(conn, Actor.of(principal), body, ctx.local_tz.key)


@router.get("/elders/{elder_id}")
async def get_elder(elder_id: str, principal: ApiUser, conn: Db) -> elders.ElderOut:
    """An elder's administrative record (profile, limits, contacts, closed or not). Audited
    as a read of health data."""
    with api_errors():
        found = await elders.read_elder(conn, Actor.of(principal), elder_id)
    await elder_queries.audit_health_read(conn, principal.user_id, elder_id, "admin_record")
    return found


@router.patch("/elders/{elder_id}")
async def update_elder(
    elder_id: str, body: elders.ElderUpdate, principal: ApiUser, conn: Db
) -> elders.ElderOut:
    """Change an elder's profile, conditions, language or limits."""
    with api_errors():
        return await elders.update_elder(conn, Actor.of(principal), elder_id, body)


@router.post("/elders/{elder_id}/close")
async def close_elder(
    elder_id: str, body: elders.ElderClose, principal: ApiUser, conn: Db, ctx: Ctx
) -> elders.ElderOut:
    """The elder leaves the service: monitoring ends, records are kept; the home's devices
    are retired and the broker's files rewritten and reloaded (their logins stop working)."""
    try:
        with api_errors():
            return await leaving.close_and_lock_out(
                conn, Actor.of(principal), elder_id, body, ctx.broker
            )
    except BrokerReloadError as exc:
        log.error("elder %s closed, but the broker was not reloaded: %s", elder_id, exc)
        raise ApiError(502, "broker_reload_failed", f"elder {elder_id} is closed; {exc}") from None


@router.post("/elders/{elder_id}/contacts", status_code=201)
async def add_contact(
    elder_id: str, body: elders.ContactIn, principal: ApiUser, conn: Db
) -> elders.ContactOut:
    """Add an emergency contact (name, relation, phone, holds a key)."""
    with api_errors():
        return await elders.add_contact(conn, Actor.of(principal), elder_id, body)


@router.put("/elders/{elder_id}/contacts/{contact_id}")
async def update_contact(
    elder_id: str, contact_id: int, body: elders.ContactIn, principal: ApiUser, conn: Db
) -> elders.ContactOut:
    """Replace an emergency contact."""
    with api_errors():
        return await elders.update_contact(conn, Actor.of(principal), elder_id, contact_id, body)


@router.delete("/elders/{elder_id}/contacts/{contact_id}")
async def remove_contact(
    elder_id: str, contact_id: int, principal: ApiUser, conn: Db
) -> elders.ContactOut:
    """Remove an emergency contact."""
    with api_errors():
        return await elders.remove_contact(conn, Actor.of(principal), elder_id, contact_id)
