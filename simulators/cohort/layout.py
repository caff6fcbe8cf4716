"""Where things are in a simulated home: the places, the devices of each room (`make_layout`),
and `CohortHome`, a home with its devices and its elder's persona."""

from __future__ import annotations

import random
from dataclasses import dataclass

from simulators.cohort.personas import Persona
from simulators.home import SimDevice

BEDROOM, BATHROOM, KITCHEN, LIVING, HALL, OUT = (
    "bedroom",
    "bathroom",
    "kitchen",
    "living_room",
    "hall",
    "out",
)


@dataclass(frozen=True, slots=True)
class CohortHome:
    """One simulated home: its id, devices (id, kind, room) and the elder's persona."""

    home_id: str
    devices: tuple[SimDevice, ...]
    persona: Persona

    def device(self, kind: str, room: str | None = None) -> SimDevice | None:
        """The first device of `kind` (in `room` when given)."""
        for d in self.devices:
            if d.kind == kind and (room is None or d.room == room):
                return d
        return None

    def device_id(self, kind: str, room: str | None = None) -> str | None:
        """The id of the first device of `kind` (in `room` when given), if there is one."""
        found = self.device(kind, room)
        return found.device_id if found is not None else None


def make_layout(home_id: str, rng: random.Random) -> tuple[SimDevice, ...]:
    """Rooms and devices of one home: a core every home has, and optional devices."""

    def dev(suffix: str, kind: str, room: str) -> SimDevice:
        return SimDevice(f"{home_id}-{suffix}", kind, room)

    out = [
        dev("hub", "hub", HALL),
        dev("sos", "sos_button", BEDROOM if rng.random() < 0.5 else LIVING),
        dev("pir-bed", "pir_motion", BEDROOM),
        dev("pir-bath", "pir_motion", BATHROOM),
        dev("pir-kit", "pir_motion", KITCHEN),
        dev("pir-liv", "pir_motion", LIVING),
        dev("pir-hall", "pir_motion", HALL),
        dev("door", "door_contact", HALL),
        dev("bed", "bed_mat", BEDROOM),
        dev("climate", "climate", LIVING),
    ]
    optional = [
        (0.7, dev("pendant", "sos_pendant", "worn")),
        (0.5, dev("door-bath", "door_contact", BATHROOM)),
        (0.7, dev("fridge", "cupboard_contact", KITCHEN)),
        (0.6, dev("chair", "chair_mat", LIVING)),
        (0.4, dev("radar", "radar", rng.choice((BATHROOM, BEDROOM)))),
        (0.6, dev("water", "water_meter", KITCHEN)),
        (0.5, dev("tv", "power_plug", LIVING)),
        (0.5, dev("kettle", "power_plug", KITCHEN)),
        (0.9, dev("smoke", "smoke_detector", KITCHEN)),
        (0.6, dev("gas", "gas_co_detector", KITCHEN)),
        (0.5, dev("watch", "wearable", "worn")),
        (0.5, dev("tagreader", "visit_reader", HALL)),
    ]
    out += [d for p, d in optional if rng.random() < p]
    return tuple(out)


def without_bedroom_devices(devices: tuple[SimDevice, ...]) -> tuple[SimDevice, ...]:
    """The layout with nothing in the bedroom: its PIR, bed mat and any radar removed, an
    SOS button there moved to the living room (the no_bedroom_sensor persona)."""
    return tuple(
        SimDevice(d.device_id, d.kind, LIVING) if d.kind == "sos_button" and d.room == BEDROOM
        else d
        for d in devices
        if d.room != BEDROOM or d.kind == "sos_button"
    )  # fmt: skip
