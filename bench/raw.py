"""The raw limits ours are measured against: Mosquitto QoS 1 with its own C clients, and
PostgreSQL's binary COPY into the readings table."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime, timedelta

import psycopg

from bench.load import PUBLISHERS, publish_all, require_tool
from bench.report import Figure
from devstack.broker import EmbeddedBroker


def raw_broker(broker: EmbeddedBroker, per_publisher: int) -> Figure:
    """Mosquitto QoS 1 publish -> subscribe throughput with the fastest C clients."""
    sub = require_tool("mosquitto_sub")
    total = per_publisher * PUBLISHERS
    receiver = subprocess.Popen(
        [
            sub,
            "-h",
            "127.0.0.1",
            "-p",
            str(broker.port),
            "-q",
            "1",
            "-t",
            "eldercare/#",
            "-C",
            str(total),
            "-i",
            "bench-raw-sub",
        ],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    t0 = time.perf_counter()
    publish_all(broker.port, per_publisher, datetime.now(UTC) - timedelta(hours=1))
    receiver.wait(timeout=600)
    elapsed = time.perf_counter() - t0
    return Figure(
        "raw broker QoS 1 (mosquitto_pub -l x4 -> mosquitto_sub)",
        total / elapsed,
        "msg/s",
        detail={"messages": total, "seconds": round(elapsed, 3)},
    )


def raw_copy(dsn: str, rows: int, batch: int = 10_000) -> Figure:
    """Binary COPY into the readings table, in batches, one transaction each."""
    start = datetime.now(UTC) - timedelta(days=1)
    t0 = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        for first in range(0, rows, batch):
            with (
                conn.cursor() as cur,
                cur.copy(
                    "COPY readings (device_id, boot, seq, ts, home_id, metric, value)"
                    " FROM STDIN (FORMAT BINARY)"
                ) as copy,
            ):
                copy.set_types(["text", "int4", "int8", "timestamptz", "text", "text", "float8"])
                for i in range(first, min(first + batch, rows)):
                    copy.write_row(
                        (
                            "bench-copy",
                            1,
                            i,
                            start + timedelta(milliseconds=i),
                            "h01",
                            "motion",
                            1.0,
                        )
                    )
            conn.commit()
        conn.execute("DELETE FROM readings WHERE device_id = 'bench-copy'")
        conn.commit()
    elapsed = time.perf_counter() - t0
    return Figure(
        "raw PostgreSQL binary COPY into readings (10k batches)",
        rows / elapsed,
        "rows/s",
        detail={"rows": rows, "seconds": round(elapsed, 3)},
    )
