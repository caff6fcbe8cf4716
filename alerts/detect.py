"""Detectors: pure and synchronous, on event time. No I/O, no clocks of their own.

Every detector has the same shape: ``observe(reading)`` returns the signals a reading causes
at once; ``advance(now)`` returns those that the passing of event time causes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from alerts.model import Category, Severity, Signal
from devices.catalogue import SOS_KINDS
from devices.payload import Reading


class Detector(Protocol):
    """The contract every detector follows."""

    def observe(self, reading: Reading) -> list[Signal]:
        """Signals raised by this reading, immediately."""
        ...

    def advance(self, now: datetime) -> list[Signal]:
        """Signals raised because event time reached `now`."""
        ...


class SosDetector:
    """An SOS press is an emergency on the very reading: no batching, no threshold."""

    def observe(self, reading: Reading) -> list[Signal]:
        """A critical `sos` signal for every press of an SOS button."""
        if reading.kind not in SOS_KINDS or reading.metric != "press" or reading.value != 1.0:
            return []
        return [
            Signal(
                home_id=reading.home_id,
                kind="sos",
                category=Category.EMERGENCY,
                severity=Severity.CRITICAL,
                event_at=reading.ts,
                summary="SOS button pressed",
                device_id=reading.device_id,
                boot=reading.boot,
                seq=reading.seq,
                evidence={"metric": reading.metric, "value": reading.value},
            )
        ]

    def advance(self, now: datetime) -> list[Signal]:
        """Nothing waits on time for an SOS."""
        return []


class DetectorSet:
    """Several detectors run as one."""

    def __init__(self, detectors: list[Detector]) -> None:
        self._detectors = detectors

    def observe(self, reading: Reading) -> list[Signal]:
        """Every detector's signals for this reading."""
        return [s for d in self._detectors for s in d.observe(reading)]

    def advance(self, now: datetime) -> list[Signal]:
        """Every detector's signals for the time now reached."""
        return [s for d in self._detectors for s in d.advance(now)]


def default_detectors() -> DetectorSet:
    """The detectors the service runs."""
    return DetectorSet([SosDetector()])
