"""The TimescaleDB migration path (and its retention, 0018), run for real in CI: PGlite
(PostgreSQL 17 compiled to WebAssembly) built with TimescaleDB 2.23, from npm, served over
the PostgreSQL protocol by pglite-socket (tools/pglite, installed by scripts/test with
`npm ci`).

PGlite serves one connection at a time, has no background workers (the compression policy
is registered but only runs when called) and cannot take COPY FROM STDIN over the socket, so
the ingest's COPY path is not run here; see docs/operations.md.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from devstack.ports import free_port
from gateway import family, status
from gateway.queries import readings as gq
from gateway.queries import rollups
from ingest import retention, store
from ingest.migrate import migrate, plan, storage_kind, timescale_available

pytestmark = pytest.mark.integration

TOOLS = Path(__file__).resolve().parents[2] / "tools" / "pglite"
START_TIMEOUT_S = 180.0


@dataclass
class PGliteServer:
    """A running `node tools/pglite/server.mjs` child process."""

    process: subprocess.Popen[str]
    port: int
    output: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        """Its postgresql:// URL (PGlite speaks no TLS)."""
        return f"postgresql://postgres:postgres@127.0.0.1:{self.port}/postgres?sslmode=disable"

    def log(self) -> str:
        """What the server printed so far."""
        return "".join(self.output[-60:])

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if line.strip() == f"ready {self.port}":
                self.ready.set()

    def stop(self) -> None:
        """Close its stdin (it then stops), or kill it after 10 s."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def _not_installed() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed (scripts/test installs nodejs and npm with apt-get as root)"
    if not (TOOLS / "node_modules" / "@electric-sql" / "pglite-socket").is_dir():
        return f"PGlite with TimescaleDB is not installed: run `npm ci --prefix {TOOLS}`"
    return None


@pytest.fixture(scope="module")
def pglite() -> Iterator[PGliteServer]:
    """PGlite with TimescaleDB on a free port; fails in CI (CI=true) when not installed."""
    missing = _not_installed()
    if missing is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the TimescaleDB test cannot run in CI: {missing}")
        pytest.skip(missing)
    port = free_port()
    process = subprocess.Popen(
        ["node", "server.mjs", str(port)],
        cwd=TOOLS,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = PGliteServer(process, port)
    threading.Thread(target=server._pump, name="pglite-output", daemon=True).start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.ready.wait(0.2):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"PGlite did not start (exit {process.poll()}):\n{server.log()}")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def applied(pglite: PGliteServer) -> list[int]:
    """The versions the first migration applied on the fresh PGlite (Timescale detected)."""
    return asyncio.run(migrate(pglite.url))


async def test_the_server_offers_timescaledb(pglite: PGliteServer) -> None:
    async with await psycopg.AsyncConnection.connect(pglite.url) as conn:
        assert await timescale_available(conn)


async def test_migrations_build_the_timescale_schema(
    pglite: PGliteServer, applied: list[int]
) -> None:
    assert applied == [m.version for m in plan(timescale=True)]
    assert await migrate(pglite.url) == []  # a second run applies nothing
    async with await psycopg.AsyncConnection.connect(pglite.url) as conn:
        assert await storage_kind(conn) == "timescale"
        cur = await conn.execute(
            "SELECT h.compression_enabled, d.column_name, d.time_interval"
            " FROM timescaledb_information.hypertables h"
            " JOIN timescaledb_information.dimensions d USING (hypertable_schema, hypertable_name)"
            " WHERE h.hypertable_name = 'readings'"
        )
        assert await cur.fetchall() == [(True, "ts", timedelta(days=1))]
        cur = await conn.execute(
            "SELECT attname FROM timescaledb_information.compression_settings"
            " WHERE hypertable_name = 'readings' AND segmentby_column_index IS NOT NULL"
        )
        assert await cur.fetchall() == [("device_id",)]
        cur = await conn.execute(
            "SELECT config->>'compress_after' FROM timescaledb_information.jobs"
            " WHERE proc_name = 'policy_compression' AND hypertable_name = 'readings'"
        )
        assert await cur.fetchall() == [("7 days",)]
        today = datetime.now(UTC).date()
        # Partition upkeep is a no-op on the hypertable (chunks are made on insert).
        assert await store.ensure_partitions(conn, today, today + timedelta(days=7)) == 0


_INSERT = (
    "INSERT INTO readings (device_id, boot, seq, ts, home_id, metric, value)"
    " VALUES (%s, 1, %s, %s, 'h01', 'temperature', %s) ON CONFLICT DO NOTHING"
)


async def test_readings_are_deduplicated_and_compressed_by_the_policy(
    pglite: PGliteServer, applied: list[int]
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    old = now - timedelta(days=10)
    rows = [("tsdb-old", seq, old + timedelta(minutes=seq), 20.0 + seq) for seq in range(1, 51)]
    rows += [("tsdb-new", seq, now - timedelta(minutes=seq), 30.0 + seq) for seq in range(1, 11)]
    async with await psycopg.AsyncConnection.connect(pglite.url, autocommit=True) as conn:
        async with conn.cursor() as cur:
            await cur.executemany(_INSERT, rows)
            # A redelivered reading (same device, boot, seq, ts) is stored once.
            await cur.execute(_INSERT, ("tsdb-old", 1, old + timedelta(minutes=1), 99.0))
            assert cur.rowcount == 0

        cur = await conn.execute(
            "SELECT job_id FROM timescaledb_information.jobs"
            " WHERE proc_name = 'policy_compression' AND hypertable_name = 'readings'"
        )
        row = await cur.fetchone()
        assert row is not None
        await conn.execute("CALL run_job(%s)", (row[0],))
        cur = await conn.execute(
            "SELECT c.range_end <= now() - interval '7 days', c.is_compressed"
            " FROM timescaledb_information.chunks c"
            " WHERE c.hypertable_name = 'readings'"
            " AND EXISTS (SELECT 1 FROM readings r WHERE r.device_id LIKE 'tsdb-%'"
            "             AND r.ts >= c.range_start AND r.ts < c.range_end)"
        )
        chunks = await cur.fetchall()
        # Chunks older than 7 days were compressed, the recent ones were not.
        assert {older for older, _ in chunks} == {True, False}
        assert all(compressed == older for older, compressed in chunks)

        async with conn.cursor() as cur:
            # Still deduplicated once compressed; new readings still land in the old chunk.
            await cur.execute(_INSERT, ("tsdb-old", 2, old + timedelta(minutes=2), 99.0))
            assert cur.rowcount == 0
            await cur.execute(_INSERT, ("tsdb-old", 51, old + timedelta(minutes=51), 71.0))
            assert cur.rowcount == 1
        cur = await conn.execute(
            "SELECT device_id, count(*), sum(value) FROM readings"
            " WHERE device_id LIKE 'tsdb-%' GROUP BY device_id ORDER BY device_id"
        )
        expected_old = sum(20.0 + s for s in range(1, 52))
        expected_new = sum(30.0 + s for s in range(1, 11))
        assert await cur.fetchall() == [
            ("tsdb-new", 10, expected_new),
            ("tsdb-old", 51, expected_old),
        ]


async def _jobs(conn: psycopg.AsyncConnection[Any]) -> dict[tuple[str, str], str]:
    cur = await conn.execute(
        "SELECT proc_name, hypertable_name,"
        " coalesce(config->>'drop_after', config->>'start_offset')"
        " FROM timescaledb_information.jobs WHERE hypertable_name IS NOT NULL"
    )
    return {(str(p), str(h)): str(v) for p, h, v in await cur.fetchall()}


async def test_retention_on_timescale_keeps_rollups_of_the_chunks_it_drops(
    pglite: PGliteServer, applied: list[int]
) -> None:
    """Migration 0018 on TimescaleDB: continuous aggregates and their policies, the raw
    retention policy; ingest's retention pass sets the policies to the settings and writes
    the day summaries; the retention job drops old chunks, and what the aggregates and the
    day summaries hold of them is what the raw readings said."""
    now = datetime.now(UTC)
    today = now.date()
    tz = ZoneInfo("Asia/Shanghai")
    # PGlite runs every connection in one backend: statements a previous connection prepared
    # are still there, so this one prepares none.
    async with await psycopg.AsyncConnection.connect(
        pglite.url, autocommit=True, prepare_threshold=None
    ) as conn:
        jobs = await _jobs(conn)
        assert jobs[("policy_retention", "readings")] == "180 days"
        assert jobs[("policy_retention", "readings_hourly")] == "1825 days"
        assert jobs[("policy_retention", "activity_hourly")] == "1825 days"
        assert jobs[("policy_refresh_continuous_aggregate", "readings_hourly")] == "9 days"
        assert jobs[("policy_refresh_continuous_aggregate", "activity_hourly")] == "9 days"

        await conn.execute(
            "INSERT INTO regions (id, name, tier, parent_id) VALUES ('tsd', 'D', 'district',"
            " NULL), ('tst', 'T', 'town', 'tsd'), ('tsv', 'V', 'village', 'tst')"
        )
        await conn.execute(
            "INSERT INTO homes (id, village_id, timezone) VALUES ('ts01', 'tsv', 'Asia/Shanghai')"
        )
        devices = [
            ("ts01-pir", "pir_motion", "kitchen", "motion"),
            ("ts01-door", "door_contact", "hall", "open"),
            ("ts01-bed", "bed_mat", "bedroom", "occupied"),
            ("ts01-temp", "temperature", "living room", "temperature"),
        ]
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO devices (id, home_id, kind, room) VALUES (%s, 'ts01', %s, %s)",
                [(d, k, r) for d, k, r, _ in devices],
            )
        rows = []
        seq = 0
        for back in range(30, 0, -1):
            base = datetime.combine(today - timedelta(days=back), clock_time(), UTC)
            for minute in range(0, 1440, 37):
                seq += 1
                device, _, _, metric = devices[seq % len(devices)]
                value = float(seq // 4 % 2) if metric != "temperature" else 15.0 + seq % 11
                rows.append((device, seq, base + timedelta(minutes=minute), metric, value))
                rows.append(
                    (device, seq + 100_000, base + timedelta(minutes=minute), "battery", 80.0)
                )
        for i in range(0, len(rows), 100):  # PGlite's socket drops long messages
            await conn.execute(
                "INSERT INTO readings (device_id, boot, seq, ts, home_id, metric, value)"
                " SELECT d, 1, s, t, 'ts01', m, v"
                " FROM unnest(%s::text[], %s::bigint[], %s::timestamptz[], %s::text[],"
                " %s::float8[]) AS r(d, s, t, m, v)",
                [list(c) for c in zip(*rows[i : i + 100], strict=True)],
            )
        # What the refresh policy does every hour in a real server (PGlite has no workers).
        for view in ("readings_hourly", "activity_hourly"):
            await conn.execute(
                "CALL refresh_continuous_aggregate(%s, NULL, %s)", (view, now - timedelta(hours=1))
            )

        raw_days = 20
        cut = retention.cutoff(now, raw_days)
        days = []
        d = (datetime.combine(today - timedelta(days=30), clock_time(), UTC)).astimezone(
            tz
        ).date() + timedelta(days=1)
        while datetime.combine(d + timedelta(days=1), clock_time(), tz) <= cut + timedelta(days=1):
            days.append(d)
            d += timedelta(days=1)
        expected = {}
        expected_hours = []
        for d in days:
            start = datetime.combine(d, clock_time(), tz)
            end = datetime.combine(d + timedelta(days=1), clock_time(), tz)
            evts = await gq.events(conn, "ts01", start, end)
            expected[d] = family.summarise(evts, start, end)
            expected_hours += status.activity_hours(evts)
        assert len(days) >= 8
        assert sum(s.motion_events for s in expected.values()) > 30
        cur = await conn.execute(
            "SELECT count(*), sum(value) FROM readings WHERE home_id = 'ts01' AND ts < %s", (cut,)
        )
        raw_old = await cur.fetchone()

        policy = retention.Policy(raw_days=raw_days, rollup_days=400, late_days=7)
        report = await retention.run(conn, policy, now)
        assert report is not None
        assert report.storage == "timescale"
        assert report.policies == 3  # the raw retention and both aggregates' retention
        jobs = await _jobs(conn)
        assert jobs[("policy_retention", "readings")] == "20 days"
        assert jobs[("policy_retention", "readings_hourly")] == "400 days"
        assert jobs[("policy_refresh_continuous_aggregate", "activity_hourly")] == "9 days"
        assert report.raw_since == cut + timedelta(days=1)

        cur = await conn.execute(
            "SELECT job_id FROM timescaledb_information.jobs"
            " WHERE proc_name = 'policy_retention' AND hypertable_name = 'readings'"
        )
        job = await cur.fetchone()
        assert job is not None
        await conn.execute("CALL run_job(%s)", (job[0],))
        cur = await conn.execute(
            "SELECT count(*) FROM timescaledb_information.chunks"
            " WHERE hypertable_name = 'readings' AND range_end < %s",
            (now - timedelta(days=raw_days),),
        )
        assert await cur.fetchone() == (0,)  # the old chunks are gone
        cur = await conn.execute("SELECT min(ts) FROM readings WHERE home_id = 'ts01'")
        oldest = await cur.fetchone()
        assert oldest is not None
        assert oldest[0] >= cut

        # The aggregates kept the dropped hours as the raw readings had them.
        cur = await conn.execute(
            "SELECT sum(n), sum(vsum) FROM readings_hourly WHERE home_id = 'ts01' AND hour < %s",
            (cut,),
        )
        assert await cur.fetchone() == raw_old
        before_cut = [h for h in expected_hours if h.hour < cut]
        got = await rollups.activity(conn, "ts01", datetime.combine(days[0], clock_time(), tz), cut)
        assert got == before_cut
        for d, summary in expected.items():
            row = await rollups.day(conn, "ts01", d)
            assert row is not None, d
            assert status.rolled_up_summary(row) == summary, d

        again = await retention.run(conn, policy, now)
        assert again is not None
        assert (again.policies, again.days) == (0, 0)
