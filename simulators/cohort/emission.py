"""What one home's devices report about a planned day, the way real devices do: PIR pulses
with a blind time, door open/close pairs, mat occupancy, radar presence and breathing, water
bursts, appliance power, the wearable's vitals, alarms and presses at incidents, heartbeats,
battery levels, the hub's device count and the indoor climate. Faults then remove what a
silent device or hub never sent."""

from __future__ import annotations

import bisect
import math
import random

from devices.catalogue import BATTERY, CATALOGUE, HEARTBEAT, LOW_BATTERY_PERCENT
from simulators.cohort.draws import HomeSeed
from simulators.cohort.incidents import vitals_episode
from simulators.cohort.layout import BATHROOM, BEDROOM, HALL, KITCHEN, LIVING, OUT, CohortHome
from simulators.cohort.run import CohortRun
from simulators.cohort.schedule import HomeSchedule
from simulators.cohort.timeline import DAY, HOUR, MINUTE, DayPlan, Segment
from simulators.cohort.truth import Incident

DeviceEvent = tuple[float, str, str, float]
"""One report of a device: (ts in Unix seconds, device id, metric, value)."""

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


class DeviceEmitter:
    """Renders one home's planned days into device events, a pure function of (seed, home,
    day)."""

    def __init__(
        self, run: CohortRun, home: CohortHome, index: int, seeds: HomeSeed, schedule: HomeSchedule
    ) -> None:
        self.run = run
        self.home = home
        self.index = index
        self.p = home.persona
        self.seeds = seeds
        self.schedule = schedule
        self.by_room: dict[tuple[str, str], str] = {}
        for d in home.devices:
            self.by_room.setdefault((d.kind, d.room), d.device_id)

    def events(
        self, plan: DayPlan, prev_last: Segment | None, incidents: list[Incident]
    ) -> list[DeviceEvent]:
        """Everything the home's devices report for the plan's day, sorted, less what faults
        silenced. `prev_last` is where the previous plan ended (what the mats showed then);
        `incidents` are the day's incidents (their alarms, presses and falls)."""
        rng = self.seeds.rng("render", plan.day)
        ev: list[DeviceEvent] = []
        self._render_presence(plan, rng, ev, prev_last)
        self._render_utilities(plan, rng, ev)
        self._render_wearable(plan, rng, ev)
        self._render_incident_alarms(plan, rng, ev, incidents)
        self._render_visits(plan, rng, ev)
        self._render_periodic(plan.wake, plan.next_wake, rng, ev)
        ev.sort()
        return [e for e in ev if not self.schedule.silenced(e[0], e[1])]

    def _dev(self, kind: str, room: str | None = None) -> str | None:
        if room is None:
            for d in self.home.devices:
                if d.kind == kind:
                    return d.device_id
            return None
        return self.by_room.get((kind, room))

    def _render_presence(
        self,
        plan: DayPlan,
        rng: random.Random,
        ev: list[DeviceEvent],
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
        ev: list[DeviceEvent],
        device_id: str,
        at: float,
        close_after: tuple[float, float] = (4, 15),
    ) -> None:
        ev.append((at, device_id, "open", 1.0))
        ev.append((at + rng.uniform(*close_after), device_id, "open", 0.0))

    def _pulse(
        self,
        rng: random.Random,
        ev: list[DeviceEvent],
        rearm: dict[str, float],
        pir: str,
        start: float,
        end: float,
    ) -> None:
        self._stay(rng, ev, rearm, pir, start, end, 1e9)

    def _stay(
        self,
        rng: random.Random,
        ev: list[DeviceEvent],
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

    def _render_utilities(self, plan: DayPlan, rng: random.Random, ev: list[DeviceEvent]) -> None:
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

    def _render_wearable(self, plan: DayPlan, rng: random.Random, ev: list[DeviceEvent]) -> None:
        watch = self._dev("wearable")
        if watch is None or not plan.wearable_worn:
            return
        on, off = plan.segments[0].end + 60, plan.bed - 5 * MINUTE  # charged at night
        vitals = vitals_episode(self.schedule, plan)
        ev.append((on, watch, "worn", 1.0))
        ev.append((off, watch, "worn", 0.0))
        starts = [s.start for s in plan.segments]
        t = on + 30
        k = 0
        while t < off:
            seg = plan.segments[max(0, bisect.bisect_right(starts, t) - 1)]
            local_h = (t - self.run.midnight(plan.day)) / HOUR
            circadian = 4 * math.sin(2 * math.pi * (local_h - 10) / 24)
            effort = {"out": 14.0, "chores": 8.0, "cook": 6.0, "shower": 10.0}.get(
                seg.activity, 0.0
            )
            hr = self.p.heart_rate + circadian + effort + rng.gauss(0, 3)
            spo2 = self.p.spo2 + rng.gauss(0, 0.6)
            if vitals is not None and vitals[1] <= t < vitals[2]:
                share = min(1.0, (t - vitals[1]) / (2 * HOUR))
                if vitals[0] == "heart_rate":
                    hr += share * (vitals[3] - self.p.heart_rate)
                else:
                    spo2 -= share * (self.p.spo2 - vitals[3])
            ev.append((t, watch, "heart_rate", round(min(max(hr, 40.0), 200.0))))
            if k % 3 == 0:
                ev.append((t + 2, watch, "spo2", round(min(max(spo2, 80.0), 100.0), 1)))
            t += 600
            k += 1

    def _render_visits(self, plan: DayPlan, rng: random.Random, ev: list[DeviceEvent]) -> None:
        """A staff member holds their tag to the reader when a visit starts."""
        reader = self._dev("visit_reader")
        if reader is None:
            return
        tag = float(1000 + int(self.home.home_id.encode().hex(), 16) % 97)
        for seg in plan.segments:
            if seg.visitor == "staff":
                ev.append((seg.start + rng.uniform(10, 90), reader, "tag", tag))

    def _render_incident_alarms(
        self,
        plan: DayPlan,
        rng: random.Random,
        ev: list[DeviceEvent],
        incidents: list[Incident],
    ) -> None:
        """Detector alarms, SOS presses and fall events at the day's incidents."""
        for inc in incidents:
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
        self, lo: float, hi: float, rng: random.Random, ev: list[DeviceEvent]
    ) -> None:
        """Heartbeats (every device), battery (every 6 h), the hub's device count (every 12th
        heartbeat), climate (every 15 min)."""
        for d in self.home.devices:
            spec = CATALOGUE[d.kind]
            phase = random.Random(f"{self.seeds.key}/{d.device_id}/phase").uniform(
                0, spec.heartbeat_s
            )
            k = math.ceil((lo - phase) / spec.heartbeat_s)
            while (t := phase + k * spec.heartbeat_s) < hi:
                ev.append((t, d.device_id, HEARTBEAT, 1.0))
                if spec.battery and k % max(1, 21600 // spec.heartbeat_s) == 0:
                    ev.append((t + 0.5, d.device_id, BATTERY, self.battery(d.device_id, t)))
                if d.kind == "hub" and k % 12 == 0:
                    n = sum(
                        1 for x in self.home.devices if not self.schedule.silenced(t, x.device_id)
                    )
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
        kind = CATALOGUE[self.schedule.kind_of[device_id]]
        if kind.name == "wearable":
            local_h = ((t - self.run.start_ts) / HOUR) % 24
            return round(100 - 12 * min(local_h, 16) / 16, 1)
        per_s = 100 / (kind.battery_days * DAY)
        days = self.run.days
        for dev, crossing, replaced in self.schedule.battery_events:
            if dev == device_id:
                if t >= replaced:
                    return round(max(100 - per_s * (t - replaced), 0.0), 1)
                return round(max(LOW_BATTERY_PERCENT + per_s * (crossing - t), 0.0), 2)
        start = random.Random(f"{self.seeds.key}/{device_id}/battery").uniform(40, 100)
        start = max(start, min(100.0, LOW_BATTERY_PERCENT + 5 + per_s * days * DAY))
        return round(max(start - per_s * (t - self.run.start_ts), 0.0), 1)

    def climate(self, t: float, rng: random.Random) -> tuple[float, float]:
        """Indoor temperature and humidity at `t`: weather, heating, and any incident."""
        outdoor = self.run.outdoor(t)
        daily_mean = self.run.outdoor_daily_mean(t)
        local_h = ((t - self.run.start_ts) / HOUR) % 24
        if daily_mean < 15:  # heating season: the thermostat, lower at night
            night = local_h < 6 or local_h >= 22.5
            normal = self.p.thermostat - (1.5 if night else 0.0) + 0.05 * (outdoor - daily_mean)
        else:
            normal = 23.0 + 0.3 * (outdoor - 20)
        normal = min(max(normal, 17.5), 27.5) + 0.3 * math.sin(t / 7000) + rng.gauss(0, 0.05)
        temp = normal
        for kind, start, end, target in self.schedule.env:
            tau = 2.5 * HOUR if kind == "cold" else 2.0 * HOUR
            if start <= t < end:
                temp = target + (normal - target) * math.exp(-(t - start) / tau)
            elif end <= t < end + 6 * HOUR:
                at_end = target + (normal - target) * math.exp(-(end - start) / tau)
                temp = normal + (at_end - normal) * math.exp(-(t - end) / (1.0 * HOUR))
        humidity = 48 + 7 * math.sin(t / 40000 + self.index) + rng.gauss(0, 0.8)
        return round(temp, 2), round(min(max(humidity, 20.0), 80.0), 1)
