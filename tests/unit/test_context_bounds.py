"""No context without a bound: every collapse is alerted within 12 h, whatever the context.

A home in Shanghai (living room, kitchen, bathroom and bedroom PIRs, a bed mat, an armchair
mat, the entry door, a kitchen cupboard contact, a kettle on a power plug) lives twelve days of
a regular routine (up ~06:30, meals, a morning outing every other day, an evening walk now and
then, the armchair every afternoon, a night toilet trip every other night, in bed ~21:30), so
that the learned detectors have learned. Then, on the next day, the elder collapses at an
instant T in one context: every activity reading after T is dropped, while the devices keep
their battery heartbeats (every 30 min), so they are alive. The full detector set
(`default_detectors`) must raise a wellbeing alert meaning "this elder may be lying somewhere"
(`COLLAPSE_KINDS`, `not_back` among them) within 12 h of T. Each context has a control: the
same day without the collapse raises no such alert in the same window (the test does not pass
for a detector that alerts on everything).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from alerts.detect.detectors import DetectorSet, default_detectors
from alerts.detect.layout import Layout, PlacedDevice
from alerts.detect.learned import LearnedDetector
from alerts.detect.learned_homes import ASLEEP, CONTEXTS, HOME, OUT, SEATED
from alerts.detect.replay import run_offline
from alerts.detect.scoring import COLLAPSE_KINDS
from alerts.model import Category, Signal
from devices.payload import Reading

TZ = ZoneInfo("Asia/Shanghai")
H = "h-shanghai"
DAY0 = datetime(2026, 3, 2, tzinfo=TZ)  # a Monday, local midnight
LEARN_DAYS = 12  # days 0-11 are the routine; day 12 is the scenario's, day 13 the morning after
DAYS = LEARN_DAYS + 2
BOUND = timedelta(hours=12)
ALERT_KINDS = COLLAPSE_KINDS | {"not_back"}
PIR_HOLD = timedelta(seconds=90)  # a PIR re-arms (motion 0) this long after a trigger

_KINDS = {
    "pir-liv": ("pir_motion", "motion", "living room"),
    "pir-kit": ("pir_motion", "motion", "kitchen"),
    "pir-bath": ("pir_motion", "motion", "bathroom"),
    "pir-bed": ("pir_motion", "motion", "bedroom"),
    "bed": ("bed_mat", "occupied", "bedroom"),
    "chair": ("chair_mat", "occupied", "living room"),
    "door": ("door_contact", "open", "hall"),
    "cupboard": ("cupboard_contact", "open", "kitchen"),
    "kettle": ("power_plug", "power", "kitchen"),
}
FULL = tuple(
    PlacedDevice(d, H, kind, room, entry=True if d == "door" else None)
    for d, (kind, _, room) in _KINDS.items()
)
NO_BEDROOM = tuple(d for d in FULL if d.device_id not in ("pir-bed", "bed"))
_seq = itertools.count(1)


def _reading(device: str, value: float, at: datetime, metric: str | None = None) -> Reading:
    kind, own, _ = _KINDS[device]
    return Reading(H, device, kind, 0, next(_seq), at.astimezone(UTC), metric or own, value)


def local(day: int, hour: float) -> datetime:
    """Local wall-clock time `hour` (fractional) of day `day` (0: DAY0)."""
    return DAY0 + timedelta(days=day, hours=hour)


# (device, seconds after the door, value): what the sensors see right after a door.
Script = tuple[tuple[str, int, float], ...]
CONFIRMED: Script = (
    ("pir-liv", 30, 1.0),
    ("pir-liv", 120, 0.0),
    ("pir-kit", 150, 1.0),
    ("pir-kit", 240, 0.0),
)


@dataclass(frozen=True, slots=True)
class Outing:
    """Out by the entry door at `start` (local hour) for `hours`; `back` after the return."""

    start: float
    hours: float
    back: Script = CONFIRMED


@dataclass(frozen=True, slots=True)
class Plan:
    """One day of the routine: what is unusual about it (all local hours)."""

    toilet: float | None = None  # a night toilet trip at this hour (before waking)
    outings: tuple[Outing, ...] = ()
    visitor: Script | None = None  # a visitor 14:00-16:00; the elder's readings after it left
    extra: tuple[tuple[str, float, float], ...] = ()  # (device, local hour, value)


def routine_plan(day: int) -> Plan:
    """The elder's usual days: toilet every other night, out every other morning (1.5-2.5 h),
    an evening walk every fourth day."""
    rng = random.Random(500 + day)
    outings: list[Outing] = []
    if day % 2 == 0:
        outings.append(Outing(9.0 + rng.uniform(-0.3, 0.3), rng.uniform(1.5, 2.5)))
    if day % 4 == 1:
        outings.append(Outing(19.0 + rng.uniform(-0.2, 0.2), rng.uniform(0.5, 1.0)))
    toilet = 2.5 + rng.uniform(-0.4, 0.4) if day % 2 == 1 else None
    return Plan(toilet=toilet, outings=tuple(outings))


class _Day:
    """The readings of one local day, drawn from the day's own seed (the same day is the same
    readings whatever the other days are)."""

    def __init__(self, day: int) -> None:
        self.day = day
        self.rng = random.Random(1000 + day)
        self.routine: list[Reading] = []  # may be cut by an outing or a visit
        self.scripted: list[Reading] = []
        self.quiet: list[tuple[datetime, datetime]] = []
        self.scripting = False  # readings now go to `scripted`, which no window cuts

    def at(self, hour: float) -> datetime:
        return local(self.day, hour)

    def jitter(self, minutes: float) -> timedelta:
        return timedelta(minutes=self.rng.uniform(-minutes, minutes))

    def put(self, device: str, value: float, t: datetime) -> None:
        (self.scripted if self.scripting else self.routine).append(_reading(device, value, t))

    def motion(self, device: str, t: datetime) -> None:
        self.put(device, 1.0, t)
        self.put(device, 0.0, t + PIR_HOLD)

    def contact(self, device: str, t: datetime, open_s: float = 20) -> None:
        self.put(device, 1.0, t)
        self.put(device, 0.0, t + timedelta(seconds=open_s))

    def kettle(self, t: datetime) -> None:
        self.put("kettle", 1800.0, t)
        self.put("kettle", 0.0, t + timedelta(minutes=3))

    def moving(
        self,
        start: datetime,
        end: datetime,
        rooms: Sequence[str],
        weights: Sequence[float] = (),
        gap: tuple[float, float] = (4, 15),
    ) -> None:
        """Moving about between `rooms`: a PIR trigger every `gap` minutes."""
        t = start
        while t < end:
            room = self.rng.choices(rooms, weights or None)[0]
            self.motion(room, t)
            t += timedelta(minutes=self.rng.uniform(*gap))

    def door_at(self, t: datetime, then: Script) -> None:
        self.scripted += [_reading("door", 1.0, t), _reading("door", 0.0, t + timedelta(seconds=8))]
        self.scripted += [_reading(dev, v, t + timedelta(seconds=s)) for dev, s, v in then]

    def readings(self) -> list[Reading]:
        kept = [x for x in self.routine if not any(a <= x.ts <= b for a, b in self.quiet)]
        return kept + self.scripted


def day_readings(day: int, plan: Plan) -> list[Reading]:
    """One day of the elder's life (local midnight to midnight), activity readings only."""
    d = _Day(day)
    m = timedelta(minutes=1)
    if plan.toilet is not None:  # up in the night: bedroom, bathroom, back to bed
        t = d.at(plan.toilet)
        d.put("bed", 0.0, t)
        d.motion("pir-bed", t + timedelta(seconds=20))
        d.motion("pir-bath", t + 1.5 * m)
        d.motion("pir-bath", t + 4 * m)
        d.motion("pir-bed", t + 7 * m)
        d.put("bed", 1.0, t + 8 * m)
    wake = d.at(6.5) + d.jitter(10)
    d.put("bed", 0.0, wake)
    d.motion("pir-bed", wake + 0.5 * m)
    for k in (2, 5, 9, 13):
        d.motion("pir-bath", wake + k * m)
    d.motion("pir-bed", wake + 16 * m)
    breakfast = wake + 20 * m
    d.moving(breakfast, breakfast + 35 * m, ["pir-kit"], gap=(2, 5))
    d.kettle(breakfast + 2 * m)
    d.contact("cupboard", breakfast + 6 * m)
    rooms = ["pir-liv", "pir-kit", "pir-bath"]
    d.moving(breakfast + 35 * m, d.at(12), rooms, (6, 3, 1))
    d.moving(d.at(12), d.at(12.7), ["pir-kit"], gap=(2, 5))  # lunch
    d.kettle(d.at(12) + 5 * m)
    d.contact("cupboard", d.at(12) + 10 * m)
    d.moving(d.at(12.7), d.at(14), rooms, (6, 3, 1), gap=(5, 15))
    if plan.visitor is None:  # the armchair: an hour and three quarters to two and a quarter
        sit = d.at(14) + d.jitter(5)
        up = d.at(16) + d.jitter(15)
        d.motion("pir-liv", sit - m)
        d.put("chair", 1.0, sit)
        t = sit + timedelta(minutes=d.rng.uniform(20, 40))
        while t < up - 5 * m:  # small moves in the chair
            d.motion("pir-liv", t)
            t += timedelta(minutes=d.rng.uniform(20, 40))
        d.put("chair", 0.0, up)
        d.moving(up + m, d.at(18), rooms, (5, 4, 1))
    else:  # a visitor: two people about the flat, tea, then the visitor leaves at 16:00
        d.door_at(d.at(14), (("pir-liv", 40, 1.0), ("pir-kit", 70, 1.0)))
        d.quiet.append((d.at(14) - 3 * m, d.at(14) + 5 * m))
        d.moving(d.at(14) + 2 * m, d.at(16), rooms, (5, 4, 1), gap=(2, 8))  # the elder
        d.moving(d.at(14) + 3 * m, d.at(16), rooms, (4, 4, 2), gap=(2, 8))  # the visitor
        d.kettle(d.at(14) + 10 * m)
        d.contact("cupboard", d.at(14) + 12 * m)
        d.door_at(d.at(16), plan.visitor)
        d.quiet.append((d.at(16) - 2 * m, d.at(16) + 6 * m))
        d.moving(d.at(16) + 6 * m, d.at(18), rooms, (5, 4, 1))
    d.moving(d.at(18), d.at(18.75), ["pir-kit"], gap=(2, 5))  # dinner
    d.kettle(d.at(18) + 5 * m)
    d.contact("cupboard", d.at(18) + 8 * m)
    d.moving(d.at(18.75), d.at(21.1), rooms, (8, 1, 1), gap=(8, 20))  # television
    bedtime = d.at(21.5) + d.jitter(10)
    d.scripting = True
    d.motion("pir-bath", bedtime - 20 * m)
    d.motion("pir-bath", bedtime - 16 * m)
    d.motion("pir-bed", bedtime - 8 * m)
    d.put("bed", 1.0, bedtime)
    d.scripting = False
    d.quiet.append((bedtime - 21 * m, bedtime))
    for o in plan.outings:
        leave, back = d.at(o.start), d.at(o.start + o.hours)
        last = max((s for _, s, _ in o.back), default=0)
        d.quiet.append((leave - 3 * m, back + timedelta(seconds=last) + 3 * m))
        d.scripting = True  # a last motion on the way to the door, its re-arm after it
        d.put("pir-liv", 1.0, leave - m)
        d.put("pir-liv", 0.0, leave + 0.5 * m)
        d.scripting = False
        d.door_at(leave, ())
        d.door_at(back, o.back)
    d.scripted += [_reading(dev, v, d.at(hour)) for dev, hour, v in plan.extra]
    return d.readings()


def heartbeats(devices: Sequence[PlacedDevice], end: datetime) -> list[Reading]:
    """Battery reports every 30 min (the kettle's mains plug: a heartbeat every 15 min)."""
    out: list[Reading] = []
    for k, dev in enumerate(devices):
        mains = dev.kind == "power_plug"
        every = timedelta(minutes=15 if mains else 30)
        t = DAY0 + timedelta(minutes=2 * k + 1)
        while t <= end:
            metric = "heartbeat" if mains else "battery"
            out.append(_reading(dev.device_id, 1.0 if mains else 85.0, t, metric))
            t += every
    return out


@dataclass(frozen=True, slots=True)
class Home:
    """A scenario's home: its devices and, optionally, one that died at some instant."""

    devices: tuple[PlacedDevice, ...] = FULL
    dead: tuple[str, datetime] | None = None

    def layout(self) -> Layout:
        return Layout(self.devices, {H: "Asia/Shanghai"})

    def stream(self, plans: dict[int, Plan], end: datetime) -> list[Reading]:
        ids = {d.device_id for d in self.devices}
        out = heartbeats(self.devices, end)
        for day in range(DAYS):
            out += day_readings(day, plans[day] if day in plans else routine_plan(day))
        out = [x for x in out if x.device_id in ids]
        if self.dead is not None:  # nothing at all from it, not even its battery
            device, since = self.dead
            out = [x for x in out if x.device_id != device or x.ts < since]
        return sorted(out, key=lambda x: (x.ts, x.seq))


class _Probe:
    """The detector set, noting the learned detector's context for the home at `at`."""

    def __init__(self, detectors: DetectorSet, at: datetime) -> None:
        self.detectors = detectors
        self.at = at
        learned = detectors.find(LearnedDetector)
        assert learned is not None
        self.learned = learned
        self.ctx: int | None = None

    def observe(self, reading: Reading) -> list[Signal]:
        return self.detectors.observe(reading)

    def advance(self, now: datetime) -> list[Signal]:
        if self.ctx is None and now >= self.at:
            self.ctx = int(self.learned.ctx[self.learned.home(H)])
        return self.detectors.advance(now)


@dataclass(frozen=True, slots=True)
class Outcome:
    signals: list[Signal]
    ctx: int
    hits: list[Signal]  # wellbeing alerts of a collapse in (T, since + 12 h]

    def explain(self, t: datetime) -> str:
        near = [
            f"{s.kind} at {s.event_at.astimezone(TZ):%m-%d %H:%M} ({s.summary})"
            for s in self.signals
            if s.category is Category.WELLBEING and s.event_at >= t - timedelta(hours=6)
        ]
        return f"context at T: {CONTEXTS[self.ctx]}; wellbeing signals from T-6h: {near}"


def run(
    plans: dict[int, Plan],
    t: datetime,
    *,
    collapse: bool = True,
    home: Home = Home(),
    since: datetime | None = None,
) -> Outcome:
    """The routine with `plans`, the elder collapsing at `t` (every activity reading after it
    dropped; heartbeats go on) unless `collapse` is False; run to 12 h after `since` (T)."""
    end = (since or t) + BOUND
    stream = [x for x in home.stream(plans, end) if x.ts <= end]
    if collapse:
        stream = [x for x in stream if x.ts <= t or x.metric in ("battery", "heartbeat")]
    probe = _Probe(default_detectors(home.layout()), t)
    signals = run_offline(probe, stream, step=timedelta(minutes=1), until=end)
    assert probe.ctx is not None
    hits = [
        s
        for s in signals
        if s.category is Category.WELLBEING and s.kind in ALERT_KINDS and t < s.event_at <= end
    ]
    return Outcome(signals, probe.ctx, hits)


S = LEARN_DAYS  # the scenario's day
NO_OUTING = Plan()


def _alerted(o: Outcome, t: datetime) -> None:
    assert o.hits, f"no collapse alert within 12 h of T={t.astimezone(TZ)}: {o.explain(t)}"


def _quiet(o: Outcome, t: datetime) -> None:
    assert o.hits == [], f"control raised a collapse alert: {o.explain(t)}"


# -- 1. up and about ---------------------------------------------------------------------------
UP_AND_ABOUT = local(S, 10 + 20 / 60)  # 10:20, moving between the rooms


def test_up_and_about() -> None:
    o = run({S: NO_OUTING}, UP_AND_ABOUT)
    assert o.ctx == HOME, o.explain(UP_AND_ABOUT)
    _alerted(o, UP_AND_ABOUT)


def test_up_and_about_control() -> None:
    _quiet(run({S: NO_OUTING}, UP_AND_ABOUT, collapse=False), UP_AND_ABOUT)


# -- 2. seated ---------------------------------------------------------------------------------
SEATED_AT = local(S, 15)  # in the armchair since ~14:00


def test_seated() -> None:
    o = run({S: NO_OUTING}, SEATED_AT)
    assert o.ctx == SEATED, o.explain(SEATED_AT)
    _alerted(o, SEATED_AT)


def test_seated_control() -> None:
    _quiet(run({S: NO_OUTING}, SEATED_AT, collapse=False), SEATED_AT)


# -- 3. asleep ---------------------------------------------------------------------------------
ASLEEP_AT = local(S + 1, 1)  # 01:00, in bed since ~21:30, never gets up


def test_asleep() -> None:
    o = run({S: NO_OUTING, S + 1: NO_OUTING}, ASLEEP_AT)
    assert o.ctx == ASLEEP, o.explain(ASLEEP_AT)
    _alerted(o, ASLEEP_AT)


def test_asleep_control() -> None:
    _quiet(run({S: NO_OUTING, S + 1: NO_OUTING}, ASLEEP_AT, collapse=False), ASLEEP_AT)


# -- 4. out ------------------------------------------------------------------------------------
_DOOR_CLOSE = timedelta(seconds=8)
OUT_MORNING = Plan(outings=(Outing(9.0, 2.0),))
OUT_EVENING = Plan(outings=(Outing(19.0, 1.5),))


def test_out_in_the_morning_never_back() -> None:
    """Out by the door at 09:00, never seen again: `not_back` within 12 h of leaving."""
    leave = local(S, 9)
    o = run({S: OUT_MORNING}, leave + _DOOR_CLOSE, since=leave)
    assert o.ctx == OUT, o.explain(leave)
    _alerted(o, leave)
    assert "not_back" in [s.kind for s in o.hits], o.explain(leave)


def test_out_in_the_morning_control() -> None:
    leave = local(S, 9)
    _quiet(run({S: OUT_MORNING}, leave + _DOOR_CLOSE, collapse=False, since=leave), leave)


def test_out_in_the_evening_not_back_by_night() -> None:
    """Out at 19:00 and not back: `not_back` by night (before midnight), within 12 h."""
    leave = local(S, 19)
    o = run({S: OUT_EVENING}, leave + _DOOR_CLOSE, since=leave)
    assert o.ctx == OUT, o.explain(leave)
    _alerted(o, leave)
    first = o.hits[0]
    assert first.kind == "not_back", o.explain(leave)
    assert first.event_at <= local(S + 1, 0), o.explain(leave)


def test_out_in_the_evening_control() -> None:
    leave = local(S, 19)
    _quiet(run({S: OUT_EVENING}, leave + _DOOR_CLOSE, collapse=False, since=leave), leave)


# -- 5. unconfirmed return ---------------------------------------------------------------------
RETURNS: dict[str, Script] = {
    "one motion": (("pir-liv", 30, 1.0),),
    "motion and re-arm": (("pir-liv", 30, 1.0), ("pir-liv", 120, 0.0)),
    "two motions, one pir": (("pir-liv", 30, 1.0), ("pir-liv", 300, 1.0)),
    "two rooms far apart": (("pir-kit", 60, 1.0), ("pir-liv", 1200, 1.0)),
}


def _unconfirmed(script: Script) -> tuple[Plan, datetime]:
    """Out at 10:00 for 2 h; back by the door at 12:00, then only `script`; T its last."""
    plan = Plan(outings=(Outing(10.0, 2.0, script),))
    return plan, local(S, 12) + timedelta(seconds=max(s for _, s, _ in script))


@pytest.mark.parametrize("script", RETURNS.values(), ids=RETURNS.keys())
def test_unconfirmed_return(script: Script) -> None:
    plan, t = _unconfirmed(script)
    o = run({S: plan}, t)
    _alerted(o, t)


@pytest.mark.parametrize("script", RETURNS.values(), ids=RETURNS.keys())
def test_unconfirmed_return_control(script: Script) -> None:
    """The same return, then the day goes on as usual: nothing raised."""
    plan, t = _unconfirmed(script)
    _quiet(run({S: plan}, t, collapse=False), t)


# -- 6. just after a visitor left --------------------------------------------------------------
AFTER_VISIT: dict[str, Script] = {
    "nothing after the door": (),
    "one motion": (("pir-liv", 40, 1.0),),
    "two rooms": (("pir-liv", 20, 1.0), ("pir-kit", 50, 1.0)),
}
VISITOR_LEFT = local(S, 16) + _DOOR_CLOSE + timedelta(minutes=1)  # door closed + 1 min


@pytest.mark.parametrize("script", AFTER_VISIT.values(), ids=AFTER_VISIT.keys())
def test_just_after_a_visitor_left(script: Script) -> None:
    o = run({S: Plan(visitor=script)}, VISITOR_LEFT)
    _alerted(o, VISITOR_LEFT)


@pytest.mark.parametrize("script", AFTER_VISIT.values(), ids=AFTER_VISIT.keys())
def test_just_after_a_visitor_left_control(script: Script) -> None:
    _quiet(run({S: Plan(visitor=script)}, VISITOR_LEFT, collapse=False), VISITOR_LEFT)


# -- 7. no bedroom sensor ----------------------------------------------------------------------
NO_BED = Home(NO_BEDROOM)
NIGHTS: dict[str, tuple[dict[int, Plan], datetime]] = {
    "23:00 in bed": ({S: NO_OUTING, S + 1: NO_OUTING}, local(S, 23)),
    "02:00 in bed": ({S: NO_OUTING, S + 1: NO_OUTING}, local(S + 1, 2)),
    "02:00 after the toilet": ({S: NO_OUTING, S + 1: Plan(toilet=1.85)}, local(S + 1, 2)),
}


@pytest.mark.parametrize(("plans", "t"), NIGHTS.values(), ids=NIGHTS.keys())
def test_no_bedroom_sensor(plans: dict[int, Plan], t: datetime) -> None:
    _alerted(run(plans, t, home=NO_BED), t)


@pytest.mark.parametrize(("plans", "t"), NIGHTS.values(), ids=NIGHTS.keys())
def test_no_bedroom_sensor_control(plans: dict[int, Plan], t: datetime) -> None:
    _quiet(run(plans, t, home=NO_BED, collapse=False), t)


# -- 8. a dead sensor --------------------------------------------------------------------------
DEAD_AT = local(S, 10 + 20 / 60)  # 10:20, just walked into the kitchen
DEAD = Home(dead=("pir-liv", DEAD_AT - timedelta(days=2)))
IN_KITCHEN = Plan(extra=(("pir-kit", 10 + 19 / 60, 1.0),))


def test_dead_sensor() -> None:
    """The living-room PIR went silent two days ago (no battery report either); the elder
    collapses in the kitchen: alerted within 12 h, and the PIR is a technical alert."""
    o = run({S: IN_KITCHEN}, DEAD_AT, home=DEAD)
    _alerted(o, DEAD_AT)
    silent = [s for s in o.signals if s.kind == "device_silent"]
    assert [s.device_id for s in silent] == ["pir-liv"]
    assert silent[0].category is Category.TECHNICAL


def test_dead_sensor_control() -> None:
    _quiet(run({S: IN_KITCHEN}, DEAD_AT, home=DEAD, collapse=False), DEAD_AT)


def test_scenario_streams_are_the_routine_cut_at_t() -> None:
    """The collapse is the control's stream cut at T: same readings up to T, only heartbeats
    after it."""
    plans = {S: NO_OUTING}
    full = Home().stream(plans, UP_AND_ABOUT + BOUND)
    assert {x.device_id for x in full} == {d.device_id for d in FULL}
    assert all(x.ts.tzinfo is UTC for x in full)
    again = Home().stream(plans, UP_AND_ABOUT + BOUND)
    key = [(x.device_id, x.ts, x.metric, x.value) for x in full]
    assert key == [(x.device_id, x.ts, x.metric, x.value) for x in again]
