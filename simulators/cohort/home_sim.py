"""One home of a cohort, assembled: its schedule of incidents and faults, its elder's routine
changed by the day's incident, its devices' events, and its ground truth."""

from __future__ import annotations

from simulators.cohort.draws import HomeSeed
from simulators.cohort.emission import DeviceEmitter, DeviceEvent
from simulators.cohort.incidents import GROUND_TRUTH, INCIDENT_PLANNERS
from simulators.cohort.layout import CohortHome
from simulators.cohort.routine import Routine
from simulators.cohort.run import CohortRun
from simulators.cohort.schedule import HomeSchedule
from simulators.cohort.timeline import DayPlan
from simulators.cohort.truth import BEHAVIOUR_INCIDENTS, Incident


class HomeSimulation:
    """Plans and renders one home; every method is a pure function of (seed, home, day)."""

    def __init__(self, run: CohortRun, home: CohortHome, index: int) -> None:
        self.run = run
        self.home = home
        self.seeds = HomeSeed(f"{run.seed}/{home.home_id}")
        self.schedule = HomeSchedule(run, home, self.seeds)
        self.routine = Routine(run, home, index, self.seeds)
        self.emitter = DeviceEmitter(run, home, index, self.seeds, self.schedule)
        self._plans: dict[int, DayPlan] = {}
        self._base: dict[int, DayPlan] = {}

    def wake(self, day: int) -> float:
        """When the elder wakes on day `day`, as Unix seconds."""
        return self.routine.wake(day)

    def staff_days(self, week: int) -> set[int]:
        """Days (indices) of the village worker's visits in week `week` (Monday-based)."""
        return self.routine.staff_days(week)

    def base_plan(self, day: int) -> DayPlan:
        """The day as it would have been without its incident."""
        cached = self._base.get(day)
        if cached is None:
            cached = self.routine.day_plan(day)
            if len(self._base) > 4:
                del self._base[min(self._base)]
            self._base[day] = cached
        return cached

    def plan(self, day: int) -> DayPlan:
        """The day as it went: the base plan changed by the day's incident, if any."""
        cached = self._plans.get(day)
        if cached is not None:
            return cached
        plan = self.base_plan(day)
        planned = self.schedule.by_day.get(day)
        if planned is not None:
            rng = self.seeds.rng("incident", planned.seed)
            plan = INCIDENT_PLANNERS[planned.kind](plan, rng)
        if len(self._plans) > 4:
            del self._plans[min(self._plans)]
        self._plans[day] = plan
        return plan

    def events(self, day: int) -> list[DeviceEvent]:
        """Everything the home's devices report for plan day `day`, as (ts, device, metric,
        value), sorted, less what a silent device or hub never sent."""
        plan = self.plan(day)
        prev_last = self.plan(day - 1).segments[-1] if day > -1 else None
        return self.emitter.events(plan, prev_last, self.incidents_of(day))

    def incidents_of(self, day: int) -> list[Incident]:
        """The behaviour incident of `day`, resolved against the day as it was planned."""
        planned = self.schedule.by_day.get(day)
        if planned is None:
            return []
        plan = self.base_plan(day)
        rng = self.seeds.rng("incident", planned.seed)
        return [GROUND_TRUTH[planned.kind](self.schedule, plan, rng)]

    def ground_truth(self) -> list[Incident]:
        """The home's incidents and faults that start within the run, sorted by start."""
        out: list[Incident] = []
        for p in self.schedule.planned:
            if p.kind in BEHAVIOUR_INCIDENTS:
                out += self.incidents_of(p.day)
        out += self.schedule.fault_truth()
        out = [i for i in out if i.start < self.run.end]
        return sorted(out, key=lambda i: (i.start, i.kind))
