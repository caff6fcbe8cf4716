"""How long retention's catch-up of missing day summaries takes for a district's homes
(`python -m bench.retention_catchup [--homes 10000]`): an embedded PostgreSQL with the demo
homes plus `--homes` more, a week of missing (home, day) pairs, one retention pass timed, then
a second one (nothing left: it must be quick). The pass commits per chunk and rests as long
as each chunk took (ingest/retention.py), so its wall time is about twice its database time.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from bench.homes import bulk_homes
from bench.report import console
from devstack.postgres import EmbeddedPostgres
from devstack.seed import seed_demo
from ingest import retention
from ingest.migrate import migrate
from ingest.service import IngestSettings


def main(argv: list[str] | None = None) -> None:
    """Time two retention passes over a fresh database of `--homes` homes."""
    parser = argparse.ArgumentParser(prog="python -m bench.retention_catchup", description=__doc__)
    parser.add_argument("--homes", type=int, default=10_000)
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="eldercare-bench-retention-") as tmp,
        EmbeddedPostgres(Path(tmp) / "pg") as pg,
    ):
        asyncio.run(migrate(pg.url))

        async def seed() -> None:
            async with await psycopg.AsyncConnection.connect(pg.url) as conn:
                await seed_demo(conn, homes=40)

        asyncio.run(seed())
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


if __name__ == "__main__":
    main()
