"""How long retention's catch-up of missing day summaries takes for a district's homes
(`python -m bench.retention_catchup [--homes 10000] [--readings 600000]`): an embedded
PostgreSQL with the demo homes plus `--homes` more, a week of missing (home, day) pairs, and
`--readings` readings of 4 homes in the last 4 hours (what the SOS benchmark's runs leave in
today's partition: none of them in a day to summarise, but every chunk's plan must keep away
from them); one retention pass timed, then a second one (nothing left: it must be quick). The
pass commits per chunk and rests as long as each chunk took (ingest/retention.py), so its wall
time is about twice its database time.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from bench.homes import bulk_homes
from bench.report import console
from devstack.postgres import EmbeddedPostgres
from devstack.seed import seed_demo
from ingest import retention
from ingest.migrate import migrate
from ingest.service import IngestSettings
from ingest.store import ensure_partitions


def main(argv: list[str] | None = None) -> None:
    """Time two retention passes over a fresh database of `--homes` homes."""
    parser = argparse.ArgumentParser(prog="python -m bench.retention_catchup", description=__doc__)
    parser.add_argument("--homes", type=int, default=10_000)
    parser.add_argument("--readings", type=int, default=600_000)
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="eldercare-bench-retention-") as tmp,
        EmbeddedPostgres(Path(tmp) / "pg") as pg,
    ):
        asyncio.run(migrate(pg.url))

        async def seed() -> None:
            async with await psycopg.AsyncConnection.connect(pg.url) as conn:
                await seed_demo(conn, homes=40)
                today = datetime.now(UTC).date()
                await ensure_partitions(conn, today - timedelta(days=1), today + timedelta(days=1))

        asyncio.run(seed())
        _today_readings(pg.url, args.readings)
        bulk_homes(pg.url, args.homes)

        async def passes() -> None:
            async with await psycopg.AsyncConnection.connect(pg.url, autocommit=True) as c:
                for name in ("first pass", "second pass"):
                    started = time.monotonic()
                    report = await retention.run(c, IngestSettings().retention(), datetime.now(UTC))
                    days = report.days if report is not None else None
                    console.print(
                        f"{name}: {time.monotonic() - started:.2f} s, {days} day summaries"
                    )

        asyncio.run(passes())


def _today_readings(dsn: str, rows: int) -> None:
    """`rows` motion readings of h01-h04, 4 per millisecond from 4 hours ago."""
    start = datetime.now(UTC) - timedelta(hours=4)
    with psycopg.connect(dsn) as conn:
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY readings (device_id, boot, seq, ts, home_id, metric, value) FROM STDIN"
            ) as copy,
        ):
            for i in range(rows):
                home = f"h{1 + i % 4:02d}"
                ts = start + timedelta(milliseconds=i // 4)
                copy.write_row((f"{home}-pir-living", 1, i, ts, home, "motion", float(i % 2)))
        conn.commit()


if __name__ == "__main__":
    main()
