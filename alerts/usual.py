"""An elder's day against their usual, from the home's readings: when they got up, how
much they moved, how many rooms they used, how long they were in bed last night and how
often they went out, today so far and on the previous days at the same time of day.

"Usual" is the median of the last `USUAL_DAYS` days that have readings (at least
`MIN_DAYS`), each cut at today's time of day, so a morning is compared with mornings. It is
computed from the stored readings rather than from the detector's learned state, which
keeps bounds for alarms (the latest usual wake-up), not typical values. Used by the family
page and the daily summary (`alerts.digest`); one plain sentence in English or Chinese.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import psycopg

from alerts.detect.layout import METER_METRICS, NON_ACTIVITY_METRICS, Role, classify

Conn = psycopg.AsyncConnection[Any]

USUAL_DAYS = 14
"""How many previous days make the usual."""
MIN_DAYS = 3
"""Fewer days with readings than this: no usual yet."""
OUT_AFTER = timedelta(minutes=10)
"""No sign of anyone at home for this long after the front door moved: the elder went out."""
UP_FROM = time(4, 0)
"""A bed left before this time of night is a night visit, not getting up."""
UP_STAYS = timedelta(minutes=30)
"""Out of bed for at least this long after `UP_FROM`: up for the day."""
NIGHT_FROM = time(18, 0)
"""Last night's sleep is counted from this time of the evening before until noon."""
UP_WITHOUT_BED = time(5, 0)
"""In a home without a bed sensor: the first movement outside the bedroom from this time."""
KINDS = ("pir_motion", "door_contact", "bed_mat", "sos_button")
"""The device kinds the day is read from."""


class Sample(Protocol):
    """A reading with its device's kind and room (gateway and alerts rows both fit)."""

    @property
    def ts(self) -> datetime: ...
    @property
    def kind(self) -> str: ...
    @property
    def room(self) -> str: ...
    @property
    def value(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Event:
    """One reading of a home's motion, door, bed or SOS device."""

    ts: datetime
    kind: str
    room: str
    value: float


Span = tuple[datetime, datetime]


def _home_sign(e: Sample) -> bool:
    """Someone is at home: motion, a button pressed, the bed changing."""
    if e.kind == "bed_mat":
        return True
    return e.kind in ("pir_motion", "sos_button") and e.value >= 1.0


def _entry_door(e: Sample) -> bool:
    """The front door (a door contact in the hall or entrance), not a cupboard's."""
    return e.kind == "door_contact" and classify(e.kind, e.room).role is Role.ENTRY_DOOR


def bed_spans(events: Sequence[Sample], start: datetime, end: datetime) -> list[Span]:
    """Occupied-bed spans within [start, end) (events oldest first)."""
    out: list[Span] = []
    since: datetime | None = None
    for e in events:
        if e.kind != "bed_mat":
            continue
        if e.value >= 1.0 and since is None:
            since = e.ts
        elif e.value < 1.0 and since is not None:
            out.append((since, e.ts))
            since = None
    if since is not None:
        out.append((since, end))
    return [(max(a, start), min(b, end)) for a, b in out if b > start and a < end]


def out_spans(events: Sequence[Sample], start: datetime, end: datetime) -> list[Span]:
    """Out-of-home spans within [start, end): from a front-door event followed by no sign
    of anyone at home for `OUT_AFTER`, until the next sign (or `end`)."""
    spans: list[Span] = []
    next_sign: datetime | None = None
    for e in reversed(events):  # newest first: the next sign after each door is known
        if _entry_door(e) and e.ts < end:
            back = next_sign if next_sign is not None else end
            if back - e.ts >= OUT_AFTER or (next_sign is None and end - e.ts >= OUT_AFTER):
                spans.append((e.ts, min(back, end)))
        if _home_sign(e):
            next_sign = e.ts
    merged: list[Span] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return [(max(a, start), min(b, end)) for a, b in merged if b > start and a < end]


@dataclass(frozen=True, slots=True)
class DayStats:
    """One local day up to a time of day."""

    day: date
    up_at: datetime | None
    movements: int
    rooms: int
    sleep_h: float | None
    """Hours in bed from the evening before until noon; None without a bed sensor."""
    outings: int
    has_data: bool


def day_stats(
    events: Sequence[Sample], day: date, tz: ZoneInfo, cut: time, now: datetime
) -> DayStats:
    """Stats of local `day` from its readings (oldest first; the evening before included),
    counted up to time of day `cut` (and never past `now`)."""
    midnight = datetime.combine(day, time(), tzinfo=tz)
    until = min(datetime.combine(day, cut, tzinfo=tz), now)
    if cut == time(23, 59, 59, 999999):
        until = min(midnight + timedelta(days=1), now)
    today = [e for e in events if midnight <= e.ts < until]
    motion = [e for e in today if e.kind == "pir_motion" and e.value >= 1.0]
    night_start = datetime.combine(day - timedelta(days=1), NIGHT_FROM, tzinfo=tz)
    night_end = min(datetime.combine(day, time(12, 0), tzinfo=tz), until)
    has_bed = any(e.kind == "bed_mat" for e in events if night_start <= e.ts < night_end)
    beds = bed_spans(events, night_start, night_end) if has_bed else []
    up_from = datetime.combine(day, UP_FROM, tzinfo=tz)
    up_at: datetime | None = None
    if has_bed:
        for i, (_, b) in enumerate(beds):
            if b < up_from or b >= night_end:
                continue
            later = beds[i + 1][0] if i + 1 < len(beds) else until
            if later - b >= UP_STAYS:
                up_at = b
                break
    else:
        first = datetime.combine(day, UP_WITHOUT_BED, tzinfo=tz)
        up_at = next((e.ts for e in motion if e.ts >= first and e.room != "bedroom"), None)
    return DayStats(
        day=day,
        up_at=up_at,
        movements=len(motion),
        rooms=len({e.room for e in motion}),
        sleep_h=round(sum((b - a).total_seconds() for a, b in beds) / 3600, 1) if has_bed else None,
        outings=len(out_spans(today, midnight, until)),
        has_data=bool(today),
    )


@dataclass(frozen=True, slots=True)
class Usual:
    """The median of the previous days with readings, cut at the same time of day."""

    days: int
    up_min: float | None
    """Minutes after local midnight."""
    movements: float
    rooms: float
    sleep_h: float | None
    outings: float


def _median(values: Iterable[float | None]) -> float | None:
    found = [v for v in values if v is not None]
    return statistics.median(found) if found else None


def usual_of(days: Sequence[DayStats], tz: ZoneInfo) -> Usual | None:
    """The usual of `days` (those with readings); None when fewer than `MIN_DAYS`."""
    seen = [d for d in days if d.has_data]
    if len(seen) < MIN_DAYS:
        return None

    def minutes(at: datetime | None) -> float | None:
        if at is None:
            return None
        local = at.astimezone(tz)
        return local.hour * 60 + local.minute + local.second / 60

    return Usual(
        days=len(seen),
        up_min=_median(minutes(d.up_at) for d in seen),
        movements=float(statistics.median(d.movements for d in seen)),
        rooms=float(statistics.median(d.rooms for d in seen)),
        sleep_h=_median(d.sleep_h for d in seen),
        outings=float(statistics.median(d.outings for d in seen)),
    )


@dataclass(frozen=True, slots=True)
class Comparison:
    """Today so far and the usual at this time of day (None while learning)."""

    today: DayStats
    usual: Usual | None
    days_seen: int
    """How many of the previous `USUAL_DAYS` days have readings."""
    tz: str


async def events(conn: Conn, home_id: str, start: datetime, end: datetime) -> list[Event]:
    """The motion, door, bed and SOS readings of a home in [start, end), oldest first
    (motion only when seen: a 'clear' tells nothing here; no heartbeats or batteries)."""
    cur = await conn.execute(
        "SELECT r.ts, d.kind, coalesce(d.room, ''), r.value FROM readings r"
        " JOIN devices d ON d.id = r.device_id"
        " WHERE r.home_id = %s AND r.ts >= %s AND r.ts < %s AND d.kind = ANY(%s)"
        " AND r.metric <> ALL(%s) AND (d.kind <> 'pir_motion' OR r.value >= 1)"
        " ORDER BY r.ts, r.device_id",
        (home_id, start, end, list(KINDS), sorted(NON_ACTIVITY_METRICS | METER_METRICS)),
    )
    return [Event(ts, str(k), str(room), float(v)) for ts, k, room, v in await cur.fetchall()]


async def compare(
    conn: Conn, home_id: str, tz_name: str, now: datetime, day: date | None = None
) -> Comparison:
    """`day` (default today, home time) up to now's time of day (the whole day when it is
    over) against the previous `USUAL_DAYS` days cut at the same time."""
    tz = ZoneInfo(tz_name)
    local_now = now.astimezone(tz)
    day = day or local_now.date()
    cut = local_now.time() if day == local_now.date() else time(23, 59, 59, 999999)
    first = day - timedelta(days=USUAL_DAYS)
    start = datetime.combine(first - timedelta(days=1), NIGHT_FROM, tzinfo=tz)
    end = min(datetime.combine(day + timedelta(days=1), time(), tzinfo=tz), now)
    rows = await events(conn, home_id, start, end)
    today = day_stats(rows, day, tz, cut, now)
    before = [day_stats(rows, first + timedelta(days=i), tz, cut, now) for i in range(USUAL_DAYS)]
    return Comparison(today, usual_of(before, tz), sum(1 for d in before if d.has_data), tz_name)


LATE_MIN = 30
"""Up within this many minutes of the usual time: "as usual"."""

_WORDS: dict[str, tuple[str, str]] = {
    # key: (English, Simplified Chinese)
    "up": ("Up at {t}", "{t} 起床"),
    "up_usual": ("Up at {t} as usual", "{t} 起床，与平时一样"),
    "up_late": ("Up at {t}, later than usual ({u})", "{t} 起床，比平时（{u}）晚"),
    "up_early": ("Up at {t}, earlier than usual ({u})", "{t} 起床，比平时（{u}）早"),
    "not_up": ("Not seen getting up yet (usually {u})", "还没有看到起床（平时 {u}）"),
    "rooms_morning": ("{n} rooms used this morning", "上午用了 {n} 个房间"),
    "room_morning": ("1 room used this morning", "上午用了 1 个房间"),
    "rooms_today": ("{n} rooms used today", "今天用了 {n} 个房间"),
    "room_today": ("1 room used today", "今天用了 1 个房间"),
    "less_active": ("less active than usual", "活动比平时少"),
    "more_active": ("more active than usual", "活动比平时多"),
    "went_out": ("went out {n} times", "出门 {n} 次"),
    "went_out_once": ("went out once", "出门 1 次"),
    "slept": ("{h} h in bed last night", "昨晚卧床 {h} 小时"),
    "no_data": ("No readings yet today", "今天还没有数据"),
}


def word(locale: str, key: str, **values: object) -> str:
    """One phrase of the sentence in `locale` ("zh" or English)."""
    en, zh = _WORDS[key]
    return (zh if locale == "zh" else en).format(**values)


def hhmm(minutes: float) -> str:
    """Minutes after midnight as "07:12"."""
    m = round(minutes) % (24 * 60)
    return f"{m // 60:02d}:{m % 60:02d}"


def sentence(cmp: Comparison, now: datetime, locale: str) -> str:
    """Today in one plain sentence ("Up at 07:12 as usual; 3 rooms used this morning")."""
    tz = ZoneInfo(cmp.tz)
    today, usual = cmp.today, cmp.usual
    if not today.has_data:
        return word(locale, "no_data") + ("。" if locale == "zh" else ".")
    parts: list[str] = []
    local_now = now.astimezone(tz)
    whole_day = today.day < local_now.date()
    if today.up_at is not None:
        local = today.up_at.astimezone(tz)
        t = local.strftime("%H:%M")
        if usual is None or usual.up_min is None:
            parts.append(word(locale, "up", t=t))
        else:
            diff = local.hour * 60 + local.minute - usual.up_min
            u = hhmm(usual.up_min)
            key = "up_usual" if abs(diff) <= LATE_MIN else ("up_late" if diff > 0 else "up_early")
            parts.append(word(locale, key, t=t, u=u))
    elif (
        usual is not None
        and usual.up_min is not None
        and not whole_day
        and local_now.hour * 60 + local_now.minute > usual.up_min + 2 * LATE_MIN
    ):
        parts.append(word(locale, "not_up", u=hhmm(usual.up_min)))
    if today.rooms:
        when = "morning" if local_now.hour < 12 and not whole_day else "today"
        key = f"room_{when}" if today.rooms == 1 else f"rooms_{when}"
        parts.append(word(locale, key, n=today.rooms))
    if usual is not None and usual.movements >= 10:
        ratio = today.movements / usual.movements
        if ratio < 0.5:
            parts.append(word(locale, "less_active"))
        elif ratio > 1.6:
            parts.append(word(locale, "more_active"))
    if today.outings:
        key = "went_out_once" if today.outings == 1 else "went_out"
        parts.append(word(locale, key, n=today.outings))
    if not parts:
        parts.append(word(locale, "no_data"))
    if locale == "zh":
        return "；".join(parts) + "。"
    text = "; ".join(parts) + "."
    return text[0].upper() + text[1:]
