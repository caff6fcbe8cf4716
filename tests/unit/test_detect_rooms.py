"""Where a silence began, sitting down after leaving a room, and a night flagged in error
(alerts.detect.learned): each test shows the rule's effect against the same stream without it."""

from __future__ import annotations

import copy
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from alerts.detect.layout import Layout, PlacedDevice
from alerts.detect.learned import LearnedDetector
from alerts.detect.replay import run_offline
from alerts.detect.rules import Rules
from devices.payload import Reading

T0 = datetime(2026, 1, 5, 7, tzinfo=UTC)  # a Monday, 07:00 UTC (the homes' zone is UTC)
H = "h01"
_ROOMS = {"pir-liv": "living room", "pir-kit": "kitchen", "pir-bed": "bedroom"}
_CORE = [PlacedDevice(d, H, "pir_motion", room) for d, room in _ROOMS.items()] + [
    PlacedDevice("pir-bath", H, "pir_motion", "bathroom"),
    PlacedDevice("bed", H, "bed_mat", "bedroom"),
    PlacedDevice("door", H, "door_contact", "hall", entry=True),
    PlacedDevice("sos", H, "sos_pendant", "worn"),
]
COVERED = Layout(_CORE)
_seq = iter(range(1, 10**9))


def r(device: str, kind: str, metric: str, value: float, at: datetime) -> Reading:
    return Reading(H, device, kind, 0, next(_seq), at, metric, value)


def motion(at: datetime, device: str = "pir-liv", value: float = 1.0) -> Reading:
    return r(device, "pir_motion", "motion", value, at)


def no_room_rule() -> Rules:
    rules = Rules()
    return replace(rules, inactivity=replace(rules.inactivity, room_min_silences=10**9))


def rooms_routine(days: int, sit_hour: float = 9) -> list[Reading]:
    """Up at 07:00, bed at 22:00. In the living room, sits still 80 min from `sit_hour` (and
    moves every 10 min otherwise); in the kitchen, never still for more than 15 min."""
    rng = random.Random(5)
    out: list[Reading] = []
    for d in range(days):
        day = T0 + timedelta(days=d)
        out.append(r("bed", "bed_mat", "occupied", 0.0, day))
        t = day + timedelta(minutes=5)
        while t < day + timedelta(hours=15):
            hour = (t - day).total_seconds() / 3600 + 7
            if sit_hour <= hour < sit_hour + 0.1:
                out.append(motion(t))
                t += timedelta(minutes=80)  # the morning sit
                out.append(motion(t))
            room = "pir-kit" if int(hour) % 2 else "pir-liv"
            out.append(motion(t, room))
            gap = rng.uniform(6, 15) if room == "pir-kit" else 10
            t += timedelta(minutes=gap)
        out.append(r("bed", "bed_mat", "occupied", 1.0, day + timedelta(hours=15)))
    return sorted(out, key=lambda x: x.ts)


def _still_after(d: LearnedDetector, device: str, at: datetime, minutes: int) -> list[str]:
    d.observe(motion(at, device))
    return [s.kind for s in d.advance(at + timedelta(minutes=minutes))]


def test_layout_knows_whether_every_room_has_a_motion_sensor() -> None:
    assert COVERED.motion_covered(H)  # the SOS pendant ("worn") says nothing of rooms
    study = Layout([*_CORE, PlacedDevice("chair", H, "chair_mat", "study")])
    assert not study.motion_covered(H)
    assert not Layout([PlacedDevice("c", H, "contact", "kitchen")]).motion_covered(H)
    assert not COVERED.motion_covered("another home")


def test_silence_that_began_in_the_kitchen_is_judged_by_the_kitchen() -> None:
    """Kitchen silences were at most 15 min: one that began there is flagged at the 45 min
    floor, although an 80 min sit in the living room makes the 10:00 threshold long."""
    collapse = T0 + timedelta(days=8, hours=3, minutes=10)  # 10:10, in the kitchen
    before = [x for x in rooms_routine(9) if x.ts < collapse]
    d = LearnedDetector(COVERED)
    run_offline(d, before, tail=timedelta(0))
    assert _still_after(d, "pir-kit", collapse, 44) == []
    [s] = d.advance(collapse + timedelta(minutes=46))
    assert (s.kind, s.evidence["room"], s.evidence["context"]) == ("inactivity", "kitchen", "home")
    assert s.evidence["room_expected_max_s"] == 45 * 60
    # The same silence begun in the living room waits for the living room's own record.
    e = LearnedDetector(COVERED)
    run_offline(e, before, tail=timedelta(0))
    assert _still_after(e, "pir-liv", collapse, 100) == []
    # Without the rule, the kitchen silence waits for the hour's threshold (> 2 h).
    f = LearnedDetector(COVERED, no_room_rule())
    run_offline(f, before, tail=timedelta(0))
    assert _still_after(f, "pir-kit", collapse, 100) == []


def test_no_room_rule_where_a_room_has_no_motion_sensor() -> None:
    """A study with only a chair mat: a silence after the kitchen may be someone sitting in
    the study, unseen; the kitchen's record says nothing then."""
    layout = Layout([*_CORE, PlacedDevice("chair", H, "chair_mat", "study")])
    collapse = T0 + timedelta(days=8, hours=3, minutes=10)
    d = LearnedDetector(layout)
    run_offline(d, [x for x in rooms_routine(9) if x.ts < collapse], tail=timedelta(0))
    assert _still_after(d, "pir-kit", collapse, 100) == []


def test_room_records_survive_a_restart() -> None:
    d = LearnedDetector(COVERED)
    run_offline(d, rooms_routine(8), tail=timedelta(0))
    fresh = LearnedDetector(COVERED)
    fresh.restore(copy.deepcopy(d.export()), T0 + timedelta(days=8))
    assert fresh.export()[0].rooms == d.export()[0].rooms
    assert _still_after(fresh, "pir-kit", T0 + timedelta(days=8, hours=3), 46) == ["inactivity"]


def test_a_room_is_learned_by_the_part_of_the_day() -> None:
    """The living room's 80 min sit is after lunch (13:00): a silence that began there at
    10:10 is judged by the morning's own record (10 min: the 45 min floor), one at 13:10 by
    the sit's."""
    days = rooms_routine(9, sit_hour=13)
    morning = T0 + timedelta(days=8, hours=3, minutes=10)  # 10:10
    d = LearnedDetector(COVERED)
    run_offline(d, [x for x in days if x.ts < morning], tail=timedelta(0))
    assert _still_after(d, "pir-liv", morning, 44) == []
    [s] = d.advance(morning + timedelta(minutes=46))
    assert (s.kind, s.evidence["room"], s.evidence["room_expected_max_s"]) == (
        "inactivity",
        "living room",
        45 * 60,
    )
    afternoon = T0 + timedelta(days=8, hours=6, minutes=10)  # 13:10
    e = LearnedDetector(COVERED)
    run_offline(e, [x for x in days if x.ts < afternoon], tail=timedelta(0))
    assert _still_after(e, "pir-liv", afternoon, 100) == []


def test_room_records_saved_before_the_parts_hold_for_every_part() -> None:
    d = LearnedDetector(COVERED)
    run_offline(d, rooms_routine(8), tail=timedelta(0))
    [baseline] = copy.deepcopy(d.export())
    old = replace(baseline, rooms={"kitchen": [900.0, 30.0]}, room_parts={})  # one pair
    fresh = LearnedDetector(COVERED)
    fresh.restore([old], T0 + timedelta(days=8))
    assert fresh.export()[0].room_parts == {"kitchen": [900.0, 30.0] * 4}
    # What a build before the parts reads stays one pair per room: the day's longest, all.
    assert fresh.export()[0].rooms == {"kitchen": [900.0, 120.0]}
    # Saved with another number of parts: the whole-day pair; unreadable: left out.
    other = replace(
        baseline,
        rooms={"kitchen": [900.0, 30.0], "hall": [1.0]},
        room_parts={"kitchen": [60.0, 5.0] * 6},
    )
    again = LearnedDetector(COVERED)
    again.restore([other], T0 + timedelta(days=8))
    assert again.export()[0].room_parts == {"kitchen": [900.0, 30.0] * 4}
    # 15 min x 1.2 + 20 min = 38 min: the 45 min floor, at any time of the day.
    assert _still_after(fresh, "pir-kit", T0 + timedelta(days=8, hours=8), 46) == ["inactivity"]


SEAT = Layout(
    [*_CORE, PlacedDevice("chair", H, "chair_mat", "living room")],
)


def seated_days(days: int) -> list[Reading]:
    """Four hours a day in the armchair (08:00-12:00); moving every 15 min otherwise."""
    out: list[Reading] = []
    for d in range(days):
        day = T0 + timedelta(days=d)
        out.append(r("bed", "bed_mat", "occupied", 0.0, day))
        t = day + timedelta(minutes=5)
        while t < day + timedelta(hours=15):
            if not timedelta(hours=1) <= t - day < timedelta(hours=5):
                out.append(motion(t, "pir-kit" if t.minute < 30 else "pir-liv"))
            t += timedelta(minutes=15)
        out += [
            r("chair", "chair_mat", "occupied", 1.0, day + timedelta(hours=1)),
            r("chair", "chair_mat", "occupied", 0.0, day + timedelta(hours=5)),
            r("bed", "bed_mat", "occupied", 1.0, day + timedelta(hours=15)),
        ]
    return sorted(out, key=lambda x: x.ts)


def test_kitchen_pir_rearming_after_sitting_down_does_not_end_the_sit() -> None:
    """From the kitchen to the armchair: the kitchen PIR re-arms (motion 0) seconds after the
    elder sat down. The elder is still seated, and a long sit is no alert."""
    t = T0 + timedelta(days=8, hours=7)  # 14:00
    d = LearnedDetector(SEAT)
    run_offline(d, [x for x in seated_days(9) if x.ts < t], tail=timedelta(0))
    d.observe(motion(t, "pir-kit"))
    d.observe(motion(t + timedelta(seconds=40)))
    d.observe(r("chair", "chair_mat", "occupied", 1.0, t + timedelta(seconds=45)))
    d.observe(motion(t + timedelta(seconds=60), "pir-kit", 0.0))  # the re-arm
    assert d.advance(t + timedelta(hours=1, minutes=50)) == []
    # Motion in the kitchen (not a re-arm) is the elder up again: judged as up and about.
    t2 = t + timedelta(hours=1, minutes=55)
    d.observe(motion(t2, "pir-kit"))
    assert [s.kind for s in d.advance(t2 + timedelta(hours=1))] == ["inactivity"]


def routine_with_night_toilet(days: int, toilet_nights: int) -> list[Reading]:
    """In bed 22:00-07:00; living-room motion every 15 min by day; a 02:00 toilet visit on
    the first `toilet_nights` nights only."""
    out: list[Reading] = []
    for d in range(days):
        day = T0 + timedelta(days=d)
        out.append(r("bed", "bed_mat", "occupied", 0.0, day))
        t = day + timedelta(minutes=5)
        while t < day + timedelta(hours=15):
            out.append(motion(t))
            t += timedelta(minutes=15)
        out.append(r("bed", "bed_mat", "occupied", 1.0, day + timedelta(hours=15)))
        if d < toilet_nights:
            night = day + timedelta(hours=19)
            out += [
                r("bed", "bed_mat", "occupied", 0.0, night),
                motion(night + timedelta(minutes=1), "pir-bath"),
                r("bed", "bed_mat", "occupied", 1.0, night + timedelta(minutes=6)),
            ]
    return out


def test_a_flagged_night_that_ended_by_the_usual_wake_up_is_learned() -> None:
    """Eight nights with a 02:00 toilet visit, then nights without: the first such night is
    flagged (the silence at 03:00 is past what was seen), the elder gets up at 07:00 as every
    day, and that night is learned: the next one like it raises nothing."""
    d = LearnedDetector(COVERED)
    signals = run_offline(d, routine_with_night_toilet(11, 8), tail=timedelta(0))
    nights = [s for s in signals if s.evidence.get("context") == "asleep"]
    assert [(s.kind, s.event_at.day) for s in nights] == [("inactivity", 14)]
    assert signals == nights
    # Without the rule (a flagged silence going on > 1 h after its alert is never learned),
    # the same night is flagged again.
    rules = Rules()
    old = replace(rules, inactivity=replace(rules.inactivity, learn_night_to_usual_wake=False))
    e = LearnedDetector(COVERED, old)
    again = run_offline(e, routine_with_night_toilet(11, 8), tail=timedelta(0))
    assert [(s.kind, s.event_at.day) for s in again] == [("inactivity", 14), ("inactivity", 15)]


def test_first_days_by_day_a_fully_covered_home_waits_3_h_not_6() -> None:
    """Before anything is learned: 6 h in general, but 3 h by day where every room has a
    motion sensor and the elder is not seated; in the evening still 6 h."""
    morning = T0 + timedelta(hours=3)  # 10:00 on the first day
    d = LearnedDetector(COVERED)
    assert _still_after(d, "pir-kit", morning, 179) == []
    [s] = d.advance(morning + timedelta(hours=3, minutes=1))
    assert (s.kind, s.evidence["expected_max_s"]) == ("inactivity", 3 * 3600)
    evening = T0 + timedelta(hours=14)  # 21:00
    e = LearnedDetector(COVERED)
    assert _still_after(e, "pir-liv", evening, 5 * 60) == []
    study = Layout([*_CORE, PlacedDevice("chair", H, "chair_mat", "study")])
    f = LearnedDetector(study)
    assert _still_after(f, "pir-kit", morning, 5 * 60) == []
    assert [x.kind for x in f.advance(morning + timedelta(hours=6, minutes=1))] == ["inactivity"]


def test_a_visitor_leaving_then_six_events_inside_is_the_elder_at_home() -> None:
    """The entry door as a visitor leaves; the elder stays and makes six PIR events in six
    minutes (a slow elder doing chores), then collapses: back home, so inactivity is armed.
    With ten events needed the return is never confirmed: it falls back to home
    `unconfirmed_s` after the last activity (once the elder stayed 'out' for ever and the
    collapse was never flagged), so the collapse is flagged at the same time."""
    t = T0 + timedelta(hours=3)  # 10:00 on the first day
    stream = [motion(t), r("door", "door_contact", "open", 1.0, t + timedelta(minutes=1))]
    stream.append(r("door", "door_contact", "open", 0.0, t + timedelta(minutes=1, seconds=8)))
    for k in range(3):
        at = t + timedelta(minutes=3 + 2 * k)
        stream += [motion(at), motion(at + timedelta(seconds=20), value=0.0)]
    last = stream[-1].ts
    rules = Rules()
    ten = replace(rules, inactivity=replace(rules.inactivity, return_events=10))
    for detector, expected in (
        (LearnedDetector(COVERED), ["inactivity"]),
        (LearnedDetector(COVERED, ten), ["inactivity"]),
    ):
        signals = run_offline(detector, stream, tail=timedelta(hours=3, minutes=2))
        assert [s.kind for s in signals] == expected
        assert all(s.event_at - last <= timedelta(hours=3, minutes=1) for s in signals)
