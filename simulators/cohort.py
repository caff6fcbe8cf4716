"""A cohort of simulated homes: elders' days, device faults and incidents with ground truth.

Each home has a layout (rooms and which devices are where) and a persona (wake and sleep
times with day-to-day spread, meals, bathroom visits including at night, naps, TV, outings,
visitors). A day is first planned as a timeline of *segments* (where the elder is and what
they do), then each device renders the timeline the way real devices do: PIR pulses with a
blind time, door open/close pairs, mat occupancy, water-flow bursts, appliance power, indoor
climate following the weather and the heating, vitals with a circadian rhythm, heartbeats and
battery levels. Incidents change the timeline (a collapse: the elder lies still until a
helper arrives) or the environment (gas, smoke, cold); device faults silence devices. Every
incident is one line of ground truth.

Everything is a pure function of (seed, home, day): a cohort is reproducible and is streamed
day by day, so 200 homes x 30 days never sit in memory at once.
"""

from __future__ import annotations

import bisect
import heapq
import json
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any

from devices import topics
from devices.catalogue import BATTERY, CATALOGUE, HEARTBEAT, LOW_BATTERY_PERCENT, Link
from devices.payload import Reading
from devices.registry import DeviceRecord, Registry
from simulators.home import SimDevice

ALERT_KINDS = frozenset(
    {
        "sos",
        "fall",
        "smoke",
        "gas",
        "co",
        "inactivity",
        "not_up",
        "bathroom_too_long",
        "out_of_bed_night",
        "night_wandering",
        "no_utility_use",
        "low_activity",
        "indoor_cold",
        "indoor_heat",
        "vitals",
        "device_silent",
        "low_battery",
        "hub_offline",
    }
)
"""The alert kinds a detector may raise; `Incident.expected_alerts` uses only these."""

BEHAVIOUR_INCIDENTS = (
    "fall",
    "collapse",
    "not_up",
    "bathroom_too_long",
    "out_of_bed_night",
    "night_wandering",
    "gas",
    "co",
    "smoke",
    "indoor_cold",
    "indoor_heat",
    "sos",
    "vitals",
)
FAULT_INCIDENTS = ("device_silent", "hub_offline", "low_battery")
_DEFAULT_START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday in winter: heating is on

BEDROOM, BATHROOM, KITCHEN, LIVING, HALL, OUT = (
    "bedroom",
    "bathroom",
    "kitchen",
    "living_room",
    "hall",
    "out",
)
_H = 3600.0
_MIN = 60.0
_DAY = 86400.0


# --------------------------------------------------------------------------- public values


@dataclass(frozen=True, slots=True)
class Incident:
    """One line of ground truth: what happened in which home, from when until when."""

    home_id: str
    kind: str
    start: datetime
    end: datetime | None
    expected_alerts: tuple[str, ...]
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON-lines record."""
        return {
            "home_id": self.home_id,
            "kind": self.kind,
            "start": self.start.isoformat(),
            "end": self.end.isoformat() if self.end is not None else None,
            "expected_alerts": list(self.expected_alerts),
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Incident:
        """Parse one JSON-lines record."""
        end = doc.get("end")
        return cls(
            home_id=str(doc["home_id"]),
            kind=str(doc["kind"]),
            start=datetime.fromisoformat(doc["start"]),
            end=datetime.fromisoformat(end) if end else None,
            expected_alerts=tuple(doc["expected_alerts"]),
            detail=dict(doc.get("detail") or {}),
        )


def read_ground_truth(path: Path) -> list[Incident]:
    """Load a ground-truth JSON-lines file."""
    with path.open() as f:
        return [Incident.from_json(json.loads(line)) for line in f if line.strip()]


@dataclass(frozen=True, slots=True)
class Persona:
    """How one elder lives: the statistics the simulated days follow."""

    archetype: str
    wake_h: float  # mean local wake time, hours after midnight
    wake_sd_min: float  # day-to-day spread (standard deviation) of the wake time
    bed_h: float  # mean local time of going to bed (may exceed 24)
    bed_sd_min: float
    weekend_lie_in_min: float  # later wake on Saturday and Sunday
    night_bathroom_mean: float  # mean bathroom visits per night (Poisson)
    meals_h: tuple[float, float, float]  # breakfast is after waking; lunch, dinner times
    nap_prob: float  # chance of an after-lunch nap in the chair
    tv_share: float  # share of free daytime spent watching TV
    shopping_per_week: float
    clinic_every_days: int  # a clinic visit every so many days (0: never)
    family_visits_per_week: float
    staff_visits_per_week: int  # the village worker's visits (about three a week)
    activity: float  # how lively (PIR rate multiplier)
    wears_wearable: float  # chance the wearable is worn on a given day
    heart_rate: float  # resting heart rate, bpm
    spo2: float  # usual blood oxygen, %
    shower_every_days: float
    thermostat: float  # heating set point, °C
    # The opt-in personas (`Cohort(personas=True)`); the defaults are the usual cohort's.
    daily_outings: tuple[DailyOuting, ...] = ()  # outings made every day, before anything else
    nap_min: tuple[float, float] = (25.0, 90.0)  # length of the after-lunch nap, minutes
    naps_daily: bool = False  # the after-lunch nap every day, planned before visits and outings
    second_nap_prob: float = 0.0  # chance of a second, short late-afternoon nap
    visit_prob_daily: float = 0.0  # chance of a visitor on any day (0: family_visits_per_week)
    visit_h: tuple[float, float] = (1.0, 3.0)  # length of a family (or helper) visit, hours
    visitors: tuple[str, ...] = ("family",)  # who visits, drawn uniformly


@dataclass(frozen=True, slots=True)
class DailyOuting:
    """An outing made every day: the elder leaves `after_meal` (0 breakfast, 1 lunch) by
    `delay_min` minutes, stays out `hours`, and is home 15-30 minutes before the next meal."""

    who: str  # where to: "market", "activity_centre"; also the segment's visitor label
    after_meal: int
    delay_min: tuple[float, float]
    hours: tuple[float, float]


_ARCHETYPES = ("early_riser", "late_riser", "homebody", "active", "frail")
PERSONA_ARCHETYPES = ("goes_out_daily", "napper", "visited", "no_bedroom_sensor", "loses_sensor")
"""The opt-in persona mix (`Cohort(personas=True)`, `eldercare evaluate --personas`): home i
gets archetype i mod 5, so each appears equally.

- goes_out_daily: every day the morning market (leaves 10-40 min after breakfast, 1-2 h) and
  the senior activity centre / mahjong (leaves 15-45 min after lunch, 3-6 h, home 15-30 min
  before a late dinner at 18:36-19:18), out and back through the entrance door.
- napper: every day a 60-150 min nap in the living-room chair 10-40 min after lunch (planned
  first: visits and outings fit around it), and on 40 % of days a second 15-40 min nap
  starting 15:30-17:00 when nothing else is planned then.
- visited: a family member or a helper (2:1) visits on 85 % of days, 1-4 h in the living
  room from 10:00-17:00, and leaves while the elder stays home (the door at the departure).
- no_bedroom_sensor: the bedroom has no device (no PIR, no bed mat, no radar; an SOS button
  that would be there is in the living room).
- loses_sensor: the living-room or the bathroom PIR (even odds) stops for good at a random
  instant between 20 % and 70 % of the run: no readings, no heartbeats, no battery reports.
  Ground truth: one `device_silent` incident from that instant to the end of the run, with
  ``detail["permanent"] = True`` (a technical event; the elder lives on as usual).
"""
SENSOR_LOSS_DEVICES = ("pir-liv", "pir-bath")
"""Device id suffixes the loses_sensor persona may lose (one of them, even odds)."""


def make_persona(rng: random.Random, archetype: str | None = None) -> Persona:
    """A persona drawn from one of a few archetypes, with individual variation; with
    `archetype` (one of `PERSONA_ARCHETYPES`), that opt-in persona instead."""
    if archetype is None:
        archetype = rng.choice(_ARCHETYPES)
    elif archetype not in PERSONA_ARCHETYPES:
        raise ValueError(f"unknown persona archetype {archetype!r}")
    wake = {"early_riser": 5.6, "late_riser": 8.0, "frail": 7.2, "goes_out_daily": 6.0}.get(
        archetype, 6.6
    )
    bed = {"early_riser": 21.2, "late_riser": 23.4, "frail": 21.5, "goes_out_daily": 21.8}.get(
        archetype, 22.2
    )
    persona = _base_persona(rng, archetype, wake, bed)
    if archetype == "goes_out_daily":
        return replace(
            persona,
            meals_h=(wake + 0.5, rng.uniform(11.6, 12.2), rng.uniform(18.6, 19.3)),
            nap_prob=0.0,
            shopping_per_week=0.5,  # the market is the shopping
            activity=1.3 * rng.uniform(0.85, 1.15),
            daily_outings=(
                DailyOuting("market", 0, (10, 40), (1.0, 2.0)),
                DailyOuting("activity_centre", 1, (15, 45), (3.0, 6.0)),
            ),
        )
    if archetype == "napper":
        return replace(
            persona, nap_prob=1.0, nap_min=(60.0, 150.0), naps_daily=True, second_nap_prob=0.4
        )
    if archetype == "visited":
        return replace(
            persona,
            visit_prob_daily=0.85,
            visit_h=(1.0, 4.0),
            visitors=("family", "family", "helper"),
        )
    return persona


def _base_persona(rng: random.Random, archetype: str, wake: float, bed: float) -> Persona:
    return Persona(
        archetype=archetype,
        wake_h=wake + rng.uniform(-0.4, 0.4),
        wake_sd_min=rng.uniform(12, 35),
        bed_h=bed + rng.uniform(-0.4, 0.4),
        bed_sd_min=rng.uniform(15, 35),
        weekend_lie_in_min=rng.uniform(0, 40),
        night_bathroom_mean=rng.uniform(0.6, 2.2) * (1.3 if archetype == "frail" else 1.0),
        meals_h=(wake + 0.5, rng.uniform(11.6, 12.4), rng.uniform(17.4, 18.6)),
        nap_prob={"frail": 0.85, "homebody": 0.7, "active": 0.3}.get(archetype, 0.5),
        tv_share=rng.uniform(0.35, 0.7),
        shopping_per_week={"active": 4.0, "frail": 0.7, "homebody": 1.2}.get(archetype, 2.5)
        * rng.uniform(0.7, 1.3),
        clinic_every_days=rng.choice((14, 21, 28, 0)),
        family_visits_per_week=rng.uniform(0.3, 2.5),
        staff_visits_per_week=3,
        activity={"active": 1.4, "frail": 0.6}.get(archetype, 1.0) * rng.uniform(0.85, 1.15),
        wears_wearable=rng.uniform(0.75, 1.0),
        heart_rate=rng.uniform(60, 80),
        spo2=rng.uniform(95.5, 97.8),
        shower_every_days=rng.uniform(1.5, 3.5),
        thermostat=rng.uniform(19.5, 22.5),
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


# --------------------------------------------------------------------------- the day plan


@dataclass(frozen=True, slots=True)
class Segment:
    """The elder is at `place` doing `activity` from `start` to `end` (Unix seconds)."""

    start: float
    end: float
    place: str
    activity: str
    visitor: str = ""  # "staff", "family" or "helper" when someone else is there too


# Activities: sleep, toilet, shower, cook, eat, tv, nap, chores, idle, out, visit, evening,
# and for incidents: lying (on the floor, still), bed_ill, bathroom_long, night_up, wander,
# waiting (after pressing SOS).
_STILL = frozenset({"sleep", "lying", "bed_ill", "nap"})
_PIR_GAP_S = {
    "toilet": 45.0,
    "shower": 40.0,
    "cook": 60.0,
    "eat": 180.0,
    "tv": 360.0,
    "chores": 90.0,
    "idle": 150.0,
    "visit": 120.0,
    "evening": 90.0,
    "bathroom_long": 420.0,
    "night_up": 600.0,
    "waiting": 300.0,
}


@dataclass(frozen=True, slots=True)
class Visit:
    """Someone came to the home (or the elder went out)."""

    start: float
    end: float
    who: str  # staff, family, shopping, clinic


@dataclass(frozen=True, slots=True)
class DayPlan:
    """The timeline of one plan day, from waking on day k to waking on day k+1."""

    day: int
    wake: float
    bed: float
    next_wake: float
    segments: tuple[Segment, ...]
    visits: tuple[Visit, ...]
    wearable_worn: bool


@dataclass(frozen=True, slots=True)
class _Planned:
    """An incident or fault chosen for a day, before the day's plan resolves its times."""

    day: int
    kind: str
    seed: str
    device_id: str = ""


@dataclass(frozen=True, slots=True)
class _Window:
    start: float
    end: float
    device_id: str  # "" for the whole hub
    permanent: bool = False  # the device is dead until the end of the run (loses_sensor)


class _HomeSim:
    """Plans and renders one home; every method is a pure function of (seed, home, day)."""

    def __init__(self, cohort: Cohort, home: CohortHome, index: int) -> None:
        self.cohort = cohort
        self.home = home
        self.index = index
        self.p = home.persona
        self.key = f"{cohort.seed}/{home.home_id}"
        self.by_room: dict[tuple[str, str], SimDevice] = {}
        for d in home.devices:
            self.by_room.setdefault((d.kind, d.room), d)
        self.kinds = {d.kind for d in home.devices}
        self.planned = self._schedule()
        self.by_day = {p.day: p for p in self.planned if p.kind in BEHAVIOUR_INCIDENTS}
        self._silent: list[_Window] = []
        self._battery_events: list[tuple[str, float, float]] = []  # device, crossing, replaced
        self._env: list[tuple[str, float, float, float]] = []  # kind, start, end, target
        self._resolve_time_based()
        if self.p.archetype == "loses_sensor":
            self._lose_sensor()
        self._plans: dict[int, DayPlan] = {}
        self._base: dict[int, DayPlan] = {}

    # --- randomness --------------------------------------------------------------------

    def rng(self, what: str, day: int | str = "") -> random.Random:
        return random.Random(f"{self.key}/{what}/{day}")

    def midnight(self, day: int) -> float:
        return self.cohort.midnight(day)

    def weekday(self, day: int) -> int:
        return (self.cohort.start_date + timedelta(days=day)).weekday()

    # --- incident and fault schedule -----------------------------------------------------

    def _schedule(self) -> list[_Planned]:
        c = self.cohort
        rng = self.rng("schedule")
        first = min(c.quiet_days, max(c.days - 1, 0))
        days = list(range(first, c.days))
        rng.shuffle(days)
        n_incidents = _poisson(rng, c.incidents_per_home_day * c.days)
        n_faults = _poisson(rng, c.faults_per_home_day * c.days)
        out: list[_Planned] = []
        used: set[int] = set()
        for i in range(n_incidents + n_faults):
            free = [d for d in days if d not in used and d - 1 not in used and d + 1 not in used]
            if not free:
                break
            day = free[0]
            days.remove(day)
            if i < n_incidents:
                kind = self._choose(rng, _INCIDENT_WEIGHTS)
            else:
                kind = self._choose(rng, _FAULT_WEIGHTS)
            if kind is None:
                continue
            device_id = ""
            if kind in ("device_silent", "low_battery"):
                candidates = [
                    d.device_id
                    for d in self.home.devices
                    if d.kind not in ("hub", "wearable")
                    and CATALOGUE[d.kind].link is Link.HUB
                    and (kind == "device_silent" or CATALOGUE[d.kind].battery)
                ]
                device_id = rng.choice(candidates)
            used.add(day)
            out.append(_Planned(day, kind, f"{day}/{kind}", device_id))
        return sorted(out, key=lambda p: p.day)

    def _choose(self, rng: random.Random, weights: dict[str, float]) -> str | None:
        feasible = {k: w for k, w in weights.items() if self._feasible(k)}
        if not feasible:
            return None
        return rng.choices(list(feasible), list(feasible.values()))[0]

    def _feasible(self, kind: str) -> bool:
        need = {
            "gas": "gas_co_detector",
            "co": "gas_co_detector",
            "smoke": "smoke_detector",
            "vitals": "wearable",
            "indoor_cold": "climate",
            "indoor_heat": "climate",
        }.get(kind)
        return need is None or need in self.kinds

    def _resolve_time_based(self) -> None:
        """Faults and environment incidents do not depend on the elder's timeline."""
        for p in self.planned:
            rng = self.rng("incident", p.seed)
            day0 = self.midnight(p.day)
            if p.kind == "device_silent":
                start = day0 + rng.uniform(2, 22) * _H
                self._silent.append(_Window(start, start + rng.uniform(8, 40) * _H, p.device_id))
            elif p.kind == "hub_offline":
                start = day0 + rng.uniform(1, 22) * _H
                self._silent.append(_Window(start, start + rng.uniform(2, 10) * _H, ""))
            elif p.kind == "low_battery":
                crossing = day0 + rng.uniform(1, 22) * _H
                replaced = self.midnight(p.day + rng.randint(1, 3)) + rng.uniform(9, 16) * _H
                self._battery_events.append((p.device_id, crossing, replaced))
            elif p.kind == "indoor_cold":
                start = day0 + rng.uniform(17, 23) * _H
                self._env.append(
                    ("cold", start, start + rng.uniform(14, 34) * _H, rng.uniform(10, 13))
                )
            elif p.kind == "indoor_heat":
                start = day0 + rng.uniform(10, 13) * _H
                self._env.append(
                    ("heat", start, start + rng.uniform(8, 30) * _H, rng.uniform(32, 35))
                )

    def _lose_sensor(self) -> None:
        """The loses_sensor persona: one PIR (`SENSOR_LOSS_DEVICES`) dies at an instant
        between 20 % and 70 % of the run and sends nothing from then on."""
        rng = self.rng("sensor_loss")
        suffix = rng.choice(SENSOR_LOSS_DEVICES)
        device_id = f"{self.home.home_id}-{suffix}"
        assert any(d.device_id == device_id for d in self.home.devices), device_id
        c = self.cohort
        start = c.start_ts + rng.uniform(0.2, 0.7) * (c.end_ts - c.start_ts)
        self._silent.append(_Window(start, c.end_ts, device_id, permanent=True))

    # --- planning a day --------------------------------------------------------------------

    def wake(self, day: int) -> float:
        rng = self.rng("wake", day)
        lie_in = self.p.weekend_lie_in_min if self.weekday(day) >= 5 else 0.0
        minutes = rng.gauss(0, self.p.wake_sd_min)
        minutes = max(-2.5 * self.p.wake_sd_min, min(2.5 * self.p.wake_sd_min, minutes))
        return self.midnight(day) + self.p.wake_h * _H + (minutes + lie_in) * _MIN

    def bed(self, day: int) -> float:
        rng = self.rng("bed", day)
        minutes = rng.gauss(0, self.p.bed_sd_min)
        minutes = max(-2.5 * self.p.bed_sd_min, min(2.5 * self.p.bed_sd_min, minutes))
        return self.midnight(day) + self.p.bed_h * _H + minutes * _MIN

    def staff_days(self, week: int) -> set[int]:
        """Days (indices) of the village worker's visits in week `week` (Monday-based)."""
        rng = self.rng("staff", week)
        monday = week * 7 - self.cohort.start_date.weekday()
        n = self.p.staff_visits_per_week
        return {monday + d for d in rng.sample(range(6), n)}

    def base_plan(self, day: int) -> DayPlan:
        """The day as it would have been without its incident."""
        cached = self._base.get(day)
        if cached is None:
            cached = self._plan(day)
            if len(self._base) > 4:
                del self._base[min(self._base)]
            self._base[day] = cached
        return cached

    def plan(self, day: int) -> DayPlan:
        cached = self._plans.get(day)
        if cached is not None:
            return cached
        plan = self.base_plan(day)
        planned = self.by_day.get(day)
        if planned is not None:
            plan = _INCIDENT_PLANNERS[planned.kind](self, plan, self.rng("incident", planned.seed))
        if len(self._plans) > 4:
            del self._plans[min(self._plans)]
        self._plans[day] = plan
        return plan

    def _plan(self, day: int) -> DayPlan:
        p = self.p
        rng = self.rng("day", day)
        wake, bed, next_wake = self.wake(day), self.bed(day), self.wake(day + 1)
        m0 = self.midnight(day)
        blocks: list[Segment] = []
        visits: list[Visit] = []

        def place(seg: Segment, pad: float = 10 * _MIN) -> bool:
            if seg.start < wake + 20 * _MIN or seg.end > bed - 60 * _MIN:
                return False
            for b in blocks:
                if seg.start < b.end + pad and b.start < seg.end + pad:
                    return False
            blocks.append(seg)
            return True

        # Meals: breakfast soon after waking, lunch and dinner around the persona's hours.
        t = wake + rng.uniform(5, 12) * _MIN
        blocks.append(Segment(wake, t, BATHROOM, "toilet"))
        for i, meal_h in enumerate(p.meals_h):
            start = t + rng.uniform(5, 20) * _MIN if i == 0 else m0 + meal_h * _H
            if i > 0:
                start += rng.gauss(0, 20) * _MIN
            cook = rng.uniform(*((8, 15), (15, 30), (20, 40))[i]) * _MIN
            eat = rng.uniform(15, 30) * _MIN
            blocks.append(Segment(start, start + cook, KITCHEN, "cook"))
            blocks.append(Segment(start + cook, start + cook + eat, KITCHEN, "eat"))
        for outing in p.daily_outings:  # blocks[1 + 2k] cooks meal k, blocks[2 + 2k] eats it
            for _ in range(20):
                meal = 2 * outing.after_meal
                start = blocks[meal + 2].end + rng.uniform(*outing.delay_min) * _MIN
                home_by = blocks[meal + 3].start - rng.uniform(15, 30) * _MIN
                end = min(start + rng.uniform(*outing.hours) * _H, home_by)
                seg = Segment(start, end, OUT, "out", outing.who)
                if end - start >= 30 * _MIN and place(seg):
                    visits.append(Visit(seg.start, seg.end, outing.who))
                    break
        if p.naps_daily:  # the nap comes first: visitors and outings fit around it
            start = blocks[4].end + rng.uniform(10, 40) * _MIN  # after lunch
            place(Segment(start, start + rng.uniform(*p.nap_min) * _MIN, LIVING, "nap"))
        if rng.random() < 1 / p.shower_every_days:
            start = blocks[2].end + rng.uniform(10, 40) * _MIN
            place(Segment(start, start + rng.uniform(12, 25) * _MIN, BATHROOM, "shower"))
        # The village worker, the clinic, shopping, the family, a nap.
        if day in self.staff_days((day + self.cohort.start_date.weekday()) // 7):
            for _ in range(20):
                start = m0 + rng.uniform(9, 16.5) * _H
                seg = Segment(start, start + rng.uniform(20, 45) * _MIN, LIVING, "visit", "staff")
                if place(seg):
                    visits.append(Visit(seg.start, seg.end, "staff"))
                    break
        outings: list[tuple[str, float, float]] = []
        if p.clinic_every_days and (day + self.index) % p.clinic_every_days == 3:
            outings.append(("clinic", 2.0, 4.0))
        weekend = self.weekday(day) >= 5
        if rng.random() < p.shopping_per_week / 7 * (1.3 if weekend else 0.9):
            outings.append(("shopping", 0.75, 2.5))
        for who, low, high in outings:
            for _ in range(20):
                start = m0 + rng.choice((rng.uniform(9, 11.5), rng.uniform(14, 16.5))) * _H
                seg = Segment(start, start + rng.uniform(low, high) * _H, OUT, "out", who)
                if place(seg):
                    visits.append(Visit(seg.start, seg.end, who))
                    break
        family_p = p.family_visits_per_week / 7 * (2.0 if weekend else 0.6)
        if p.visit_prob_daily:
            family_p = p.visit_prob_daily
        if rng.random() < family_p:
            who = p.visitors[0] if len(p.visitors) == 1 else rng.choice(p.visitors)
            for _ in range(20):
                start = m0 + rng.uniform(10, 17) * _H
                seg = Segment(start, start + rng.uniform(*p.visit_h) * _H, LIVING, "visit", who)
                if place(seg):
                    visits.append(Visit(seg.start, seg.end, who))
                    break
        if not p.naps_daily and rng.random() < p.nap_prob:
            start = blocks[4].end + rng.uniform(10, 40) * _MIN  # after lunch
            place(Segment(start, start + rng.uniform(*p.nap_min) * _MIN, LIVING, "nap"))
        if p.second_nap_prob and rng.random() < p.second_nap_prob:
            start = m0 + rng.uniform(15.5, 17.0) * _H
            place(Segment(start, start + rng.uniform(15, 40) * _MIN, LIVING, "nap"))

        # The evening routine, then the night with its bathroom visits.
        evening = bed - rng.uniform(15, 30) * _MIN
        blocks.sort(key=lambda s: s.start)
        segments: list[Segment] = []
        cursor = wake
        for b in blocks:
            if b.start < cursor:
                b = Segment(cursor, max(cursor, b.end), b.place, b.activity, b.visitor)
            if b.start >= evening:
                break
            segments += self._fill(rng, cursor, b.start)
            b = Segment(b.start, min(b.end, evening), b.place, b.activity, b.visitor)
            segments.append(b)
            cursor = b.end
        segments += self._fill(rng, cursor, evening)
        toilet = evening + rng.uniform(6, 12) * _MIN
        segments.append(Segment(evening, toilet, BATHROOM, "toilet"))
        segments.append(Segment(toilet, bed, BEDROOM, "evening"))
        segments += self._night(rng, bed, next_wake)
        worn = "wearable" in self.kinds and rng.random() < p.wears_wearable
        return DayPlan(
            day, wake, bed, next_wake, tuple(s for s in segments if s.end > s.start),
            tuple(visits), worn,
        )  # fmt: skip

    def _fill(self, rng: random.Random, start: float, end: float) -> list[Segment]:
        """Free time: TV, chores, the toilet every couple of hours."""
        out: list[Segment] = []
        t = start
        since_toilet = 0.0
        while t < end - 60:
            if since_toilet > rng.uniform(1.5, 3.0) * _H:
                length, place, act = rng.uniform(3, 10) * _MIN, BATHROOM, "toilet"
                since_toilet = 0.0
            elif rng.random() < self.p.tv_share:
                length, place, act = rng.uniform(20, 75) * _MIN, LIVING, "tv"
            else:
                place = rng.choice((KITCHEN, BEDROOM, HALL, LIVING, LIVING))
                length, act = rng.uniform(5, 30) * _MIN, "chores"
            stop = min(end, t + length)
            out.append(Segment(t, stop, place, act))
            since_toilet += stop - t
            t = stop
        if t < end:
            out.append(Segment(t, end, LIVING, "idle"))
        return out

    def _night(self, rng: random.Random, bed: float, wake: float) -> list[Segment]:
        n = _poisson(rng, self.p.night_bathroom_mean)
        lo, hi = bed + 45 * _MIN, wake - 30 * _MIN
        times = sorted(rng.uniform(lo, hi) for _ in range(n)) if hi > lo else []
        out: list[Segment] = []
        t = bed
        for at in times:
            if at < t + 30 * _MIN:
                continue
            back = at + rng.uniform(3, 10) * _MIN
            out.append(Segment(t, at, BEDROOM, "sleep"))
            out.append(Segment(at, back, BATHROOM, "toilet"))
            t = back
        out.append(Segment(t, wake, BEDROOM, "sleep"))
        return out

    # --- rendering -------------------------------------------------------------------------

    def events(self, day: int) -> list[tuple[float, str, str, float]]:
        """Everything the home's devices report for plan day `day`, as (ts, device, metric,
        value), sorted, before faults remove what a silent device or hub never sent."""
        plan = self.plan(day)
        rng = self.rng("render", day)
        ev: list[tuple[float, str, str, float]] = []
        prev_last = self.plan(day - 1).segments[-1] if day > -1 else None
        self._render_presence(plan, rng, ev, prev_last)
        self._render_utilities(plan, rng, ev)
        self._render_wearable(plan, rng, ev)
        self._render_incident_alarms(plan, rng, ev)
        self._render_visits(plan, rng, ev)
        self._render_periodic(plan.wake, plan.next_wake, rng, ev)
        ev.sort()
        return [e for e in ev if not self._suppressed(e[0], e[1])]

    def _suppressed(self, ts: float, device_id: str) -> bool:
        for w in self._silent:
            if w.start <= ts < w.end and (
                w.device_id == device_id
                or (not w.device_id and CATALOGUE[self._kind(device_id)].link is Link.HUB)
                or (not w.device_id and self._kind(device_id) == "hub")
            ):
                return True
        return False

    def _kind(self, device_id: str) -> str:
        return self.cohort.kind_of[device_id]

    def _dev(self, kind: str, room: str | None = None) -> str | None:
        if room is None:
            for d in self.home.devices:
                if d.kind == kind:
                    return d.device_id
            return None
        found = self.by_room.get((kind, room))
        return found.device_id if found is not None else None

    def _render_presence(
        self,
        plan: DayPlan,
        rng: random.Random,
        ev: list[tuple[float, str, str, float]],
        prev_last: Segment | None,
    ) -> None:
        """PIRs, doors, mats and radar from where the elder (and any visitor) is."""
        rearm: dict[str, float] = {}
        entry = self._dev("door_contact", HALL)
        bath_door = self._dev("door_contact", BATHROOM)
        bed_mat, chair = self._dev("bed_mat"), self._dev("chair_mat")
        radar = next((d for d in self.home.devices if d.kind == "radar"), None)
        bed_state = chair_state = presence = 0.0
        if prev_last is not None:  # what the mats showed when the previous plan ended
            bed_state = 1.0 if prev_last.activity in ("sleep", "bed_ill") else 0.0
            presence = 1.0 if radar is not None and prev_last.place == radar.room else 0.0
        prev: Segment | None = prev_last
        for seg in plan.segments:
            moved = prev is None or prev.place != seg.place
            # Doors: leaving and coming home; a visitor arriving and leaving.
            if entry is not None:
                if seg.place == OUT and moved:
                    self._door_pair(rng, ev, entry, seg.start)
                if prev is not None and prev.place == OUT and seg.place != OUT:
                    self._door_pair(rng, ev, entry, seg.start)
                if seg.visitor and seg.place != OUT and (prev is None or not prev.visitor):
                    self._door_pair(rng, ev, entry, seg.start)
                if prev is not None and prev.visitor and prev.place != OUT and not seg.visitor:
                    self._door_pair(rng, ev, entry, seg.start)
            if bath_door is not None and moved and BATHROOM in (seg.place, prev and prev.place):
                self._door_pair(rng, ev, bath_door, seg.start, close_after=(3, 8))
            # Walking through the hall on the way out or to the door.
            hall = self._dev("pir_motion", HALL)
            if hall is not None and moved and seg.place == OUT:
                self._pulse(rng, ev, rearm, hall, seg.start - 20, seg.start)
            if hall is not None and moved and prev is not None and prev.place == OUT:
                self._pulse(rng, ev, rearm, hall, seg.start, seg.start + 30)
            if hall is not None and seg.visitor and seg.place != OUT and moved:
                self._pulse(rng, ev, rearm, hall, seg.start, seg.start + 30)
            # Motion in the room.
            pir = self._dev("pir_motion", seg.place)
            if pir is not None and seg.activity not in _STILL:
                gap = _PIR_GAP_S.get(seg.activity, 90.0) / self.p.activity
                if seg.visitor:
                    gap = min(gap, 120.0)
                self._stay(rng, ev, rearm, pir, seg.start, seg.end, gap)
            elif pir is not None and seg.activity == "nap":
                self._stay(rng, ev, rearm, pir, seg.start, seg.start + 90, 30.0)
                self._stay(rng, ev, rearm, pir, seg.end - 60, seg.end, 30.0)
            # Mats.
            in_bed = seg.place == BEDROOM and seg.activity in ("sleep", "bed_ill")
            want_bed = 1.0 if in_bed else 0.0
            if bed_mat is not None and want_bed != bed_state:
                ev.append((seg.start + rng.uniform(1, 6), bed_mat, "occupied", want_bed))
                bed_state = want_bed
            seated = seg.place == LIVING and seg.activity in ("tv", "nap", "visit", "night_up")
            want_chair = 1.0 if seated else 0.0
            if chair is not None and want_chair != chair_state:
                ev.append((seg.start + rng.uniform(2, 10), chair, "occupied", want_chair))
                chair_state = want_chair
            # Radar: presence on change, breathing while still, nothing of falls here.
            if radar is not None:
                here = 1.0 if seg.place == radar.room else 0.0
                if here != presence:
                    ev.append((seg.start + rng.uniform(0.5, 2), radar.device_id, "presence", here))
                    presence = here
                still = seg.activity in _STILL or seg.activity == "tv"
                if here and still:
                    t = seg.start + 600
                    base = {"lying": 21.0, "bed_ill": 19.0}.get(seg.activity, 14.5)
                    while t < seg.end:
                        ev.append(
                            (t, radar.device_id, "breathing_rate", round(rng.gauss(base, 1.2), 1))
                        )
                        t += 600
            prev = seg

    def _door_pair(
        self,
        rng: random.Random,
        ev: list[tuple[float, str, str, float]],
        device_id: str,
        at: float,
        close_after: tuple[float, float] = (4, 15),
    ) -> None:
        ev.append((at, device_id, "open", 1.0))
        ev.append((at + rng.uniform(*close_after), device_id, "open", 0.0))

    def _pulse(
        self,
        rng: random.Random,
        ev: list[tuple[float, str, str, float]],
        rearm: dict[str, float],
        pir: str,
        start: float,
        end: float,
    ) -> None:
        self._stay(rng, ev, rearm, pir, start, end, 1e9)

    def _stay(
        self,
        rng: random.Random,
        ev: list[tuple[float, str, str, float]],
        rearm: dict[str, float],
        pir: str,
        start: float,
        end: float,
        mean_gap: float,
    ) -> None:
        """PIR pulses while someone moves in the room: 1, then 0 after the blind time."""
        t = max(start + rng.uniform(1, 5), rearm.get(pir, start))
        while t < end:
            off = t + rng.uniform(10, 30)
            ev.append((t, pir, "motion", 1.0))
            ev.append((off, pir, "motion", 0.0))
            rearm[pir] = off + 1
            t = off + 1 + rng.expovariate(1 / mean_gap)

    def _render_utilities(
        self, plan: DayPlan, rng: random.Random, ev: list[tuple[float, str, str, float]]
    ) -> None:
        water = self._dev("water_meter")
        fridge = self._dev("cupboard_contact")
        tv, kettle = self._dev("power_plug", LIVING), self._dev("power_plug", KITCHEN)

        def flow(at: float, rate: float, seconds: float) -> None:
            if water is not None:
                ev.append((at, water, "flow", round(rate, 1)))
                ev.append((at + seconds, water, "flow", 0.0))

        for seg in plan.segments:
            if seg.activity in ("toilet", "bathroom_long") and seg.end - seg.start > 150:
                at = seg.end - rng.uniform(100, 130)  # flush, then wash hands
                flow(at, rng.uniform(7, 10), rng.uniform(35, 55))
                flow(at + rng.uniform(58, 62), rng.uniform(3, 5), rng.uniform(15, 30))
            elif seg.activity == "shower":
                flow(seg.start + 120, rng.uniform(7, 10), seg.end - seg.start - 300)
            elif seg.activity == "cook":
                for _ in range(rng.randint(1, 3)):
                    flow(
                        rng.uniform(seg.start, seg.end - 60), rng.uniform(4, 7), rng.uniform(10, 50)
                    )
                if fridge is not None:
                    for _ in range(rng.randint(1, 4)):
                        at = rng.uniform(seg.start, seg.end - 60)
                        ev.append((at, fridge, "open", 1.0))
                        ev.append((at + rng.uniform(4, 40), fridge, "open", 0.0))
                if kettle is not None and rng.random() < 0.6:
                    at = seg.start + rng.uniform(30, 120)
                    ev.append((at, kettle, "power", round(rng.uniform(1850, 2150))))
                    ev.append((at + rng.uniform(120, 240), kettle, "power", 0.0))
            elif seg.activity == "eat" and seg.end - seg.start > 600 and rng.random() < 0.5:
                flow(seg.end - 200, rng.uniform(5, 8), rng.uniform(60, 150))  # the dishes
            if tv is not None and seg.activity == "tv":
                ev.append(
                    (seg.start + rng.uniform(5, 30), tv, "power", round(rng.uniform(70, 110)))
                )
                ev.append((seg.end - rng.uniform(5, 20), tv, "power", 0.5))

    def _render_wearable(
        self, plan: DayPlan, rng: random.Random, ev: list[tuple[float, str, str, float]]
    ) -> None:
        watch = self._dev("wearable")
        if watch is None or not plan.wearable_worn:
            return
        on, off = plan.segments[0].end + 60, plan.bed - 5 * _MIN  # charged at night
        vitals = self._vitals(plan)
        ev.append((on, watch, "worn", 1.0))
        ev.append((off, watch, "worn", 0.0))
        starts = [s.start for s in plan.segments]
        t = on + 30
        k = 0
        while t < off:
            seg = plan.segments[max(0, bisect.bisect_right(starts, t) - 1)]
            local_h = (t - self.midnight(plan.day)) / _H
            circadian = 4 * math.sin(2 * math.pi * (local_h - 10) / 24)
            effort = {"out": 14.0, "chores": 8.0, "cook": 6.0, "shower": 10.0}.get(
                seg.activity, 0.0
            )
            hr = self.p.heart_rate + circadian + effort + rng.gauss(0, 3)
            spo2 = self.p.spo2 + rng.gauss(0, 0.6)
            if vitals is not None and vitals[1] <= t < vitals[2]:
                share = min(1.0, (t - vitals[1]) / (2 * _H))
                if vitals[0] == "heart_rate":
                    hr += share * (vitals[3] - self.p.heart_rate)
                else:
                    spo2 -= share * (self.p.spo2 - vitals[3])
            ev.append((t, watch, "heart_rate", round(min(max(hr, 40.0), 200.0))))
            if k % 3 == 0:
                ev.append((t + 2, watch, "spo2", round(min(max(spo2, 80.0), 100.0), 1)))
            t += 600
            k += 1

    def _vitals(self, plan: DayPlan) -> tuple[str, float, float, float] | None:
        planned = self.by_day.get(plan.day)
        if planned is None or planned.kind != "vitals":
            return None
        rng = self.rng("incident", planned.seed)
        on, off = plan.segments[0].end + 60, plan.bed - 5 * _MIN
        start = min(on + rng.uniform(1, 5) * _H, off - 4 * _H)
        if rng.random() < 0.6:
            return ("heart_rate", start, off, rng.uniform(125, 145))
        return ("spo2", start, off, rng.uniform(84, 88))

    def _render_visits(
        self, plan: DayPlan, rng: random.Random, ev: list[tuple[float, str, str, float]]
    ) -> None:
        """A staff member holds their tag to the reader when a visit starts."""
        reader = self._dev("visit_reader")
        if reader is None:
            return
        tag = float(1000 + int(self.home.home_id.encode().hex(), 16) % 97)
        for seg in plan.segments:
            if seg.visitor == "staff":
                ev.append((seg.start + rng.uniform(10, 90), reader, "tag", tag))

    def _render_incident_alarms(
        self, plan: DayPlan, rng: random.Random, ev: list[tuple[float, str, str, float]]
    ) -> None:
        for inc in self.incidents_of(plan.day):
            start = inc.start.timestamp()
            end = inc.end.timestamp() if inc.end else start
            if inc.kind in ("gas", "co", "smoke"):
                device = self._dev("gas_co_detector" if inc.kind != "smoke" else "smoke_detector")
                assert device is not None
                metric = "smoke" if inc.kind == "smoke" else inc.kind
                ev.append((start, device, metric, 1.0))
                ev.append((end, device, metric, 0.0))
                if inc.kind == "co":
                    peak = float(inc.detail["co_ppm_peak"])
                    for i, ppm in enumerate((peak * 0.4, peak * 0.75, peak)):
                        ev.append((start + i * 600 + 1, device, "co_ppm", round(ppm)))
                    ev.append((end + 1, device, "co_ppm", 3.0))
            elif inc.kind == "sos":
                ev.append((start, str(inc.detail["device_id"]), "press", 1.0))
            elif inc.kind == "fall":
                for device in inc.detail.get("fall_devices", []):
                    ev.append((start + rng.uniform(0.5, 3), str(device), "fall", 1.0))

    def _render_periodic(
        self, lo: float, hi: float, rng: random.Random, ev: list[tuple[float, str, str, float]]
    ) -> None:
        """Heartbeats (every device), battery (every 6 h), climate (every 10 min)."""
        for d in self.home.devices:
            spec = CATALOGUE[d.kind]
            phase = random.Random(f"{self.key}/{d.device_id}/phase").uniform(0, spec.heartbeat_s)
            k = math.ceil((lo - phase) / spec.heartbeat_s)
            while (t := phase + k * spec.heartbeat_s) < hi:
                ev.append((t, d.device_id, HEARTBEAT, 1.0))
                if spec.battery and k % max(1, 21600 // spec.heartbeat_s) == 0:
                    ev.append((t + 0.5, d.device_id, BATTERY, self.battery(d.device_id, t)))
                if d.kind == "hub" and k % 12 == 0:
                    n = sum(1 for x in self.home.devices if not self._suppressed(t, x.device_id))
                    ev.append((t + 0.5, d.device_id, "devices", float(n)))
                k += 1
            if d.kind == "climate":
                k = math.ceil((lo - phase) / 900)
                while (t := phase + k * 900) < hi:
                    temp, hum = self.climate(t, rng)
                    ev.append((t + 1, d.device_id, "temperature", temp))
                    ev.append((t + 1.5, d.device_id, "humidity", hum))
                    k += 1

    def battery(self, device_id: str, t: float) -> float:
        """Battery percent of a device at `t` (the wearable is charged every night)."""
        kind = CATALOGUE[self._kind(device_id)]
        if kind.name == "wearable":
            local_h = ((t - self.cohort.start_ts) / _H) % 24
            return round(100 - 12 * min(local_h, 16) / 16, 1)
        per_s = 100 / (kind.battery_days * _DAY)
        days = self.cohort.days
        for dev, crossing, replaced in self._battery_events:
            if dev == device_id:
                if t >= replaced:
                    return round(max(100 - per_s * (t - replaced), 0.0), 1)
                return round(max(LOW_BATTERY_PERCENT + per_s * (crossing - t), 0.0), 2)
        start = random.Random(f"{self.key}/{device_id}/battery").uniform(40, 100)
        start = max(start, min(100.0, LOW_BATTERY_PERCENT + 5 + per_s * days * _DAY))
        return round(max(start - per_s * (t - self.cohort.start_ts), 0.0), 1)

    def climate(self, t: float, rng: random.Random) -> tuple[float, float]:
        """Indoor temperature and humidity at `t`: weather, heating, and any incident."""
        outdoor = self.cohort.outdoor(t)
        daily_mean = self.cohort.outdoor_daily_mean(t)
        local_h = ((t - self.cohort.start_ts) / _H) % 24
        if daily_mean < 15:  # heating season: the thermostat, lower at night
            night = local_h < 6 or local_h >= 22.5
            normal = self.p.thermostat - (1.5 if night else 0.0) + 0.05 * (outdoor - daily_mean)
        else:
            normal = 23.0 + 0.3 * (outdoor - 20)
        normal = min(max(normal, 17.5), 27.5) + 0.3 * math.sin(t / 7000) + rng.gauss(0, 0.05)
        temp = normal
        for kind, start, end, target in self._env:
            tau = 2.5 * _H if kind == "cold" else 2.0 * _H
            if start <= t < end:
                temp = target + (normal - target) * math.exp(-(t - start) / tau)
            elif end <= t < end + 6 * _H:
                at_end = target + (normal - target) * math.exp(-(end - start) / tau)
                temp = normal + (at_end - normal) * math.exp(-(t - end) / (1.0 * _H))
        humidity = 48 + 7 * math.sin(t / 40000 + self.index) + rng.gauss(0, 0.8)
        return round(temp, 2), round(min(max(humidity, 20.0), 80.0), 1)

    # --- ground truth ------------------------------------------------------------------------

    def incidents_of(self, day: int) -> list[Incident]:
        """The behaviour incident of `day`, resolved against the day as it was planned."""
        planned = self.by_day.get(day)
        if planned is None:
            return []
        plan = self.base_plan(day)
        return [_GROUND_TRUTH[planned.kind](self, plan, self.rng("incident", planned.seed))]

    def ground_truth(self) -> list[Incident]:
        out: list[Incident] = []
        for p in self.planned:
            if p.kind in BEHAVIOUR_INCIDENTS:
                out += self.incidents_of(p.day)
        for w in self._silent:
            if w.permanent:  # a technical event, not the elder's: no behaviour is explained
                out.append(
                    self.incident(
                        "device_silent", w.start, w.end, ("device_silent",),
                        device_id=w.device_id, device_kind=self._kind(w.device_id),
                        permanent=True,
                    )
                )  # fmt: skip
            elif w.device_id:
                out.append(
                    self.incident(
                        "device_silent", w.start, w.end, ("device_silent",),
                        device_id=w.device_id, device_kind=self._kind(w.device_id),
                    )
                )  # fmt: skip
            else:
                out.append(
                    self.incident(
                        "hub_offline", w.start, w.end, ("hub_offline",),
                        acceptable=["device_silent"], device_id=self._dev("hub"),
                    )
                )  # fmt: skip
        for device_id, crossing, replaced in self._battery_events:
            out.append(
                self.incident(
                    "low_battery", crossing, replaced, ("low_battery",),
                    device_id=device_id, below_percent=LOW_BATTERY_PERCENT,
                )
            )  # fmt: skip
        out = [i for i in out if i.start < self.cohort.end]
        return sorted(out, key=lambda i: (i.start, i.kind))

    def incident(
        self,
        kind: str,
        start: float,
        end: float | None,
        expected: tuple[str, ...],
        **detail: Any,
    ) -> Incident:
        assert set(expected) <= ALERT_KINDS, expected
        detail.setdefault("acceptable", [])
        assert set(detail["acceptable"]) <= ALERT_KINDS
        return Incident(
            home_id=self.home.home_id,
            kind=kind,
            start=_dt(round(start, 3)),  # readings carry milliseconds, so does the truth
            end=_dt(round(end, 3)) if end is not None else None,
            expected_alerts=expected,
            detail=detail,
        )


# --------------------------------------------------------------------------- incidents


def _splice(plan: DayPlan, at: float, inserted: list[Segment], resume: float) -> DayPlan:
    """Replace the plan from `at` to `resume` by `inserted`; afterwards the elder rests in the
    living room until the evening routine, and the night goes on as planned."""
    before = [s for s in plan.segments if s.start < at]
    if before and before[-1].end > at:
        last = before[-1]
        before[-1] = Segment(last.start, at, last.place, last.activity, last.visitor)
    # The pre-bed toilet visit before the "evening" segment starts the evening routine.
    index = next(i for i, s in enumerate(plan.segments) if s.activity == "evening") - 1
    evening = plan.segments[index].start
    after: list[Segment] = []
    if resume < evening:
        after.append(Segment(resume, evening, LIVING, "tv"))
    for s in plan.segments[index:]:
        if s.end > resume:
            after.append(Segment(max(s.start, resume), s.end, s.place, s.activity, s.visitor))
    segments = tuple(s for s in (*before, *inserted, *after) if s.end > s.start)
    visits = tuple(v for v in plan.visits if v.end <= at or v.start >= resume)
    return DayPlan(
        plan.day, plan.wake, plan.bed, plan.next_wake, segments, visits, plan.wearable_worn
    )


def _helper(start: float, minutes: float, place: str = LIVING) -> Segment:
    return Segment(start, start + minutes * _MIN, place, "visit", "helper")


def _pick(
    plan: DayPlan, rng: random.Random, activities: Iterable[str], places: Iterable[str] = ()
) -> Segment:
    """A daytime segment (not the first or the last hours) with one of `activities`."""
    acts, rooms = set(activities), set(places)
    lo, hi = plan.wake + 1.5 * _H, plan.bed - 3 * _H
    found = [
        s
        for s in plan.segments
        if s.activity in acts and (not rooms or s.place in rooms) and lo <= s.start <= hi
        and not s.visitor
    ]  # fmt: skip
    if found:
        return rng.choice(found)
    fallback = [s for s in plan.segments if lo <= s.start <= hi and s.place not in (OUT,)]
    return rng.choice(fallback or list(plan.segments[:1]))


def _times(plan: DayPlan, rng: random.Random, kind: str) -> tuple[float, float, Segment | None]:
    """Start and end of a behaviour incident on this plan (shared by planners and truth)."""
    if kind == "fall":
        seg = _pick(plan, rng, ("toilet", "shower"), (BATHROOM,))
        at = seg.start + rng.uniform(0.5, 3) * _MIN
        return at, at + rng.uniform(1.5, 6) * _H, seg
    if kind == "collapse":
        seg = _pick(plan, rng, ("tv", "chores", "idle"), (LIVING, KITCHEN, BEDROOM))
        at = seg.start + rng.uniform(0.3, 0.9) * (seg.end - seg.start)
        return at, at + rng.uniform(3, 8) * _H, seg
    if kind == "not_up":
        return plan.wake, plan.wake + rng.uniform(3, 6) * _H, None
    if kind == "bathroom_too_long":
        seg = _pick(plan, rng, ("toilet",), (BATHROOM,))
        return seg.start, seg.start + rng.uniform(60, 120) * _MIN, seg
    if kind in ("out_of_bed_night", "night_wandering"):
        lo, hi = plan.bed + 1.0 * _H, plan.next_wake - 4.5 * _H
        at = rng.uniform(lo, max(lo, hi))
        for s in plan.segments:  # not during a night-time bathroom visit: from bed
            if s.start <= at < s.end and s.activity != "sleep":
                at = s.end + 5 * _MIN
        length = rng.uniform(1.5, 3.5) if kind == "out_of_bed_night" else rng.uniform(0.75, 3.0)
        return at, min(at + length * _H, plan.next_wake - 30 * _MIN), None
    if kind in ("gas", "smoke"):
        seg = _pick(plan, rng, ("cook",), (KITCHEN,))
        at = seg.start + rng.uniform(2, 8) * _MIN
        minutes = rng.uniform(20, 90) if kind == "gas" else rng.uniform(5, 30)
        return at, at + minutes * _MIN, seg
    if kind == "co":
        at = plan.bed - rng.uniform(1.5, 3.5) * _H
        return at, at + rng.uniform(1, 3) * _H, None
    if kind == "sos":
        seg = _pick(plan, rng, ("tv", "chores", "idle", "cook", "eat"))
        at = seg.start + rng.uniform(0.2, 0.8) * (seg.end - seg.start)
        return at, at + rng.uniform(15, 60) * _MIN, seg
    raise ValueError(kind)


def _plan_fall_or_collapse(sim: _HomeSim, plan: DayPlan, rng: random.Random, kind: str) -> DayPlan:
    at, end, seg = _times(plan, rng, kind)
    assert seg is not None
    lying = Segment(at, end, seg.place, "lying")
    return _splice(plan, at, [lying, _helper(end, 40)], end + 40 * _MIN)


def _plan_fall(sim: _HomeSim, plan: DayPlan, rng: random.Random) -> DayPlan:
    return _plan_fall_or_collapse(sim, plan, rng, "fall")


def _plan_collapse(sim: _HomeSim, plan: DayPlan, rng: random.Random) -> DayPlan:
    return _plan_fall_or_collapse(sim, plan, rng, "collapse")


def _plan_not_up(sim: _HomeSim, plan: DayPlan, rng: random.Random) -> DayPlan:
    at, end, _ = _times(plan, rng, "not_up")
    ill = Segment(at, end, BEDROOM, "bed_ill")
    return _splice(plan, at, [ill, _helper(end, 45, BEDROOM)], end + 45 * _MIN)


def _plan_bathroom(sim: _HomeSim, plan: DayPlan, rng: random.Random) -> DayPlan:
    at, end, _ = _times(plan, rng, "bathroom_too_long")
    long = Segment(at, end, BATHROOM, "bathroom_long", "")
    return _splice(plan, at, [long], end)


def _night_splice(plan: DayPlan, at: float, end: float, inserted: list[Segment]) -> DayPlan:
    before = [s for s in plan.segments if s.start < at]
    if before and before[-1].end > at:
        last = before[-1]
        before[-1] = Segment(last.start, at, last.place, last.activity, last.visitor)
    after = [s for s in plan.segments if s.end > end and s.start >= at]
    # Night bathroom visits inside the incident do not happen; the night resumes in bed.
    after = [s for s in after if s.start >= end] or []
    rest = [Segment(end, after[0].start if after else plan.next_wake, BEDROOM, "sleep")]
    segments = tuple(s for s in (*before, *inserted, *rest, *after) if s.end > s.start)
    return DayPlan(
        plan.day, plan.wake, plan.bed, plan.next_wake, segments, plan.visits, plan.wearable_worn
    )


def _plan_out_of_bed(sim: _HomeSim, plan: DayPlan, rng: random.Random) -> DayPlan:
    at, end, _ = _times(plan, rng, "out_of_bed_night")
    up = [
        Segment(at, at + 2 * _MIN, BEDROOM, "chores"),
        Segment(at + 2 * _MIN, end - 2 * _MIN, LIVING, "night_up"),
        Segment(end - 2 * _MIN, end, BEDROOM, "chores"),
    ]
    return _night_splice(plan, at, end, up)


def _plan_wandering(sim: _HomeSim, plan: DayPlan, rng: random.Random) -> DayPlan:
    at, end, _ = _times(plan, rng, "night_wandering")
    out = [
        Segment(at, at + 1 * _MIN, BEDROOM, "chores"),
        Segment(at + 1 * _MIN, at + 2 * _MIN, HALL, "chores"),
        Segment(at + 2 * _MIN, end, OUT, "out"),
        Segment(end, end + 10 * _MIN, HALL, "chores", "helper"),
        Segment(end + 10 * _MIN, end + 12 * _MIN, BEDROOM, "chores"),
    ]
    return _night_splice(plan, at, end + 12 * _MIN, out)


def _plan_sos(sim: _HomeSim, plan: DayPlan, rng: random.Random) -> DayPlan:
    at, end, seg = _times(plan, rng, "sos")
    assert seg is not None
    place = seg.place if seg.place != OUT else LIVING
    waiting = Segment(at, end, place, "waiting")
    return _splice(plan, at, [waiting, _helper(end, 30)], end + 30 * _MIN)


def _plan_as_is(sim: _HomeSim, plan: DayPlan, rng: random.Random) -> DayPlan:
    return plan


def _plan_vitals(sim: _HomeSim, plan: DayPlan, rng: random.Random) -> DayPlan:
    return DayPlan(
        plan.day, plan.wake, plan.bed, plan.next_wake, plan.segments, plan.visits, True
    )  # the elder wears the wearable that day, so the deterioration is seen


_INCIDENT_PLANNERS = {
    "fall": _plan_fall,
    "collapse": _plan_collapse,
    "not_up": _plan_not_up,
    "bathroom_too_long": _plan_bathroom,
    "out_of_bed_night": _plan_out_of_bed,
    "night_wandering": _plan_wandering,
    "gas": _plan_as_is,
    "co": _plan_as_is,
    "smoke": _plan_as_is,
    "indoor_cold": _plan_as_is,
    "indoor_heat": _plan_as_is,
    "sos": _plan_sos,
    "vitals": _plan_vitals,
}


def _truth_fall(sim: _HomeSim, plan: DayPlan, rng: random.Random) -> Incident:
    at, end, seg = _times(plan, rng, "fall")
    assert seg is not None
    devices = []
    radar = sim.by_room.get(("radar", seg.place))
    if radar is not None:
        devices.append(radar.device_id)
    watch = sim._dev("wearable")
    if watch is not None and plan.wearable_worn and plan.segments[0].end + 60 < at < plan.bed:
        devices.append(watch)
    expected: tuple[str, ...] = ("fall",) if devices else ()
    expected += ("bathroom_too_long",) if seg.place == BATHROOM else ("inactivity",)
    return sim.incident(
        "fall", at, end, expected, room=seg.place, fall_devices=devices,
        acceptable=["inactivity", "low_activity", "no_utility_use"],
        helper_arrives=_dt(end).isoformat(),
    )  # fmt: skip


def _truth_collapse(sim: _HomeSim, plan: DayPlan, rng: random.Random) -> Incident:
    at, end, seg = _times(plan, rng, "collapse")
    assert seg is not None
    return sim.incident(
        "collapse", at, end, ("inactivity",), room=seg.place,
        acceptable=["low_activity", "no_utility_use", "out_of_bed_night", "fall", "not_up"],
    )  # fmt: skip


def _truth_simple(kind: str, expected: tuple[str, ...], *acceptable: str) -> Any:
    def truth(sim: _HomeSim, plan: DayPlan, rng: random.Random) -> Incident:
        at, end, seg = _times(plan, rng, kind)
        detail: dict[str, Any] = {"acceptable": list(acceptable)}
        if seg is not None:
            detail["room"] = seg.place
        if kind == "co":
            detail["co_ppm_peak"] = round(rng.uniform(120, 400))
        if kind == "sos":
            pendant = sim._dev("sos_pendant")
            detail["device_id"] = pendant or sim._dev("sos_button")
        return sim.incident(kind, at, end, expected, **detail)

    return truth


def _truth_env(sim: _HomeSim, plan: DayPlan, rng: random.Random) -> Incident:
    kind = sim.by_day[plan.day].kind
    which = "cold" if kind == "indoor_cold" else "heat"
    for env_kind, start, end, target in sim._env:
        if env_kind == which and sim.midnight(plan.day) <= start < sim.midnight(plan.day + 1):
            cause = "heating failure" if which == "cold" else "overheating"
            return sim.incident(
                kind, start, end + 1.5 * _H, (kind,), target_c=round(target, 1), cause=cause,
                acceptable=[],
            )  # fmt: skip
    raise AssertionError("environment incident not resolved")


def _truth_vitals(sim: _HomeSim, plan: DayPlan, rng: random.Random) -> Incident:
    vitals = sim._vitals(plan)
    assert vitals is not None
    sign, start, end, target = vitals
    return sim.incident(
        "vitals", start, end, ("vitals",), sign=sign, target=round(target, 1),
        device_id=sim._dev("wearable"), acceptable=[],
    )  # fmt: skip


_GROUND_TRUTH: dict[str, Any] = {
    "fall": _truth_fall,
    "collapse": _truth_collapse,
    "not_up": _truth_simple("not_up", ("not_up",), "inactivity", "low_activity", "no_utility_use"),
    "bathroom_too_long": _truth_simple(
        "bathroom_too_long", ("bathroom_too_long",), "inactivity", "no_utility_use"
    ),
    "out_of_bed_night": _truth_simple("out_of_bed_night", ("out_of_bed_night",), "inactivity"),
    "night_wandering": _truth_simple(
        "night_wandering", ("night_wandering",), "out_of_bed_night", "inactivity"
    ),
    "gas": _truth_simple("gas", ("gas",)),
    "co": _truth_simple("co", ("co",)),
    "smoke": _truth_simple("smoke", ("smoke",)),
    "indoor_cold": _truth_env,
    "indoor_heat": _truth_env,
    "sos": _truth_simple("sos", ("sos",), "inactivity", "low_activity"),
    "vitals": _truth_vitals,
}

_INCIDENT_WEIGHTS = {
    "fall": 3.0,
    "collapse": 2.0,
    "not_up": 2.0,
    "bathroom_too_long": 2.0,
    "out_of_bed_night": 2.0,
    "night_wandering": 1.5,
    "gas": 0.7,
    "co": 0.5,
    "smoke": 0.8,
    "indoor_cold": 1.0,
    "indoor_heat": 0.7,
    "sos": 2.0,
    "vitals": 1.5,
}
_FAULT_WEIGHTS = {"device_silent": 2.0, "hub_offline": 1.0, "low_battery": 1.5}


# --------------------------------------------------------------------------- the cohort


class Cohort:
    """`homes` simulated homes over `days` days, deterministic for `seed`.

    ``readings()`` streams every home's readings merged in event-time order;
    ``ground_truth()`` lists the incidents and device faults, one `Incident` each.
    With `personas`, home i lives as `PERSONA_ARCHETYPES[i % 5]` (the opt-in persona mix);
    without, the cohort is exactly the usual one for `seed`.
    """

    def __init__(
        self,
        homes: int,
        days: int,
        seed: int,
        incidents_per_home_day: float = 0.05,
        start: datetime | None = None,
        *,
        faults_per_home_day: float | None = None,
        quiet_days: int | None = None,
        tz: tzinfo = UTC,
        home_prefix: str = "c",
        personas: bool = False,
    ) -> None:
        if homes < 0 or days < 0:
            raise ValueError("homes and days must not be negative")
        if incidents_per_home_day < 0:
            raise ValueError("incidents_per_home_day must not be negative")
        start = start or _DEFAULT_START
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self.days = days
        self.seed = seed
        self.incidents_per_home_day = incidents_per_home_day
        self.faults_per_home_day = (
            incidents_per_home_day / 3 if faults_per_home_day is None else faults_per_home_day
        )
        self.quiet_days = min(3, days // 3) if quiet_days is None else quiet_days
        self.tz = tz
        self.start_date: date = start.astimezone(tz).date()
        self.start_ts = self.midnight(0)
        self.start = _dt(self.start_ts)
        self.end_ts = self.midnight(days)
        self.end = _dt(self.end_ts)
        width = max(4, len(str(homes)))
        self.homes: list[CohortHome] = []
        for i in range(homes):
            home_id = f"{home_prefix}{i + 1:0{width}d}"
            if not topics.valid_id(home_id):
                raise ValueError(f"home id {home_id!r} is not valid: choose another prefix")
            rng = random.Random(f"{seed}/{home_id}/layout")
            devices = make_layout(home_id, rng)
            if not personas:
                self.homes.append(CohortHome(home_id, devices, make_persona(rng)))
                continue
            archetype = PERSONA_ARCHETYPES[i % len(PERSONA_ARCHETYPES)]
            if archetype == "no_bedroom_sensor":
                devices = without_bedroom_devices(devices)
            self.homes.append(CohortHome(home_id, devices, make_persona(rng, archetype)))
        self.kind_of = {d.device_id: d.kind for h in self.homes for d in h.devices}
        self._sims = [_HomeSim(self, h, i) for i, h in enumerate(self.homes)]

    # --- time and weather ------------------------------------------------------------------

    def midnight(self, day: int) -> float:
        """Local midnight starting day `day` of the run, as Unix seconds."""
        return _midnight(self.start_date + timedelta(days=day), self.tz)

    def outdoor_daily_mean(self, t: float) -> float:
        """The district's outdoor daily mean temperature (°C), shared by all homes."""
        day = math.floor((t - self.start_ts) / _DAY)
        doy = (self.start_date + timedelta(days=day)).timetuple().tm_yday
        season = 12 - 11 * math.cos(2 * math.pi * (doy - 20) / 365)
        return season + random.Random(f"{self.seed}/weather/{day}").gauss(0, 2.5)

    def outdoor(self, t: float) -> float:
        """Outdoor temperature at `t`: the daily mean plus a swing peaking mid-afternoon."""
        local_h = ((t - self.start_ts) / _H) % 24
        return self.outdoor_daily_mean(t) + 4 * math.sin(2 * math.pi * (local_h - 9) / 24)

    # --- the contract ------------------------------------------------------------------------

    def registry(self) -> Registry:
        """Every simulated device, registered to its home."""
        return Registry(
            DeviceRecord(d.device_id, h.home_id, d.kind) for h in self.homes for d in h.devices
        )

    def plan(self, home_id: str, day: int) -> DayPlan:
        """The timeline of `home_id` from waking on day `day` to waking the next day."""
        return self._sim(home_id).plan(day)

    def staff_visit_days(self, home_id: str, week: int) -> set[int]:
        """Day indices of the village worker's visits in week `week`."""
        return self._sim(home_id).staff_days(week)

    def _sim(self, home_id: str) -> _HomeSim:
        for sim in self._sims:
            if sim.home.home_id == home_id:
                return sim
        raise KeyError(home_id)

    def home_readings(self, home_id: str) -> Iterator[Reading]:
        """One home's readings in event-time order."""
        return self._stream(self._sim(home_id))

    def readings(self) -> Iterator[Reading]:
        """All homes' readings merged in event-time order, generated as they are consumed."""
        return heapq.merge(*(self._stream(s) for s in self._sims), key=_reading_ts)

    def ground_truth(self) -> list[Incident]:
        """Every incident and device fault, sorted by start."""
        out = [i for s in self._sims for i in s.ground_truth()]
        return sorted(out, key=lambda i: (i.start, i.home_id, i.kind))

    def write_ground_truth(self, path: Path) -> None:
        """Write the ground truth as JSON lines."""
        with path.open("w") as f:
            for incident in self.ground_truth():
                f.write(json.dumps(incident.to_json(), sort_keys=True) + "\n")

    def boot(self, device_id: str) -> int:
        """The boot counter a device reports during the run."""
        return random.Random(f"{self.seed}/{device_id}/boot").randrange(1, 1000)

    def _stream(self, sim: _HomeSim) -> Iterator[Reading]:
        home_id = sim.home.home_id
        seq: dict[str, int] = {}
        boots = {d.device_id: self.boot(d.device_id) for d in sim.home.devices}
        buffer: list[tuple[float, str, str, float]] = []
        lo, hi = self.start_ts, self.end_ts
        for day in range(-1, self.days):
            plan = sim.plan(day)
            if plan.wake >= hi:
                break
            for e in sim.events(day):
                if lo <= e[0] < hi:
                    heapq.heappush(buffer, e)
            watermark = sim.wake(day + 1) - 600
            while buffer and buffer[0][0] < watermark:
                yield self._reading(home_id, heapq.heappop(buffer), seq, boots)
        while buffer:
            yield self._reading(home_id, heapq.heappop(buffer), seq, boots)

    def _reading(
        self,
        home_id: str,
        e: tuple[float, str, str, float],
        seq: dict[str, int],
        boots: dict[str, int],
    ) -> Reading:
        ts, device_id, metric, value = e
        n = seq.get(device_id, 0)
        seq[device_id] = n + 1
        return Reading(
            home_id=home_id,
            device_id=device_id,
            kind=self.kind_of[device_id],
            boot=boots[device_id],
            seq=n,
            ts=_dt(round(ts, 3)),
            metric=metric,
            value=value,
        )


# --------------------------------------------------------------------------- helpers


def _reading_ts(r: Reading) -> datetime:
    return r.ts


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@lru_cache(maxsize=4096)
def _midnight(day: date, tz: tzinfo) -> float:
    return datetime.combine(day, time(), tzinfo=tz).timestamp()


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth; means here are small)."""
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
