"""Offline replay of recorded homes (../shared/data format) and evaluation against them.

The detectors run in-process on the data's own clock: a month replays in seconds and raises
the same alerts as live. `evaluate_real_home` counts the false alarms of the untouched
recording, then injects a collapse by dropping every event after an instant (in each context
the resident's annotations tell: awake at home, asleep, out) and measures how long the
detectors take to notice, against when the untouched recording saw the resident again.
"""

from __future__ import annotations

import bisect
import copy
import csv
import itertools
import json
import math
import random
import statistics
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from alerts.detect.detectors import Detector
from alerts.detect.layout import Layout, PlacedDevice, Role
from alerts.model import Category, Signal
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
# Alerts that mean "this elder may be lying somewhere": they detect an injected collapse.
COLLAPSE_KINDS = frozenset(
    {
        "inactivity",
        "not_up",
        "bathroom_too_long",
        "out_of_bed_night",
        "not_back",
        "night_wandering",
    }
)


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


# -- evaluation on recorded homes ---------------------------------------------------------------

# Where the resident was, from their own annotations (activities.csv): in an annotated sleep
# `asleep`, in an annotated outing `out`, anywhere else in the annotated span `awake` at home.
CONTEXTS = ("awake", "asleep", "out")
# Outside the span the annotations cover nobody knows where the resident was.
UNANNOTATED = "unannotated"
# The target: no injected collapse without an alert within 12 h; and later than 24 h.
MISS_WITHIN = timedelta(hours=12)
MISS_LATE = timedelta(hours=24)
# Readings that are no sighting of the resident (as for the learned detectors, none of them
# ends a silence): housekeeping, and meters, which run whether anybody is there or not.
_NOT_SEEN_METRICS = frozenset(
    {"heartbeat", "battery", "battery_pct", "status", "rssi", "worn", "breathing_rate"}
    | {"power", "watts", "flow", "energy"}
)


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


def _eligible(ds: Dataset, skip_days: float) -> tuple[datetime, datetime]:
    """Where a collapse may be injected: after `skip_days`, within the annotated span."""
    lo, hi = ds.readings[0].ts + timedelta(days=skip_days), ds.readings[-1].ts
    if ds.annotated is not None:
        lo, hi = max(lo, ds.annotated[0]), min(hi, ds.annotated[1])
    return lo, hi


def sample_instants(
    ds: Dataset, per_context: int, seed: int, skip_days: float, total: int | None = None
) -> list[tuple[datetime, str]]:
    """Instants to inject a collapse at, with their context, in time order: after
    `skip_days`, within the span the annotations cover, `per_context` in each context
    (uniform over the time the resident spent in it; none in a context never seen); or, with
    `total`, that many uniform over the span, in whichever context they fall."""
    rng = random.Random(seed)
    lo, hi = _eligible(ds, skip_days)
    if hi <= lo:
        return []
    if total is not None:
        span = (hi - lo).total_seconds()
        picked = [lo + timedelta(seconds=rng.uniform(0, span)) for _ in range(total)]
        return sorted((t, context_at(ds, t)) for t in picked)
    out: list[tuple[datetime, str]] = []
    for ctx, spans in context_spans(ds, lo, hi).items():
        lengths = [(b - a).total_seconds() for a, b in spans]
        size = sum(lengths)
        for _ in range(per_context if size > 0 else 0):
            x = rng.uniform(0, size)
            for k, ((a, _b), n) in enumerate(zip(spans, lengths, strict=True)):
                if x < n or k == len(spans) - 1:  # the last: x is at most its length
                    out.append((a + timedelta(seconds=max(0.0, min(x, n - 1e-3))), ctx))
                    break
                x -= n
    return sorted(out)


def sightings(ds: Dataset) -> list[datetime]:
    """When the untouched recording sees the resident: its activity readings' times."""
    return [
        r.ts
        for r in ds.readings
        if r.metric not in _NOT_SEEN_METRICS
        and ds.layout.device(r.device_id, r.kind).role is not Role.PASSIVE
    ]


def next_sighting(seen: list[datetime], t: datetime) -> datetime | None:
    """The first of the sorted `seen` after `t` (None: never again)."""
    i = bisect.bisect_right(seen, t)
    return seen[i] if i < len(seen) else None


@dataclass(frozen=True, slots=True)
class Injection:
    """One injected collapse: every event after `at` dropped.

    `seen_again` is when the untouched recording next sees the resident (for an instant out,
    the return): before it, nothing can tell a collapse from the quiet spell that was. The
    alert is the first of a collapse kind after `at` in the run without the later events.
    """

    at: datetime
    context: str
    seen_again: datetime | None
    alert_at: datetime | None = None
    alert_kind: str | None = None

    @property
    def gap_s(self) -> float:
        """The natural gap: from the instant to the next sighting (inf: none)."""
        return math.inf if self.seen_again is None else (self.seen_again - self.at).total_seconds()

    @property
    def delay_s(self) -> float | None:
        """From the instant to the alert."""
        return None if self.alert_at is None else (self.alert_at - self.at).total_seconds()

    @property
    def excess_s(self) -> float | None:
        """From the next sighting to the alert; 0 for an alert before it."""
        if self.alert_at is None:
            return None
        if self.seen_again is None:
            return 0.0
        return max(0.0, (self.alert_at - self.seen_again).total_seconds())

    @property
    def before_seen_again(self) -> bool:
        """Alerted before the untouched recording saw the resident again."""
        return self.alert_at is not None and (
            self.seen_again is None or self.alert_at < self.seen_again
        )

    def missed(self, within: timedelta) -> bool:
        """No alert within `within` of the instant."""
        return self.alert_at is None or self.alert_at - self.at > within


@dataclass(slots=True)
class RealHomeReport:
    """Measured on one recorded home."""

    home_id: str
    days: float
    false_alarms: dict[str, int] = field(default_factory=dict)  # per non-technical kind
    technical: int = 0
    # Within the span the resident's annotations cover (where they say where they were):
    # its days, and the false alarms raised in it per non-technical kind.
    annotated_days: float = 0.0
    annotated_false_alarms: dict[str, int] = field(default_factory=dict)
    # Per context (CONTEXTS, and UNANNOTATED for the rest of the recording): the days the
    # resident spent in it, and the untouched replay's non-technical alerts per kind, by
    # where the resident was when what they alert on began (`since`, else the alert time).
    context_days: dict[str, float] = field(default_factory=dict)
    context_false_alarms: dict[str, dict[str, int]] = field(default_factory=dict)
    # Non-technical alerts with the repeats about the same episode (same kind, same `since`:
    # `not_back` again at the cap and every 11.5 h of one absence) counted once: what the
    # live alert queue holds while the first is open (a repeat adds evidence to it).
    false_alarm_episodes: int = 0
    injections: list[Injection] = field(default_factory=list)

    @property
    def non_technical(self) -> int:
        """False alarms of every non-technical kind."""
        return sum(self.false_alarms.values())

    @property
    def injected(self) -> int:
        """Injected collapses."""
        return len(self.injections)

    @property
    def detected(self) -> int:
        """Injected collapses alerted on within the tail run after them (24 h)."""
        return sum(i.alert_at is not None for i in self.injections)

    def summary(self) -> dict[str, Any]:
        """The numbers, JSON-ready."""
        return score([self], self.home_id)


def per_day(count: int, days: float) -> float | None:
    """`count` per day over `days` (None: no days)."""
    return round(count / days, 3) if days > 0 else None


def _hours(values: list[float], how: Any) -> float | None:
    return round(how(values) / 3600, 2) if values else None


def _minutes(values: list[float], how: Any) -> float | None:
    return round(how(values) / 60, 1) if values else None


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(0.9 * (len(ordered) - 1))]


def injection_numbers(injections: list[Injection]) -> dict[str, Any]:
    """Detection of injected collapses: missed, delay, and excess over the natural gap.

    `missed_12h` counts every instant; `missed_12h_gap_le_12h` only those the untouched
    recording saw the resident again within 12 h of (`gap_over_12h` are the others: there an
    alert within 12 h is also one on the untouched data). Delay and excess are over the
    instants alerted on within 24 h."""
    alerted = [i for i in injections if i.alert_at is not None and not i.missed(MISS_LATE)]
    delays = [i.delay_s for i in alerted if i.delay_s is not None]
    excess = [i.excess_s for i in alerted if i.excess_s is not None]
    gaps = [i.gap_s for i in injections if math.isfinite(i.gap_s)]
    short = [i for i in injections if i.gap_s <= MISS_WITHIN.total_seconds()]
    kinds: dict[str, int] = {}
    for i in alerted:
        kinds[str(i.alert_kind)] = kinds.get(str(i.alert_kind), 0) + 1
    return {
        "injected": len(injections),
        "missed_12h": sum(i.missed(MISS_WITHIN) for i in injections),
        "injected_gap_le_12h": len(short),
        "missed_12h_gap_le_12h": sum(i.missed(MISS_WITHIN) for i in short),
        "gap_over_12h": len(injections) - len(short),
        "missed_24h": sum(i.missed(MISS_LATE) for i in injections),
        "alert_before_seen_again": sum(i.before_seen_again for i in alerted),
        "natural_gap_median_h": _hours(gaps, statistics.median),
        "delay_mean_h": _hours(delays, statistics.fmean),
        "delay_median_h": _hours(delays, statistics.median),
        "excess_mean_min": _minutes(excess, statistics.fmean),
        "excess_median_min": _minutes(excess, statistics.median),
        "excess_p90_min": _minutes(excess, _p90),
        "alert_kinds": dict(sorted(kinds.items())),
    }


def score(reports: list[RealHomeReport], home: str) -> dict[str, Any]:
    """The numbers of `reports` pooled (one home, or several as if one), JSON-ready: false
    alarms a day overall and per context, and detection of the injected collapses overall
    and per context. A context's `false_alarms_per_day` is per day of the whole recording
    (the contexts' add up to the total); `false_alarms_per_context_day` per day spent in it."""
    days = sum(r.days for r in reports)
    counts: dict[str, int] = {}
    annotated: dict[str, int] = {}
    for r in reports:
        for k, v in r.false_alarms.items():
            counts[k] = counts.get(k, 0) + v
        for k, v in r.annotated_false_alarms.items():
            annotated[k] = annotated.get(k, 0) + v
    annotated_days = sum(r.annotated_days for r in reports)
    contexts: dict[str, dict[str, Any]] = {}
    for ctx in (*CONTEXTS, UNANNOTATED):
        ctx_days = sum(r.context_days.get(ctx, 0.0) for r in reports)
        n = sum(sum(r.context_false_alarms.get(ctx, {}).values()) for r in reports)
        contexts[ctx] = {
            "days": round(ctx_days, 2),
            "false_alarms": n,
            "false_alarms_per_day": per_day(n, days),
            "false_alarms_per_context_day": per_day(n, ctx_days),
        }
        if ctx != UNANNOTATED:
            contexts[ctx] |= injection_numbers(
                [i for r in reports for i in r.injections if i.context == ctx]
            )
    return {
        "home": home,
        "days": round(days, 1),
        "false_alarms": dict(sorted(counts.items())),
        "false_alarms_per_day": per_day(sum(counts.values()), days),
        "false_alarm_episodes_per_day": per_day(sum(r.false_alarm_episodes for r in reports), days),
        "collapse_false_alarms_per_day": per_day(
            sum(v for k, v in counts.items() if k in COLLAPSE_KINDS), days
        ),
        "technical": sum(r.technical for r in reports),
        "annotated_days": round(annotated_days, 1),
        "annotated_false_alarms": dict(sorted(annotated.items())),
        "annotated_false_alarms_per_day": per_day(sum(annotated.values()), annotated_days),
        **injection_numbers([i for r in reports for i in r.injections]),
        "contexts": contexts,
    }


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


def episodes(signals: Iterable[Signal]) -> int:
    """Non-technical alerts, those about the same episode (home, kind, `since`) once."""
    return len(
        {
            (s.home_id, s.kind, alert_began(s))
            for s in signals
            if s.category is not Category.TECHNICAL
        }
    )


def alert_began(signal: Signal) -> datetime:
    """When what an alert is about began: its evidence's `since`, else the alert time."""
    since = signal.evidence.get("since")
    if isinstance(since, str):
        try:
            at = datetime.fromisoformat(since)
        except ValueError:
            return signal.event_at
        return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return signal.event_at


def false_alarms_by_context(
    ds: Dataset, signals: Iterable[Signal]
) -> tuple[dict[str, float], dict[str, dict[str, int]]]:
    """The days of the recording per context, and its non-technical alerts per context and
    kind, by the context at which what they alert on began (UNANNOTATED: outside the span)."""
    first, last = ds.readings[0].ts, ds.readings[-1].ts
    days = {ctx: 0.0 for ctx in (*CONTEXTS, UNANNOTATED)}
    days[UNANNOTATED] = (last - first).total_seconds() / 86400
    if ds.annotated is not None:
        for ctx, spans in context_spans(
            ds, max(first, ds.annotated[0]), min(last, ds.annotated[1])
        ).items():
            days[ctx] = sum((b - a).total_seconds() for a, b in spans) / 86400
            days[UNANNOTATED] -= days[ctx]
    counts: dict[str, dict[str, int]] = {ctx: {} for ctx in days}
    for s in signals:
        if s.category is Category.TECHNICAL:
            continue
        began = alert_began(s)
        ctx = UNANNOTATED
        if ds.annotated is not None and ds.annotated[0] <= began < ds.annotated[1]:
            ctx = context_at(ds, began)
        counts[ctx][s.kind] = counts[ctx].get(s.kind, 0) + 1
    return days, counts


def evaluate_real_home(
    ds: Dataset,
    make: Any,
    per_context: int = 15,
    seed: int = 7,
    skip_days: float = 7.0,
    tail: timedelta = MISS_LATE,
    instants: int | None = None,
) -> RealHomeReport:
    """Replay untouched (false alarms per day, per context), then inject a collapse at
    instants in every context (`sample_instants`) by dropping every later event: the first
    alert of a collapse kind within `tail` (at least 24 h) after it, against the natural gap."""
    tail = max(tail, MISS_LATE)
    first, last = ds.readings[0].ts, ds.readings[-1].ts
    report = RealHomeReport(ds.home_id, (last - first).total_seconds() / 86400)
    signals = run_offline(make(ds), ds.readings, tail=timedelta(0))
    report.false_alarms, report.technical = false_alarms(signals)
    report.false_alarm_episodes = episodes(signals)
    if ds.annotated is not None:
        lo, hi = ds.annotated
        report.annotated_days = (min(hi, last) - max(lo, first)).total_seconds() / 86400
        report.annotated_false_alarms, _ = false_alarms(s for s in signals if lo <= s.event_at < hi)
    report.context_days, report.context_false_alarms = false_alarms_by_context(ds, signals)
    at = sample_instants(ds, per_context, seed, skip_days, instants)
    report.injections = inject_collapses(ds, make, at, tail)
    return report


def inject_collapses(
    ds: Dataset, make: Any, at: list[tuple[datetime, str]], tail: timedelta = MISS_LATE
) -> list[Injection]:
    """A collapse at each of the sorted instants `at` (with their context): the first alert of
    a collapse kind within `tail` after it, once every later event is dropped."""
    seen = sightings(ds)
    first = ds.readings[0].ts
    detector = make(ds)
    it: Iterator[Reading] = iter(ds.readings)
    pending: Reading | None = next(it, None)
    step = timedelta(minutes=1)
    clock = first  # the last tick the shared detector was advanced to (a grid from `first`)
    out: list[Injection] = []
    for instant, ctx in at:
        # Bring the shared detector up to the instant, then run a copy with no more events.
        while pending is not None and pending.ts <= instant:
            while clock + step <= pending.ts:
                clock += step
                detector.advance(clock)
            detector.observe(pending)
            pending = next(it, None)
        hit = _first_collapse_alert(copy.deepcopy(detector), clock, instant, instant + tail, step)
        out.append(
            Injection(
                instant,
                ctx,
                next_sighting(seen, instant),
                hit.event_at if hit is not None else None,
                hit.kind if hit is not None else None,
            )
        )
    return out


def _first_collapse_alert(
    fork: Detector, clock: datetime, instant: datetime, end: datetime, step: timedelta
) -> Signal | None:
    """Advance `fork` from the tick after `clock` up to `end`; the first alert of a collapse
    kind at or after `instant`."""
    while clock + step <= end:
        clock += step
        for s in fork.advance(clock):
            if s.kind in COLLAPSE_KINDS and s.event_at >= instant:
                return s
    return None
