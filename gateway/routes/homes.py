"""Homes and their devices (with their health), found through the caller's scope. The
operator sees every home and device but no elder's name."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from gateway import access
from gateway.access import Area
from gateway.auth import Principal
from gateway.deps import ApiUser, Clock, Db
from gateway.errors import ApiError
from gateway.params import Limit, Offset
from gateway.queries import devices, places
from gateway.schemas.common import Page
from gateway.schemas.places import Device, Home

router = APIRouter(prefix="/api/v1")


def _home(principal: Principal, h: places.Home) -> Home:
    out = Home.model_validate(h)
    if not access.may(principal, Area.HEALTH):  # the operator: no personal data
        out.elder_name = None
    return out


def _device(principal: Principal, d: devices.Device) -> Device:
    out = Device.model_validate(d)
    if not access.may(principal, Area.HEALTH):
        out.elder_name = None
    return out


@router.get("/homes", tags=["homes"])
async def list_homes(
    principal: ApiUser,
    conn: Db,
    region: str | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[Home]:
    """Homes the caller may see, by id; `region` narrows to a district, town or village."""
    access.need(principal, Area.HOMES)
    rows, total = await places.homes(conn, access.home_filter(principal), region, limit, offset)
    return Page[Home].of([_home(principal, h) for h in rows], total, limit, offset)


@router.get("/homes/{home_id}", tags=["homes"])
async def get_home(home_id: str, principal: ApiUser, conn: Db) -> Home:
    """One home."""
    access.need(principal, Area.HOMES)
    found = await places.home(conn, access.home_filter(principal), home_id)
    if found is None:
        raise ApiError(404, "not_found", f"no home {home_id}")
    return _home(principal, found)


@router.get("/devices", tags=["devices"])
async def list_devices(
    principal: ApiUser,
    conn: Db,
    clock: Clock,
    home: str | None = None,
    region: str | None = None,
    state: Literal["online", "offline"] | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[Device]:
    """Devices and their health (last seen, online, battery) the caller may see."""
    access.need(principal, Area.DEVICES)
    rows = await devices.devices(
        conn, access.home_filter(principal), clock(), home_id=home, region=region
    )
    if state is not None:
        rows = [d for d in rows if d.online == (state == "online")]
    items = [_device(principal, d) for d in rows[offset : offset + limit]]
    return Page[Device].of(items, len(rows), limit, offset)


@router.get("/devices/{device_id}", tags=["devices"])
async def get_device(device_id: str, principal: ApiUser, conn: Db, clock: Clock) -> Device:
    """One device and its health."""
    access.need(principal, Area.DEVICES)
    rows = await devices.devices(conn, access.home_filter(principal), clock(), device_id=device_id)
    if not rows:
        raise ApiError(404, "not_found", f"no device {device_id}")
    return _device(principal, rows[0])
