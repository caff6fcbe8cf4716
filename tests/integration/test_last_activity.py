"""`last_activity` of an elder's status agrees with the day summary's (issue #16: the status
said 21:03 while `summary.last_activity` said 21:10, once the kitchen's motion sensor had
reported clear), on real readings in PostgreSQL. What counts is what ends a silence for the
detectors (`alerts.detect.layout.is_activity`): a motion sensor's rearming counts, a
heartbeat or a battery level does not."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from gateway.context import AppContext
from tests.integration.helpers import Pool, login

pytestmark = pytest.mark.integration
SHANGHAI = ZoneInfo("Asia/Shanghai")  # the demo homes' zone


async def store(pool: Pool, rows: list[tuple[str, datetime, str, float]]) -> None:
    """Readings of home h01 as ingest stores them: (device suffix, ts, metric, value)."""
    async with pool.connection() as conn:
        await conn.execute("SELECT eldercare_ensure_partitions(current_date - 3, current_date)")
        for seq, (device, ts, metric, value) in enumerate(rows):
            await conn.execute(
                "INSERT INTO readings (device_id, boot, seq, ts, home_id, metric, value)"
                " VALUES (%s, 1, %s, %s, 'h01', %s, %s)",
                (f"h01-{device}", seq, ts, metric, value),
            )


def at(day: datetime, hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime.combine(day.date(), time(hh, mm, ss), tzinfo=SHANGHAI)


async def test_status_last_activity_agrees_with_the_summary_after_a_motion_clear(
    client: httpx.AsyncClient, pool: Pool, ctx: AppContext
) -> None:
    day = datetime.now(SHANGHAI) - timedelta(days=1)
    now = at(day, 21, 20)
    ctx.clock = lambda: now
    await store(
        pool,
        [
            ("door-entry", at(day, 21, 3), "open", 1.0),  # back in from the garden
            ("door-entry", at(day, 21, 3, 5), "open", 0.0),
            ("pir-kitchen", at(day, 21, 10), "motion", 1.0),
            ("pir-kitchen", at(day, 21, 10, 20), "motion", 0.0),  # rearmed: "clear"
            ("bed", at(day, 21, 15), "battery", 81.0),  # housekeeping: no sign of life
            ("pir-bath", at(day, 21, 18), "heartbeat", 1.0),
            ("temp", at(day, 21, 19), "temperature", 21.0),
        ],
    )
    headers = await login(client, "family-h01")
    answer = await client.get("/api/v1/elders/e01/status", headers=headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    last = body["last_activity"]
    assert last["room"] == "kitchen"
    assert last["kind"] == "pir_motion"
    assert datetime.fromisoformat(last["at"]) == at(day, 21, 10, 20)
    assert datetime.fromisoformat(body["summary"]["last_activity"]) == at(day, 21, 10, 20)
    assert datetime.fromisoformat(body["summary"]["first_activity"]) == at(day, 21, 3)
    # Moving in the kitchen after the door: at home, not out (nor asleep by the bed's
    # battery level), and one motion in the day's counts.
    assert body["presence"] == "home"
    assert body["summary"]["motion_events"] == 1
    assert body["summary"]["door_openings"] == 1
    assert body["summary"]["hours_in_bed"] == 0.0
    assert body["temperature"] == 21.0
