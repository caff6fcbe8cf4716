"""Devices into and out of service: install in a home, replace, rotate credentials, retire,
and the install check (staff of the home's region and operators; audited in
`device_events`). The rules are ingest.device_lifecycle's; this is HTTP only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse

from devices.lifecycle import DeviceRefused, Refusal
from gateway import access
from gateway.access import Area
from gateway.auth import Principal
from gateway.deps import ApiUser, Ctx, Pool
from gateway.errors import ApiError, error_response
from gateway.queries import devices, places
from gateway.queries.base import Conn
from gateway.schemas.device_admin import (
    BrokerState,
    DeviceChange,
    DeviceInstall,
    DeviceReplace,
    InstallState,
)
from ingest import device_lifecycle
from ingest.broker_files import BrokerSettings

router = APIRouter(prefix="/api/v1", tags=["devices"])

_STATUS = {
    Refusal.NOT_FOUND: 404,
    Refusal.NO_HOME: 404,
    Refusal.DUPLICATE_ID: 409,
    Refusal.RETIRED: 409,
    Refusal.HOME_CLOSED: 409,
    Refusal.INVALID_ID: 422,
    Refusal.UNKNOWN_KIND: 422,
    Refusal.INVALID_FIELD: 422,
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such home or device in the caller's region"},
    409: {"description": "device id taken, device retired, or home closed: nothing changed"},
    502: {"description": "recorded, but the broker was not reloaded (the answer holds the"
          " change and its password)"},
}  # fmt: skip


def _check_s(broker: BrokerSettings | None) -> float:
    return (broker or BrokerSettings()).install_check_s


async def _answer(
    conn: Conn, broker: BrokerSettings | None, change: device_lifecycle.DeviceChange
) -> DeviceChange:
    state = None
    if change.action in ("install", "replace"):
        found = await device_lifecycle.install_state(
            conn, change.device.device_id, _check_s(broker)
        )
        state = InstallState.model_validate(found) if found is not None else None
    return DeviceChange(
        action=change.action,
        device_id=change.device.device_id,
        home_id=change.device.home_id,
        kind=change.device.kind,
        username=change.device.device_id if change.password is not None else None,
        password=change.password,
        retired=change.retired,
        broker=BrokerState.model_validate(change.broker),
        install=state,
    )


async def _run(
    conn: Conn, broker: BrokerSettings | None, op: device_lifecycle.Operation
) -> DeviceChange | JSONResponse:
    await conn.commit()  # the scope check's transaction: the change runs in its own
    try:
        change = await op(conn)
    except DeviceRefused as exc:
        raise ApiError(_STATUS[exc.reason], exc.reason.value, exc.message) from None
    except device_lifecycle.BrokerSyncFailed as exc:
        body = await _answer(conn, broker, exc.change)
        return error_response(
            502, "broker_reload_failed", str(exc), change=body.model_dump(mode="json")
        )
    return await _answer(conn, broker, change)


async def _device_home(conn: Conn, principal: Principal, device_id: str) -> str:
    home = await devices.device_in_scope(conn, access.home_filter(principal), device_id)
    if home is None:
        raise ApiError(404, "not_found", f"no device {device_id}")
    return home


@router.post(
    "/homes/{home_id}/devices",
    status_code=status.HTTP_201_CREATED,
    response_model=DeviceChange,
    responses=_ERRORS,
)
async def install_device(
    home_id: str, body: DeviceInstall, principal: ApiUser, pool: Pool, ctx: Ctx
) -> DeviceChange | JSONResponse:
    """Install a device in a home (201): its broker login is in this answer only; the
    broker's files are regenerated and the broker reloaded. It must then be heard within
    `install.due_at` (`GET /api/v1/devices/{id}/install`)."""
    access.need(principal, Area.MANAGE_DEVICES)
    async with pool.connection() as conn:
        if await places.home(conn, access.home_filter(principal), home_id) is None:
            raise ApiError(404, "not_found", f"no home {home_id}")
        return await _run(
            conn,
            ctx.broker,
            lambda c: device_lifecycle.install_device(
                c, ctx.broker, home_id, body.device_id, body.kind, body.room, body.label,
                user_id=principal.user_id, actor=principal.username,
            ),
        )  # fmt: skip


@router.post("/devices/{device_id}/replace", response_model=DeviceChange, responses=_ERRORS)
async def replace_device(
    device_id: str, body: DeviceReplace, principal: ApiUser, pool: Pool, ctx: Ctx
) -> DeviceChange | JSONResponse:
    """A new unit in the device's place: a new id retires the old one; the same id (or
    none) gets new credentials. Either way the old unit's login stops working."""
    access.need(principal, Area.MANAGE_DEVICES)
    async with pool.connection() as conn:
        await _device_home(conn, principal, device_id)
        return await _run(
            conn,
            ctx.broker,
            lambda c: device_lifecycle.replace_device(
                c, ctx.broker, device_id, body.new_device_id, kind=body.kind, room=body.room,
                label=body.label, user_id=principal.user_id, actor=principal.username,
            ),
        )  # fmt: skip


@router.post("/devices/{device_id}/rotate", response_model=DeviceChange, responses=_ERRORS)
async def rotate_device(
    device_id: str, principal: ApiUser, pool: Pool, ctx: Ctx
) -> DeviceChange | JSONResponse:
    """New broker credentials for the device (in this answer only); the old password is
    refused once the broker has reloaded."""
    access.need(principal, Area.MANAGE_DEVICES)
    async with pool.connection() as conn:
        await _device_home(conn, principal, device_id)
        return await _run(
            conn,
            ctx.broker,
            lambda c: device_lifecycle.rotate_credentials(
                c, ctx.broker, device_id, user_id=principal.user_id, actor=principal.username
            ),
        )


@router.post("/devices/{device_id}/retire", response_model=DeviceChange, responses=_ERRORS)
async def retire_device(
    device_id: str, principal: ApiUser, pool: Pool, ctx: Ctx
) -> DeviceChange | JSONResponse:
    """Take the device out of service: its login refused by the broker, no longer expected
    by the device watch, its messages refused by ingest. Its readings are kept."""
    access.need(principal, Area.MANAGE_DEVICES)
    async with pool.connection() as conn:
        await _device_home(conn, principal, device_id)
        return await _run(
            conn,
            ctx.broker,
            lambda c: device_lifecycle.retire_device(
                c, ctx.broker, device_id, user_id=principal.user_id, actor=principal.username
            ),
        )


@router.get("/devices/{device_id}/install")
async def install_check(device_id: str, principal: ApiUser, pool: Pool, ctx: Ctx) -> InstallState:
    """The install check: heard since the install, still `waiting`, or `overdue` (not heard
    within `ELDERCARE_BROKER__INSTALL_CHECK_S`, default 300 s)."""
    access.need(principal, Area.DEVICES)
    async with pool.connection() as conn:
        await _device_home(conn, principal, device_id)
        found = await device_lifecycle.install_state(conn, device_id, _check_s(ctx.broker))
    if found is None:
        raise ApiError(404, "not_found", f"no device {device_id}")
    return InstallState.model_validate(found)
