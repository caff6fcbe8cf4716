"""The benchmark run: raw limits first, then ours, each printed with its ratio.

    python -m bench [--readings 200000] [--workers 2] [--sos 60] [--json bench/results/latest.json]

Everything runs on this machine: an embedded Mosquitto and PostgreSQL in a temporary
directory, `mosquitto_pub -l` / `mosquitto_sub` as the fastest available MQTT clients, and
our ingest workers as separate processes behind an MQTT shared subscription.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
from pathlib import Path

import psycopg

from bench.homes import bulk_homes, service_rss
from bench.load import PUBLISHERS
from bench.raw import raw_broker, raw_copy
from bench.report import Figure, console, print_table, write_json
from bench.sos import sos_latency
from bench.throughput import our_ingest, service_sustained
from devstack.broker import EmbeddedBroker
from devstack.postgres import EmbeddedPostgres
from devstack.seed import seed_demo
from ingest.migrate import migrate

HOMES = 330


def detector_tick(homes: int = 10_000) -> Figure:
    """One vectorised detector tick over `homes` homes."""
    from bench.detector_tick import measure

    ms, devices = measure(homes, 200)
    p99 = ms[int(0.99 * (len(ms) - 1))]
    return Figure(
        f"detector tick, {homes} homes ({devices} devices), median",
        statistics.median(ms),
        "ms",
        target="<= 10 ms",
        ok=statistics.median(ms) <= 10,
        detail={"p99_ms": round(p99, 2), "max_ms": round(ms[-1], 2)},
    )


def state_save(homes: int = 10_000) -> Figure:
    """What one periodic save of the detector state costs: `export_state` + msgpack of the
    15 % of `homes` heard from in `state_save_s` (it runs on the event loop)."""
    from bench.detector_tick import measure_export

    dirty = homes * 15 // 100
    seconds, size = measure_export(homes, dirty)
    kib = size / dirty / 1024
    return Figure(
        f"detector state save, {dirty} of {homes} homes (export + msgpack)",
        round(seconds * 1000, 1),
        "ms",
        target="a few KiB a home",
        ok=kib <= 8,
        detail={"kib_per_home": round(kib, 2)},
    )


def main() -> None:
    """Run the benchmarks and print/write the report."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--readings", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=max(2, os.cpu_count() or 2))
    parser.add_argument(
        "--sos", type=int, default=100, help="SOS presses per phase (distinct homes)"
    )
    parser.add_argument("--homes", type=int, default=10_000, help="homes for the RSS figure")
    parser.add_argument("--json", type=Path, default=Path("bench/results/latest.json"))
    parser.add_argument(
        "--only",
        default="ingest,sos,rss,tick",
        help="comma-separated subset of ingest,sos,rss,tick,brokers (the raw limits always"
        " run; brokers, not in the default: Mosquitto against 3-node NATS and RabbitMQ"
        " clusters, bench/brokers.py, its own report in bench/results/brokers.json)",
    )
    parser.add_argument("--logs", type=Path, help="keep the services' logs in this directory")
    parser.add_argument(
        "--waits",
        action="store_true",
        help="during the SOS phases, sample what the database's processes wait for (with"
        " --logs: waits-N.txt beside each phase's per-press record)",
    )
    parser.add_argument(
        "--broker-config",
        default="",
        help="extra Mosquitto configuration lines separated by ';' (e.g. 'autosave_interval 60')",
    )
    args = parser.parse_args()
    if args.waits and args.logs is None:
        parser.error("--waits writes beside the per-press records: give --logs DIR too")
    only = set(args.only.split(","))
    per_publisher = min(args.readings // PUBLISHERS, 60_000)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="eldercare-bench-") as tmp:
        root = Path(tmp)
        logdir = args.logs or root / "logs"
        logdir.mkdir(parents=True, exist_ok=True)
        with (
            EmbeddedPostgres(root / "pg") as pg,
            EmbeddedBroker(
                root / "mq", extra_config="sys_interval 1\n" + args.broker_config.replace(";", "\n")
            ) as broker,
        ):
            dsn = pg.url
            asyncio.run(migrate(dsn))

            async def seed() -> None:
                async with await psycopg.AsyncConnection.connect(dsn) as conn:
                    await seed_demo(conn, homes=HOMES)

            asyncio.run(seed())
            console.print(
                f"machine: {os.cpu_count()} cores; broker {broker.kind}; "
                f"{per_publisher * PUBLISHERS} readings per run"
            )
            raw_mq = raw_broker(broker, per_publisher)
            figures.append(raw_mq)
            raw_pg = raw_copy(dsn, per_publisher * PUBLISHERS)
            figures.append(raw_pg)
            ours = our_ingest(dsn, broker, per_publisher, args.workers, logdir)
            ours.baseline, ours.ratio = raw_mq.name, ours.value / raw_mq.value
            ours.target, ours.ok = ">= 40 % of raw broker QoS 1", ours.ratio >= 0.4
            ours.detail["ratio_to_copy"] = round(ours.value / raw_pg.value, 3)
            if "ingest" in only:
                figures.append(ours)
            if "sos" in only:
                whole = service_sustained(dsn, broker, per_publisher, args.workers, logdir)
                whole.baseline, whole.ratio = raw_mq.name, whole.value / raw_mq.value
                whole.target, whole.ok = ">= 50 % of raw broker QoS 1", whole.ratio >= 0.5
                figures.append(whole)
                # The SOS phases run with the registry, the emergency contacts and the urgent
                # subscriptions of a full-size deployment (the load still comes from HOMES).
                more = bulk_homes(dsn, args.homes, contacts=True)
                console.print(f"SOS phases: {args.homes} more homes registered ({more} devices)")
                n = min(args.sos, HOMES // 3)
                for load, rate, first, label in (
                    (0.0, whole.value, 1, ""),
                    (0.8, whole.value, 1 + n, "of the whole service's rate"),
                    # Overload (issue 18): more offered than the service carries.
                    (1.2, whole.value, 1 + 2 * n, "of the whole service's rate"),
                ):
                    figures += sos_latency(
                        dsn, broker, args.workers, rate, n, logdir, load, first, label, args.waits
                    )
            if "rss" in only:
                figures.append(service_rss(pg, broker, args.homes, 30.0, 400.0, logdir))
    if "tick" in only:
        figures.append(detector_tick(10_000))
        figures.append(state_save(10_000))
    print_table(figures)
    write_json(args.json, figures)
    console.print(f"report written to {args.json}")
    if "brokers" in only:
        from bench import brokers  # its clusters start only when asked for

        brokers.main(["--readings", str(min(args.readings, 80_000))])
