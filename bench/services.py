"""Our service under test, in processes of its own as deployed (`eldercare run --components
...`): ingest workers behind a shared subscription, the full-stream detection and the urgent
path; and the readings they have stored."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

from bench.report import console
from devstack.broker import EmbeddedBroker
from runtime.service import SHUTDOWN_STUCK_EXIT


def count_readings(dsn: str) -> int:
    """How many readings the database holds."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM readings").fetchone()
        return int(row[0]) if row else 0


def feed_waiting(dsn: str) -> int:
    """How many readings wait in the detection feed (ingest/feed.py) to be judged."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT coalesce(sum(n), 0) FROM detection_feed").fetchone()
        return int(row[0]) if row else 0


def service_env(dsn: str, broker: EmbeddedBroker, extra: dict[str, str]) -> dict[str, str]:
    """The environment of a service process: this database and broker, warnings only, and
    `extra` settings."""
    return {
        **os.environ,
        "ELDERCARE_DATABASE__URL": dsn,
        "ELDERCARE_MQTT__URL": broker.url,
        "ELDERCARE_MQTT__PROTOCOL": broker.protocol,
        "ELDERCARE_LOG_LEVEL": "WARNING",
        **extra,
    }


def service_argv(components: str) -> list[str]:
    """The command line of `eldercare run --components <components>` with this interpreter."""
    return [sys.executable, "-m", "cli.main", "run", "--components", components]


def spawn(components: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`eldercare run --components <components>` in its own process, logging to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            service_argv(components), env=env, stdout=out, stderr=subprocess.STDOUT
        )


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM, then wait: a service not stopped after its `shutdown_timeout_s` (30 s) logs
    what it is stuck in and exits 70. Killed at 40 s in any case: before, a process that had
    not stopped after 15 s was left running (two were found, still reconnecting, after
    their benchmark had ended)."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            code = proc.wait(40)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait(10)
            console.print(f"[red]{proc.args!r} did not stop in 40 s: killed[/red]")
        if code == SHUTDOWN_STUCK_EXIT:
            console.print(f"[red]{proc.args!r} was stuck stopping (see its log)[/red]")


@contextlib.contextmanager
def ingest_workers(
    dsn: str, broker: EmbeddedBroker, workers: int, logdir: Path
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`workers` ingest processes sharing the readings through $share/bench/..."""
    procs = []
    for i in range(workers):
        env = service_env(
            dsn,
            broker,
            {
                "ELDERCARE_INGEST__SHARED_GROUP": "bench",
                "ELDERCARE_INGEST__CLIENT_ID": f"bench-ingest-{i}",
                "ELDERCARE_INGEST__BATCH_MAX_ROWS": "5000",
                "ELDERCARE_INGEST__BATCH_MAX_DELAY_MS": "20",
                "ELDERCARE_MQTT__RECEIVE_MAXIMUM": "10000",
            },
        )
        procs.append(spawn("ingest", env, logdir / f"ingest-{i}.log"))
    try:
        time.sleep(3.0)  # connected and subscribed
        yield procs
    finally:
        _stop(procs)


@contextlib.contextmanager
def alert_processes(
    dsn: str, broker: EmbeddedBroker, logdir: Path, smtp_port: int | None = None
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Detection over the full stream in one process, the urgent path in another."""
    env = service_env(
        dsn,
        broker,
        {
            "ELDERCARE_ALERTS__POLL_S": "0.5",
            "ELDERCARE_ALERTS__CLIENT_ID": "bench-alerts",
            "ELDERCARE_ALERTS__URGENT_SEPARATE": "true",
            **({} if smtp_port is None else {"ELDERCARE_ALERTS__SMTP__PORT": str(smtp_port)}),
        },
    )
    procs = [spawn(c, env, logdir / f"{c}.log") for c in ("alerts", "urgent")]
    try:
        yield procs
    finally:
        _stop(procs)
