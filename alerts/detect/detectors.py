"""Detectors: pure and synchronous, on event time. No I/O, no clocks of their own.

Every detector has the same shape: ``observe(reading)`` returns the signals a reading causes
at once; ``advance(now)`` returns those that the passing of event time causes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, TypeVar

from alerts.detect.health import TemperatureWatch, VitalsWatch
from alerts.detect.layout import Role, classify
from alerts.detect.learned import LearnedDetector
from alerts.detect.rules import Rules
from alerts.detect.technical import DeviceWatch
from alerts.model import Category, Severity, Signal
from devices.catalogue import CATALOGUE, SOS_KINDS
from devices.payload import Reading

if TYPE_CHECKING:
    from alerts.detect.layout import Layout

log = logging.getLogger(__name__)

T = TypeVar("T")


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


# Hazards raised on the very reading: (metric, kind) -> alert kind, summary. A metric named
# here with value 1 (or a CO level above `CO_PPM_ALARM`) is an emergency wherever it comes from.
_HAZARDS: dict[str, tuple[str, str]] = {
    "fall": ("fall", "fall detected"),
    "smoke": ("smoke", "smoke alarm"),
    "gas": ("gas", "gas leak alarm"),
    "co": ("co", "carbon monoxide alarm"),
    "co_alarm": ("co", "carbon monoxide alarm"),
}
CO_PPM_ALARM = 50.0


class HazardDetector:
    """Fall events (wearable, radar), smoke, gas and CO: an emergency on the very reading."""

    def observe(self, reading: Reading) -> list[Signal]:
        """A critical signal for a hazard reading; nothing otherwise."""
        hazard = _HAZARDS.get(reading.metric)
        triggered = reading.value == 1.0
        if reading.metric in ("co", "co_ppm") and reading.kind not in ("", "co_alarm"):
            triggered = reading.value >= CO_PPM_ALARM if reading.metric == "co_ppm" else triggered
            hazard = _HAZARDS["co"]
        if hazard is None or not triggered:
            return []
        kind, summary = hazard
        return [
            Signal(
                home_id=reading.home_id,
                kind=kind,
                category=Category.EMERGENCY,
                severity=Severity.CRITICAL,
                event_at=reading.ts,
                summary=f"{summary} ({reading.kind})",
                device_id=reading.device_id,
                boot=reading.boot,
                seq=reading.seq,
                evidence={"metric": reading.metric, "value": reading.value, "device": reading.kind},
            )
        ]

    def advance(self, now: datetime) -> list[Signal]:
        """Nothing waits on time for a hazard."""
        return []


Screen = Callable[[list[Signal]], list[Signal]]
"""Takes the signals of a set's detectors and returns those to raise."""


class DetectorSet:
    """Several detectors run as one (with `screen`, their signals pass through it)."""

    def __init__(self, detectors: list[Detector], screen: Screen | None = None) -> None:
        self._detectors = detectors
        self._screen = screen

    def observe(self, reading: Reading) -> list[Signal]:
        """Every detector's signals for this reading."""
        out = [s for d in self._detectors for s in d.observe(reading)]
        return self._screen(out) if self._screen is not None and out else out

    def advance(self, now: datetime) -> list[Signal]:
        """Every detector's signals for the time now reached."""
        out = [s for d in self._detectors for s in d.advance(now)]
        return self._screen(out) if self._screen is not None and out else out

    def find(self, kind: type[T]) -> T | None:
        """The first detector of type `kind` (e.g. to persist its baselines)."""
        for d in self._detectors:
            if isinstance(d, kind):
                return d
        return None


_POWER_METRICS = frozenset({"power", "watts", "energy"})
_WATER_METRICS = frozenset({"flow", "flowing"})


def utility_of(kind: str) -> str | None:
    """ "water" or "power" for a device kind whose readings tell that utility's use (as the
    learned rules count them: by its role, or a meter's metric), None for any other kind."""
    role = classify(kind).role
    if role is Role.WATER:
        return "water"
    if role is Role.POWER:
        return "power"
    spec = CATALOGUE.get(kind)
    names = {m.name for m in spec.metrics} if spec is not None else set()
    if names & _WATER_METRICS:
        return "water"
    if names & _POWER_METRICS:
        return "power"
    return None


class DeadMeterScreen:
    """No `no_utility_use` for a utility whose every device in the home is dead (silent
    past its heartbeat, offline by its status, or behind an offline hub): no use was seen
    because nothing could see it, and the watch's technical alert (`device_silent`,
    `hub_offline`) says so instead of a wellbeing one."""

    def __init__(self, watch: DeviceWatch) -> None:
        self._watch = watch

    def blind(self, home_id: str, utility: str, at: datetime | None = None) -> bool:
        """Whether every device of the home that would see `utility` use is dead (False
        when the home has none the watch knows)."""
        meters = [d for d, kind in self._watch.devices(home_id) if utility_of(kind) == utility]
        return bool(meters) and all(self._watch.device_dead(d, at) for d in meters)

    def __call__(self, signals: list[Signal]) -> list[Signal]:
        """`signals` without the no-use signals of blind utilities."""
        out = []
        for s in signals:
            utility = s.evidence.get("utility") if s.kind == "no_utility_use" else None
            if utility in ("water", "power") and self.blind(s.home_id, str(utility), s.event_at):
                log.info("no %s use at %s not raised: its meters are dead", utility, s.home_id)
                continue
            out.append(s)
        return out


IMMEDIATE_KINDS = frozenset({"sos", "fall", "smoke", "gas", "co"})
"""Alert kinds raised on the very reading. For devices of urgent kinds (devices.catalogue)
they are raised by the alerts stage's urgent path, on a subscription of their own."""


def immediate_detectors() -> DetectorSet:
    """The stateless detectors of the urgent path (they must raise only IMMEDIATE_KINDS)."""
    return DetectorSet([SosDetector(), HazardDetector()])


_SIGHT_ROLES = frozenset({Role.ACTIVITY, Role.BED, Role.ENTRY_DOOR})


def sight_lost(watch: DeviceWatch, home_id: str) -> bool:
    """Whether a device that sees the elder move (motion, contact, chair or bed mat, the
    entry door; not an SOS button, a meter or a thermometer) is dead in the home (offline by
    its own status, or silent past its heartbeat): a part of the home is out of sight until
    it is repaired."""
    return watch.gone_quiet(
        home_id, lambda kind: classify(kind).role in _SIGHT_ROLES and kind not in SOS_KINDS
    )


def default_detectors(layout: Layout | None = None, rules: Rules | None = None) -> DetectorSet:
    """The detectors the service runs: immediate first, so they are never held up."""
    rules = rules or Rules()
    watch = DeviceWatch(rules.technical)
    return DetectorSet(
        [
            SosDetector(),
            HazardDetector(),
            watch,
            TemperatureWatch(rules.temperature),
            VitalsWatch(rules.vitals),
            LearnedDetector(
                layout,
                rules,
                suppressed=watch.hub_offline,
                unseen=lambda home: sight_lost(watch, home),
            ),
        ],
        screen=DeadMeterScreen(watch),
    )
