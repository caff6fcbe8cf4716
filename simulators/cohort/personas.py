"""How the simulated elders live: a `Persona` drawn from an archetype with individual
variation, and the opt-in persona mix (`PERSONA_ARCHETYPES`)."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace


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
