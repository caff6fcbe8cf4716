"""SQL of device provisioning, broker accounts and simulated cohorts."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import psycopg

from devices.provisioning import Credential, ServiceAccount
from devices.registry import DeviceRecord

Conn = psycopg.AsyncConnection[Any]


async def add_device(conn: Conn, device: DeviceRecord, room: str) -> bool:
    """Register a device to an existing home; False when the id is taken by another home."""
    cur = await conn.execute(
        "INSERT INTO devices (id, home_id, kind, room) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (id) DO NOTHING",
        (device.device_id, device.home_id, device.kind, room),
    )
    if cur.rowcount:
        return True
    cur = await conn.execute("SELECT home_id, kind FROM devices WHERE id = %s", (device.device_id,))
    row = await cur.fetchone()
    return row is not None and (row[0], row[1]) == (device.home_id, device.kind)


async def home_exists(conn: Conn, home_id: str) -> bool:
    """Whether a home with this id exists."""
    cur = await conn.execute("SELECT 1 FROM homes WHERE id = %s", (home_id,))
    return await cur.fetchone() is not None


async def set_credential(conn: Conn, device_id: str, credential: Credential) -> None:
    """Store (or replace) a device's credential hash."""
    await conn.execute(
        "INSERT INTO device_credentials (device_id, username, password_hash) VALUES (%s, %s, %s)"
        " ON CONFLICT (device_id) DO UPDATE SET username = EXCLUDED.username,"
        " password_hash = EXCLUDED.password_hash, created_at = now(), revoked_at = NULL",
        (device_id, credential.username, credential.password_hash),
    )


async def credentials(conn: Conn) -> list[tuple[DeviceRecord, Credential]]:
    """Every device with a live credential."""
    cur = await conn.execute(
        "SELECT d.id, d.home_id, d.kind, c.username, c.password_hash"
        " FROM device_credentials c JOIN devices d ON d.id = c.device_id"
        " WHERE c.revoked_at IS NULL AND d.retired_at IS NULL ORDER BY d.id"
    )
    return [
        (DeviceRecord(str(i), str(h), str(k)), Credential(str(u), str(p)))
        for i, h, k, u, p in await cur.fetchall()
    ]


async def service_accounts(conn: Conn) -> list[ServiceAccount]:
    """The broker's service accounts."""
    cur = await conn.execute("SELECT username, password_hash FROM broker_users ORDER BY username")
    return [ServiceAccount(str(u), str(p)) for u, p in await cur.fetchall()]


async def add_service_account(conn: Conn, account: ServiceAccount) -> bool:
    """Create a service account; False when it exists already (its password is kept)."""
    cur = await conn.execute(
        "INSERT INTO broker_users (username, role, password_hash) VALUES (%s, 'service', %s)"
        " ON CONFLICT (username) DO NOTHING",
        (account.username, account.password_hash),
    )
    return bool(cur.rowcount)


async def register_homes(
    conn: Conn,
    homes: Iterable[tuple[str, str, list[tuple[str, str, str]]]],
    village_id: str,
    timezone: str = "UTC",
) -> int:
    """Create a simulation region (if missing), then homes, elders and devices; idempotent.

    `homes` holds (home_id, elder name, [(device_id, kind, room), ...]). Returns homes added.
    """
    await conn.execute(
        "INSERT INTO regions (id, name, tier, parent_id) VALUES"
        " ('simd', 'Simulated District', 'district', NULL),"
        " ('simt', 'Simulated Town', 'town', 'simd')"
        " ON CONFLICT DO NOTHING"
    )
    await conn.execute(
        "INSERT INTO regions (id, name, tier, parent_id) VALUES (%s, %s, 'village', 'simt')"
        " ON CONFLICT DO NOTHING",
        (village_id, f"Simulated village {village_id}"),
    )
    added = 0
    async with conn.cursor() as cur:
        for home_id, name, devices in homes:
            await cur.execute(
                "INSERT INTO homes (id, village_id, timezone) VALUES (%s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                (home_id, village_id, timezone),
            )
            added += max(cur.rowcount, 0)
            await cur.execute(
                "INSERT INTO elders (id, home_id, full_name) VALUES (%s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                (f"{home_id}-elder", home_id, name),
            )
            await cur.executemany(
                "INSERT INTO devices (id, home_id, kind, room) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                [(d, home_id, k, r) for d, k, r in devices],
            )
    return added


async def write_incidents(conn: Conn, run: str, incidents: Iterable[Any]) -> int:
    """Store ground-truth incidents (`simulators.cohort.truth.Incident`-shaped) of a run."""
    rows = [
        (
            run,
            i.home_id,
            i.kind,
            i.start,
            i.end,
            list(i.expected_alerts),
            json.dumps(i.detail, sort_keys=True),
        )
        for i in incidents
    ]
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO sim_incidents"
            " (run, home_id, kind, starts_at, ends_at, expected_alerts, detail)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            rows,
        )
    return len(rows)
