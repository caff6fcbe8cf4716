"""Today against the elder's usual (alerts.usual): pure, on synthetic days of readings."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from alerts.usual import (
    USUAL_DAYS,
    Comparison,
    Event,
    day_stats,
    out_spans,
    sentence,
    usual_of,
)

TZ = ZoneInfo("Asia/Shanghai")
TODAY = date(2025, 3, 20)


def at(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=TZ)


def a_day(day: date, up: tuple[int, int] = (7, 0), out: bool = False) -> list[Event]:
    """Bed from 21:30 the evening before, a night visit to the bathroom at 02:00, up at
    `up`, then kitchen, living room, bathroom every half hour until 11:00."""
    ev = [
        Event(at(day - timedelta(days=1), 21, 30), "bed_mat", "bedroom", 1.0),
        Event(at(day, 2, 0), "bed_mat", "bedroom", 0.0),
        Event(at(day, 2, 3), "pir_motion", "bathroom", 1.0),
        Event(at(day, 2, 10), "bed_mat", "bedroom", 1.0),
        Event(at(day, *up), "bed_mat", "bedroom", 0.0),
    ]
    t = at(day, *up) + timedelta(minutes=2)
    rooms = ("bathroom", "kitchen", "living room")
    i = 0
    while t < at(day, 11, 0):
        ev.append(Event(t, "pir_motion", rooms[i % 3], 1.0))
        t += timedelta(minutes=30)
        i += 1
    if out:
        ev += [
            Event(at(day, 9, 40), "door_contact", "hall", 1.0),
            Event(at(day, 9, 40) + timedelta(seconds=5), "door_contact", "hall", 0.0),
            Event(at(day, 10, 50), "door_contact", "hall", 1.0),
        ]
        ev = [
            e for e in ev if not (at(day, 9, 40) < e.ts < at(day, 10, 51)) or e.kind != "pir_motion"
        ]
    return sorted(ev, key=lambda e: e.ts)


def history(today_up: tuple[int, int], now: datetime, out: bool = False) -> Comparison:
    days = [TODAY - timedelta(days=n) for n in range(USUAL_DAYS, 0, -1)]
    events = [e for d in days for e in a_day(d, (7, (d.day * 7) % 20))]
    events += [e for e in a_day(TODAY, today_up, out) if e.ts < now]
    events.sort(key=lambda e: e.ts)
    cut = now.astimezone(TZ).time()
    before = [day_stats(events, d, TZ, cut, now) for d in days]
    return Comparison(
        day_stats(events, TODAY, TZ, cut, now), usual_of(before, TZ), 14, "Asia/Shanghai"
    )


def test_up_is_the_bed_left_for_the_day_not_the_night_visit() -> None:
    now = at(TODAY, 10, 0)
    s = day_stats(a_day(TODAY, (7, 12)), TODAY, TZ, now.time(), now)
    assert s.up_at == at(TODAY, 7, 12)
    assert s.rooms == 3
    assert s.sleep_h == round((9.5 * 60 + 12 - 10) / 60, 1)


def test_as_usual_in_english_and_chinese() -> None:
    now = at(TODAY, 10, 0)
    cmp = history((7, 12), now)
    assert cmp.usual is not None
    assert sentence(cmp, now, "en") == "Up at 07:12 as usual; 3 rooms used this morning."
    assert sentence(cmp, now, "zh") == "07:12 起床，与平时一样；上午用了 3 个房间。"


def test_later_than_usual_says_so_and_the_usual_time() -> None:
    now = at(TODAY, 10, 30)
    text = sentence(history((8, 40), now), now, "en")
    assert text.startswith("Up at 08:40, later than usual (07:")


def test_not_seen_getting_up_past_the_usual_time() -> None:
    now = at(TODAY, 8, 45)
    cmp = history((9, 30), now)  # still in bed at 08:45
    assert cmp.today.up_at is None
    assert sentence(cmp, now, "en").startswith("Not seen getting up yet (usually 07:")


def test_an_outing_is_counted_and_said() -> None:
    now = at(TODAY, 11, 30)
    cmp = history((7, 0), now, out=True)
    assert cmp.today.outings == 1
    assert "went out once" in sentence(cmp, now, "en")
    assert "出门 1 次" in sentence(cmp, now, "zh")


def test_the_front_door_then_movement_at_once_is_not_an_outing() -> None:
    ev = [
        Event(at(TODAY, 9, 0), "door_contact", "hall", 1.0),
        Event(at(TODAY, 9, 2), "pir_motion", "hall", 1.0),
    ]
    assert out_spans(ev, at(TODAY, 0), at(TODAY, 12)) == []
    # Still no sign of anyone 10 minutes later, at the end of what was read: out until then.
    assert out_spans(ev[:1], at(TODAY, 0), at(TODAY, 9, 30)) == [(at(TODAY, 9), at(TODAY, 9, 30))]


def test_learning_until_three_days() -> None:
    now = at(TODAY, 10, 0)
    events = a_day(TODAY - timedelta(days=1)) + a_day(TODAY)
    days = [day_stats(events, TODAY - timedelta(days=n), TZ, now.time(), now) for n in (2, 1)]
    assert usual_of(days, TZ) is None
    cmp = Comparison(day_stats(events, TODAY, TZ, now.time(), now), None, 1, "Asia/Shanghai")
    assert sentence(cmp, now, "en") == "Up at 07:00; 3 rooms used this morning."


def test_no_readings_today() -> None:
    now = at(TODAY, 6, 0)
    cmp = Comparison(day_stats([], TODAY, TZ, now.time(), now), None, 0, "Asia/Shanghai")
    assert sentence(cmp, now, "zh") == "今天还没有数据。"
