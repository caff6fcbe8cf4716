"""Our sustained rates: durable ingest alone, and the whole service (ingest and the
full-stream detection) until the broker holds nothing more for it."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

from bench.load import PUBLISHERS, publish_all
from bench.report import CpuUse, Figure
from bench.services import alert_processes, count_readings, feed_waiting, ingest_workers
from devstack.broker import EmbeddedBroker


def our_ingest(
    dsn: str, broker: EmbeddedBroker, per_publisher: int, workers: int, logdir: Path
) -> Figure:
    """Sustained durable ingest: published until every reading is committed."""
    total = per_publisher * PUBLISHERS
    before = count_readings(dsn)
    with ingest_workers(dsn, broker, workers, logdir) as procs:
        t0, cpu = time.perf_counter(), CpuUse()
        publish_all(
            broker.port, per_publisher, datetime.now(UTC) - timedelta(hours=2), seq0=1_000_000
        )
        deadline = time.monotonic() + 600
        while count_readings(dsn) - before < total:
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
    is stored and judged by the full-stream detection (the detection feed is empty, and the
    broker holds no more than before: with the feed off, the detection acknowledged every
    one), counted to the first $SYS update that shows it (1 s resolution)."""
    total = per_publisher * PUBLISHERS
    before = count_readings(dsn)
    store = _BrokerStore(broker)
    try:
        with (
            alert_processes(dsn, broker, logdir),
            ingest_workers(dsn, broker, workers, logdir),
        ):
            baseline = store.next()
            t0, cpu = time.perf_counter(), CpuUse()
            publish_all(
                broker.port, per_publisher, datetime.now(UTC) - timedelta(hours=4), seq0=3_000_000
            )
            deadline = time.monotonic() + 900
            while (
                count_readings(dsn) - before < total
                or feed_waiting(dsn) > 0
                or store.next() > baseline + 100
            ):
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
