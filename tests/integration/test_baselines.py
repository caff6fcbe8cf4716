"""Learned baselines survive a restart: saved to and restored from real PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from alerts.detect import baselines
from alerts.detect.learned import LearnedDetector
from alerts.detect.learned_homes import HOME, SEATED
from alerts.detect.replay import run_offline
from alerts.detect.rules import HOUR
from devices.payload import Reading
from tests.unit.test_detect_contract import LAYOUT, SEAT_LAYOUT, T0, routine, seated_routine

pytestmark = pytest.mark.integration


async def first_home(conn: Any) -> str:
    """A home of the seeded database (baselines belong to a real home)."""
    cur = await conn.execute("SELECT id FROM homes ORDER BY id LIMIT 1")
    row = await cur.fetchone()
    assert row is not None
    return str(row[0])


def in_home(home: str, readings: list[Reading]) -> list[Reading]:
    """The same readings, from `home`."""
    return [
        Reading(home, x.device_id, x.kind, x.boot, x.seq, x.ts, x.metric, x.value) for x in readings
    ]


async def test_save_and_restore(pool: AsyncConnectionPool[Any]) -> None:
    async with pool.connection() as conn:
        home = await first_home(conn)
        learned = LearnedDetector(LAYOUT)
        readings = in_home(home, routine(8))
        run_offline(learned, readings, tail=timedelta(0))
        assert await baselines.save(conn, learned.export()) == 1
        assert await baselines.save(conn, learned.export()) == 1  # upsert, not a duplicate
        fresh = LearnedDetector(LAYOUT)
        assert await baselines.restore(conn, fresh, T0 + timedelta(days=8)) == 1
    for hour in range(24):
        assert fresh.threshold(home, HOME, hour) == pytest.approx(
            learned.threshold(home, HOME, hour), rel=1e-3
        )


async def test_usual_seat_survives_a_restart(pool: AsyncConnectionPool[Any]) -> None:
    """The time seen seated is saved: after a restart the chair is still the usual seat, so a
    silence while up and about keeps its tight threshold."""
    async with pool.connection() as conn:
        home = await first_home(conn)
        learned = LearnedDetector(SEAT_LAYOUT)
        readings = in_home(home, seated_routine(8, 4.0))
        run_offline(learned, readings, tail=timedelta(0))
        await baselines.save(conn, learned.export())
        fresh = LearnedDetector(SEAT_LAYOUT)
        assert await baselines.restore(conn, fresh, T0 + timedelta(days=8)) == 1
    assert fresh.threshold(home, HOME, 14) <= 1.5 * HOUR
    for ctx in (HOME, SEATED):
        for hour in range(24):
            assert fresh.threshold(home, ctx, hour) == pytest.approx(
                learned.threshold(home, ctx, hour), rel=1e-3
            )


async def test_not_restored_at_start_they_are_restored_before_anything_is_saved(
    pool: AsyncConnectionPool[Any],
) -> None:
    """The database was down at start: the first save that reaches it restores the stored
    history first, instead of overwriting it with what was learned since the start."""
    async with pool.connection() as conn:
        home = await first_home(conn)
        learned = LearnedDetector(LAYOUT)
        run_offline(learned, in_home(home, routine(8)), tail=timedelta(0))
        await baselines.save(conn, learned.export())
    started_blank = LearnedDetector(LAYOUT)
    run_offline(started_blank, in_home(home, routine(1)), tail=timedelta(0))  # one day only
    task = asyncio.create_task(baselines.keep(pool, started_blank, interval_s=0.05, restored=False))
    try:
        await asyncio.sleep(0.5)  # a restore, then several saves
    finally:
        task.cancel()
    async with pool.connection() as conn:
        [stored] = await baselines.load(conn)
    assert stored.records == learned.export()[0].records  # the 8 days' history survived
    assert started_blank.export()[0].records == stored.records
