"""Queries for detection: the device layout, and persisted per-elder baselines."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from datetime import UTC, datetime
from typing import Any

import msgspec
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from alerts.detect.layout import Layout, PlacedDevice
from alerts.detect.learned import LearnedDetector
from alerts.detect.learned_persist import Baseline
from devices.shards import EVERY_HOME, Shard
from ingest.db import read_in_chunks

log = logging.getLogger(__name__)
VERSION = 1


async def load_layout(conn: AsyncConnection[Any]) -> Layout:
    """Every device in service's kind and room, and every home's time zone (read in chunks: the
    service reloads it while running, when the registry changed)."""
    devices: list[PlacedDevice] = []
    query = "SELECT id, home_id, kind, room FROM devices WHERE retired_at IS NULL"
    async with contextlib.aclosing(
        read_in_chunks(conn, "layout_devices", query, chunk=5000)
    ) as rows:
        async for chunk in rows:
            devices += [PlacedDevice(d, h, k, r or "") for d, h, k, r in chunk]
    cur = await conn.execute("SELECT id, timezone FROM homes")
    return Layout(devices, {h: tz for h, tz in await cur.fetchall()})


async def load_layout_from(pool: AsyncConnectionPool[Any]) -> Layout:
    """`load_layout` on a connection of the pool (waiting at most 2 s for one: the full
    stream waits for it)."""
    async with pool.connection(timeout=2.0) as conn:
        return await load_layout(conn)


def _clean(values: list[float]) -> list[float | None]:
    return [None if math.isnan(v) else v for v in values]


async def save(conn: AsyncConnection[Any], baselines: list[Baseline]) -> int:
    """Upsert baselines in one round trip (COPY into a temporary table, then merge)."""
    if not baselines:
        return 0
    async with conn.transaction():
        await conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS baselines_in (home_id text, state jsonb)"
            " ON COMMIT DROP"
        )
        await conn.execute("TRUNCATE baselines_in")
        async with conn.cursor().copy("COPY baselines_in (home_id, state) FROM STDIN") as copy:
            for b in baselines:
                state = {
                    "first_seen": None if math.isnan(b.first_seen) else b.first_seen,
                    "records": b.records,
                    "maxima": _clean(b.maxima),
                    "daily_mean": b.daily_mean,
                    "daily_days": b.daily_days,
                    "wake_h": None if math.isnan(b.wake_h) else b.wake_h,
                    "seat_s": b.seat_s,
                    "rooms": b.rooms,
                    "room_parts": b.room_parts,
                }
                await copy.write_row((b.home_id, msgspec.json.encode(state).decode()))
        cur = await conn.execute(
            "INSERT INTO detector_baselines (home_id, version, state, updated_at)"
            " SELECT i.home_id, %s, i.state, now() FROM baselines_in i"
            " JOIN homes h ON h.id = i.home_id"
            " ON CONFLICT (home_id) DO UPDATE SET version = EXCLUDED.version,"
            " state = EXCLUDED.state, updated_at = EXCLUDED.updated_at",
            (VERSION,),
        )
        return cur.rowcount


async def load(conn: AsyncConnection[Any]) -> list[Baseline]:
    """Every persisted baseline of the current version."""
    cur = await conn.execute(
        "SELECT home_id, state FROM detector_baselines WHERE version = %s", (VERSION,)
    )
    out: list[Baseline] = []
    for home_id, state in await cur.fetchall():
        first = state.get("first_seen")
        out.append(
            Baseline(
                home_id=home_id,
                first_seen=math.nan if first is None else float(first),
                records=state["records"],
                maxima=[math.nan if v is None else float(v) for v in state["maxima"]],
                daily_mean=float(state["daily_mean"]),
                daily_days=int(state["daily_days"]),
                wake_h=math.nan if state.get("wake_h") is None else float(state["wake_h"]),
                seat_s=float(state.get("seat_s", 0.0)),
                rooms={k: [float(x) for x in v] for k, v in state.get("rooms", {}).items()},
                room_parts={
                    k: [float(x) for x in v] for k, v in state.get("room_parts", {}).items()
                },
            )
        )
    return out


async def keep(
    pool: AsyncConnectionPool[Any],
    learned: LearnedDetector,
    interval_s: float = 300.0,
    restored: bool = True,
    shard: Shard = EVERY_HOME,
) -> None:
    """Save the learned baselines every `interval_s` (a named task of the alerts stage).

    If they could not be restored at start (`restored` False: the database was down), they
    are restored first, at the first save that reaches the database: saving before that
    would overwrite every elder's stored history with what was learned since the start."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            async with pool.connection() as conn:
                if not restored:
                    homes = await restore(conn, learned, shard=shard)
                    restored = True
                    log.warning("detector baselines restored late: %d homes", homes)
                    continue
                await save(conn, learned.export())
        except Exception:
            log.exception("could not save detector baselines; will retry")


async def restore(
    conn: AsyncConnection[Any],
    learned: LearnedDetector,
    now: datetime | None = None,
    shard: Shard = EVERY_HOME,
) -> int:
    """Load the persisted baselines of `shard`'s homes into the detector; returns how many."""
    baselines = [b for b in await load(conn) if shard.has(b.home_id)]
    learned.restore(baselines, now or datetime.now(UTC))
    return len(baselines)
