"""Behaviour incidents: when each happens on the day's plan, how it changes the elder's
timeline (a fall: lying on the floor until a helper arrives), and its line of ground truth."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

from simulators.cohort.layout import BATHROOM, BEDROOM, HALL, KITCHEN, LIVING, OUT
from simulators.cohort.schedule import HomeSchedule
from simulators.cohort.timeline import HOUR, MINUTE, DayPlan, Segment, utc
from simulators.cohort.truth import Incident, incident_record

IncidentPlanner = Callable[[DayPlan, random.Random], DayPlan]
"""Changes a day's plan by its incident (drawing from the incident's random stream)."""
IncidentTruth = Callable[[HomeSchedule, DayPlan, random.Random], Incident]
"""The ground truth of a day's incident, resolved against the day as it was planned."""
VitalsEpisode = tuple[str, float, float, float]
"""A vitals incident: the sign ("heart_rate" or "spo2"), start, end, the value it tends to."""


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
    return Segment(start, start + minutes * MINUTE, place, "visit", "helper")


def _pick(
    plan: DayPlan, rng: random.Random, activities: Iterable[str], places: Iterable[str] = ()
) -> Segment:
    """A daytime segment (not the first or the last hours) with one of `activities`."""
    acts, rooms = set(activities), set(places)
    lo, hi = plan.wake + 1.5 * HOUR, plan.bed - 3 * HOUR
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
        at = seg.start + rng.uniform(0.5, 3) * MINUTE
        return at, at + rng.uniform(1.5, 6) * HOUR, seg
    if kind == "collapse":
        seg = _pick(plan, rng, ("tv", "chores", "idle"), (LIVING, KITCHEN, BEDROOM))
        at = seg.start + rng.uniform(0.3, 0.9) * (seg.end - seg.start)
        return at, at + rng.uniform(3, 8) * HOUR, seg
    if kind == "not_up":
        return plan.wake, plan.wake + rng.uniform(3, 6) * HOUR, None
    if kind == "bathroom_too_long":
        seg = _pick(plan, rng, ("toilet",), (BATHROOM,))
        return seg.start, seg.start + rng.uniform(60, 120) * MINUTE, seg
    if kind in ("out_of_bed_night", "night_wandering"):
        lo, hi = plan.bed + 1.0 * HOUR, plan.next_wake - 4.5 * HOUR
        at = rng.uniform(lo, max(lo, hi))
        for s in plan.segments:  # not during a night-time bathroom visit: from bed
            if s.start <= at < s.end and s.activity != "sleep":
                at = s.end + 5 * MINUTE
        length = rng.uniform(1.5, 3.5) if kind == "out_of_bed_night" else rng.uniform(0.75, 3.0)
        return at, min(at + length * HOUR, plan.next_wake - 30 * MINUTE), None
    if kind in ("gas", "smoke"):
        seg = _pick(plan, rng, ("cook",), (KITCHEN,))
        at = seg.start + rng.uniform(2, 8) * MINUTE
        minutes = rng.uniform(20, 90) if kind == "gas" else rng.uniform(5, 30)
        return at, at + minutes * MINUTE, seg
    if kind == "co":
        at = plan.bed - rng.uniform(1.5, 3.5) * HOUR
        return at, at + rng.uniform(1, 3) * HOUR, None
    if kind == "sos":
        seg = _pick(plan, rng, ("tv", "chores", "idle", "cook", "eat"))
        at = seg.start + rng.uniform(0.2, 0.8) * (seg.end - seg.start)
        return at, at + rng.uniform(15, 60) * MINUTE, seg
    raise ValueError(kind)


def _plan_fall_or_collapse(plan: DayPlan, rng: random.Random, kind: str) -> DayPlan:
    at, end, seg = _times(plan, rng, kind)
    assert seg is not None
    lying = Segment(at, end, seg.place, "lying")
    return _splice(plan, at, [lying, _helper(end, 40)], end + 40 * MINUTE)


def _plan_fall(plan: DayPlan, rng: random.Random) -> DayPlan:
    return _plan_fall_or_collapse(plan, rng, "fall")


def _plan_collapse(plan: DayPlan, rng: random.Random) -> DayPlan:
    return _plan_fall_or_collapse(plan, rng, "collapse")


def _plan_not_up(plan: DayPlan, rng: random.Random) -> DayPlan:
    at, end, _ = _times(plan, rng, "not_up")
    ill = Segment(at, end, BEDROOM, "bed_ill")
    return _splice(plan, at, [ill, _helper(end, 45, BEDROOM)], end + 45 * MINUTE)


def _plan_bathroom(plan: DayPlan, rng: random.Random) -> DayPlan:
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


def _plan_out_of_bed(plan: DayPlan, rng: random.Random) -> DayPlan:
    at, end, _ = _times(plan, rng, "out_of_bed_night")
    up = [
        Segment(at, at + 2 * MINUTE, BEDROOM, "chores"),
        Segment(at + 2 * MINUTE, end - 2 * MINUTE, LIVING, "night_up"),
        Segment(end - 2 * MINUTE, end, BEDROOM, "chores"),
    ]
    return _night_splice(plan, at, end, up)


def _plan_wandering(plan: DayPlan, rng: random.Random) -> DayPlan:
    at, end, _ = _times(plan, rng, "night_wandering")
    out = [
        Segment(at, at + 1 * MINUTE, BEDROOM, "chores"),
        Segment(at + 1 * MINUTE, at + 2 * MINUTE, HALL, "chores"),
        Segment(at + 2 * MINUTE, end, OUT, "out"),
        Segment(end, end + 10 * MINUTE, HALL, "chores", "helper"),
        Segment(end + 10 * MINUTE, end + 12 * MINUTE, BEDROOM, "chores"),
    ]
    return _night_splice(plan, at, end + 12 * MINUTE, out)


def _plan_sos(plan: DayPlan, rng: random.Random) -> DayPlan:
    at, end, seg = _times(plan, rng, "sos")
    assert seg is not None
    place = seg.place if seg.place != OUT else LIVING
    waiting = Segment(at, end, place, "waiting")
    return _splice(plan, at, [waiting, _helper(end, 30)], end + 30 * MINUTE)


def _plan_as_is(plan: DayPlan, rng: random.Random) -> DayPlan:
    return plan


def _plan_vitals(plan: DayPlan, rng: random.Random) -> DayPlan:
    return DayPlan(
        plan.day, plan.wake, plan.bed, plan.next_wake, plan.segments, plan.visits, True
    )  # the elder wears the wearable that day, so the deterioration is seen


INCIDENT_PLANNERS: dict[str, IncidentPlanner] = {
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


def _truth_fall(schedule: HomeSchedule, plan: DayPlan, rng: random.Random) -> Incident:
    at, end, seg = _times(plan, rng, "fall")
    assert seg is not None
    devices = []
    radar = schedule.home.device("radar", seg.place)
    if radar is not None:
        devices.append(radar.device_id)
    watch = schedule.home.device_id("wearable")
    if watch is not None and plan.wearable_worn and plan.segments[0].end + 60 < at < plan.bed:
        devices.append(watch)
    expected: tuple[str, ...] = ("fall",) if devices else ()
    expected += ("bathroom_too_long",) if seg.place == BATHROOM else ("inactivity",)
    return incident_record(
        schedule.home.home_id, "fall", at, end, expected,
        room=seg.place, fall_devices=devices,
        acceptable=["inactivity", "low_activity", "no_utility_use"],
        helper_arrives=utc(end).isoformat(),
    )  # fmt: skip


def _truth_collapse(schedule: HomeSchedule, plan: DayPlan, rng: random.Random) -> Incident:
    at, end, seg = _times(plan, rng, "collapse")
    assert seg is not None
    return incident_record(
        schedule.home.home_id, "collapse", at, end, ("inactivity",), room=seg.place,
        acceptable=["low_activity", "no_utility_use", "out_of_bed_night", "fall", "not_up"],
    )  # fmt: skip


def _truth_simple(kind: str, expected: tuple[str, ...], *acceptable: str) -> IncidentTruth:
    def truth(schedule: HomeSchedule, plan: DayPlan, rng: random.Random) -> Incident:
        at, end, seg = _times(plan, rng, kind)
        detail: dict[str, Any] = {"acceptable": list(acceptable)}
        if seg is not None:
            detail["room"] = seg.place
        if kind == "co":
            detail["co_ppm_peak"] = round(rng.uniform(120, 400))
        if kind == "sos":
            pendant = schedule.home.device_id("sos_pendant")
            detail["device_id"] = pendant or schedule.home.device_id("sos_button")
        return incident_record(schedule.home.home_id, kind, at, end, expected, **detail)

    return truth


def _truth_env(schedule: HomeSchedule, plan: DayPlan, rng: random.Random) -> Incident:
    kind = schedule.by_day[plan.day].kind
    which = "cold" if kind == "indoor_cold" else "heat"
    day0, day1 = schedule.run.midnight(plan.day), schedule.run.midnight(plan.day + 1)
    for env_kind, start, end, target in schedule.env:
        if env_kind == which and day0 <= start < day1:
            cause = "heating failure" if which == "cold" else "overheating"
            return incident_record(
                schedule.home.home_id, kind, start, end + 1.5 * HOUR, (kind,),
                target_c=round(target, 1), cause=cause, acceptable=[],
            )  # fmt: skip
    raise AssertionError("environment incident not resolved")


def vitals_episode(schedule: HomeSchedule, plan: DayPlan) -> VitalsEpisode | None:
    """The vitals incident of the plan's day, if it has one: while the wearable is worn."""
    planned = schedule.by_day.get(plan.day)
    if planned is None or planned.kind != "vitals":
        return None
    rng = schedule.seeds.rng("incident", planned.seed)
    on, off = plan.segments[0].end + 60, plan.bed - 5 * MINUTE
    start = min(on + rng.uniform(1, 5) * HOUR, off - 4 * HOUR)
    if rng.random() < 0.6:
        return ("heart_rate", start, off, rng.uniform(125, 145))
    return ("spo2", start, off, rng.uniform(84, 88))


def _truth_vitals(schedule: HomeSchedule, plan: DayPlan, rng: random.Random) -> Incident:
    vitals = vitals_episode(schedule, plan)
    assert vitals is not None
    sign, start, end, target = vitals
    return incident_record(
        schedule.home.home_id, "vitals", start, end, ("vitals",),
        sign=sign, target=round(target, 1), device_id=schedule.home.device_id("wearable"),
        acceptable=[],
    )  # fmt: skip


GROUND_TRUTH: dict[str, IncidentTruth] = {
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
