"""Scoring detectors against ground truth (alerts.detect.evaluate) and the offline clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from alerts.detect.detectors import DetectorSet, default_detectors
from alerts.detect.evaluate import evaluate_cohort, quantile_min
from alerts.detect.layout import Layout, PlacedDevice
from alerts.detect.replay import run_offline
from alerts.detect.technical import DeviceWatch
from alerts.model import Category, Severity, Signal
from devices.payload import Reading
from simulators.cohort.cohort import Cohort

T0 = datetime(2026, 1, 5, tzinfo=UTC)


@dataclass(frozen=True)
class Inc:
    home_id: str
    kind: str
    start: datetime
    end: datetime | None
    expected_alerts: tuple[str, ...]
    detail: dict[str, Any] = field(default_factory=dict)


def test_p90_is_never_below_the_median() -> None:
    # Two values: the old index-truncating quantile gave the smaller one as p90.
    values = [158.0 * 60, 177.2 * 60]
    median, p90 = quantile_min(values, 0.5), quantile_min(values, 0.9)
    assert median is not None
    assert p90 is not None
    assert p90 >= median
    assert (median, p90) == (167.6, 175.3)
    assert quantile_min([], 0.9) is None


def test_run_offline_ticks_however_dense_the_readings() -> None:
    # Two homes: one goes silent, the other reports every 20 s. The silent hub must still be
    # noticed 25 min after its last heartbeat (the clock used to stop while readings were
    # less than a minute apart).
    readings = [Reading("a", "a-hub", "hub", 1, 0, T0, "heartbeat", 1.0)]
    readings += [
        Reading("b", "b-pir", "pir_motion", 1, i, T0 + timedelta(seconds=20 * i), "motion", 1.0)
        for i in range(1, 200)
    ]
    signals = run_offline(DeviceWatch(), readings, tail=timedelta(0))
    [hub] = [s for s in signals if s.kind == "hub_offline"]
    assert timedelta(minutes=25) <= hub.event_at - T0 <= timedelta(minutes=26)


class _Fixed:
    """A detector that raises given signals at given times (to test the scoring alone)."""

    def __init__(self, signals: list[Signal]) -> None:
        self.pending = sorted(signals, key=lambda s: s.event_at)

    def observe(self, reading: Reading) -> list[Signal]:
        return []

    def advance(self, now: datetime) -> list[Signal]:
        due = [s for s in self.pending if s.event_at <= now]
        self.pending = [s for s in self.pending if s.event_at > now]
        return due


def _sig(home: str, kind: str, at: datetime, category: Category = Category.WELLBEING) -> Signal:
    return Signal(home, kind, category, Severity.WARNING, at, kind)


def test_scoring_by_incident_with_alternatives_and_false_alarms() -> None:
    h = timedelta(hours=1)
    truth = [
        # A fall seen by a watch: the fall row and the lying-after-fall row.
        Inc("a", "fall", T0 + 10 * h, T0 + 13 * h, ("fall", "bathroom_too_long"),
            {"acceptable": ["inactivity"]}),
        Inc("b", "collapse", T0 + 9 * h, T0 + 14 * h, ("inactivity",),
            {"acceptable": ["low_activity"]}),
        Inc("c", "not_up", T0 + 7 * h, T0 + 10 * h, ("not_up",)),  # missed
    ]  # fmt: skip
    signals = [
        _sig("a", "fall", T0 + 10 * h),
        _sig("a", "inactivity", T0 + 11 * h),  # acceptable: not a false alarm
        _sig("a", "bathroom_too_long", T0 + 11.5 * h),
        _sig("b", "inactivity", T0 + 10 * h),
        _sig("b", "low_activity", T0 + 30 * h),  # next midnight: explained (daily kind)
        _sig("c", "not_up", T0 + 13 * h),  # 3 h after the helper came: a false alarm
        _sig("c", "inactivity", T0 + 30 * h),  # a false alarm
        _sig("c", "device_silent", T0 + 31 * h, Category.TECHNICAL),  # technical: apart
    ]
    ping = [Reading(x, f"{x}-hub", "hub", 1, 0, T0, "heartbeat", 1.0) for x in "abc"]
    end = T0 + 48 * h
    report = evaluate_cohort(DetectorSet([_Fixed(signals)]), ping, truth, 3, T0, end)
    k = report["kinds"]
    assert (k["fall"]["detected"], k["fall"]["injected"], k["fall"]["ttd_median_min"]) == (
        1,
        1,
        0.0,
    )
    lying = k["lying after fall"]
    assert (lying["detected"], lying["ttd_median_min"]) == (1, 90.0)
    assert lying["detected_by"] == {"bathroom_too_long": 1}
    assert (k["collapse"]["detected"], k["collapse"]["ttd_median_min"]) == (1, 60.0)
    assert (k["not_up"]["detected"], k["not_up"]["injected"]) == (0, 1)
    assert report["false_alarms"] == 2  # c's late not_up and its inactivity
    assert k["inactivity"]["false_alarms"] == 1
    assert k["not_up"]["false_alarms"] == 1
    assert report["technical_unexplained"] == {"device_silent": 1}
    free_days = (3 * 48 - 3 - 5 - 3) / 24
    assert report["incident_free_elder_days"] == round(free_days, 1)
    assert report["false_alarms_per_elder_day"] == round(2 / free_days, 4)


def test_simulated_immediate_incidents_are_alerted_on_their_reading() -> None:
    cohort = Cohort(6, 8, 5, incidents_per_home_day=0.3)
    layout = Layout(
        PlacedDevice(d.device_id, h.home_id, d.kind, d.room)
        for h in cohort.homes
        for d in h.devices
    )
    report = evaluate_cohort(
        default_detectors(layout),
        cohort.readings(),
        cohort.ground_truth(),
        6,
        cohort.start,
        cohort.end,
    )
    immediate = {k: v for k, v in report["kinds"].items() if "on_reading" in v}
    assert sum(v["injected"] for v in immediate.values()) >= 3
    for kind, row in immediate.items():
        assert row["on_reading"] == row["detected"] == row["injected"], kind
