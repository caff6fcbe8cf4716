"""Per-elder limits (alerts.detect.limits): each key changes a detector's decision, the model
refuses what is not a limit, and a home left out of a reload has the defaults again."""

from __future__ import annotations

import itertools
import logging
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from alerts.detect.detectors import DetectorSet, default_detectors
from alerts.detect.limits import LIMIT_KEYS, ElderLimits, apply_limits, parse_limits
from alerts.model import Signal
from devices.payload import Reading

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday morning, by day in UTC
_seq = itertools.count(1)


def reading(device: str, kind: str, metric: str, value: float, at: datetime) -> Reading:
    return Reading("h1", device, kind, 0, next(_seq), at, metric, value)


def kinds(signals: list[Signal]) -> list[str]:
    return [s.kind for s in signals]


def temperatures(d: DetectorSet, value: float) -> list[str]:
    """Three hours of the same indoor temperature, every 30 min."""
    out: list[Signal] = []
    for i in range(7):
        out += d.observe(reading("h1-t", "temperature", "temperature", value, T0 + i * 1800 * SEC))
    return kinds(out)


def vitals(d: DetectorSet, metric: str, value: float) -> list[str]:
    """Five readings of one vital sign, a minute apart."""
    out: list[Signal] = []
    for i in range(5):
        out += d.observe(reading("h1-w", "wearable", metric, value, T0 + i * 60 * SEC))
    return kinds(out)


SEC = timedelta(seconds=1)


def with_limits(**values: float) -> DetectorSet:
    d = default_detectors()
    apply_limits(d, {"h1": ElderLimits.model_validate(values)}, T0)
    return d


@pytest.mark.parametrize(
    ("key", "limit", "probe", "kind"),
    [
        ("temperature_min_c", 18.0, lambda d: temperatures(d, 17.0), "indoor_cold"),
        ("temperature_max_c", 26.0, lambda d: temperatures(d, 27.0), "indoor_heat"),
        ("heart_rate_low", 50.0, lambda d: vitals(d, "heart_rate", 45.0), "vitals"),
        ("heart_rate_high", 100.0, lambda d: vitals(d, "heart_rate", 110.0), "vitals"),
        ("spo2_low", 94.0, lambda d: vitals(d, "spo2", 92.0), "vitals"),
    ],
)
def test_each_limit_changes_the_decision(key: str, limit: float, probe: object, kind: str) -> None:
    assert callable(probe)
    assert kind not in probe(default_detectors())  # within the defaults: nothing
    assert kind in probe(with_limits(**{key: limit}))  # outside the elder's own: alerted


def test_inactivity_max_hours_caps_the_learned_limit() -> None:
    def silence(d: DetectorSet) -> list[str]:
        d.observe(reading("h1-pir", "pir_motion", "motion", 1.0, T0))
        out: list[Signal] = []
        for minutes in range(10, 4 * 60, 10):  # four quiet hours, by day
            out += d.advance(T0 + timedelta(minutes=minutes))
        return kinds(out)

    assert "inactivity" not in silence(default_detectors())  # new home: 6 h by default
    assert "inactivity" in silence(with_limits(inactivity_max_hours=2.5))


def test_a_cap_set_while_a_silence_goes_on_applies_to_it() -> None:
    d = default_detectors()
    d.observe(reading("h1-pir", "pir_motion", "motion", 1.0, T0))
    assert "inactivity" not in kinds(d.advance(T0 + timedelta(hours=3)))
    apply_limits(d, {"h1": ElderLimits(inactivity_max_hours=2)}, T0 + timedelta(hours=3))
    assert "inactivity" in kinds(d.advance(T0 + timedelta(hours=3, minutes=1)))


def test_a_home_left_out_of_a_reload_has_the_defaults_again() -> None:
    d = with_limits(temperature_max_c=26)
    apply_limits(d, {}, T0)
    assert "indoor_heat" not in temperatures(d, 27.0)
    d = with_limits(heart_rate_high=100)
    apply_limits(d, {"h2": ElderLimits(heart_rate_high=90)}, T0)
    assert "vitals" not in vitals(d, "heart_rate", 110.0)


def test_every_key_is_documented_and_modelled() -> None:
    assert set(LIMIT_KEYS) == set(ElderLimits.model_fields)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"pulse_max": 120}, "pulse_max"),
        ({"temperature_min_c": -5}, "temperature_min_c"),
        ({"spo2_low": 100}, "spo2_low"),
        ({"inactivity_max_hours": 0.5}, "inactivity_max_hours"),
        ({"heart_rate_low": "fast"}, "heart_rate_low"),
    ],
)
def test_bad_limits_are_refused_by_name(raw: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        ElderLimits.model_validate(raw)
    assert field in {str(e["loc"][0]) for e in refused.value.errors()}


def test_limits_out_of_order_are_refused() -> None:
    with pytest.raises(ValidationError, match="temperature_min_c must be below"):
        ElderLimits(temperature_min_c=25, temperature_max_c=20)
    with pytest.raises(ValidationError, match="heart_rate_low must be below"):
        ElderLimits(heart_rate_low=100, heart_rate_high=90)


def test_a_bad_stored_row_means_the_defaults_and_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        assert parse_limits("h9", {"pulse_max": 1}) is None
    assert "h9" in caplog.text
    assert "pulse_max" in caplog.text
    assert parse_limits("h9", {"spo2_low": 93}) == ElderLimits(spo2_low=93)
    assert ElderLimits(spo2_low=93).stored() == {"spo2_low": 93.0}
