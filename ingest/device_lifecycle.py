"""Install, replace, rotate and retire devices: the registry change and the broker's files.

Each operation is one transaction under one advisory lock (one writer of the broker files
at a time): refused (`devices.lifecycle.DeviceRefused`) before anything is written, or the
registry row, the credential and an audit row (`device_events`) are written, the broker's
password file and ACL regenerated from the whole registry (ingest.broker_files) and the
transaction committed; then the broker is reloaded. A failed reload raises
`BrokerSyncFailed`, which carries the change (the password issued is in it, shown once):
the change is recorded and the files match it; `eldercare broker sync` reloads again.

Call these on a connection outside a transaction (a pool's, or one just committed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

import psycopg
from psycopg.pq import TransactionStatus

from devices.lifecycle import (
    BrokerFiles,
    DeviceRefused,
    Issued,
    Refusal,
    broker_files,
    check_new,
    issue,
)
from devices.registry import DeviceRecord
from ingest import device_store
from ingest.broker_files import (
    BrokerReloadError,
    BrokerSettings,
    SyncResult,
    reload,
    write_files,
)

log = logging.getLogger(__name__)
Conn = psycopg.AsyncConnection[Any]
Action = Literal["install", "replace", "rotate", "retire"]
_LOCK = "eldercare.broker_files"
_NO_BROKER = BrokerSettings()


@dataclass(slots=True, frozen=True)
class DeviceChange:
    """What an operation did: the device it leaves in service (for a retirement, the one
    retired), the password issued now (None for a retirement; shown once), the device it
    retired (if any) and what became of the broker's files."""

    action: Action
    device: DeviceRecord
    password: str | None
    retired: str | None
    broker: SyncResult


Operation = Callable[[Conn], Awaitable[DeviceChange]]
"""One of the operations below with its arguments bound, run on a connection."""


class BrokerSyncFailed(Exception):
    """The change is recorded and the files written, but the broker was not reloaded."""

    def __init__(self, change: DeviceChange) -> None:
        super().__init__(
            f"{change.action} of {change.device.device_id} is recorded and the broker files"
            f" are written, but the broker was not reloaded: {change.broker.error}."
            " Fix the reload setting (ELDERCARE_BROKER__PID_FILE or __RELOAD_COMMAND) and run"
            " `eldercare broker sync`"
        )
        self.change = change


@dataclass(slots=True, frozen=True)
class _Row:
    device_id: str
    home_id: str
    kind: str
    room: str
    label: str
    retired_at: datetime | None


async def current_files(conn: Conn) -> BrokerFiles:
    """The broker files of what the database holds now (live credentials and services)."""
    return broker_files(
        await device_store.credentials(conn), await device_store.service_accounts(conn)
    )


async def _locked(conn: Conn) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_LOCK,))


async def _open_home(conn: Conn, home_id: str) -> None:
    cur = await conn.execute("SELECT closed_at FROM homes WHERE id = %s FOR SHARE", (home_id,))
    row = await cur.fetchone()
    if row is None:
        raise DeviceRefused(Refusal.NO_HOME, f"no home {home_id!r}: enrol the home first")
    if row[0] is not None:
        raise DeviceRefused(
            Refusal.HOME_CLOSED, f"home {home_id!r} was closed on {row[0]:%Y-%m-%d}"
        )


async def _device(conn: Conn, device_id: str) -> _Row:
    cur = await conn.execute(
        "SELECT id, home_id, kind, room, label, retired_at FROM devices WHERE id = %s FOR UPDATE",
        (device_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise DeviceRefused(Refusal.NOT_FOUND, f"no device {device_id!r}")
    found = _Row(*row)
    if found.retired_at is not None:
        raise DeviceRefused(
            Refusal.RETIRED, f"device {device_id!r} was retired on {found.retired_at:%Y-%m-%d}"
        )
    return found


async def _insert(conn: Conn, device: DeviceRecord, room: str, label: str) -> Issued:
    cur = await conn.execute(
        "INSERT INTO devices (id, home_id, kind, room, label) VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (id) DO NOTHING",
        (device.device_id, device.home_id, device.kind, room, label),
    )
    if not cur.rowcount:
        raise DeviceRefused(
            Refusal.DUPLICATE_ID,
            f"device id {device.device_id!r} is taken (ids are never reused, even retired)",
        )
    issued = issue(device)
    await device_store.set_credential(conn, device.device_id, issued.credential)
    return issued


async def _event(
    conn: Conn, device_id: str, action: Action, user_id: int | None, actor: str, **detail: Any
) -> None:
    await conn.execute(
        "INSERT INTO device_events (device_id, action, user_id, actor, detail)"
        " VALUES (%s, %s, %s, %s, %s)",
        (device_id, action, user_id, actor, json.dumps(detail, sort_keys=True)),
    )


async def _retire(conn: Conn, device_id: str, replaced_by: str | None = None) -> None:
    await conn.execute(
        "UPDATE devices SET retired_at = now(), replaced_by = %s WHERE id = %s",
        (replaced_by, device_id),
    )
    await conn.execute(
        "UPDATE device_credentials SET revoked_at = now() WHERE device_id = %s", (device_id,)
    )


async def _rotate(conn: Conn, row: _Row) -> Issued:
    issued = issue(DeviceRecord(row.device_id, row.home_id, row.kind))
    await device_store.set_credential(conn, row.device_id, issued.credential)
    return issued


async def _apply(
    conn: Conn,
    broker: BrokerSettings | None,
    action: Action,
    change: Callable[[Conn], Awaitable[tuple[DeviceRecord, str | None, str | None]]],
) -> DeviceChange:
    """Run `change(conn)` (-> device, password, retired) under the lock, write the files,
    commit, reload."""
    if conn.info.transaction_status != TransactionStatus.IDLE:
        raise RuntimeError("device changes need a connection outside a transaction")
    settings = broker or _NO_BROKER
    written = False
    try:
        async with conn.transaction():
            await _locked(conn)
            device, password, retired = await change(conn)
            written = write_files(settings, await current_files(conn))
    except Exception:
        if written:  # the commit failed after the files were renamed: put them back in step
            with contextlib.suppress(Exception):
                async with conn.transaction():
                    write_files(settings, await current_files(conn))
        raise
    result = DeviceChange(action, device, password, retired, SyncResult(written, False))
    log.info("device %s: %s (broker files written: %s)", device.device_id, action, written)
    if not written:
        return result
    try:
        reloaded = await reload(settings)
    except BrokerReloadError as exc:
        log.error("broker reload after %s of %s failed: %s", action, device.device_id, exc)
        raise BrokerSyncFailed(replace(result, broker=SyncResult(True, False, str(exc)))) from exc
    return replace(result, broker=SyncResult(True, reloaded))


async def install_device(
    conn: Conn,
    broker: BrokerSettings | None,
    home_id: str,
    device_id: str,
    kind: str,
    room: str = "",
    label: str = "",
    *,
    user_id: int | None = None,
    actor: str = "",
) -> DeviceChange:
    """Install a new device of catalogue `kind` in an open home, with a fresh credential."""
    check_new(device_id, home_id, kind, room, label)

    async def change(conn: Conn) -> tuple[DeviceRecord, str, None]:
        await _open_home(conn, home_id)
        device = DeviceRecord(device_id, home_id, kind)
        issued = await _insert(conn, device, room, label)
        await _event(conn, device_id, "install", user_id, actor, kind=kind, room=room)
        return device, issued.password, None

    return await _apply(conn, broker, "install", change)


async def replace_device(
    conn: Conn,
    broker: BrokerSettings | None,
    device_id: str,
    new_device_id: str | None = None,
    *,
    kind: str | None = None,
    room: str | None = None,
    label: str | None = None,
    user_id: int | None = None,
    actor: str = "",
) -> DeviceChange:
    """A new unit in the place of `device_id`. With `new_device_id` (another id), the new
    device is installed (the old one's kind, room and label unless given) and the old one
    retired; without it, the same id gets a new credential and its install check starts
    again. The old unit's credential stops working either way."""
    same = new_device_id is None or new_device_id == device_id

    async def change(conn: Conn) -> tuple[DeviceRecord, str, str | None]:
        old = await _device(conn, device_id)
        await _open_home(conn, old.home_id)
        if same:
            if kind is not None and kind != old.kind:
                raise DeviceRefused(
                    Refusal.INVALID_FIELD, "a device of another kind needs a new device id"
                )
            issued = await _rotate(conn, old)
            await conn.execute(
                "UPDATE devices SET installed_at = now(), first_heard_at = NULL,"
                " room = coalesce(%s, room), label = coalesce(%s, label) WHERE id = %s",
                (room, label, device_id),
            )
            await _event(conn, device_id, "replace", user_id, actor, same_id=True)
            return DeviceRecord(old.device_id, old.home_id, old.kind), issued.password, None
        assert new_device_id is not None
        new = DeviceRecord(new_device_id, old.home_id, kind or old.kind)
        new_room = old.room if room is None else room
        new_label = old.label if label is None else label
        check_new(new.device_id, new.home_id, new.kind, new_room, new_label)
        issued = await _insert(conn, new, new_room, new_label)
        await _retire(conn, device_id, replaced_by=new.device_id)
        await _event(conn, new.device_id, "install", user_id, actor, replaces=device_id)
        await _event(conn, device_id, "replace", user_id, actor, replaced_by=new.device_id)
        return new, issued.password, device_id

    return await _apply(conn, broker, "replace", change)


async def rotate_credentials(
    conn: Conn,
    broker: BrokerSettings | None,
    device_id: str,
    *,
    user_id: int | None = None,
    actor: str = "",
) -> DeviceChange:
    """A new password for a device in service; the old one is refused after the reload."""

    async def change(conn: Conn) -> tuple[DeviceRecord, str, None]:
        row = await _device(conn, device_id)
        issued = await _rotate(conn, row)
        await _event(conn, device_id, "rotate", user_id, actor)
        return DeviceRecord(row.device_id, row.home_id, row.kind), issued.password, None

    return await _apply(conn, broker, "rotate", change)


async def retire_device(
    conn: Conn,
    broker: BrokerSettings | None,
    device_id: str,
    *,
    user_id: int | None = None,
    actor: str = "",
) -> DeviceChange:
    """Take a device out of service: out of the registry (ingest refuses its messages as
    an unknown device), the broker files (its login refused) and the device watch (no
    longer expected to report). Its readings and alerts are kept."""

    async def change(conn: Conn) -> tuple[DeviceRecord, None, str]:
        row = await _device(conn, device_id)
        await _retire(conn, device_id)
        await _event(conn, device_id, "retire", user_id, actor)
        return DeviceRecord(row.device_id, row.home_id, row.kind), None, device_id

    return await _apply(conn, broker, "retire", change)


async def sync_broker(conn: Conn, broker: BrokerSettings) -> SyncResult:
    """Write the broker files from the registry and reload the broker (after a failed
    reload, or on the broker's host when the service does not write them)."""
    async with conn.transaction():
        await _locked(conn)
        written = write_files(broker, await current_files(conn))
    if not written:
        return SyncResult(False, False)
    return SyncResult(True, await reload(broker))


# --------------------------------------------------------------------------- install check

InstallStatus = Literal["heard", "waiting", "overdue", "retired"]


@dataclass(slots=True, frozen=True)
class InstallState:
    """Whether a device was heard since its install: `heard`, `waiting` (not yet, within
    the check's time), `overdue` (not heard by `due_at`), or `retired`."""

    device_id: str
    home_id: str
    kind: str
    installed_at: datetime
    first_heard_at: datetime | None
    retired_at: datetime | None
    due_at: datetime
    status: InstallStatus


async def install_state(conn: Conn, device_id: str, check_s: float) -> InstallState | None:
    """The install state of a device (None: no such device). Ingest notes when it first
    stores a reading of a device since its install (`devices.first_heard_at`)."""
    cur = await conn.execute(
        "SELECT id, home_id, kind, installed_at, first_heard_at, retired_at, now()"
        " FROM devices WHERE id = %s",
        (device_id,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    dev, home, kind, installed, heard, retired, now = row
    due = installed + timedelta(seconds=check_s)
    return InstallState(
        dev, home, kind, installed, heard, retired, due, install_status(heard, retired, due, now)
    )


def install_status(
    heard: datetime | None, retired: datetime | None, due: datetime, now: datetime
) -> InstallStatus:
    """`retired`, `heard`, or not heard yet: `waiting` until `due`, `overdue` after."""
    if retired is not None:
        return "retired"
    if heard is not None:
        return "heard"
    return "waiting" if now < due else "overdue"


async def wait_until_heard(
    conn: Conn, device_id: str, wait_s: float, check_s: float, poll_s: float = 2.0
) -> InstallState | None:
    """Poll `install_state` until the device is heard (or retired) or `wait_s` passed;
    returns the last state (None: no such device). Each poll is its own transaction."""
    deadline = time.monotonic() + wait_s
    while True:
        state = await install_state(conn, device_id, check_s)
        await conn.commit()
        if state is None or state.status in ("heard", "retired"):
            return state
        left = deadline - time.monotonic()
        if left <= 0:
            return state
        await asyncio.sleep(min(poll_s, left))
