"""Clustered MQTT brokers against Mosquitto, in one run (`python -m bench.brokers`; results
in docs/performance.md): per broker, the raw QoS 1 publish ->
subscribe rate with Mosquitto's C clients (`mosquitto_pub -l` x4 -> `mosquitto_sub`, MQTT
3.1.1), and our durable ingest (one `eldercare run --components ingest` process, ack after
commit) on the same broker, with its ratio to that broker's raw rate.

Brokers: the embedded Mosquitto (one node), and 3-node clusters of NATS (JetStream's MQTT)
and RabbitMQ (MQTT plugin, quorum queues) from Debian's packages (devstack/clusters.py). The
service runs MQTT 3.1.1 on all three (the Debian versions of NATS and RabbitMQ speak nothing
newer) and reaches a cluster by its multi-node URL; publishers and the subscriber of the raw
figure use the first node.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import psycopg

from bench.load import PUBLISHERS, publish_all, require_tool
from bench.report import Figure, console, print_table, write_json
from bench.services import count_readings, service_env, spawn
from devstack.broker import EmbeddedBroker
from devstack.clusters import make_cluster
from devstack.postgres import EmbeddedPostgres
from devstack.seed import seed_demo
from ingest.migrate import migrate


@dataclass(slots=True, frozen=True)
class Target:
    """What the bench phases need of a broker: the service's URL, its protocol, and the
    port of the node the load generators use."""

    url: str
    protocol: Literal["5", "3.1.1"]
    port: int


def raw_rate(target: Target, per_publisher: int) -> tuple[float, float]:
    """QoS 1 messages/s through the broker with Mosquitto's clients; (rate, seconds)."""
    sub = require_tool("mosquitto_sub")
    total = per_publisher * PUBLISHERS
    receiver = subprocess.Popen(
        [sub, "-h", "127.0.0.1", "-p", str(target.port), "-V", "mqttv311", "-q", "1",
         "-t", "eldercare/#", "-C", str(total), "-i", "bench-raw-sub"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.0)  # subscribed (a cluster sets up the session's queue first)
    t0 = time.perf_counter()
    publish_all(target.port, per_publisher, datetime.now(UTC) - timedelta(hours=1))
    receiver.wait(timeout=600)
    elapsed = time.perf_counter() - t0
    return total / elapsed, elapsed


def ingest_rate(
    dsn: str, target: Target, per_publisher: int, logdir: Path, name: str, seq0: int
) -> tuple[float, float]:
    """Readings/s committed by one ingest process (its own persistent session)."""
    total = per_publisher * PUBLISHERS
    before = count_readings(dsn)
    env = service_env(
        dsn,
        target,  # type: ignore[arg-type]  # url and protocol are all it reads
        {
            "ELDERCARE_INGEST__CLIENT_ID": f"bench-ingest-{name}",
            "ELDERCARE_INGEST__BATCH_MAX_ROWS": "5000",
            "ELDERCARE_MQTT__RECEIVE_MAXIMUM": "10000",
            "ELDERCARE_MQTT__CONNECT_TIMEOUT_S": "30",
        },
    )
    proc = spawn("ingest", env, logdir / f"ingest-{name}.log")
    try:
        time.sleep(4.0)  # connected and subscribed
        t0 = time.perf_counter()
        publish_all(target.port, per_publisher, datetime.now(UTC) - timedelta(hours=2), seq0)
        deadline = time.monotonic() + 600
        while count_readings(dsn) - before < total:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"ingest on {name} did not finish; see {logdir}")
            time.sleep(0.05)
        elapsed = time.perf_counter() - t0
    finally:
        proc.terminate()
        try:
            proc.wait(40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return total / elapsed, elapsed


def main(argv: list[str] | None = None) -> None:
    """Measure each broker and print/write the report (`argv`: the options, default the
    command line's)."""
    parser = argparse.ArgumentParser(prog="python -m bench.brokers", description=__doc__)
    parser.add_argument("--readings", type=int, default=80_000, help="messages per phase")
    parser.add_argument("--brokers", default="mosquitto,nats,rabbitmq")
    parser.add_argument("--nodes", type=int, default=3, help="nodes per cluster")
    parser.add_argument("--json", type=Path, default=Path("bench/results/brokers.json"))
    args = parser.parse_args(argv)
    per_publisher = min(args.readings // PUBLISHERS, 60_000)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="eldercare-bench-brokers-") as tmp:
        root = Path(tmp)
        logdir = root / "logs"
        logdir.mkdir()
        with EmbeddedPostgres(root / "pg") as pg:
            asyncio.run(migrate(pg.url))

            async def seed() -> None:
                async with await psycopg.AsyncConnection.connect(pg.url) as conn:
                    await seed_demo(conn, homes=PUBLISHERS)

            asyncio.run(seed())
            for i, kind in enumerate(args.brokers.split(",")):
                if kind == "mosquitto":
                    with EmbeddedBroker(root / "mq", prefer="mosquitto") as mq:
                        target = Target(mq.url, "3.1.1", mq.port)
                        figures += _measure(pg.url, target, per_publisher, logdir, kind, i)
                else:
                    cluster = make_cluster(kind, root / kind, args.nodes)
                    t0 = time.monotonic()
                    with cluster:
                        console.print(
                            f"{kind}: {args.nodes} nodes up in {time.monotonic() - t0:.0f} s"
                        )
                        target = Target(cluster.url, cluster.protocol, cluster.mqtt_ports[0])
                        label = f"{kind} x{args.nodes}"
                        figures += _measure(pg.url, target, per_publisher, logdir, label, i)
    print_table(figures)
    write_json(args.json, figures)
    console.print(f"report written to {args.json}")


def _measure(
    dsn: str, target: Target, per_publisher: int, logdir: Path, label: str, run: int
) -> list[Figure]:
    raw, raw_s = raw_rate(target, per_publisher)
    ours, ours_s = ingest_rate(
        dsn, target, per_publisher, logdir, label.split()[0], seq0=(run + 1) * 1_000_000
    )
    raw_figure = Figure(
        f"{label}: raw QoS 1 (mosquitto_pub -l x4 -> mosquitto_sub, 3.1.1)",
        raw,
        "msg/s",
        detail={"messages": per_publisher * PUBLISHERS, "seconds": round(raw_s, 3)},
    )
    ingest_figure = Figure(
        f"{label}: our ingest, QoS 1, ack after commit (1 process, 3.1.1)",
        ours,
        "readings/s",
        baseline=raw_figure.name,
        ratio=ours / raw,
        detail={"seconds": round(ours_s, 3)},
    )
    console.print(
        f"{label}: raw {raw:,.0f} msg/s, ingest {ours:,.0f} readings/s ({ours / raw:.2f})"
    )
    return [raw_figure, ingest_figure]


if __name__ == "__main__":
    main()
