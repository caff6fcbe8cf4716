"""What each device tells the detectors: its role, from its kind and the room it is in.

Detectors see readings, which carry a device's kind but not its room; a `Layout` adds the
room (from the `devices` table live, from `sensors.json` in replay) and each home's time zone.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

log = logging.getLogger(__name__)


class Role(enum.Enum):
    """How a device's readings count for occupancy and the learned rules."""

    ACTIVITY = "activity"  # any movement of the elder: motion, cupboard, interior door, chair
    ENTRY_DOOR = "entry_door"  # a door to the outside: the way out and back in
    BED = "bed"  # bed pressure mat: occupied / left
    WATER = "water"  # water use: flush, tap float, water meter
    POWER = "power"  # power use: appliance switch, power meter
    PASSIVE = "passive"  # measurements that are no sign of the elder (temperature, vitals)


# Kind names as in devices/catalogue.py; the extra names cover the full catalogue and the
# replay dataset's kinds (sensors.json), so a new kind only needs a row here.
_KIND_ROLES: dict[str, Role] = {
    "pir_motion": Role.ACTIVITY,
    "motion": Role.ACTIVITY,
    "radar": Role.ACTIVITY,
    "door_contact": Role.ACTIVITY,
    "door": Role.ACTIVITY,
    "contact": Role.ACTIVITY,
    "cupboard_contact": Role.ACTIVITY,
    "chair_mat": Role.ACTIVITY,
    "chair": Role.ACTIVITY,
    "sos_button": Role.ACTIVITY,
    "sos_pendant": Role.ACTIVITY,
    "entry_door": Role.ENTRY_DOOR,
    "bed_mat": Role.BED,
    "bed": Role.BED,
    "water": Role.WATER,
    "water_meter": Role.WATER,
    "flush_sensor": Role.WATER,
    "appliance": Role.POWER,
    "appliance_switch": Role.POWER,
    "power": Role.POWER,
    "power_meter": Role.POWER,
    "power_plug": Role.POWER,
}
_MOTION_KINDS = frozenset({"pir_motion", "motion", "radar"})
_SOS_KINDS = frozenset({"sos_button", "sos_pendant"})
_ENTRY_ROOMS = frozenset({"entrance", "entry", "front door", "hall", "hallway"})
_BEDROOMS = frozenset({"bedroom"})
_BATHROOMS = frozenset({"bathroom", "toilet", "wc", "washroom"})


# Not a sign of the elder moving: housekeeping, and a radar's breathing rate (a person lying
# still after a collapse still breathes; the radar's `presence` and `fall` are what count).
NON_ACTIVITY_METRICS = frozenset(
    {"heartbeat", "battery", "status", "rssi", "worn", "breathing_rate"}
)
# Meters report use continuously: they feed the utility rule, they end no silence.
METER_METRICS = frozenset({"power", "watts", "flow", "energy"})


def is_activity(role: Role, metric: str) -> bool:
    """Whether a reading ends a silence: any reading of a device that is not passive (motion
    seen or the sensor rearming, a door or the bed changing either way, a button, a flush),
    except housekeeping and meter metrics. The one definition of the detectors (the learned
    silences) and of the family page's "last activity"."""
    return role is not Role.PASSIVE and metric not in NON_ACTIVITY_METRICS | METER_METRICS


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """A device as the learned detectors see it."""

    role: Role
    room: str

    @property
    def bedroom(self) -> bool:
        """Whether the device is in the bedroom (or is the bed)."""
        return self.role is Role.BED or self.room in _BEDROOMS

    @property
    def bathroom(self) -> bool:
        """Whether the device is in a bathroom or toilet."""
        return self.room in _BATHROOMS


def classify(kind: str, room: str = "", entry: bool | None = None) -> DeviceInfo:
    """The role of a device of `kind` in `room`; a door contact in the hall is an entry door
    unless `entry` says otherwise."""
    room = room.strip().lower()
    role = _KIND_ROLES.get(kind, Role.PASSIVE)
    if kind == "door_contact" and (entry if entry is not None else room in _ENTRY_ROOMS):
        role = Role.ENTRY_DOOR
    return DeviceInfo(role, room)


@dataclass(frozen=True, slots=True)
class PlacedDevice:
    """One row of a layout: a device, its home, kind and room."""

    device_id: str
    home_id: str
    kind: str
    room: str = ""
    entry: bool | None = None


class Layout:
    """Device roles and home time zones; unknown devices are classified by kind alone."""

    def __init__(
        self,
        devices: Iterable[PlacedDevice] = (),
        timezones: dict[str, str] | None = None,
        default_tz: str = "UTC",
    ) -> None:
        placed = list(devices)
        self._devices = {d.device_id: classify(d.kind, d.room, d.entry) for d in placed}
        self._covered = _motion_covered(placed, self._devices)
        self._homes = {d.home_id for d in placed}
        self._bed_seen = {
            d.home_id
            for d in placed
            if self._devices[d.device_id].role is Role.BED
            or (self._devices[d.device_id].bedroom and d.kind not in _SOS_KINDS)
        }
        self._tz = {h: _zone(h, tz) for h, tz in (timezones or {}).items()}
        self._default_tz = ZoneInfo(default_tz)

    def device(self, device_id: str, kind: str) -> DeviceInfo:
        """The device's role; a device not in the layout is classified by its kind."""
        info = self._devices.get(device_id)
        if info is None:
            info = classify(kind)
            self._devices[device_id] = info
        return info

    def motion_covered(self, home_id: str) -> bool:
        """Whether every room where the home's activity devices are also has a motion
        sensor (PIR or radar): the elder cannot leave a room unseen."""
        return self._covered.get(home_id, False)

    def bed_unseen(self, home_id: str) -> bool:
        """Whether the home has devices in the layout, none of them a bed mat nor in the
        bedroom: the elder goes to bed where no sensor sees (False for a home not in it)."""
        return home_id in self._homes and home_id not in self._bed_seen

    def tz(self, home_id: str) -> ZoneInfo:
        """The home's time zone (local hours drive the per-slot baselines)."""
        return self._tz.get(home_id, self._default_tz)


def _zone(home_id: str, name: str) -> ZoneInfo:
    """The home's time zone; UTC, with a warning, when the name is not one (the column is
    free text: a typo must not stop detection)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("home %s: unknown time zone %r, using UTC", home_id, name)
        return ZoneInfo("UTC")


def _motion_covered(placed: list[PlacedDevice], infos: dict[str, DeviceInfo]) -> dict[str, bool]:
    """Per home: has motion sensors, and every room with an activity or bed device has one.
    An SOS button or pendant says nothing of where the elder is and is left out."""
    motion: dict[str, set[str]] = {}
    rooms: dict[str, set[str]] = {}
    for d in placed:
        info = infos[d.device_id]
        if d.kind in _MOTION_KINDS:
            motion.setdefault(d.home_id, set()).add(info.room)
        if info.role in (Role.ACTIVITY, Role.BED) and d.kind not in _SOS_KINDS:
            rooms.setdefault(d.home_id, set()).add(info.room)
    return {h: bool(m) and rooms.get(h, set()) <= m for h, m in motion.items()}
