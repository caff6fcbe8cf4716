"""The device catalogue: every device kind as one row of data.

One table of descriptions drives decoding, the API and the simulators (in the manner of
Home Assistant's entity descriptions). Adding a kind means adding a row here, not code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ValueType(enum.StrEnum):
    """How a metric's value is to be read."""

    BINARY = "binary"  # 0 / 1 state (contact open, mat occupied, motion seen)
    EVENT = "event"  # 1 means "it happened now" (button press)
    CONTINUOUS = "continuous"  # a measurement within a range


@dataclass(slots=True, frozen=True)
class MetricSpec:
    """One thing a device reports."""

    name: str
    unit: str
    value_type: ValueType
    minimum: float
    maximum: float
    description: str


@dataclass(slots=True, frozen=True)
class DeviceKind:
    """One kind of device, described as data."""

    name: str
    title: str
    metrics: tuple[MetricSpec, ...]
    heartbeat_s: int
    battery: bool
    urgent: bool  # readings of this kind must reach detection without batching delay

    def metric(self, name: str | None) -> MetricSpec | None:
        """The metric called `name`, or the only metric when `name` is None."""
        if name is None:
            return self.metrics[0] if len(self.metrics) == 1 else None
        for spec in self.metrics:
            if spec.name == name:
                return spec
        return None


def _binary(name: str, description: str) -> MetricSpec:
    return MetricSpec(name, "", ValueType.BINARY, 0.0, 1.0, description)


def _event(name: str, description: str) -> MetricSpec:
    return MetricSpec(name, "", ValueType.EVENT, 1.0, 1.0, description)


CATALOGUE: dict[str, DeviceKind] = {
    kind.name: kind
    for kind in (
        DeviceKind(
            name="sos_button",
            title="SOS button",
            metrics=(
                _event("press", "the alarm button was pressed"),
                _event("cancel", "a second press within the cancel window"),
            ),
            heartbeat_s=3600,
            battery=True,
            urgent=True,
        ),
        DeviceKind(
            name="pir_motion",
            title="PIR motion sensor",
            metrics=(_binary("motion", "1 when motion is seen, 0 when the sensor rearms"),),
            heartbeat_s=3600,
            battery=True,
            urgent=False,
        ),
        DeviceKind(
            name="door_contact",
            title="Door contact",
            metrics=(_binary("open", "1 when the door opens, 0 when it closes"),),
            heartbeat_s=3600,
            battery=True,
            urgent=False,
        ),
        DeviceKind(
            name="bed_mat",
            title="Bed pressure mat",
            metrics=(_binary("occupied", "1 when someone lies on the bed, 0 when they leave"),),
            heartbeat_s=3600,
            battery=True,
            urgent=False,
        ),
        DeviceKind(
            name="temperature",
            title="Indoor temperature sensor",
            metrics=(
                MetricSpec(
                    "temperature", "°C", ValueType.CONTINUOUS, -40.0, 85.0, "indoor air temperature"
                ),
            ),
            heartbeat_s=900,
            battery=True,
            urgent=False,
        ),
        DeviceKind(
            name="visit_reader",
            title="Staff visit tag reader",
            metrics=(
                MetricSpec(
                    "tag",
                    "",
                    ValueType.CONTINUOUS,
                    0.0,
                    4294967295.0,
                    "the number of the staff tag held to the reader (a care visit)",
                ),
            ),
            heartbeat_s=86400,
            battery=True,
            urgent=False,
        ),
    )
}


def kind(name: str) -> DeviceKind | None:
    """The catalogue row for `name`, or None when the kind is unknown."""
    return CATALOGUE.get(name)
