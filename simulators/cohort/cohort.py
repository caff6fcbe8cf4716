"""`Cohort`: a cohort of simulated homes, streamed as readings in event-time order, with its
ground truth and its device registry."""

from __future__ import annotations

import heapq
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, tzinfo
from pathlib import Path

from devices import topics
from devices.payload import Reading
from devices.registry import DeviceRecord, Registry
from simulators.cohort.emission import DeviceEvent
from simulators.cohort.home_sim import HomeSimulation
from simulators.cohort.layout import CohortHome, make_layout, without_bedroom_devices
from simulators.cohort.personas import PERSONA_ARCHETYPES, make_persona
from simulators.cohort.run import CohortRun
from simulators.cohort.timeline import DayPlan, utc
from simulators.cohort.truth import Incident


class Cohort(CohortRun):
    """`homes` simulated homes over `days` days, deterministic for `seed`.

    ``readings()`` streams every home's readings merged in event-time order;
    ``ground_truth()`` lists the incidents and device faults, one `Incident` each.
    With `personas`, home i lives as `PERSONA_ARCHETYPES[i % 5]` (the opt-in persona mix);
    without, the cohort is exactly the usual one for `seed`. Home ids are `home_prefix` and a
    number; the rates, quiet days, start and time zone are those of `CohortRun`.
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
        super().__init__(
            days,
            seed,
            incidents_per_home_day,
            start,
            faults_per_home_day=faults_per_home_day,
            quiet_days=quiet_days,
            tz=tz,
        )
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
        self._sims = [HomeSimulation(self, h, i) for i, h in enumerate(self.homes)]

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

    def _sim(self, home_id: str) -> HomeSimulation:
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

    def _stream(self, sim: HomeSimulation) -> Iterator[Reading]:
        home_id = sim.home.home_id
        seq: dict[str, int] = {}
        boots = {d.device_id: self.boot(d.device_id) for d in sim.home.devices}
        buffer: list[DeviceEvent] = []
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
        e: DeviceEvent,
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
            ts=utc(round(ts, 3)),
            metric=metric,
            value=value,
        )


def _reading_ts(r: Reading) -> datetime:
    return r.ts
