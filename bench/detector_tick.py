"""Benchmark: one vectorised clock tick of the detectors over 10 000 homes (target <= 10 ms).

Run: .venv/bin/python bench/detector_tick.py [--homes 10000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from alerts.detect.detectors import DetectorSet, default_detectors
from alerts.detect.layout import Layout, PlacedDevice
from alerts.detect.learned import LearnedDetector
from alerts.detect.state import encode
from devices.payload import Reading


def build(homes: int) -> tuple[DetectorSet, datetime, int]:
    """`homes` homes with two hours of history each: the detectors, the time after that
    history, and the number of devices."""
    rng = random.Random(1)
    devices = []
    for i in range(homes):
        h = f"h{i:05d}"
        devices += [
            PlacedDevice(f"{h}-pir", h, "pir_motion", "living room"),
            PlacedDevice(f"{h}-bed", h, "bed_mat", "bedroom"),
            PlacedDevice(f"{h}-door", h, "door_contact", "hall", entry=True),
            PlacedDevice(f"{h}-temp", h, "temperature", "living room"),
        ]
    detectors = default_detectors(Layout(devices))
    t0 = datetime(2026, 1, 5, 6, tzinfo=UTC)
    seq = 0
    for i in range(homes):
        h = f"h{i:05d}"
        for dev, kind, metric, value in (
            ("bed", "bed_mat", "occupied", 0.0),
            ("pir", "pir_motion", "motion", 1.0),
            ("temp", "temperature", "temperature", 20.0),
        ):
            seq += 1
            ts = t0 + timedelta(minutes=rng.uniform(0, 120))
            detectors.observe(Reading(h, f"{h}-{dev}", kind, 0, seq, ts, metric, value))
    return detectors, t0 + timedelta(hours=2), len(devices)


def measure(homes: int = 10_000, ticks: int = 200) -> tuple[list[float], int]:
    """Build `homes` homes with some history each, then time `ticks` calls of `advance`;
    returns the tick times in ms (sorted) and the number of devices."""
    detectors, now, devices = build(homes)
    times = []
    for k in range(ticks):
        start = time.perf_counter()
        detectors.advance(now + timedelta(seconds=k))
        times.append(time.perf_counter() - start)
    return sorted(t * 1000 for t in times), devices


def measure_export(homes: int = 10_000, dirty: int | None = None) -> tuple[float, int]:
    """Time `export_state` plus its msgpack encoding of `dirty` homes (all when None; what
    one save encodes), out of `homes`; returns (seconds, total bytes)."""
    detectors, _, _ = build(homes)
    learned = detectors.find(LearnedDetector)
    assert learned is not None
    wanted = None if dirty is None else [f"h{i:05d}" for i in range(dirty)]
    start = time.perf_counter()
    states = learned.export_state(wanted)
    size = sum(len(encode(s)) for s in states.values())
    return time.perf_counter() - start, size


def main() -> None:
    """Print the tick time for N homes."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--homes", type=int, default=10_000)
    parser.add_argument("--ticks", type=int, default=200)
    args = parser.parse_args()
    ms, devices = measure(args.homes, args.ticks)
    print(
        f"advance over {args.homes} homes ({devices} devices): "
        f"median {statistics.median(ms):.2f} ms, p90 {ms[int(0.9 * (len(ms) - 1))]:.2f} ms, "
        f"max {ms[-1]:.2f} ms over {args.ticks} ticks (target <= 10 ms)"
    )


if __name__ == "__main__":
    main()
