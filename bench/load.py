"""The load generators: `mosquitto_pub -l` (QoS 1), the fastest MQTT client there is, one per
bench device, as fast as it goes or paced at a rate."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

PUBLISHERS = 4  # mosquitto_pub -l misbehaves past ~65k QoS 1 messages per run: split the load


def require_tool(tool: str) -> str:
    """The path of a mosquitto-clients tool; exits with how to install it when missing."""
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
    pub = require_tool("mosquitto_pub")
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


def publish_all(port: int, per_publisher: int, start: datetime, seq0: int = 0) -> float:
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


def paced_load(port: int, rate: float, stop: threading.Event) -> threading.Thread:
    """Background readings at `rate` per second through mosquitto_pub -l, paced by writing."""
    require_tool("mosquitto_pub")

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
