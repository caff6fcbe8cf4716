"""Benchmark: the persisted detector state per home (issue #14 target: a few KiB a home).

Replays each real home's whole recording through the detectors, as the alerts stage would,
then encodes what `alerts.detect.state.save` writes for it: the learned detector's `export_state`
and the per-device marks (msgpack, the same encoder), and the device watch's state. Also
times `export_state` + encoding for many homes at once (the shutdown save).

Run: .venv/bin/python bench/state_size.py ../shared/data/vankasteren/house_* [--copies 10000]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from alerts.detect.dataset import load_dataset
from alerts.detect.detectors import default_detectors
from alerts.detect.learned import LearnedDetector
from alerts.detect.replay import run_offline
from alerts.detect.state import Marks, encode
from alerts.detect.technical import DeviceWatch
from bench.detector_tick import measure_export


def home_state(folder: Path) -> tuple[str, int, int, int, float]:
    """Replay one home; returns (home, learned bytes, marks bytes, watch bytes, days)."""
    ds = load_dataset(folder / "events.csv", folder / "sensors.json", folder.name)
    detectors = default_detectors(ds.layout)
    marks = Marks()
    for r in ds.readings:
        marks.note(r)
    run_offline(detectors, ds.readings)
    learned = detectors.find(LearnedDetector)
    watch = detectors.find(DeviceWatch)
    assert learned is not None
    assert watch is not None
    state = learned.export_state([ds.home_id])[ds.home_id]
    days = (ds.readings[-1].ts - ds.readings[0].ts).total_seconds() / 86400
    return (
        ds.home_id,
        len(encode(state)),
        len(encode(marks.export(ds.home_id))),
        len(encode(watch.export_state())),
        days,
    )


def main() -> None:
    """Print the state size of each home, and the time to export many homes' state."""
    parser = argparse.ArgumentParser()
    parser.add_argument("homes", nargs="+", type=Path)
    parser.add_argument("--copies", type=int, default=10_000, help="homes for the export time")
    args = parser.parse_args()
    sizes = []
    for folder in args.homes:
        home, learned, marks, watch, days = home_state(folder)
        sizes.append(learned + marks)
        print(
            f"{home}: {days:.1f} days replayed; learned state {learned / 1024:.2f} KiB, "
            f"marks {marks / 1024:.2f} KiB, device watch {watch / 1024:.2f} KiB"
        )
    print(f"per home (learned + marks): mean {statistics.mean(sizes) / 1024:.2f} KiB")
    # A save: the shutdown one (every home), and a periodic one of the homes heard from in
    # the last `state_save_s` (15 %: ten devices a home, a heartbeat every 5 min each).
    for dirty in (args.copies, args.copies * 15 // 100):
        seconds, size = measure_export(args.copies, dirty)
        print(
            f"export_state + msgpack of {dirty} of {args.copies} homes: "
            f"{seconds * 1000:.0f} ms, {size / dirty / 1024:.2f} KiB a home "
            f"(synthetic homes, 2 h of history; blocks the event loop that long)"
        )


if __name__ == "__main__":
    main()
