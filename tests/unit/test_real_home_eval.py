"""`eldercare evaluate-homes` on a small recording with the resident's own annotations:
where the collapses are injected, what counts as a false alarm, and where it was raised."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from alerts.detect import default_detectors
from alerts.replay import Dataset, collapse_instants, evaluate_real_home, load_dataset

DAY0 = datetime(2008, 3, 3)  # local time (Europe/Amsterdam), a Monday
DAYS = 12
SENSORS = {
    "1": {"name": "front door", "kind": "entry_door", "room": "hall"},
    "2": {"name": "kitchen PIR", "kind": "motion", "room": "kitchen"},
    "3": {"name": "bed", "kind": "bed", "room": "bedroom"},
}


def _write(folder: Path) -> None:
    """Up at 07:00, the kitchen PIR every 20 min until bed at 22:00; out on day 8, 12:00-15:00;
    on day 1 nothing at all between 09:00 and 19:00 (before the annotations begin, on day 2)."""
    events: list[tuple[datetime, str, int]] = []
    activities: list[tuple[datetime, datetime, str]] = []
    for d in range(DAYS):
        day = DAY0 + timedelta(days=d)
        events.append((day + timedelta(hours=7), "3", 0))
        t = day + timedelta(hours=7, minutes=10)
        while t < day + timedelta(hours=22):
            quiet = d == 1 and day + timedelta(hours=9) <= t < day + timedelta(hours=19)
            out = d == 8 and day + timedelta(hours=12) <= t < day + timedelta(hours=15)
            if not (quiet or out):
                events += [(t, "2", 1), (t + timedelta(seconds=20), "2", 0)]
            t += timedelta(minutes=20)
        if d == 8:
            for at in (timedelta(hours=11, minutes=55), timedelta(hours=15, minutes=1)):
                events += [(day + at, "1", 1), (day + at + timedelta(seconds=5), "1", 0)]
            activities.append((day + timedelta(hours=12), day + timedelta(hours=15), "leave house"))
        events.append((day + timedelta(hours=22), "3", 1))
        if d >= 2:
            activities.append(
                (day + timedelta(hours=22), day + timedelta(days=1, hours=7), "go to bed")
            )
    events.sort()
    folder.mkdir()
    (folder / "sensors.json").write_text(
        json.dumps({"timezone": "Europe/Amsterdam", "sensors": SENSORS})
    )
    (folder / "events.csv").write_text(
        "timestamp,sensor_id,value\n"
        + "".join(f"{t:%Y-%m-%dT%H:%M:%S},{s},{v}\n" for t, s, v in events)
    )
    (folder / "activities.csv").write_text(
        "start,end,activity\n"
        + "".join(f"{a:%Y-%m-%dT%H:%M:%S},{b:%Y-%m-%dT%H:%M:%S},{w}\n" for a, b, w in activities)
    )


def _dataset(tmp_path: Path) -> Dataset:
    _write(tmp_path / "home_x")
    return load_dataset(tmp_path / "home_x" / "events.csv", tmp_path / "home_x" / "sensors.json")


def test_collapses_are_injected_only_where_the_annotations_say_the_resident_was_home(
    tmp_path: Path,
) -> None:
    ds = _dataset(tmp_path)
    assert ds.annotated is not None
    lo, hi = ds.annotated
    [(out_from, out_to)] = ds.out_intervals
    instants = collapse_instants(ds, 200, seed=3, skip_days=3.0)
    assert len(instants) == 200
    assert instants == sorted(instants)
    assert all(lo <= t <= hi for t in instants)
    assert all(t >= ds.readings[0].ts + timedelta(days=3) for t in instants)
    assert not any(out_from <= t < out_to for t in instants)
    assert collapse_instants(ds, 200, seed=3, skip_days=3.0) == instants  # same seed, same


def test_false_alarms_are_counted_everywhere_and_apart_within_the_annotated_span(
    tmp_path: Path,
) -> None:
    ds = _dataset(tmp_path)
    report = evaluate_real_home(ds, lambda d: default_detectors(d.layout), 8, 5, 9.0)
    summary = report.summary()
    # Day 1's ten quiet hours (before any annotation) are flagged: a false alarm of the
    # whole recording, none within the span the resident's notes cover.
    assert report.false_alarms.get("inactivity", 0) >= 1
    assert report.annotated_false_alarms == {}
    assert summary["annotated_false_alarms_per_day"] == 0.0
    assert summary["false_alarms_per_day"] > 0
    # From the first annotated night (day 2, 22:00) to the last event (day 11, 22:00).
    assert report.annotated_days == pytest.approx(9.0)
    assert report.days > report.annotated_days
    # Every injected collapse is found, after its instant; asleep ones are in an annotated night.
    assert report.injected == 8
    assert report.detected == 8
    assert all(t > 0 for t in report.ttd_s)
    assert report.injected_asleep == len(report.ttd_asleep_s)
