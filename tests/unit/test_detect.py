"""Unit tests for the immediate detectors (alerts.detect.detectors)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.detect.detectors import Detector, DetectorSet, SosDetector, default_detectors
from alerts.model import Category, Severity, Signal
from devices.payload import Reading

T0 = datetime(2026, 11, 23, 3, 14, 15, 926000, tzinfo=UTC)


def reading(
    kind: str = "sos_button",
    metric: str = "press",
    value: float = 1.0,
    *,
    device_id: str = "h01-sos",
    boot: int = 4,
    seq: int = 271,
    ts: datetime = T0,
) -> Reading:
    return Reading(
        home_id="h01",
        device_id=device_id,
        kind=kind,
        boot=boot,
        seq=seq,
        ts=ts,
        metric=metric,
        value=value,
    )


def test_press_is_one_critical_emergency() -> None:
    press = reading()
    signals = SosDetector().observe(press)
    assert signals == [
        Signal(
            home_id="h01",
            kind="sos",
            category=Category.EMERGENCY,
            severity=Severity.CRITICAL,
            event_at=T0,
            summary="SOS button pressed",
            device_id="h01-sos",
            boot=4,
            seq=271,
            evidence={"metric": "press", "value": 1.0},
        )
    ]


def test_signal_carries_the_reading_identity() -> None:
    later = T0 + timedelta(days=3)
    [signal] = SosDetector().observe(
        reading(device_id="h07-pendant", boot=0, seq=9_000_000_000, ts=later)
    )
    assert (signal.device_id, signal.boot, signal.seq, signal.event_at) == (
        "h07-pendant",
        0,
        9_000_000_000,
        later,
    )


def test_each_press_is_reported() -> None:
    detector = SosDetector()
    first = detector.observe(reading(seq=1))
    second = detector.observe(reading(seq=2, ts=T0 + timedelta(seconds=5)))
    assert [s.seq for s in first + second] == [1, 2]


@pytest.mark.parametrize(
    "quiet",
    [
        pytest.param(reading(metric="cancel"), id="cancel"),
        pytest.param(reading(value=0.0), id="press with value 0"),
        pytest.param(reading(kind="pir_motion", metric="motion", value=1.0), id="motion"),
        pytest.param(reading(kind="door_contact", metric="open", value=1.0), id="door open"),
        pytest.param(reading(kind="temperature", metric="temperature", value=1.0), id="temp"),
        pytest.param(reading(kind="pir_motion", metric="press", value=1.0), id="press, not sos"),
    ],
)
def test_other_readings_raise_nothing(quiet: Reading) -> None:
    assert SosDetector().observe(quiet) == []
    assert default_detectors().observe(quiet) == []


def test_advance_raises_nothing_even_after_a_press() -> None:
    detector = SosDetector()
    detector.observe(reading())
    assert detector.advance(T0) == []
    assert detector.advance(T0 + timedelta(days=30)) == []
    assert default_detectors().advance(T0 + timedelta(hours=1)) == []


def test_default_detectors_report_a_press_once() -> None:
    detectors = default_detectors()
    signals = detectors.observe(reading())
    assert len(signals) == 1
    assert (signals[0].kind, signals[0].severity) == ("sos", Severity.CRITICAL)


class _Recorder:
    """A detector that reports what it was given, to check DetectorSet's wiring."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[Reading] = []
        self.times: list[datetime] = []

    def _signal(self, at: datetime) -> Signal:
        return Signal("h01", self.name, Category.TECHNICAL, Severity.INFO, at, self.name)

    def observe(self, r: Reading) -> list[Signal]:
        self.seen.append(r)
        return [self._signal(r.ts)]

    def advance(self, now: datetime) -> list[Signal]:
        self.times.append(now)
        return [self._signal(now)]


def test_detector_set_runs_every_detector_in_order() -> None:
    a, b = _Recorder("a"), _Recorder("b")
    detectors: list[Detector] = [a, SosDetector(), b]
    combined = DetectorSet(detectors)
    press = reading()
    assert [s.kind for s in combined.observe(press)] == ["a", "sos", "b"]
    assert a.seen == b.seen == [press]
    later = T0 + timedelta(minutes=1)
    assert [s.kind for s in combined.advance(later)] == ["a", "b"]
    assert a.times == b.times == [later]


def test_empty_detector_set_raises_nothing() -> None:
    empty = DetectorSet([])
    assert empty.observe(reading()) == []
    assert empty.advance(T0) == []


def test_a_pendant_press_is_an_sos_too() -> None:
    [signal] = SosDetector().observe(reading(kind="sos_pendant", device_id="h01-pendant"))
    assert (signal.kind, signal.severity, signal.device_id) == (
        "sos",
        Severity.CRITICAL,
        "h01-pendant",
    )
    assert SosDetector().observe(reading(kind="sos_pendant", metric="heartbeat")) == []
