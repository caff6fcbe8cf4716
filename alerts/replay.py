"""Offline replay of recorded homes (../shared/data format) and evaluation against them.

The detectors run in-process on the data's own clock: a month replays in seconds and raises
the same alerts as live. `evaluate_collapse` injects a collapse by dropping every event after
a random instant and measures how long the detectors take to notice.
"""

from __future__ import annotations

import copy
import csv
import json
import random
import statistics
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from alerts.detect import Detector
from alerts.layout import Layout, PlacedDevice
from alerts.model import Category, Signal
from devices.payload import Reading

# The dataset's sensor kinds, as the catalogue's device kind and metric that report them: the
# offline replay reads the same readings as the live one publishes (`eldercare replay`
# without --offline), and the ingest decoder accepts them. Every kind has the role it had
# before it had a catalogue row (alerts.layout): a `contact` is a cupboard or drawer
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
# Alerts that mean "this elder may be lying somewhere": they detect an injected collapse.
COLLAPSE_KINDS = frozenset({"inactivity", "not_up", "bathroom_too_long", "out_of_bed_night"})


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


def run_offline(
    detector: Detector,
    readings: Iterable[Reading],
    tail: timedelta = timedelta(hours=24),
    step: timedelta = timedelta(minutes=1),
    until: datetime | None = None,
) -> list[Signal]:
    """Feed readings in event-time order, advancing the clock on a grid of `step` from the
    first reading (however dense the readings: many homes together send several a second),
    and for `tail` past the last one (or up to `until`); return every signal raised."""
    out: list[Signal] = []
    tick: datetime | None = None
    last: datetime | None = None
    for reading in readings:
        if tick is None:
            tick = reading.ts + step
        while tick <= reading.ts:
            out += detector.advance(tick)
            tick += step
        out += detector.observe(reading)
        last = reading.ts
    if tick is not None and last is not None:
        end = until if until is not None else last + tail
        out += _run_clock(detector, tick - step, end, step)
    return out


def _run_clock(detector: Detector, clock: datetime, end: datetime, step: timedelta) -> list[Signal]:
    """Advance from the tick after `clock` up to `end`, one `step` at a time."""
    out: list[Signal] = []
    while clock + step <= end:
        clock += step
        out += detector.advance(clock)
    return out


def signal_json(signal: Signal) -> dict[str, Any]:
    """One alert as a JSON line of `replay --alerts-out`."""
    return {
        "opened_at": signal.event_at.isoformat(),
        "home_id": signal.home_id,
        "kind": signal.kind,
        "category": signal.category.value,
        "severity": signal.severity.value,
        "summary": signal.summary,
        "device_id": signal.device_id,
        "evidence": signal.evidence,
    }


@dataclass(slots=True)
class RealHomeReport:
    """Measured on one recorded home."""

    home_id: str
    days: float
    false_alarms: dict[str, int] = field(default_factory=dict)
    technical: int = 0
    injected: int = 0
    detected: int = 0
    ttd_s: list[float] = field(default_factory=list)
    ttd_asleep_s: list[float] = field(default_factory=list)  # instants in an annotated sleep
    injected_asleep: int = 0
    # Within the span the resident's annotations cover (where they say where they were):
    # its days, and the false alarms raised in it per non-technical kind.
    annotated_days: float = 0.0
    annotated_false_alarms: dict[str, int] = field(default_factory=dict)

    @property
    def non_technical(self) -> int:
        """False alarms of every non-technical kind."""
        return sum(self.false_alarms.values())

    def summary(self) -> dict[str, Any]:
        """The numbers, JSON-ready."""
        ttd = sorted(self.ttd_s)
        return {
            "home": self.home_id,
            "days": round(self.days, 1),
            "false_alarms": dict(sorted(self.false_alarms.items())),
            "false_alarms_per_day": round(self.non_technical / self.days, 3),
            "collapse_false_alarms_per_day": round(
                sum(v for k, v in self.false_alarms.items() if k in COLLAPSE_KINDS) / self.days, 3
            ),
            "injected": self.injected,
            "detected": self.detected,
            "ttd_mean_h": round(statistics.fmean(ttd) / 3600, 2) if ttd else None,
            "ttd_median_h": round(statistics.median(ttd) / 3600, 2) if ttd else None,
            "ttd_p90_h": round(ttd[int(0.9 * (len(ttd) - 1))] / 3600, 2) if ttd else None,
            "injected_asleep": self.injected_asleep,
            "ttd_mean_asleep_h": _mean_h(self.ttd_asleep_s),
            "ttd_mean_awake_h": _mean_h(_without(self.ttd_s, self.ttd_asleep_s)),
            "annotated_days": round(self.annotated_days, 1),
            "annotated_false_alarms": dict(sorted(self.annotated_false_alarms.items())),
            "annotated_false_alarms_per_day": per_day(
                sum(self.annotated_false_alarms.values()), self.annotated_days
            ),
            "annotated_collapse_false_alarms_per_day": per_day(
                sum(v for k, v in self.annotated_false_alarms.items() if k in COLLAPSE_KINDS),
                self.annotated_days,
            ),
        }


def per_day(count: int, days: float) -> float | None:
    """`count` per day over `days` (None: no days)."""
    return round(count / days, 3) if days > 0 else None


def _mean_h(values: list[float]) -> float | None:
    return round(statistics.fmean(values) / 3600, 2) if values else None


def _without(values: list[float], some: list[float]) -> list[float]:
    rest = list(values)
    for v in some:
        rest.remove(v)
    return rest


def false_alarms(signals: Iterable[Signal]) -> tuple[dict[str, int], int]:
    """Count untouched-replay alerts per non-technical kind, and technical ones."""
    counts: dict[str, int] = {}
    technical = 0
    for s in signals:
        if s.category is Category.TECHNICAL:
            technical += 1
        else:
            counts[s.kind] = counts.get(s.kind, 0) + 1
    return counts, technical


def _at_home(ds: Dataset, t: datetime) -> bool:
    return not any(a <= t < b for a, b in ds.out_intervals)


def collapse_instants(ds: Dataset, count: int, seed: int, skip_days: float) -> list[datetime]:
    """Random instants (sorted) after `skip_days`, within the span the resident's own
    annotations cover, at times they do not mark as out of the house."""
    rng = random.Random(seed)
    first, last = ds.readings[0].ts, ds.readings[-1].ts
    lo = first + timedelta(days=skip_days)
    if ds.annotated is not None:
        lo, last = max(lo, ds.annotated[0]), min(last, ds.annotated[1])
    span = (last - lo).total_seconds()
    picked: list[datetime] = []
    while len(picked) < count and span > 0:
        t = lo + timedelta(seconds=rng.uniform(0, span))
        if _at_home(ds, t):
            picked.append(t)
    return sorted(picked)


def evaluate_real_home(
    ds: Dataset,
    make: Any,
    instants: int = 40,
    seed: int = 7,
    skip_days: float = 7.0,
    tail: timedelta = timedelta(hours=24),
) -> RealHomeReport:
    """Replay untouched (false alarms per day), then inject a collapse at random instants by
    dropping every later event (time to detect, from the instant)."""
    first, last = ds.readings[0].ts, ds.readings[-1].ts
    report = RealHomeReport(ds.home_id, (last - first).total_seconds() / 86400)
    signals = run_offline(make(ds), ds.readings, tail=timedelta(0))
    report.false_alarms, report.technical = false_alarms(signals)
    if ds.annotated is not None:
        lo, hi = ds.annotated
        report.annotated_days = (min(hi, last) - max(lo, first)).total_seconds() / 86400
        report.annotated_false_alarms, _ = false_alarms(s for s in signals if lo <= s.event_at < hi)
    detector = make(ds)
    it: Iterator[Reading] = iter(ds.readings)
    pending: Reading | None = next(it, None)
    step = timedelta(minutes=1)
    clock = first  # the last tick the shared detector was advanced to (a grid from `first`)
    for instant in collapse_instants(ds, instants, seed, skip_days):
        # Bring the shared detector up to the instant, then run a copy with no more events.
        while pending is not None and pending.ts <= instant:
            while clock + step <= pending.ts:
                clock += step
                detector.advance(clock)
            detector.observe(pending)
            pending = next(it, None)
        fork = copy.deepcopy(detector)
        report.injected += 1
        asleep = any(a <= instant < b for a, b in ds.sleep_intervals)
        report.injected_asleep += asleep
        hits = [
            s
            for s in _run_clock(fork, clock, instant + tail, step)
            if s.kind in COLLAPSE_KINDS and s.event_at >= instant
        ]
        if hits:
            report.detected += 1
            report.ttd_s.append((hits[0].event_at - instant).total_seconds())
            if asleep:
                report.ttd_asleep_s.append(report.ttd_s[-1])
    return report
