"""The benchmark run: raw limits first, then ours, each printed with its ratio.

    python -m bench [--readings 200000] [--workers 2] [--sos 60] [--json bench/results/latest.json]

Everything runs on this machine: an embedded Mosquitto and PostgreSQL in a temporary
directory, `mosquitto_pub -l` / `mosquitto_sub` as the fastest available MQTT clients, and
our ingest workers as separate processes behind an MQTT shared subscription.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import psycopg
from rich.console import Console
from rich.table import Table

from cli.main import run_argv
from devstack.embedded import EmbeddedBroker, EmbeddedPostgres, free_port
from devstack.seed import seed_demo
from ingest.migrate import migrate
from runtime.service import SHUTDOWN_STUCK_EXIT

console = Console()
PUBLISHERS = 4  # mosquitto_pub -l misbehaves past ~65k QoS 1 messages per run: split the load
HOMES = 330


@dataclass
class Figure:
    """One measured number, and what it is compared with."""

    name: str
    value: float
    unit: str
    baseline: str | None = None
    ratio: float | None = None
    target: str | None = None
    ok: bool | None = None
    detail: dict[str, Any] = field(default_factory=dict)


class _CpuUse:
    """CPU used on the whole machine, and by this process's finished children (the
    `mosquitto_pub` load generators, which stand in for devices on other machines), from
    creation to `cores()`: core-seconds per second. Tells whether a phase was CPU-bound."""

    def __init__(self) -> None:
        self._t0 = time.perf_counter()
        self._machine0 = self._machine()
        self._children0 = self._children()

    @staticmethod
    def _machine() -> float:
        t = psutil.cpu_times()
        return float(sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "steal", 0.0))

    @staticmethod
    def _children() -> float:
        t = os.times()
        return t.children_user + t.children_system

    def cores(self) -> dict[str, float]:
        elapsed = time.perf_counter() - self._t0
        return {
            "machine_busy_cores": round((self._machine() - self._machine0) / elapsed, 2),
            "load_generator_cores": round((self._children() - self._children0) / elapsed, 2),
            "cores": float(os.cpu_count() or 1),
        }


def _require(tool: str) -> str:
    path = shutil.which(tool) or (f"/usr/bin/{tool}" if Path(f"/usr/bin/{tool}").exists() else None)
    if path is None:
        sys.exit(f"{tool} is needed for the raw broker limit: apt-get install -y mosquitto-clients")
    return path


def _payload_lines(device_seq_base: int, count: int, start: datetime) -> Iterator[bytes]:
    base_ts = start.timestamp()
    for i in range(count):
        seq = device_seq_base + i
        yield (
            b'{"boot":1,"seq":%d,"ts":%.3f,"metric":"motion","value":%d}\n'
            % (seq, base_ts + i * 0.001, seq % 2)
        )


def _devices() -> list[tuple[str, str]]:
    return [(f"h{i:02d}", f"h{i:02d}-pir-living") for i in range(1, PUBLISHERS + 1)]


def _publishers(port: int, name: str) -> list[subprocess.Popen[bytes]]:
    """One `mosquitto_pub -l` (QoS 1) per bench device, reading payload lines on stdin."""
    pub = _require("mosquitto_pub")
    return [
        subprocess.Popen(
            [
                pub,
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-q",
                "1",
                "-l",
                "-i",
                f"bench-{name}-{device}",
                "-t",
                f"eldercare/{home}/{device}/readings",
            ],
            stdin=subprocess.PIPE,
        )
        for home, device in _devices()
    ]


def _publish_all(port: int, per_publisher: int, start: datetime, seq0: int = 0) -> float:
    """Publish `per_publisher` readings per device with mosquitto_pub -l; returns seconds."""
    t0 = time.perf_counter()
    procs = _publishers(port, "pub")
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"".join(_payload_lines(seq0, per_publisher, start)))
        proc.stdin.close()
    for proc in procs:
        proc.wait()
    return time.perf_counter() - t0


def raw_broker(broker: EmbeddedBroker, per_publisher: int) -> Figure:
    """Mosquitto QoS 1 publish -> subscribe throughput with the fastest C clients."""
    sub = _require("mosquitto_sub")
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
    _publish_all(broker.port, per_publisher, datetime.now(UTC) - timedelta(hours=1))
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


def _count(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM readings").fetchone()
        return int(row[0]) if row else 0


def _service_env(dsn: str, broker: EmbeddedBroker, extra: dict[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        "ELDERCARE_DATABASE__URL": dsn,
        "ELDERCARE_MQTT__URL": broker.url,
        "ELDERCARE_MQTT__PROTOCOL": broker.protocol,
        "ELDERCARE_LOG_LEVEL": "WARNING",
        **extra,
    }


def _spawn(component: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`eldercare run --components <component>` in its own process, logging to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(run_argv(component), env=env, stdout=out, stderr=subprocess.STDOUT)


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
        env = _service_env(
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
        procs.append(_spawn("ingest", env, logdir / f"ingest-{i}.log"))
    try:
        time.sleep(3.0)  # connected and subscribed
        yield procs
    finally:
        _stop(procs)


def our_ingest(
    dsn: str, broker: EmbeddedBroker, per_publisher: int, workers: int, logdir: Path
) -> Figure:
    """Sustained durable ingest: published until every reading is committed."""
    total = per_publisher * PUBLISHERS
    before = _count(dsn)
    with ingest_workers(dsn, broker, workers, logdir) as procs:
        t0, cpu = time.perf_counter(), _CpuUse()
        _publish_all(
            broker.port, per_publisher, datetime.now(UTC) - timedelta(hours=2), seq0=1_000_000
        )
        deadline = time.monotonic() + 600
        while _count(dsn) - before < total:
            if time.monotonic() > deadline:
                raise RuntimeError(f"ingest did not finish; logs in {logdir}")
            time.sleep(0.05)
        elapsed = time.perf_counter() - t0
        used = cpu.cores()
        rss = sum(psutil.Process(p.pid).memory_info().rss for p in procs if p.poll() is None)
    return Figure(
        f"our ingest, QoS 1, ack after commit ({workers} workers, $share)",
        total / elapsed,
        "readings/s",
        detail={
            "readings": total,
            "seconds": round(elapsed, 3),
            "workers_rss_mib": round(rss / 2**20, 1),
            **used,
        },
    )


class _Receiver(BaseHTTPRequestHandler):
    """A webhook receiver that appends "home unix-time" per first alert notice to a file."""

    out: Path = Path("/dev/null")
    seen: set[int] = set()  # noqa: RUF012 - one receiver process per run

    def do_POST(self) -> None:
        now = time.time()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with contextlib.suppress(ValueError, KeyError, TypeError):
            home = int(json.loads(body)["alert"]["home_id"][1:])
            if home not in self.seen:
                self.seen.add(home)
                with self.out.open("a") as f:
                    f.write(f"{home} {now}\n")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _MailSink:
    """An SMTP server that accepts every message (and keeps none)."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 Message accepted for delivery"


def _receive(port: int, out: Path, dsn: str, commits: Path, smtp_port: int) -> None:
    """Run the receiver (in its own process: the benchmark's load generator must not slow
    it down, as an external system would not be), and note when each alert's commit became
    visible (the store's pg_notify is delivered at commit). It also runs the mail server
    the family's e-mails go to: without one, every e-mail failed and was retried (the
    dispatcher's retries then shared the urgent process with the presses)."""
    from aiosmtpd.controller import Controller

    _Receiver.out = out
    if os.geteuid() == 0:
        os.nice(-10)  # before its threads start: they inherit it
    Controller(_MailSink(), hostname="127.0.0.1", port=smtp_port).start()

    def listen() -> None:
        from alerts.store import NOTIFY_CHANNEL

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}".encode())
            seen: set[str] = set()
            for note in conn.notifies():
                if note.payload not in seen:
                    seen.add(note.payload)
                    with commits.open("a") as f:
                        f.write(f"{note.payload} {time.time()}\n")

    threading.Thread(target=listen, daemon=True).start()
    ThreadingHTTPServer(("127.0.0.1", port), _Receiver).serve_forever()


def _arrivals(out: Path) -> dict[int, float]:
    if not out.exists():
        return {}
    found: dict[int, float] = {}
    for line in out.read_text().splitlines():
        home, at = line.split()
        found.setdefault(int(home), float(at))
    return found


def _paced_load(port: int, rate: float, stop: threading.Event) -> threading.Thread:
    """Background readings at `rate` per second through mosquitto_pub -l, paced by writing."""
    _require("mosquitto_pub")

    def run() -> None:
        procs = _publishers(port, "load")
        start = datetime.now(UTC) - timedelta(hours=3)
        per_tick = max(1, int(rate * 0.01 / len(procs)))
        seq = 2_000_000
        t_next = time.perf_counter()
        while not stop.is_set():
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write(b"".join(_payload_lines(seq, per_tick, start)))
                proc.stdin.flush()
            seq += per_tick
            t_next += 0.01
            time.sleep(max(0.0, t_next - time.perf_counter()))
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(60)

    thread = threading.Thread(target=run, name="bench-load", daemon=True)
    thread.start()
    return thread


@contextlib.contextmanager
def alert_processes(
    dsn: str, broker: EmbeddedBroker, logdir: Path, smtp_port: int | None = None
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Detection over the full stream in one process, the urgent path in another."""
    env = _service_env(
        dsn,
        broker,
        {
            "ELDERCARE_ALERTS__POLL_S": "0.5",
            "ELDERCARE_ALERTS__CLIENT_ID": "bench-alerts",
            "ELDERCARE_ALERTS__URGENT_SEPARATE": "true",
            **({} if smtp_port is None else {"ELDERCARE_ALERTS__SMTP__PORT": str(smtp_port)}),
        },
    )
    procs = [_spawn(c, env, logdir / f"{c}.log") for c in ("alerts", "urgent")]
    try:
        yield procs
    finally:
        _stop(procs)


class _BrokerStore:
    """Follows `$SYS/broker/store/messages/count` (the bench broker's `sys_interval` is 1 s):
    the messages the broker holds, i.e. not yet acknowledged by every subscriber."""

    def __init__(self, broker: EmbeddedBroker) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.count: int | None = None
        self.updated = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-sys")
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", broker.port)
        self._client.subscribe("$SYS/broker/store/messages/count")
        self._client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        self.count = int(msg.payload)
        self.updated.set()

    def next(self, timeout: float = 1.5) -> int:
        """The count after the next $SYS update (Mosquitto publishes it only when it
        changes, retained: an unchanged count is the last one)."""
        self.updated.clear()
        self.updated.wait(timeout)
        if self.count is None:
            raise RuntimeError("the broker publishes no $SYS store count")
        return self.count

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def service_sustained(
    dsn: str, broker: EmbeddedBroker, per_publisher: int, workers: int, logdir: Path
) -> Figure:
    """The whole service's sustained rate: published as fast as possible until every reading
    is stored and the full-stream detection has acknowledged every one (the broker holds no
    more than before), counted to the first $SYS update that shows it (1 s resolution)."""
    total = per_publisher * PUBLISHERS
    before = _count(dsn)
    store = _BrokerStore(broker)
    try:
        with (
            alert_processes(dsn, broker, logdir),
            ingest_workers(dsn, broker, workers, logdir),
        ):
            baseline = store.next()
            t0, cpu = time.perf_counter(), _CpuUse()
            _publish_all(
                broker.port, per_publisher, datetime.now(UTC) - timedelta(hours=4), seq0=3_000_000
            )
            deadline = time.monotonic() + 900
            while _count(dsn) - before < total or store.next() > baseline + 100:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the service did not catch up; logs in {logdir}")
            elapsed = time.perf_counter() - t0
            used = cpu.cores()
    finally:
        store.close()
    return Figure(
        "our whole service (ingest + full-stream detection), sustained",
        total / elapsed,
        "readings/s",
        detail={
            "readings": total,
            "seconds": round(elapsed, 3),
            "resolution_s": 1.0,
            **used,
        },
    )


def sos_latency(
    dsn: str,
    broker: EmbeddedBroker,
    workers: int,
    sustained: float,
    presses: int,
    logdir: Path,
    load: float = 0.8,
    first_home: int = 1,
    label: str = "",
    waits: bool = False,
) -> list[Figure]:
    """SOS publish -> alert committed -> first notification handed over, while background
    readings run at `load` x our sustained ingest rate."""
    receiver_port, smtp_port = free_port(), free_port()
    arrivals_file = logdir / f"arrivals-{first_home}.txt"
    commits_file = logdir / f"commits-{first_home}.txt"
    receiver = multiprocessing.get_context("fork").Process(
        target=_receive,
        args=(receiver_port, arrivals_file, dsn, commits_file, smtp_port),
        daemon=True,
    )
    receiver.start()
    if os.geteuid() == 0 and receiver.pid is not None:
        # It stands in for a service on another machine: its share of these 2 cores is not
        # ours to count against the notification path.
        _renice(receiver.pid, -10)  # and again for any thread it started already
    hook = f"http://127.0.0.1:{receiver_port}/hook"
    with psycopg.connect(dsn, autocommit=True) as conn:
        # A running server checkpoints every few minutes and recycles the WAL segments it no
        # longer needs as the next ones. This one is minutes old and has written every
        # segment fresh, zero-filling 16 MB while holding the WAL write lock: every commit
        # (the alert's too) waited 30-100 ms whenever that happened, in diagnostic runs.
        # Checkpoint first, so a phase runs in the steady state, not the cold start.
        conn.execute("CHECKPOINT")
    with psycopg.connect(dsn) as conn:
        # This run's receiver, first in line (an earlier run's receiver is gone: a stale
        # target would measure the fallback to the next channel instead).
        conn.execute(
            "DELETE FROM contact_channels WHERE channel = 'webhook'"
            " AND user_id IN (SELECT id FROM users WHERE role = 'village_worker')"
        )
        conn.execute(
            "INSERT INTO contact_channels (user_id, channel, target, position)"
            " SELECT id, 'webhook', %s, -1 FROM users WHERE role = 'village_worker'",
            (hook,),
        )
        conn.commit()
    stop, sampler_stop = threading.Event(), threading.Event()
    sampler: threading.Thread | None = None
    sent: dict[int, float] = {}
    try:
        with (
            alert_processes(dsn, broker, logdir, smtp_port) as procs,
            ingest_workers(dsn, broker, workers, logdir) as ingest,
        ):
            _prioritise(urgent=procs[1], bulk=[procs[0], *ingest], broker=broker.pid)
            background = _paced_load(broker.port, load * sustained, stop) if load else None
            # Steady state, not start-up: with 10 000 homes the services spend their first
            # seconds loading the registry, contacts and learned baselines (in diagnostic runs
            # with a 2 s wait, the first presses of a loaded phase took 70-160 ms).
            time.sleep(8.0)
            if waits:
                sampler = threading.Thread(
                    target=_sample_waits,
                    args=(
                        dsn,
                        _ports([procs[1].pid]),
                        logdir / f"waits-{first_home}.txt",
                        sampler_stop,
                    ),
                    daemon=True,
                )
                sampler.start()
            # The presses come from a process of their own, as a device would: in this one
            # the load generator's thread holds the GIL much of the time.
            with multiprocessing.get_context("fork").Manager() as manager:
                shared = manager.dict()
                presser = multiprocessing.get_context("fork").Process(
                    target=_press_process, args=(broker, presses, shared, first_home)
                )
                presser.start()
                presser.join(presses * 2 + 60)
                sent.update(shared)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and (
                len(_arrivals(arrivals_file)) < presses or _sos_count(dsn, first_home) < presses
            ):
                time.sleep(0.2)
            stop.set()
            if background is not None:
                background.join(120)
    finally:
        sampler_stop.set()
        if sampler is not None:
            sampler.join(10)
        receiver.terminate()
        receiver.join(10)
    with psycopg.connect(dsn) as conn:
        ids = conn.execute("SELECT id, home_id FROM alerts WHERE kind = 'sos'").fetchall()
        handed = conn.execute(
            "SELECT a.home_id, extract(epoch FROM min(n.sent_at)) FROM alerts a"
            " JOIN notifications n ON n.alert_id = a.id WHERE a.kind = 'sos'"
            " AND n.status = 'sent' GROUP BY a.home_id"
        ).fetchall()
    home_of = {str(i): int(h[1:]) for i, h in ids}
    committed: dict[int, float] = {}
    if commits_file.exists():
        for line in commits_file.read_text().splitlines():
            alert, at = line.split()
            if alert in home_of:
                committed.setdefault(home_of[alert], float(at))
    sent_at = {int(h[1:]): float(t) for h, t in handed}
    with psycopg.connect(dsn) as conn:
        attempts = conn.execute(
            "SELECT a.home_id, n.channel, n.round, x.ok, extract(epoch FROM x.at), x.error"
            " FROM alerts a JOIN notifications n ON n.alert_id = a.id"
            " JOIN notification_attempts x ON x.notification_id = n.id"
            " WHERE a.kind = 'sos' AND substr(a.home_id, 2)::int >= %s ORDER BY x.at",
            (first_home,),
        ).fetchall()
    # Per press, for diagnosis: when it was sent, committed, handed over, and every attempt.
    (logdir / f"sos-presses-{first_home}.json").write_text(
        json.dumps(
            {
                "sent": sent,
                "committed": committed,
                "handed": sent_at,
                "attempts": [[h, c, r, ok, float(at), err] for h, c, r, ok, at, err in attempts],
            },
            indent=1,
        )
    )
    to_commit = [1000 * (committed[h] - t) for h, t in sent.items() if h in committed]
    to_hand = [1000 * (sent_at[h] - t) for h, t in sent.items() if h in sent_at]
    arrived = _arrivals(arrivals_file)
    to_notify = [1000 * (arrived[h] - t) for h, t in sent.items() if h in arrived]
    figures = []
    for name, values in (
        ("SOS publish -> alert committed (seen by a listener)", to_commit),
        ("SOS publish -> first notification handed to its channel", to_hand),
        ("SOS publish -> first notification at the receiver", to_notify),
    ):
        if len(values) < presses:
            console.print(f"[red]{name}: only {len(values)} of {presses} within 60 s[/red]")
        if not values:
            continue
        q = statistics.quantiles(values, n=100, method="inclusive")
        what = f"{load:.0%} load {label}".strip() if load else "no load"
        figures.append(Figure(f"{name}, p50 ({what})", statistics.median(values), "ms"))
        figures.append(
            Figure(
                f"{name}, p99 ({what})",
                q[98],
                "ms",
                target="<= 50 ms",
                ok=q[98] <= 50,
                detail={"n": len(values), "max_ms": round(max(values), 1)},
            )
        )
    return figures


def _prioritise(
    urgent: subprocess.Popen[bytes], bulk: list[subprocess.Popen[bytes]], broker: int | None
) -> None:
    """CPU priorities as docs/operations.md tells an operator to set them (systemd `Nice=`):
    the emergency path first, bulk ingest and full-stream detection last. Needs root."""
    if os.geteuid() != 0:
        console.print("[yellow]not root: the emergency path runs without CPU priority[/yellow]")
        return
    _renice(urgent.pid, -10)
    if broker is not None:
        _renice(broker, -5)
    for proc in bulk:
        _renice(proc.pid, 10)


def _ports(pids: list[int]) -> set[int]:
    """The local ports of the TCP connections of `pids` (a backend's `client_port`)."""
    ports = set()
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            for c in psutil.Process(pid).net_connections(kind="tcp"):
                if c.raddr:
                    ports.add(c.laddr.port)
    return ports


def _sample_waits(dsn: str, ports: set[int], out: Path, stop: threading.Event) -> None:
    """Until `stop`: every ~3 ms, what each busy database process is doing (running, or the
    event it waits for), one line per process: unix time, whose (U: the urgent process's;
    c: another client's; else the server process's kind), state, wait event, statement.
    With `--logs` and `--waits`, the per-press record says which presses were slow, and this
    says where their time went: how the family lookup's scan and the WAL sync were found."""
    with psycopg.connect(dsn, autocommit=True) as conn, out.open("w") as f:
        while not stop.is_set():
            rows = conn.execute(
                "SELECT client_port, backend_type, state, wait_event_type, wait_event,"
                " left(query, 30) FROM pg_stat_activity"
                " WHERE pid <> pg_backend_pid() AND (state IS DISTINCT FROM 'idle')"
            ).fetchall()
            t = time.time()
            for port, btype, state, wet, we, q in rows:
                who = "U" if port in ports else ("c" if port else btype)
                f.write(f"{t:.4f}\t{who}\t{state}\t{wet}:{we}\t{q!r}\n")
            time.sleep(0.003)


def _renice(pid: int, nice: int) -> None:
    """Set the nice value of every thread of `pid`, as systemd's `Nice=` does by starting the
    process with it. (Linux keeps a nice value per thread: setting the process's changes only
    its main thread, and paho's network thread, started earlier, would keep its own.)"""
    with contextlib.suppress(psutil.Error):
        for thread in psutil.Process(pid).threads():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.setpriority(os.PRIO_PROCESS, thread.id, nice)


def _sos_count(dsn: str, first_home: int) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM alerts WHERE kind = 'sos' AND substr(home_id, 2)::int >= %s",
            (first_home,),
        ).fetchone()
        return int(row[0]) if row else 0


def _press_process(broker: EmbeddedBroker, presses: int, sent: Any, first_home: int) -> None:
    os.nice(-10) if os.geteuid() == 0 else None
    found: dict[int, float] = {}
    asyncio.run(_press(broker, presses, found, first_home))
    sent.update(found)


async def _press(
    broker: EmbeddedBroker, presses: int, sent: dict[int, float], first_home: int = 1
) -> None:
    from devices.payload import Reading
    from simulators.publisher import MqttPublisher

    async with MqttPublisher(broker.url, "bench-sos", broker.protocol) as pub:
        for i in range(presses):
            home = first_home + i
            now = datetime.now(UTC)
            reading = Reading(
                f"h{home:02d}", f"h{home:02d}-sos", "sos_button", 7, i, now, "press", 1.0
            )
            sent[home] = time.time()
            await pub.publish_readings([reading])
            await asyncio.sleep(0.2)


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


def _bulk_homes(dsn: str, homes: int, contacts: bool = False) -> int:
    """`homes` homes with an elder and the demo's 7 devices each, by COPY; returns devices.
    With `contacts`, each elder also has a family first contact with an email address, and
    a village worker with two channels is on duty for all of them (so the emergency contacts
    the urgent process keeps cover every home)."""
    from devstack.seed import DEVICE_KINDS

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
    devices = _bulk_homes(dsn, homes)
    env = _service_env(
        dsn,
        broker,
        {
            "ELDERCARE_INGEST__CLIENT_ID": "bench-homes-ingest",
            "ELDERCARE_ALERTS__CLIENT_ID": "bench-homes-alerts",
        },
    )
    with (logdir / "homes.log").open("ab") as out:
        proc = subprocess.Popen(
            run_argv("ingest,alerts"),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    peak = 0
    sent = 0
    try:
        time.sleep(5.0)
        sent = asyncio.run(_live_homes(broker, homes, seconds, rate))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _count(dsn) < sent:
            peak = max(peak, psutil.Process(proc.pid).memory_info().rss)
            time.sleep(0.5)
        peak = max(peak, psutil.Process(proc.pid).memory_info().rss)
        stored = _count(dsn)
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
        help="comma-separated subset of ingest,sos,rss,tick (the raw limits always run)",
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
                figures.append(whole)
                # The SOS phases run with the registry, the emergency contacts and the urgent
                # subscriptions of a full-size deployment (the load still comes from HOMES).
                more = _bulk_homes(dsn, args.homes, contacts=True)
                console.print(f"SOS phases: {args.homes} more homes registered ({more} devices)")
                n = min(args.sos, HOMES // 3)
                for load, rate, first, label in (
                    (0.0, whole.value, 1, ""),
                    (0.8, whole.value, 1 + n, "of the whole service's rate"),
                    # The literal load: 80 % of the ingest-only rate. With detection
                    # running too, that is more than the service sustains on this machine.
                    (0.8, ours.value, 1 + 2 * n, "of the ingest-only rate"),
                ):
                    figures += sos_latency(
                        dsn, broker, args.workers, rate, n, logdir, load, first, label, args.waits
                    )
            if "rss" in only:
                figures.append(service_rss(pg, broker, args.homes, 30.0, 400.0, logdir))
    if "tick" in only:
        figures.append(detector_tick(10_000))
        figures.append(state_save(10_000))
    _print(figures)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "at": datetime.now(UTC).isoformat(),
                "cores": os.cpu_count(),
                "figures": [asdict(f) for f in figures],
            },
            indent=2,
        )
    )
    console.print(f"report written to {args.json}")


def _print(figures: list[Figure]) -> None:
    table = Table(title="eldercare benchmarks (this machine, this run)")
    for col in ("measure", "value", "ratio", "target", "ok"):
        table.add_column(col)
    for f in figures:
        busy = f.detail.get("machine_busy_cores")
        table.add_row(
            f.name,
            f"{f.value:,.1f} {f.unit}"
            + (
                ""
                if busy is None
                else f"\nCPU {busy:.2f} of {f.detail['cores']:.0f} cores busy, "
                f"{f.detail['load_generator_cores']:.2f} the load generator's"
            ),
            "" if f.ratio is None else f"{f.ratio:.2f}",
            f.target or "",
            "" if f.ok is None else ("yes" if f.ok else "NO"),
        )
    console.print(table)
