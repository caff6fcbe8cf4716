"""Evaluation of the detectors on recorded homes (alerts.detect.dataset).

`evaluate_real_home` counts the false alarms of the untouched recording, then injects a
collapse by dropping every event after an instant (in each context the resident's
annotations tell: awake at home, asleep, out) and measures how long the detectors take to
notice, against when the untouched recording saw the resident again (the numbers:
alerts.detect.scoring).
"""

from __future__ import annotations

import bisect
import copy
import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from alerts.detect.dataset import Dataset, context_at, context_spans
from alerts.detect.detectors import Detector
from alerts.detect.layout import Role
from alerts.detect.replay import run_offline
from alerts.detect.scoring import (
    COLLAPSE_KINDS,
    MISS_LATE,
    Injection,
    RealHomeReport,
    episodes,
    false_alarms,
    false_alarms_by_context,
)
from alerts.model import Signal
from devices.payload import Reading

# Readings that are no sighting of the resident (as for the learned detectors, none of them
# ends a silence): housekeeping, and meters, which run whether anybody is there or not.
_NOT_SEEN_METRICS = frozenset(
    {"heartbeat", "battery", "battery_pct", "status", "rssi", "worn", "breathing_rate"}
    | {"power", "watts", "flow", "energy"}
)


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
