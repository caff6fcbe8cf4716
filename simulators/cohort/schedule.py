"""Which incidents and device faults befall one home, on which days; and the faults and
indoor-climate incidents resolved in time, since they do not depend on the elder's day."""

from __future__ import annotations

import random
from dataclasses import dataclass

from devices.catalogue import CATALOGUE, LOW_BATTERY_PERCENT, Link
from simulators.cohort.draws import HomeSeed, poisson
from simulators.cohort.layout import CohortHome
from simulators.cohort.personas import SENSOR_LOSS_DEVICES
from simulators.cohort.run import CohortRun
from simulators.cohort.timeline import HOUR
from simulators.cohort.truth import BEHAVIOUR_INCIDENTS, Incident, incident_record

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

BatteryEvent = tuple[str, float, float]
"""A device id, when its battery crosses `LOW_BATTERY_PERCENT`, when it is replaced."""
IndoorEpisode = tuple[str, float, float, float]
"""An indoor-climate incident: "cold" or "heat", its start, its end, the target in °C."""


@dataclass(frozen=True, slots=True)
class PlannedIncident:
    """An incident or fault chosen for a day, before the day's plan resolves its times."""

    day: int
    kind: str
    seed: str
    device_id: str = ""


@dataclass(frozen=True, slots=True)
class SilentWindow:
    """A device (or, with no device id, the hub and every hub-linked device) sends nothing
    from `start` to `end`."""

    start: float
    end: float
    device_id: str  # "" for the whole hub
    permanent: bool = False  # the device is dead until the end of the run (loses_sensor)


class HomeSchedule:
    """The incidents and faults of one home over the run, a pure function of (seed, home).

    `planned` lists them by day; `by_day` holds the behaviour incidents (at most one a day),
    which the day's plan resolves. Faults become `silent` windows and `battery_events`;
    indoor cold and heat become `env` episodes.
    """

    def __init__(self, run: CohortRun, home: CohortHome, seeds: HomeSeed) -> None:
        self.run = run
        self.home = home
        self.seeds = seeds
        self.kind_of = {d.device_id: d.kind for d in home.devices}
        self.kinds = {d.kind for d in home.devices}
        self.planned = self._schedule()
        self.by_day = {p.day: p for p in self.planned if p.kind in BEHAVIOUR_INCIDENTS}
        self.silent: list[SilentWindow] = []
        self.battery_events: list[BatteryEvent] = []
        self.env: list[IndoorEpisode] = []
        self._resolve_time_based()
        if home.persona.archetype == "loses_sensor":
            self._lose_sensor()

    def _schedule(self) -> list[PlannedIncident]:
        c = self.run
        rng = self.seeds.rng("schedule")
        first = min(c.quiet_days, max(c.days - 1, 0))
        days = list(range(first, c.days))
        rng.shuffle(days)
        n_incidents = poisson(rng, c.incidents_per_home_day * c.days)
        n_faults = poisson(rng, c.faults_per_home_day * c.days)
        out: list[PlannedIncident] = []
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
            out.append(PlannedIncident(day, kind, f"{day}/{kind}", device_id))
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
            rng = self.seeds.rng("incident", p.seed)
            day0 = self.run.midnight(p.day)
            if p.kind == "device_silent":
                start = day0 + rng.uniform(2, 22) * HOUR
                self.silent.append(
                    SilentWindow(start, start + rng.uniform(8, 40) * HOUR, p.device_id)
                )
            elif p.kind == "hub_offline":
                start = day0 + rng.uniform(1, 22) * HOUR
                self.silent.append(SilentWindow(start, start + rng.uniform(2, 10) * HOUR, ""))
            elif p.kind == "low_battery":
                crossing = day0 + rng.uniform(1, 22) * HOUR
                replaced = self.run.midnight(p.day + rng.randint(1, 3)) + rng.uniform(9, 16) * HOUR
                self.battery_events.append((p.device_id, crossing, replaced))
            elif p.kind == "indoor_cold":
                start = day0 + rng.uniform(17, 23) * HOUR
                self.env.append(
                    ("cold", start, start + rng.uniform(14, 34) * HOUR, rng.uniform(10, 13))
                )
            elif p.kind == "indoor_heat":
                start = day0 + rng.uniform(10, 13) * HOUR
                self.env.append(
                    ("heat", start, start + rng.uniform(8, 30) * HOUR, rng.uniform(32, 35))
                )

    def _lose_sensor(self) -> None:
        """The loses_sensor persona: one PIR (`SENSOR_LOSS_DEVICES`) dies at an instant
        between 20 % and 70 % of the run and sends nothing from then on."""
        rng = self.seeds.rng("sensor_loss")
        suffix = rng.choice(SENSOR_LOSS_DEVICES)
        device_id = f"{self.home.home_id}-{suffix}"
        assert any(d.device_id == device_id for d in self.home.devices), device_id
        c = self.run
        start = c.start_ts + rng.uniform(0.2, 0.7) * (c.end_ts - c.start_ts)
        self.silent.append(SilentWindow(start, c.end_ts, device_id, permanent=True))

    # --- what the faults do ------------------------------------------------------------------

    def silenced(self, ts: float, device_id: str) -> bool:
        """Whether a reading of `device_id` at `ts` is lost to a silent device or hub."""
        for w in self.silent:
            if w.start <= ts < w.end and (
                w.device_id == device_id
                or (not w.device_id and CATALOGUE[self.kind_of[device_id]].link is Link.HUB)
                or (not w.device_id and self.kind_of[device_id] == "hub")
            ):
                return True
        return False

    def fault_truth(self) -> list[Incident]:
        """The ground truth of the faults: silent devices, hub outages, low batteries."""
        out: list[Incident] = []
        home_id = self.home.home_id
        for w in self.silent:
            if w.permanent:  # a technical event, not the elder's: no behaviour is explained
                out.append(
                    incident_record(
                        home_id, "device_silent", w.start, w.end, ("device_silent",),
                        device_id=w.device_id, device_kind=self.kind_of[w.device_id],
                        permanent=True,
                    )
                )  # fmt: skip
            elif w.device_id:
                out.append(
                    incident_record(
                        home_id, "device_silent", w.start, w.end, ("device_silent",),
                        device_id=w.device_id, device_kind=self.kind_of[w.device_id],
                    )
                )  # fmt: skip
            else:
                out.append(
                    incident_record(
                        home_id, "hub_offline", w.start, w.end, ("hub_offline",),
                        acceptable=["device_silent"], device_id=self.home.device_id("hub"),
                    )
                )  # fmt: skip
        for device_id, crossing, replaced in self.battery_events:
            out.append(
                incident_record(
                    home_id, "low_battery", crossing, replaced, ("low_battery",),
                    device_id=device_id, below_percent=LOW_BATTERY_PERCENT,
                )
            )  # fmt: skip
        return out
