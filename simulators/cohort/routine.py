"""The elder's daily routine: waking, meals, free time, outings, visitors, naps and the night
with its bathroom visits, planned as a timeline of segments (a day without incidents)."""

from __future__ import annotations

import random
from datetime import timedelta

from simulators.cohort.draws import HomeSeed, poisson
from simulators.cohort.layout import BATHROOM, BEDROOM, HALL, KITCHEN, LIVING, OUT, CohortHome
from simulators.cohort.run import CohortRun
from simulators.cohort.timeline import HOUR, MINUTE, DayPlan, Segment, Visit


class Routine:
    """How one elder's days go, as a pure function of (seed, home, day)."""

    def __init__(self, run: CohortRun, home: CohortHome, index: int, seeds: HomeSeed) -> None:
        self.run = run
        self.index = index
        self.p = home.persona
        self.seeds = seeds
        self.kinds = {d.kind for d in home.devices}

    def weekday(self, day: int) -> int:
        """Day `day` of the run as a weekday (Monday 0)."""
        return (self.run.start_date + timedelta(days=day)).weekday()

    def wake(self, day: int) -> float:
        """When the elder wakes on day `day` (later at weekends), as Unix seconds."""
        rng = self.seeds.rng("wake", day)
        lie_in = self.p.weekend_lie_in_min if self.weekday(day) >= 5 else 0.0
        minutes = rng.gauss(0, self.p.wake_sd_min)
        minutes = max(-2.5 * self.p.wake_sd_min, min(2.5 * self.p.wake_sd_min, minutes))
        return self.run.midnight(day) + self.p.wake_h * HOUR + (minutes + lie_in) * MINUTE

    def bed(self, day: int) -> float:
        """When the elder goes to bed on day `day` (maybe after midnight), as Unix seconds."""
        rng = self.seeds.rng("bed", day)
        minutes = rng.gauss(0, self.p.bed_sd_min)
        minutes = max(-2.5 * self.p.bed_sd_min, min(2.5 * self.p.bed_sd_min, minutes))
        return self.run.midnight(day) + self.p.bed_h * HOUR + minutes * MINUTE

    def staff_days(self, week: int) -> set[int]:
        """Days (indices) of the village worker's visits in week `week` (Monday-based)."""
        rng = self.seeds.rng("staff", week)
        monday = week * 7 - self.run.start_date.weekday()
        n = self.p.staff_visits_per_week
        return {monday + d for d in rng.sample(range(6), n)}

    def day_plan(self, day: int) -> DayPlan:
        """The timeline of day `day` as it goes without an incident: from waking on that day
        to waking the next."""
        p = self.p
        rng = self.seeds.rng("day", day)
        wake, bed, next_wake = self.wake(day), self.bed(day), self.wake(day + 1)
        m0 = self.run.midnight(day)
        blocks: list[Segment] = []
        visits: list[Visit] = []

        def place(seg: Segment, pad: float = 10 * MINUTE) -> bool:
            if seg.start < wake + 20 * MINUTE or seg.end > bed - 60 * MINUTE:
                return False
            for b in blocks:
                if seg.start < b.end + pad and b.start < seg.end + pad:
                    return False
            blocks.append(seg)
            return True

        # Meals: breakfast soon after waking, lunch and dinner around the persona's hours.
        t = wake + rng.uniform(5, 12) * MINUTE
        blocks.append(Segment(wake, t, BATHROOM, "toilet"))
        for i, meal_h in enumerate(p.meals_h):
            start = t + rng.uniform(5, 20) * MINUTE if i == 0 else m0 + meal_h * HOUR
            if i > 0:
                start += rng.gauss(0, 20) * MINUTE
            cook = rng.uniform(*((8, 15), (15, 30), (20, 40))[i]) * MINUTE
            eat = rng.uniform(15, 30) * MINUTE
            blocks.append(Segment(start, start + cook, KITCHEN, "cook"))
            blocks.append(Segment(start + cook, start + cook + eat, KITCHEN, "eat"))
        for outing in p.daily_outings:  # blocks[1 + 2k] cooks meal k, blocks[2 + 2k] eats it
            for _ in range(20):
                meal = 2 * outing.after_meal
                start = blocks[meal + 2].end + rng.uniform(*outing.delay_min) * MINUTE
                home_by = blocks[meal + 3].start - rng.uniform(15, 30) * MINUTE
                end = min(start + rng.uniform(*outing.hours) * HOUR, home_by)
                seg = Segment(start, end, OUT, "out", outing.who)
                if end - start >= 30 * MINUTE and place(seg):
                    visits.append(Visit(seg.start, seg.end, outing.who))
                    break
        if p.naps_daily:  # the nap comes first: visitors and outings fit around it
            start = blocks[4].end + rng.uniform(10, 40) * MINUTE  # after lunch
            place(Segment(start, start + rng.uniform(*p.nap_min) * MINUTE, LIVING, "nap"))
        if rng.random() < 1 / p.shower_every_days:
            start = blocks[2].end + rng.uniform(10, 40) * MINUTE
            place(Segment(start, start + rng.uniform(12, 25) * MINUTE, BATHROOM, "shower"))
        # The village worker, the clinic, shopping, the family, a nap.
        if day in self.staff_days((day + self.run.start_date.weekday()) // 7):
            for _ in range(20):
                start = m0 + rng.uniform(9, 16.5) * HOUR
                seg = Segment(start, start + rng.uniform(20, 45) * MINUTE, LIVING, "visit", "staff")
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
                start = m0 + rng.choice((rng.uniform(9, 11.5), rng.uniform(14, 16.5))) * HOUR
                seg = Segment(start, start + rng.uniform(low, high) * HOUR, OUT, "out", who)
                if place(seg):
                    visits.append(Visit(seg.start, seg.end, who))
                    break
        family_p = p.family_visits_per_week / 7 * (2.0 if weekend else 0.6)
        if p.visit_prob_daily:
            family_p = p.visit_prob_daily
        if rng.random() < family_p:
            who = p.visitors[0] if len(p.visitors) == 1 else rng.choice(p.visitors)
            for _ in range(20):
                start = m0 + rng.uniform(10, 17) * HOUR
                seg = Segment(start, start + rng.uniform(*p.visit_h) * HOUR, LIVING, "visit", who)
                if place(seg):
                    visits.append(Visit(seg.start, seg.end, who))
                    break
        if not p.naps_daily and rng.random() < p.nap_prob:
            start = blocks[4].end + rng.uniform(10, 40) * MINUTE  # after lunch
            place(Segment(start, start + rng.uniform(*p.nap_min) * MINUTE, LIVING, "nap"))
        if p.second_nap_prob and rng.random() < p.second_nap_prob:
            start = m0 + rng.uniform(15.5, 17.0) * HOUR
            place(Segment(start, start + rng.uniform(15, 40) * MINUTE, LIVING, "nap"))

        # The evening routine, then the night with its bathroom visits.
        evening = bed - rng.uniform(15, 30) * MINUTE
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
        toilet = evening + rng.uniform(6, 12) * MINUTE
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
            if since_toilet > rng.uniform(1.5, 3.0) * HOUR:
                length, place, act = rng.uniform(3, 10) * MINUTE, BATHROOM, "toilet"
                since_toilet = 0.0
            elif rng.random() < self.p.tv_share:
                length, place, act = rng.uniform(20, 75) * MINUTE, LIVING, "tv"
            else:
                place = rng.choice((KITCHEN, BEDROOM, HALL, LIVING, LIVING))
                length, act = rng.uniform(5, 30) * MINUTE, "chores"
            stop = min(end, t + length)
            out.append(Segment(t, stop, place, act))
            since_toilet += stop - t
            t = stop
        if t < end:
            out.append(Segment(t, end, LIVING, "idle"))
        return out

    def _night(self, rng: random.Random, bed: float, wake: float) -> list[Segment]:
        """Sleep from `bed` to `wake`, with the night's bathroom visits."""
        n = poisson(rng, self.p.night_bathroom_mean)
        lo, hi = bed + 45 * MINUTE, wake - 30 * MINUTE
        times = sorted(rng.uniform(lo, hi) for _ in range(n)) if hi > lo else []
        out: list[Segment] = []
        t = bed
        for at in times:
            if at < t + 30 * MINUTE:
                continue
            back = at + rng.uniform(3, 10) * MINUTE
            out.append(Segment(t, at, BEDROOM, "sleep"))
            out.append(Segment(at, back, BATHROOM, "toilet"))
            t = back
        out.append(Segment(t, wake, BEDROOM, "sleep"))
        return out
