"""Score the detectors against a simulated cohort's ground truth (`eldercare evaluate`).

The cohort (simulators.cohort, issue 3) is passed in as data: its readings in event-time
order, its ground truth, and a `Layout` with every device's room. Nothing here imports the
simulators (alerts may not depend on them).

- An incident is **detected** when an alert of one of its `expected_alerts` kinds opens in
  its home during [start, end]; the time to detect runs from `start` to the first such alert.
- A fall seen by a device counts twice: the `fall` row (the fall alert itself, on the very
  reading) and the `lying after fall` row (bathroom_too_long / inactivity while the elder
  lies there: what the learned rules must find when nothing saw the fall).
- For the immediate kinds, `on_reading` counts alerts carrying the device and sequence number
  of the reading that triggered them (sos press, fall, smoke, gas, co = 1).
- A **false alarm** is a non-technical alert not explained by an incident in its home: an
  alert of an expected or `detail.acceptable` kind during [start, end + `explain_after`]
  (+ `explain_daily_after` for the daily kinds, which are raised at the next midnight). The
  rate is per elder-day of incident-free time (the run minus every incident's window).
- With `groups` (home id -> group, e.g. the persona archetype), ``by_group`` repeats the
  scoring per group: rows with mean and day/night time to detect, false alarms per kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import numpy as np

from alerts.detect.detectors import IMMEDIATE_KINDS, DetectorSet
from alerts.detect.replay import run_offline
from alerts.model import Category, Signal
from devices.payload import Reading

DAILY_KINDS = frozenset({"low_activity", "no_utility_use"})
COLLAPSE_ROWS = ("collapse", "lying after fall", "not_up", "bathroom_too_long")
"""Rows that are a person lying helpless: the inactivity targets apply to them."""
_TRIGGER_METRICS = {"press": "sos", "fall": "fall", "smoke": "smoke", "gas": "gas", "co": "co"}


class IncidentLike(Protocol):
    """One ground-truth incident (simulators.cohort.Incident)."""

    @property
    def home_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def start(self) -> datetime: ...
    @property
    def end(self) -> datetime | None: ...
    @property
    def expected_alerts(self) -> tuple[str, ...]: ...
    @property
    def detail(self) -> dict[str, Any]: ...


def quantile_min(values: Sequence[float], q: float) -> float | None:
    """The q-quantile of `values` (seconds) in minutes, linear interpolation; None if empty."""
    if not values:
        return None
    return round(float(np.quantile(np.asarray(values, dtype=np.float64), q)) / 60, 1)


@dataclass(slots=True)
class _Row:
    injected: int = 0
    detected: int = 0
    on_reading: int = 0
    ttd: list[float] = field(default_factory=list)
    day_injected: int = 0
    ttd_day: list[float] = field(default_factory=list)
    ttd_night: list[float] = field(default_factory=list)
    by: dict[str, int] = field(default_factory=dict)

    def report(self) -> dict[str, Any]:
        return {
            "injected": self.injected,
            "detected": self.detected,
            "ttd_median_min": quantile_min(self.ttd, 0.5),
            "ttd_p90_min": quantile_min(self.ttd, 0.9),
            "daytime_injected": self.day_injected,
            "daytime_detected": len(self.ttd_day),
            "daytime_ttd_median_min": quantile_min(self.ttd_day, 0.5),
            "detected_by": dict(sorted(self.by.items())),
        }

    def group_report(self) -> dict[str, Any]:
        """`report` plus mean times to detect and the night-time split (for `by_group`)."""
        return {
            **self.report(),
            "ttd_mean_min": _mean_min(self.ttd),
            "daytime_ttd_mean_min": _mean_min(self.ttd_day),
            "night_injected": self.injected - self.day_injected,
            "night_detected": len(self.ttd_night),
            "night_ttd_median_min": quantile_min(self.ttd_night, 0.5),
            "night_ttd_mean_min": _mean_min(self.ttd_night),
        }


def _mean_min(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values) / 60, 1) if values else None


def _window_end(inc: IncidentLike, run_end: datetime) -> datetime:
    return min(inc.end or inc.start, run_end)


def evaluate_cohort(
    detector: DetectorSet,
    readings: Iterable[Reading],
    truth: Sequence[IncidentLike],
    homes: int,
    start: datetime,
    end: datetime,
    *,
    tz_hour: Any = None,
    explain_after: timedelta = timedelta(hours=2),
    explain_daily_after: timedelta = timedelta(hours=36),
    day_hours: tuple[int, int] = (7, 21),
    groups: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Run `readings` (event-time order, from `start` to `end`) through `detector` and score
    the signals against `truth`: per row, detected / injected and time to detect (minutes);
    per alert kind, false alarms per elder-day of incident-free time.

    `tz_hour(home_id, ts)` gives an instant's local hour (default UTC) for the daytime split.
    `groups` maps every home id to a group name; the report then has ``by_group`` too.
    """
    triggers: dict[tuple[str, str], list[tuple[datetime, str, int]]] = {}

    def tap(stream: Iterable[Reading]) -> Iterator[Reading]:
        for r in stream:
            kind = _TRIGGER_METRICS.get(r.metric)
            if kind is not None and r.value == 1.0:
                triggers.setdefault((r.home_id, kind), []).append((r.ts, r.device_id, r.seq))
            yield r

    signals = run_offline(detector, tap(readings), until=end)
    by_home: dict[str, list[Signal]] = {}
    for s in signals:
        by_home.setdefault(s.home_id, []).append(s)

    def local_hour(home_id: str, at: datetime) -> int:
        return int(tz_hour(home_id, at)) if tz_hour is not None else at.hour

    rows: dict[str, _Row] = {}
    group_rows: dict[str, dict[str, _Row]] = {g: {} for g in sorted(set((groups or {}).values()))}
    explained: set[int] = set()
    for inc in truth:
        stop = _window_end(inc, end)
        home_signals = by_home.get(inc.home_id, [])
        ok = set(inc.expected_alerts) | set(inc.detail.get("acceptable", []))
        for s in home_signals:
            after = explain_daily_after if s.kind in DAILY_KINDS else explain_after
            if s.kind in ok and inc.start <= s.event_at <= (inc.end or inc.start) + after:
                explained.add(id(s))
        parts: list[tuple[str, tuple[str, ...]]] = []
        if inc.kind == "fall":
            if "fall" in inc.expected_alerts:
                parts.append(("fall", ("fall",)))
            parts.append(("lying after fall", tuple(k for k in inc.expected_alerts if k != "fall")))
        else:
            parts.append((inc.kind, inc.expected_alerts))
        daytime = day_hours[0] <= local_hour(inc.home_id, inc.start) < day_hours[1]
        for name, wanted in parts:
            targets = [rows.setdefault(name, _Row())]
            if groups is not None:
                targets.append(group_rows[groups[inc.home_id]].setdefault(name, _Row()))
            for row in targets:
                row.injected += 1
                row.day_injected += daytime
            hits = [s for s in home_signals if s.kind in wanted and inc.start <= s.event_at <= stop]
            if not hits:
                continue
            first = min(hits, key=lambda s: s.event_at)
            ttd = (first.event_at - inc.start).total_seconds()
            on_reading = False
            if name in IMMEDIATE_KINDS:
                fired = {(s.device_id, s.seq) for s in hits if s.kind == name}
                trig = [
                    (dev, seq)
                    for ts, dev, seq in triggers.get((inc.home_id, name), [])
                    if inc.start <= ts <= stop
                ]
                on_reading = bool(trig) and trig[0] in fired
            for row in targets:
                row.detected += 1
                row.ttd.append(ttd)
                (row.ttd_day if daytime else row.ttd_night).append(ttd)
                row.by[first.kind] = row.by.get(first.kind, 0) + 1
                row.on_reading += on_reading

    free_s = incident_free_seconds(truth, homes, start, end)
    elder_days = max(free_s / 86400, 1e-9)
    fa: dict[str, int] = {}
    technical_fa: dict[str, int] = {}
    for s in signals:
        if id(s) in explained:
            continue
        bucket = technical_fa if s.category is Category.TECHNICAL else fa
        bucket[s.kind] = bucket.get(s.kind, 0) + 1
    kinds: dict[str, dict[str, Any]] = {}
    for name, row in rows.items():
        kinds[name] = row.report()
        if name in IMMEDIATE_KINDS:
            kinds[name]["on_reading"] = row.on_reading
    for kind, n in fa.items():
        kinds.setdefault(kind, {"injected": 0, "detected": 0})["false_alarms"] = n
    for doc in kinds.values():
        n = doc.setdefault("false_alarms", 0)
        doc["false_alarms_per_elder_day"] = round(n / elder_days, 4)
    total_fa = sum(fa.values())
    report: dict[str, Any] = {
        "homes": homes,
        "days": round((end - start).total_seconds() / 86400, 1),
        "incident_free_elder_days": round(elder_days, 1),
        "incidents": len(truth),
        "signals": len(signals),
        "false_alarms": total_fa,
        "false_alarms_per_elder_day": round(total_fa / elder_days, 4),
        "technical_unexplained": dict(sorted(technical_fa.items())),
        "kinds": dict(sorted(kinds.items())),
    }
    if groups is not None:
        report["by_group"] = _by_group(groups, group_rows, signals, explained, truth, start, end)
    return report


def _by_group(
    groups: Mapping[str, str],
    group_rows: dict[str, dict[str, _Row]],
    signals: Sequence[Signal],
    explained: set[int],
    truth: Sequence[IncidentLike],
    start: datetime,
    end: datetime,
) -> dict[str, dict[str, Any]]:
    """Per group: homes, incident-free elder-days, rows, false alarms per kind (and per
    elder-day), unexplained technical alerts."""
    out: dict[str, dict[str, Any]] = {}
    for group, rows in group_rows.items():
        members = {h for h, g in groups.items() if g == group}
        mine = [i for i in truth if i.home_id in members]
        elder_days = max(incident_free_seconds(mine, len(members), start, end) / 86400, 1e-9)
        fa: dict[str, int] = {}
        technical: dict[str, int] = {}
        for s in signals:
            if s.home_id in members and id(s) not in explained:
                bucket = technical if s.category is Category.TECHNICAL else fa
                bucket[s.kind] = bucket.get(s.kind, 0) + 1
        kinds: dict[str, dict[str, Any]] = {}
        for name, row in sorted(rows.items()):
            kinds[name] = row.group_report()
            if name in IMMEDIATE_KINDS:
                kinds[name]["on_reading"] = row.on_reading
        out[group] = {
            "homes": len(members),
            "incident_free_elder_days": round(elder_days, 1),
            "incidents": len(mine),
            "false_alarms": sum(fa.values()),
            "false_alarms_per_elder_day": round(sum(fa.values()) / elder_days, 4),
            "false_alarms_by_kind": {
                k: {"false_alarms": n, "per_elder_day": round(n / elder_days, 4)}
                for k, n in sorted(fa.items())
            },
            "technical_unexplained": dict(sorted(technical.items())),
            "kinds": kinds,
        }
    return out


def incident_free_seconds(
    truth: Sequence[IncidentLike], homes: int, start: datetime, end: datetime
) -> float:
    """Elder-seconds of the run outside every incident's window (low battery excepted: it
    does not change what the elder or the sensors do; a permanent device failure,
    ``detail["permanent"]``, neither: the elder lives on as usual for the rest of the run,
    and leaving that out would hide what the missing sensor does to the false alarms)."""
    spans: dict[str, list[tuple[datetime, datetime]]] = {}
    for inc in truth:
        if inc.kind == "low_battery" or inc.detail.get("permanent"):
            continue
        lo, hi = max(inc.start, start), min(inc.end or inc.start, end)
        if hi > lo:
            spans.setdefault(inc.home_id, []).append((lo, hi))
    busy = 0.0
    for intervals in spans.values():
        intervals.sort()
        cur_lo, cur_hi = intervals[0]
        for lo, hi in intervals[1:]:
            if lo > cur_hi:
                busy += (cur_hi - cur_lo).total_seconds()
                cur_lo, cur_hi = lo, hi
            else:
                cur_hi = max(cur_hi, hi)
        busy += (cur_hi - cur_lo).total_seconds()
    return homes * (end - start).total_seconds() - busy
