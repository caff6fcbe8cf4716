"""Learned baselines survive a restart: saved to and restored from real PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from alerts import baselines
from alerts.learned import HOME, LearnedDetector
from alerts.replay import run_offline
from tests.unit.test_detect_contract import LAYOUT, T0, routine

pytestmark = pytest.mark.integration


async def test_save_and_restore(pool: AsyncConnectionPool[Any]) -> None:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT id FROM homes ORDER BY id LIMIT 1")
        row = await cur.fetchone()
        assert row is not None
        home = str(row[0])
        learned = LearnedDetector(LAYOUT)
        readings = [
            type(x)(home, x.device_id, x.kind, x.boot, x.seq, x.ts, x.metric, x.value)
            for x in routine(8)
        ]
        run_offline(learned, readings, tail=timedelta(0))
        assert await baselines.save(conn, learned.export()) == 1
        assert await baselines.save(conn, learned.export()) == 1  # upsert, not a duplicate
        fresh = LearnedDetector(LAYOUT)
        assert await baselines.restore(conn, fresh, T0 + timedelta(days=8)) == 1
    for hour in range(24):
        assert fresh.threshold(home, HOME, hour) == pytest.approx(
            learned.threshold(home, HOME, hour), rel=1e-3
        )
