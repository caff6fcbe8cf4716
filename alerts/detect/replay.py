"""Offline replay of a recorded home (alerts.detect.dataset) through the detectors.

The detectors run in-process on the data's own clock: a month replays in seconds and raises
the same alerts as live.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from alerts.detect.detectors import Detector
from alerts.model import Signal
from devices.payload import Reading


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
