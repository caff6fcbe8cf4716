"""Retention on native PostgreSQL (issue #17): readings over many days, some older than the
raw retention; ingest's retention pass writes the rollups from the raw readings, drops the
old daily partitions (and the default partition's old rows), keeps the recent ones, changes
nothing when run again, and the API answers a day past the window from the rollups with
what the raw readings said before they went."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest

from gateway import family, status
from gateway.queries import readings as gq
from gateway.queries import rollups
from gateway.schemas.elders import ActivityHour, DaySummary
from ingest import retention, store
from ingest.migrate import storage_kind
from tests.integration.helpers import assert_error, login

pytestmark = pytest.mark.integration

RAW_DAYS = 20
SHANGHAI = ZoneInfo("Asia/Shanghai")
DEVICES = {  # suffix: metric
    "pir-living": "motion",
    "pir-kitchen": "motion",
    "pir-bath": "motion",
    "door-entry": "open",
    "bed": "occupied",
    "temp": "temperature",
}


def _day_of_readings(home: str, day: date, rng: random.Random) -> list[tuple[Any, ...]]:
    """One UTC day of a home: motion (seen and rearmed), the front door, the bed (with a
    repeated 'occupied'), the temperature, and housekeeping (battery, heartbeat)."""
    base = datetime.combine(day, time(), UTC)
    rows: list[tuple[Any, ...]] = []

    def at(minute: float, suffix: str, metric: str, value: float) -> None:
        rows.append((f"{home}-{suffix}", base + timedelta(minutes=minute), home, metric, value))

    at(rng.uniform(0, 30), "bed", "occupied", 1.0)
    at(rng.uniform(60, 90), "bed", "occupied", 1.0)  # still in bed: no new span
    at(rng.uniform(400, 460), "bed", "occupied", 0.0)
    at(rng.uniform(800, 830), "bed", "occupied", 1.0)
    at(rng.uniform(860, 900), "bed", "occupied", 0.0)
    if rng.random() < 0.5:
        at(rng.uniform(1300, 1430), "bed", "occupied", 1.0)  # into the next day
    for _ in range(rng.randint(8, 30)):
        minute = rng.uniform(0, 1439)
        suffix = rng.choice(["pir-living", "pir-kitchen", "pir-bath"])
        at(minute, suffix, "motion", 1.0)
        at(min(minute + 0.4, 1439.9), suffix, "motion", 0.0)
        at(minute, suffix, "battery", 87.0)
    for _ in range(rng.randint(0, 3)):
        minute = rng.uniform(480, 1200)
        at(minute, "door-entry", "open", 1.0)
        at(minute + 1.5, "door-entry", "open", 0.0)
    for h in range(0, 24, 3):
        at(h * 60 + rng.uniform(0, 59), "temp", "temperature", round(rng.uniform(14, 27), 1))
    at(rng.uniform(0, 1439), "temp", "heartbeat", 1.0)
    return rows


async def _insert(conn: psycopg.AsyncConnection[Any], rows: list[tuple[Any, ...]]) -> None:
    seq: dict[str, int] = {}
    values = []
    for device, ts, home, metric, value in rows:
        seq[device] = seq.get(device, 0) + 1
        values.append((device, seq[device], ts, home, metric, value))
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO readings (device_id, boot, seq, ts, home_id, metric, value)"
            " VALUES (%s, 1, %s, %s, %s, %s, %s)",
            values,
        )


async def _partitions(conn: psycopg.AsyncConnection[Any]) -> set[str]:
    cur = await conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'readings'::regclass"
    )
    return {str(r[0]) for r in await cur.fetchall()}


async def _snapshot(conn: psycopg.AsyncConnection[Any]) -> dict[str, list[Any]]:
    out = {}
    for table, order in (
        ("readings_hourly", "home_id, hour, device_id, metric"),
        ("activity_hourly", "home_id, hour, room"),
        ("home_days", "home_id, day"),
    ):
        cur = await conn.execute(f"SELECT * FROM {table} ORDER BY {order}")  # noqa: S608
        out[table] = await cur.fetchall()
    cur = await conn.execute(
        "SELECT raw_days, rollup_days, raw_since, hourly_through FROM readings_retention"
    )
    out["readings_retention"] = await cur.fetchall()  # updated_at says when it last ran
    return out


def _local_day_start(day: date) -> datetime:
    return datetime.combine(day, time(), SHANGHAI)


async def test_old_partitions_go_after_their_rollups_and_the_api_reads_them(
    db_url: str, client: httpx.AsyncClient
) -> None:
    now = datetime.now(UTC)
    today = now.date()
    cut = retention.cutoff(now, RAW_DAYS)
    rng = random.Random(17)
    policy = retention.Policy(raw_days=RAW_DAYS, rollup_days=None, late_days=7)
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        assert await storage_kind(conn) == "native"
        await store.ensure_partitions(conn, today - timedelta(days=40), today + timedelta(days=1))
        rows: list[tuple[Any, ...]] = []
        for home in ("h01", "h02"):
            for back in [45, *range(40, 0, -1)]:  # day 45 has no partition: the default's
                rows += _day_of_readings(home, today - timedelta(days=back), rng)
        await _insert(conn, rows)
        cur = await conn.execute("SELECT count(*) FROM readings_default WHERE ts < %s", (cut,))
        in_default = (await cur.fetchone() or (0,))[0]
        assert in_default > 0
        cur = await conn.execute("SELECT count(*) FROM readings WHERE ts >= %s", (cut,))
        kept_before = (await cur.fetchone() or (0,))[0]

        # What the raw readings say about every local day that starts before the cutoff
        # (the day across the cutoff included), computed the way the pages compute it.
        first_day = (datetime.combine(today - timedelta(days=45), time(), UTC)).astimezone(
            SHANGHAI
        ).date() - timedelta(days=1)
        old_days = []
        d = first_day
        while _local_day_start(d) < cut:
            old_days.append(d)
            d += timedelta(days=1)
        assert len(old_days) >= 25
        expected: dict[tuple[str, date], family.DaySummary] = {}
        expected_hours: dict[tuple[str, date], list[Any]] = {}
        for home in ("h01", "h02"):
            for d in old_days:
                start, end = _local_day_start(d), _local_day_start(d + timedelta(days=1))
                evts = await gq.events(conn, home, start, end)
                expected[home, d] = family.summarise(evts, start, end)
                expected_hours[home, d] = status.activity_hours(evts)
        assert sum(s.motion_events for s in expected.values()) > 300
        assert sum(s.hours_in_bed for s in expected.values()) > 100
        straddling = old_days[-1]
        assert _local_day_start(straddling + timedelta(days=1)) > cut
        assert expected["h01", straddling].motion_events > 0
        window = (cut - timedelta(days=5), cut + timedelta(days=2))
        expected_buckets = await gq.rollup(
            conn, "h01", *window, timedelta(hours=6), metric=None, device_id=None
        )

        report = await retention.run(conn, policy, now)
        assert report is not None
        assert report.storage == "native"

        parts = await _partitions(conn)
        gone = {f"readings_{today - timedelta(days=b):%Y%m%d}" for b in range(40, 0, -1)}
        gone = {p for p in gone if datetime.strptime(p[9:], "%Y%m%d").replace(tzinfo=UTC) < cut}
        assert len(gone) >= 19
        assert set(report.dropped) == gone
        assert not gone & parts
        assert f"readings_{cut:%Y%m%d}" in parts
        assert f"readings_{today:%Y%m%d}" in parts
        assert "readings_default" in parts
        assert report.deleted == in_default
        cur = await conn.execute("SELECT count(*) FROM readings WHERE ts < %s", (cut,))
        assert (await cur.fetchone()) == (0,)
        cur = await conn.execute("SELECT count(*) FROM readings WHERE ts >= %s", (cut,))
        assert (await cur.fetchone()) == (kept_before,)
        assert report.raw_since == cut

        # The rollups say what the raw readings said.
        # Every day that had readings is rolled up; a day without any (before the first
        # reading, or between days 45 and 40 back) has no row: the API says null for it.
        empty = {k for k, v in expected.items() if v.first_activity is None}
        assert len(expected) - len(empty) >= 40
        for key in empty:
            del expected[key]
        cur = await conn.execute(
            "SELECT home_id, day FROM home_days WHERE home_id IN ('h01', 'h02') AND day = ANY(%s)",
            (old_days,),
        )
        assert set(expected) <= {(str(h), d) for h, d in await cur.fetchall()}
        for (home, d), summary in expected.items():
            start, end = _local_day_start(d), _local_day_start(d + timedelta(days=1))
            row = await rollups.day(conn, home, d)
            assert row is not None
            assert status.rolled_up_summary(row) == summary, (home, d)
            rolled = await rollups.activity(conn, home, start, min(end, cut))
            assert rolled == [h for h in expected_hours[home, d] if h.hour < cut], (home, d)

        before = await _snapshot(conn)
        again = await retention.run(conn, policy, now)
        assert again is not None
        assert (again.hours, again.days, again.dropped, again.deleted) == (0, 0, [], 0)
        assert await _snapshot(conn) == before

    # The API: a day past the window from the rollups, a recent day from raw readings.
    headers = await login(client, "family-h01")
    for d in old_days:
        response = await client.get(f"/api/v1/elders/e01/days/{d}", headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["source"] == "rollup"
        assert datetime.fromisoformat(body["raw_since"]) == cut
        if ("h01", d) in empty:
            assert body["summary"] is None
            assert body["hours"] == []
            continue
        want = DaySummary.model_validate(expected["h01", d]).model_dump(mode="json")
        assert body["summary"] == want, d
        hours = [
            ActivityHour.model_validate(h).model_dump(mode="json") for h in expected_hours["h01", d]
        ]
        assert body["hours"] == hours, d
    recent = (now - timedelta(days=3)).astimezone(SHANGHAI).date()
    response = await client.get(f"/api/v1/elders/e01/days/{recent}", headers=headers)
    assert response.status_code == 200
    assert response.json()["source"] == "raw"

    params: dict[str, str | int] = {
        "start": window[0].isoformat(),
        "end": window[1].isoformat(),
        "bucket_s": 21600,
    }
    response = await client.get("/api/v1/elders/e01/readings", params=params, headers=headers)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [(datetime.fromisoformat(i["start"]), i["device_id"], i["metric"]) for i in items] == [
        (b.start, b.device_id, b.metric) for b in expected_buckets
    ]
    for item, b in zip(items, expected_buckets, strict=True):
        assert (item["count"], item["min"], item["max"]) == (b.count, b.min, b.max)
        assert item["avg"] == pytest.approx(b.avg)
    response = await client.get(
        "/api/v1/elders/e01/readings", params=params | {"bucket_s": 600}, headers=headers
    )
    assert "hourly rollups only" in assert_error(response, 422, "invalid_request")["message"]


async def test_a_pass_without_retention_drops_nothing(db_url: str) -> None:
    now = datetime.now(UTC)
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        old = now - timedelta(days=400)
        await _insert(conn, [("h01-temp", old, "h01", "temperature", 21.0)])
        before = await _partitions(conn)
        report = await retention.run(conn, retention.Policy(None, None, 7), now)
        assert report is not None
        assert (report.dropped, report.deleted) == ([], 0)
        assert await _partitions(conn) == before
        cur = await conn.execute("SELECT count(*) FROM readings WHERE ts = %s", (old,))
        assert (await cur.fetchone()) == (1,)


async def test_the_catch_up_of_missing_days_commits_chunk_by_chunk(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small chunks, each its own transaction: every missing (home, day) is summarised, and
    what a pass committed stays when the next one runs (it finds nothing left to do)."""
    monkeypatch.setattr(retention, "CATCH_UP_CHUNK", 3)
    now = datetime.now(UTC)
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await _insert(conn, [("h01-temp", now - timedelta(days=2), "h01", "temperature", 21.0)])
        policy = retention.Policy(None, None, 3)
        first = await retention.run(conn, policy, now)
        assert first is not None
        assert first.days > 3  # 8 seeded homes x the closed days: many chunks of 3
        cur = await conn.execute("SELECT count(*) FROM home_days")
        assert (await cur.fetchone()) == (first.days,)
        again = await retention.run(conn, policy, now)
        assert again is not None
        assert again.days == 0
