"""Score the detectors against a simulated cohort's ground truth (`eldercare evaluate`)."""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, Protocol

from alerts.detect import default_detectors
from alerts.layout import Layout, PlacedDevice
from alerts.model import Category, Signal
from alerts.replay import run_offline
from devices.payload import Reading
from devices.registry import Registry


class IncidentLike(Protocol):
    """One ground-truth incident (simulators.cohort.Incident)."""

    home_id: str
    kind: str
    start: datetime
    end: datetime | None
    expected_alerts: tuple[str, ...]


class CohortLike(Protocol):
    """What is needed of a simulated cohort (simulators.cohort.Cohort)."""

    def registry(self) -> Registry: ...
    def readings(self) -> Iterator[Reading]: ...
    def ground_truth(self) -> list[Any]: ...


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[int(q * (len(ordered) - 1))] / 60, 1)


def evaluate_cohort(
    cohort: CohortLike,
    grace: timedelta = timedelta(hours=24),
    tail: timedelta = timedelta(hours=24),
) -> dict[str, Any]:
    """Per alert kind: detected / injected, median and p90 time to detect (minutes), and
    false alarms per elder-day on incident-free time."""
    registry = cohort.registry()
    records = list(registry.__iter__())
    layout = Layout(
        PlacedDevice(d.device_id, d.home_id, d.kind, str(getattr(d, "room", ""))) for d in records
    )
    readings = list(cohort.readings())
    signals = run_offline(default_detectors(layout), readings, tail)
    truth: list[IncidentLike] = cohort.ground_truth()
    homes = {d.home_id for d in records}
    days = (readings[-1].ts - readings[0].ts).total_seconds() / 86400 if readings else 0.0
    kinds: dict[str, dict[str, Any]] = {}
    used: set[int] = set()
    for inc in truth:
        for kind in inc.expected_alerts:
            row = kinds.setdefault(kind, {"injected": 0, "detected": 0, "ttd": [], "fa": 0})
            row["injected"] += 1
            until = (inc.end or inc.start) + grace
            for i, s in enumerate(signals):
                if s.home_id == inc.home_id and s.kind == kind and inc.start <= s.event_at <= until:
                    row["detected"] += 1
                    row["ttd"].append((s.event_at - inc.start).total_seconds())
                    used.add(i)
                    break

    def in_incident(s: Signal) -> bool:
        return any(
            inc.home_id == s.home_id and inc.start <= s.event_at <= (inc.end or inc.start) + grace
            for inc in truth
        )

    for i, s in enumerate(signals):
        if i in used or s.category is Category.TECHNICAL or in_incident(s):
            continue
        row = kinds.setdefault(s.kind, {"injected": 0, "detected": 0, "ttd": [], "fa": 0})
        row["fa"] += 1
    elder_days = max(len(homes) * days, 1e-9)
    return {
        "homes": len(homes),
        "days": round(days, 1),
        "kinds": {
            k: {
                "injected": v["injected"],
                "detected": v["detected"],
                "ttd_median_min": round(statistics.median(v["ttd"]) / 60, 1) if v["ttd"] else None,
                "ttd_p90_min": _quantile(v["ttd"], 0.9),
                "false_alarms": v["fa"],
                "false_alarms_per_elder_day": round(v["fa"] / elder_days, 4),
            }
            for k, v in kinds.items()
        },
    }
