"""A full-size registry (10 000 homes by COPY), and the memory of one service process while
those homes publish live."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
import psycopg

from bench.report import Figure
from bench.services import count_readings, service_env, spawn
from devstack.broker import EmbeddedBroker
from devstack.postgres import EmbeddedPostgres
from devstack.seed import DEVICE_KINDS
from ingest.migrate import migrate


def bulk_homes(dsn: str, homes: int, contacts: bool = False) -> int:
    """`homes` homes with an elder and the demo's 7 devices each, by COPY; returns devices.
    With `contacts`, each elder also has a family first contact with an email address, and
    a village worker with two channels is on duty for all of them (so the emergency contacts
    the urgent process keeps cover every home)."""
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "INSERT INTO regions (id, name, tier, parent_id) VALUES ('bd', 'Bench', 'district',"
            " NULL), ('bt', 'Bench town', 'town', 'bd'), ('bv', 'Bench village', 'village', 'bt')"
            " ON CONFLICT DO NOTHING"
        )
        with conn.cursor() as cur:
            with cur.copy("COPY homes (id, village_id) FROM STDIN") as copy:
                for i in range(homes):
                    copy.write_row((f"b{i:05d}", "bv"))
            with cur.copy("COPY elders (id, home_id, full_name) FROM STDIN") as copy:
                for i in range(homes):
                    copy.write_row((f"be{i:05d}", f"b{i:05d}", f"Elder {i}"))
            with cur.copy("COPY devices (id, home_id, kind, room) FROM STDIN") as copy:
                for i in range(homes):
                    for suffix, kind, room in DEVICE_KINDS:
                        copy.write_row((f"b{i:05d}-{suffix}", f"b{i:05d}", kind, room))
        if contacts:
            # Nobody signs in as these users ("!" is no password hash).
            conn.execute(
                "INSERT INTO users (username, display_name, role, password_hash, region_id)"
                " VALUES ('bench-worker', 'Bench worker', 'village_worker', '!', 'bv')"
            )
            conn.execute(
                "INSERT INTO duty_shifts (user_id, region_id, starts_at, ends_at)"
                " SELECT id, 'bv', now() - interval '1 hour', now() + interval '2 days'"
                " FROM users WHERE username = 'bench-worker'"
            )
            conn.execute(
                "INSERT INTO users (username, display_name, role, password_hash)"
                " SELECT 'bench-family-' || i, 'Family ' || i, 'family', '!'"
                " FROM generate_series(0, %s - 1) i",
                (homes,),
            )
            conn.execute(
                "INSERT INTO family_links (user_id, elder_id, first_contact)"
                " SELECT id, 'be' || lpad(substr(username, 14), 5, '0'), true FROM users"
                " WHERE username LIKE 'bench-family-%%'"
            )
            conn.execute(
                "INSERT INTO contact_channels (user_id, channel, target, position)"
                " SELECT id, 'email', username || '@bench.invalid', 1 FROM users"
                " WHERE username LIKE 'bench-%%'"
                " UNION ALL SELECT id, 'webhook', 'http://127.0.0.1:9/bench', 2 FROM users"
                " WHERE username = 'bench-worker'"
            )
        conn.commit()
        # A deployment that has run for a while has statistics for these tables (autovacuum
        # would gather them within a minute or so); without them the planner guesses.
        conn.execute("ANALYZE")
        conn.commit()
    return homes * len(DEVICE_KINDS)


def service_rss(
    pg: EmbeddedPostgres,
    broker: EmbeddedBroker,
    homes: int,
    seconds: float,
    rate: float,
    logdir: Path,
) -> Figure:
    """RSS of one ingest+alerts process while `homes` homes publish live."""
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS bench_homes")
        conn.execute("CREATE DATABASE bench_homes")
    dsn = pg.url_for("bench_homes")
    asyncio.run(migrate(dsn))
    devices = bulk_homes(dsn, homes)
    env = service_env(
        dsn,
        broker,
        {
            "ELDERCARE_INGEST__CLIENT_ID": "bench-homes-ingest",
            "ELDERCARE_ALERTS__CLIENT_ID": "bench-homes-alerts",
        },
    )
    proc = spawn("ingest,alerts", env, logdir / "homes.log")
    peak = 0
    sent = 0
    try:
        time.sleep(5.0)
        sent = asyncio.run(_live_homes(broker, homes, seconds, rate))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and count_readings(dsn) < sent:
            peak = max(peak, psutil.Process(proc.pid).memory_info().rss)
            time.sleep(0.5)
        peak = max(peak, psutil.Process(proc.pid).memory_info().rss)
        stored = count_readings(dsn)
    finally:
        proc.terminate()
        proc.wait(20)
    return Figure(
        f"service RSS (ingest + alerts, one process), {homes} homes live",
        peak / 2**20,
        "MiB",
        target="< 1024 MiB",
        ok=peak < 2**30,
        detail={
            "devices": devices,
            "readings_sent": sent,
            "readings_stored": stored,
            "seconds": seconds,
        },
    )


async def _live_homes(broker: EmbeddedBroker, homes: int, seconds: float, rate: float) -> int:
    """Readings from random devices of `homes` homes at `rate` per second."""
    import random

    from devices.payload import Reading
    from simulators.publisher import MqttPublisher

    rng = random.Random(5)
    seqs: dict[str, int] = {}
    sent = 0
    async with MqttPublisher(broker.url, "bench-homes", broker.protocol) as pub:
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end:
            tick = time.monotonic()
            batch = []
            for _ in range(max(1, int(rate / 10))):
                i = rng.randrange(homes)
                suffix, kind, metric, value = rng.choice(
                    (
                        ("pir-living", "pir_motion", "motion", 1.0),
                        ("pir-kitchen", "pir_motion", "motion", 0.0),
                        ("door-entry", "door_contact", "open", 1.0),
                        ("bed", "bed_mat", "occupied", 1.0),
                        ("temp", "temperature", "temperature", 21.0),
                    )
                )
                device = f"b{i:05d}-{suffix}"
                seqs[device] = seqs.get(device, 0) + 1
                batch.append(
                    Reading(
                        f"b{i:05d}", device, kind, 1, seqs[device], datetime.now(UTC), metric, value
                    )
                )
            await asyncio.gather(*(pub.publish_readings([r]) for r in batch))
            sent += len(batch)
            await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - tick)))
    return sent
