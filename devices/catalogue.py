"""The device catalogue: every device kind as one row of data.

One table of descriptions drives decoding, the API, the docs and the simulators (in the manner
of Home Assistant's entity descriptions). Adding a kind means adding a row here, not code.

Besides its own metrics, every kind accepts the housekeeping metrics `heartbeat` (an event
sent every `heartbeat_s`, so silence can be told from "nothing happened") and, when it runs on
a battery, `battery` (percent). Each device also keeps a retained status on its `status`
topic, with a last will saying `offline` (see `devices.status`).
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


class Link(enum.StrEnum):
    """How a device reaches the broker."""

    HUB = "hub"  # a local radio (Zigbee/Z-Wave/BLE) sensor bridged by the home hub
    DIRECT = "direct"  # its own Wi-Fi or cellular uplink


HEARTBEAT = "heartbeat"
BATTERY = "battery"
LOW_BATTERY_PERCENT = 15.0
"""Below this a battery is low: the simulators' ground truth and the docs use it."""

HEARTBEAT_METRIC = MetricSpec(
    HEARTBEAT, "", ValueType.EVENT, 1.0, 1.0, "the device is alive (every heartbeat interval)"
)
BATTERY_METRIC = MetricSpec(
    BATTERY, "%", ValueType.CONTINUOUS, 0.0, 100.0, "battery charge (with some heartbeats)"
)


@dataclass(slots=True, frozen=True)
class DeviceKind:
    """One kind of device, described as data."""

    name: str
    title: str
    metrics: tuple[MetricSpec, ...]
    heartbeat_s: int
    battery: bool
    urgent: bool  # readings of this kind must reach detection without batching delay
    reporting: str = "on change"  # how the device reports its own metrics (for docs)
    link: Link = Link.HUB
    battery_days: int = 0  # typical battery life when `battery` (0: mains powered)

    @property
    def all_metrics(self) -> tuple[MetricSpec, ...]:
        """The kind's own metrics plus the housekeeping ones it accepts."""
        extra = (HEARTBEAT_METRIC, BATTERY_METRIC) if self.battery else (HEARTBEAT_METRIC,)
        return self.metrics + extra

    def metric(self, name: str | None) -> MetricSpec | None:
        """The metric called `name`, or the kind's only own metric when `name` is None."""
        if name is None:
            return self.metrics[0] if len(self.metrics) == 1 else None
        for spec in self.all_metrics:
            if spec.name == name:
                return spec
        return None


def _binary(name: str, description: str) -> MetricSpec:
    return MetricSpec(name, "", ValueType.BINARY, 0.0, 1.0, description)


def _event(name: str, description: str) -> MetricSpec:
    return MetricSpec(name, "", ValueType.EVENT, 1.0, 1.0, description)


def _measure(name: str, unit: str, low: float, high: float, description: str) -> MetricSpec:
    return MetricSpec(name, unit, ValueType.CONTINUOUS, low, high, description)


_TEMPERATURE = _measure("temperature", "°C", -40.0, 85.0, "indoor air temperature")

CATALOGUE: dict[str, DeviceKind] = {
    kind.name: kind
    for kind in (
        DeviceKind(
            name="sos_button",
            title="SOS button (fixed, on the wall or bedside)",
            metrics=(
                _event("press", "the alarm button was pressed"),
                _event("cancel", "a second press within the cancel window"),
            ),
            heartbeat_s=3600,
            battery=True,
            urgent=True,
            reporting="on press",
            battery_days=730,
        ),
        DeviceKind(
            name="sos_pendant",
            title="SOS pendant (worn on a cord or wrist)",
            metrics=(
                _event("press", "the alarm button was pressed"),
                _event("cancel", "a second press within the cancel window"),
            ),
            heartbeat_s=3600,
            battery=True,
            urgent=True,
            reporting="on press",
            battery_days=365,
        ),
        DeviceKind(
            name="pir_motion",
            title="PIR motion sensor",
            metrics=(_binary("motion", "1 when motion is seen, 0 when the sensor rearms"),),
            heartbeat_s=3600,
            battery=True,
            urgent=False,
            reporting="1 on motion, 0 after a blind time of 10-30 s; no re-trigger while blind",
            battery_days=540,
        ),
        DeviceKind(
            name="door_contact",
            title="Door contact (entry door or interior door)",
            metrics=(_binary("open", "1 when the door opens, 0 when it closes"),),
            heartbeat_s=3600,
            battery=True,
            urgent=False,
            reporting="on change (open/close pairs)",
            battery_days=730,
        ),
        DeviceKind(
            name="cupboard_contact",
            title="Cupboard or fridge contact",
            metrics=(_binary("open", "1 when the fridge or cupboard opens, 0 when it closes"),),
            heartbeat_s=3600,
            battery=True,
            urgent=False,
            reporting="on change (open/close pairs)",
            battery_days=730,
        ),
        DeviceKind(
            name="flush_sensor",
            title="Toilet flush or tap float switch",
            metrics=(_binary("flowing", "1 when water runs (a flush, a tap), 0 when it stops"),),
            heartbeat_s=3600,
            battery=True,
            urgent=False,
            reporting="on change (start and stop of each use); recorded homes have these",
            battery_days=730,
        ),
        DeviceKind(
            name="appliance_switch",
            title="Appliance switch (reed or mercury switch: microwave, stove lid, toaster)",
            metrics=(_binary("on", "1 when the appliance is opened or switched on, 0 after"),),
            heartbeat_s=3600,
            battery=True,
            urgent=False,
            reporting="on change; recorded homes have these (a power plug measures watts)",
            battery_days=730,
        ),
        DeviceKind(
            name="bed_mat",
            title="Bed pressure mat",
            metrics=(_binary("occupied", "1 when someone lies on the bed, 0 when they leave"),),
            heartbeat_s=3600,
            battery=True,
            urgent=False,
            battery_days=365,
        ),
        DeviceKind(
            name="chair_mat",
            title="Chair pressure mat",
            metrics=(_binary("occupied", "1 when someone sits in the chair, 0 when they rise"),),
            heartbeat_s=3600,
            battery=True,
            urgent=False,
            battery_days=365,
        ),
        DeviceKind(
            name="radar",
            title="mmWave radar (presence, breathing, fall)",
            metrics=(
                _binary("presence", "1 when a person is in the field of view, 0 when none"),
                _measure("breathing_rate", "/min", 0.0, 60.0, "breathing rate of a still person"),
                _event("fall", "a fall was detected"),
            ),
            heartbeat_s=900,
            battery=False,
            urgent=True,
            reporting="presence on change; breathing every 10 min while someone is still; "
            "fall at once",
            link=Link.DIRECT,
        ),
        DeviceKind(
            name="water_meter",
            title="Smart water meter",
            metrics=(_measure("flow", "L/min", 0.0, 60.0, "water flow; 0 when it stops"),),
            heartbeat_s=3600,
            battery=True,
            urgent=False,
            reporting="on change of flow (start and stop of each use)",
            battery_days=1825,
        ),
        DeviceKind(
            name="power_plug",
            title="Smart power plug / meter",
            metrics=(_measure("power", "W", 0.0, 4000.0, "power drawn by the appliance"),),
            heartbeat_s=900,
            battery=False,
            urgent=False,
            reporting="on change of more than 5 W",
        ),
        DeviceKind(
            name="smoke_detector",
            title="Smoke detector",
            metrics=(_binary("smoke", "1 while smoke is detected (alarm), 0 when clear"),),
            heartbeat_s=3600,
            battery=True,
            urgent=True,
            reporting="on change",
            battery_days=3650,
        ),
        DeviceKind(
            name="gas_co_detector",
            title="Gas and CO detector",
            metrics=(
                _binary("gas", "1 while flammable gas is above the alarm level"),
                _binary("co", "1 while carbon monoxide is above the alarm level"),
                _measure("co_ppm", "ppm", 0.0, 2000.0, "carbon monoxide concentration"),
            ),
            heartbeat_s=900,
            battery=False,
            urgent=True,
            reporting="alarms on change; co_ppm on change of more than 10 ppm",
        ),
        DeviceKind(
            name="temperature",
            title="Indoor temperature sensor",
            metrics=(_TEMPERATURE,),
            heartbeat_s=900,
            battery=True,
            urgent=False,
            reporting="every 5 min",
            battery_days=730,
        ),
        DeviceKind(
            name="climate",
            title="Indoor temperature and humidity sensor",
            metrics=(
                _TEMPERATURE,
                _measure("humidity", "%", 0.0, 100.0, "relative humidity"),
            ),
            heartbeat_s=3600,
            battery=True,
            urgent=False,
            reporting="every 15 min",
            battery_days=730,
        ),
        DeviceKind(
            name="wearable",
            title="Wearable (wrist band or watch)",
            metrics=(
                _measure("heart_rate", "bpm", 20.0, 250.0, "heart rate"),
                _measure("spo2", "%", 50.0, 100.0, "blood oxygen saturation"),
                _event("fall", "a fall was detected"),
                _binary("worn", "1 when put on, 0 when taken off"),
            ),
            heartbeat_s=900,
            battery=True,
            urgent=True,
            reporting="heart rate every 10 min and SpO2 every 30 min while worn; fall at once; "
            "worn on change",
            link=Link.DIRECT,
            battery_days=7,
        ),
        DeviceKind(
            name="hub",
            title="Home hub (bridges local sensors to the broker)",
            metrics=(
                MetricSpec(
                    "devices", "", ValueType.CONTINUOUS, 0.0, 255.0, "bridged devices reporting"
                ),
            ),
            heartbeat_s=600,
            battery=False,
            urgent=False,
            reporting="devices every hour",
            link=Link.DIRECT,
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
            reporting="on a tag held to it (a staff visit)",
            link=Link.HUB,
            battery_days=730,
        ),
    )
}

SOS_KINDS = frozenset({"sos_button", "sos_pendant"})
"""Kinds whose `press` is an SOS."""
FALL_KINDS = frozenset({"radar", "wearable"})
"""Kinds that report a `fall` event."""


def kind(name: str) -> DeviceKind | None:
    """The catalogue row for `name`, or None when the kind is unknown."""
    return CATALOGUE.get(name)
