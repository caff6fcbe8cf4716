"""Recorded homes (../shared/data format): `events.csv` + `sensors.json`, and the resident's
own annotations in `activities.csv` beside them, read as a `Dataset` (a layout and readings in
event-time order) for the offline replay (alerts.detect.replay), the live one (`eldercare
replay`) and the evaluation on real homes (alerts.detect.real_homes); and where the
annotations say the resident was at a given time (`CONTEXTS`).
"""

from __future__ import annotations

import csv
import itertools
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from alerts.detect.layout import Layout, PlacedDevice
from devices.payload import Reading

# The dataset's sensor kinds, as the catalogue's device kind and metric that report them: the
# offline replay reads the same readings as the live one publishes (`eldercare replay`
# without --offline), and the ingest decoder accepts them. Every kind has the role it had
# before it had a catalogue row (alerts.detect.layout): a `contact` is a cupboard or drawer
# (activity wherever it is; a `door_contact` in the hall would be the entry door live), a
# flush or sink float and an appliance's reed switch are activity and utility use.
DATASET_KINDS: dict[str, tuple[str, str]] = {
    "motion": ("pir_motion", "motion"),
    "entry_door": ("door_contact", "open"),
    "door": ("door_contact", "open"),
    "contact": ("cupboard_contact", "open"),
    "bed": ("bed_mat", "occupied"),
    "chair": ("chair_mat", "occupied"),
    "water": ("flush_sensor", "flowing"),
    "appliance": ("appliance_switch", "on"),
    "power": ("power_plug", "power"),
}


@dataclass(frozen=True, slots=True)
class Dataset:
    """One recorded home: its layout and its readings in event-time order."""

    home_id: str
    layout: Layout
    devices: tuple[PlacedDevice, ...]
    readings: tuple[Reading, ...]
    timezone: str
    out_intervals: tuple[tuple[datetime, datetime], ...] = ()
    annotated: tuple[datetime, datetime] | None = None  # span activities.csv covers
    sleep_intervals: tuple[tuple[datetime, datetime], ...] = ()  # annotated "go to bed"


class DatasetError(ValueError):
    """A replay file that cannot be read, with what is wrong in it."""


def load_dataset(events: Path, sensors: Path, home_id: str | None = None) -> Dataset:
    """Read `events.csv` + `sensors.json` (and `activities.csv` beside them, if present)."""
    try:
        meta = json.loads(sensors.read_text(encoding="utf-8"))
        tz_name = str(meta.get("timezone", "UTC"))
        tz = ZoneInfo(tz_name)
        sensor_map: dict[str, dict[str, str]] = meta["sensors"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{sensors}: not a sensors.json ({exc})") from exc
    home = home_id or events.resolve().parent.name
    devices: dict[str, PlacedDevice] = {}
    metrics: dict[str, str] = {}
    for sid, spec in sensor_map.items():
        raw_kind = str(spec.get("kind", ""))
        if raw_kind not in DATASET_KINDS:
            raise DatasetError(f"{sensors}: sensor {sid} has unknown kind {raw_kind!r}")
        devices[sid] = PlacedDevice(
            device_id=f"{home}-{sid}",
            home_id=home,
            kind=DATASET_KINDS[raw_kind][0],
            room=str(spec.get("room", "")),
            entry=raw_kind == "entry_door",
        )
        metrics[sid] = DATASET_KINDS[raw_kind][1]
    readings: list[Reading] = []
    seq = 0
    try:
        with events.open(newline="", encoding="utf-8") as fh:
            for n, row in enumerate(csv.DictReader(fh), start=2):
                dev = devices.get(row["sensor_id"])
                if dev is None:
                    raise DatasetError(f"{events}:{n}: sensor {row['sensor_id']!r} not in sensors")
                ts = datetime.fromisoformat(row["timestamp"])
                ts = (ts.replace(tzinfo=tz) if ts.tzinfo is None else ts).astimezone(UTC)
                metric = metrics[row["sensor_id"]]
                seq += 1
                readings.append(
                    Reading(home, dev.device_id, dev.kind, 0, seq, ts, metric, float(row["value"]))
                )
    except (OSError, KeyError, ValueError) as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(f"{events}: unreadable ({exc!r})") from exc
    readings.sort(key=lambda r: r.ts)
    outs: list[tuple[datetime, datetime]] = []
    sleeps: list[tuple[datetime, datetime]] = []
    spans: list[tuple[datetime, datetime]] = []
    activities = events.parent / "activities.csv"
    if activities.exists():
        try:
            with activities.open(newline="", encoding="utf-8") as fh:
                for row in csv.DictReader(fh):
                    start = datetime.fromisoformat(row["start"]).replace(tzinfo=tz)
                    end = datetime.fromisoformat(row["end"]).replace(tzinfo=tz)
                    span = (start.astimezone(UTC), end.astimezone(UTC))
                    spans.append(span)
                    if "leav" in row["activity"].lower():
                        outs.append(span)
                    elif "bed" in row["activity"].lower():
                        sleeps.append(span)
        except (OSError, KeyError, ValueError) as exc:
            raise DatasetError(f"{activities}: unreadable ({exc!r})") from exc
    annotated = (min(a for a, _ in spans), max(b for _, b in spans)) if spans else None
    layout = Layout(devices.values(), {home: tz_name})
    return Dataset(
        home,
        layout,
        tuple(devices.values()),
        tuple(readings),
        tz_name,
        tuple(outs),
        annotated,
        tuple(sleeps),
    )


# Where the resident was, from their own annotations (activities.csv): in an annotated sleep
# `asleep`, in an annotated outing `out`, anywhere else in the annotated span `awake` at home.
CONTEXTS = ("awake", "asleep", "out")
# Outside the span the annotations cover nobody knows where the resident was.
UNANNOTATED = "unannotated"


def context_at(ds: Dataset, t: datetime) -> str:
    """Where the resident's annotations say they were at `t` (see CONTEXTS)."""
    if any(a <= t < b for a, b in ds.sleep_intervals):
        return "asleep"
    if any(a <= t < b for a, b in ds.out_intervals):
        return "out"
    return "awake"


def context_spans(
    ds: Dataset, lo: datetime, hi: datetime
) -> dict[str, list[tuple[datetime, datetime]]]:
    """[lo, hi) cut into the stretches of each context, in time order."""
    bounds = {t for a, b in (*ds.sleep_intervals, *ds.out_intervals) for t in (a, b) if lo < t < hi}
    cuts = sorted({lo, hi} | bounds) if lo < hi else []
    spans: dict[str, list[tuple[datetime, datetime]]] = {c: [] for c in CONTEXTS}
    for a, b in itertools.pairwise(cuts):
        spans[context_at(ds, a)].append((a, b))  # no interval starts or ends inside (a, b)
    return spans
