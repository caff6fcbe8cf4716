"""What the family page shows, as pure functions of an elder's readings: where they are
(home / out / asleep), their last activity, a daily summary, and the day as an SVG timeline."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

from alerts.detect.layout import classify, is_activity
from gateway.queries.readings import Event

OUT_AFTER = timedelta(minutes=10)
"""No motion for this long after the front door moved means the elder went out."""
STALE_AFTER = timedelta(hours=24)
"""Without any reading for this long, where the elder is is unknown."""


class Presence(enum.StrEnum):
    """Where the elder probably is."""

    HOME = "home"
    OUT = "out"
    ASLEEP = "asleep"
    UNKNOWN = "unknown"


def _is_activity(e: Event) -> bool:
    """A sign of life as the detectors count one (`alerts.detect.layout.is_activity`): any
    reading of a motion sensor (seen, or rearming 10-30 s after), a door, the bed, a chair,
    a button, a flush..., not housekeeping (heartbeat, battery) nor a measurement."""
    return is_activity(classify(e.kind, e.room).role, e.metric)


def presence(latest: Sequence[Event], now: datetime) -> Presence:
    """A simple rule on the latest door, motion and bed readings:

    asleep when the bed is occupied and no motion came after the elder lay down; out when the
    door moved, no motion came after it, and that was over `OUT_AFTER` ago; home when there
    was any other recent activity; unknown when nothing came in `STALE_AFTER`."""
    recent = [e for e in latest if now - e.ts <= STALE_AFTER]
    moving = ("pir_motion", "sos_button")  # a button press is someone at home, too
    # Of each device only its latest reading is here: a motion sensor's is mostly its rearming
    # (0, 10-30 s after the motion), which is as recent a sign of movement as the motion.
    motion = max((e.ts for e in recent if e.kind in moving and _is_activity(e)), default=None)
    beds = [e for e in recent if e.kind == "bed_mat"]
    doors = [e for e in recent if e.kind == "door_contact"]
    bed = max(beds, key=lambda e: e.ts, default=None)
    door = max((e.ts for e in doors), default=None)
    if bed is not None and bed.value >= 1.0 and (motion is None or motion <= bed.ts):
        return Presence.ASLEEP
    if door is not None and (motion is None or motion < door) and now - door >= OUT_AFTER:
        return Presence.OUT
    if motion is not None or bed is not None or door is not None:
        return Presence.HOME
    return Presence.UNKNOWN


@dataclass(frozen=True, slots=True)
class LastActivity:
    """The most recent sign of life and where it was."""

    at: datetime
    room: str
    kind: str


def last_activity(latest: Sequence[Event]) -> LastActivity | None:
    """The latest sign of life (`_is_activity`: what ends a silence for the detectors, so
    it agrees with the day summary's `last_activity` and the inactivity alerts)."""
    active = [e for e in latest if _is_activity(e)]
    if not active:
        return None
    e = max(active, key=lambda x: x.ts)
    return LastActivity(e.ts, e.room, e.kind)


def temperature(latest: Sequence[Event]) -> float | None:
    """The latest indoor temperature, in °C."""
    temps = [e for e in latest if e.kind == "temperature" and e.metric == "temperature"]
    return max(temps, key=lambda e: e.ts).value if temps else None


@dataclass(frozen=True, slots=True)
class DaySummary:
    """One day in numbers."""

    first_activity: datetime | None
    last_activity: datetime | None
    motion_events: int
    rooms_visited: int
    door_openings: int
    hours_in_bed: float
    temperature_min: float | None
    temperature_max: float | None


def _bed_intervals(
    events: Sequence[Event], start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """Occupied-bed intervals within [start, end) from the day's bed readings."""
    out: list[tuple[datetime, datetime]] = []
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


def summarise(events: Sequence[Event], start: datetime, end: datetime) -> DaySummary:
    """The day [start, end) from its readings (oldest first)."""
    active = [e for e in events if _is_activity(e)]
    motion = [e for e in events if e.kind == "pir_motion" and e.value >= 1.0]
    temps = [e.value for e in events if e.kind == "temperature"]
    bed = sum((b - a).total_seconds() for a, b in _bed_intervals(events, start, end))
    return DaySummary(
        first_activity=active[0].ts if active else None,
        last_activity=active[-1].ts if active else None,
        motion_events=len(motion),
        rooms_visited=len({e.room for e in motion}),
        door_openings=sum(1 for e in events if e.kind == "door_contact" and e.value >= 1.0),
        hours_in_bed=round(bed / 3600, 1),
        temperature_min=min(temps) if temps else None,
        temperature_max=max(temps) if temps else None,
    )


_COLOURS = {
    "pir_motion": "#1f5fbf",
    "door_contact": "#9a5b00",
    "bed_mat": "#6b4fa8",
    "sos_button": "#b42318",
}


def timeline_svg(
    events: Sequence[Event],
    start: datetime,
    label: Callable[[str], str],
    *,
    width: int = 560,
) -> str:
    """The day starting `start` (local midnight) as an SVG: one row per room and device kind,
    ticks for motion, door and button, bars for time in bed. `label` translates words."""
    end = start + timedelta(days=1)
    rows: list[tuple[str, str]] = []
    for e in events:
        key = (e.kind, e.room)
        if e.kind in _COLOURS and key not in rows:
            rows.append(key)
    rows.sort(key=lambda k: (list(_COLOURS).index(k[0]), k[1]))
    narrow = width < 500
    left, top, row_h = (92 if narrow else 120), 22, 26
    step = 6 if narrow else 3
    plot_w = width - left - 18  # room for the last hour's label
    height = top + row_h * max(len(rows), 1) + 8
    day_s = 86400.0

    def x(at: datetime) -> float:
        return left + plot_w * min(max((at - start).total_seconds() / day_s, 0.0), 1.0)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}"'
        f' width="100%" font-family="sans-serif" role="img"'
        f' aria-label="{escape(label("timeline"))}" class="timeline">'
    ]
    for hour in range(0, 25, step):
        hx = left + plot_w * hour / 24
        parts.append(
            f'<line x1="{hx:.1f}" y1="{top - 4}" x2="{hx:.1f}" y2="{height - 6}" stroke="#dde1e7"/>'
            f'<text x="{hx:.1f}" y="{top - 8}" font-size="11" text-anchor="middle"'
            f' fill="#5c6575">{hour:02d}:00</text>'
        )
    if not rows:
        parts.append(
            f'<text x="{left}" y="{top + 17}" font-size="13" fill="#5c6575">'
            f"{escape(label('no_readings'))}</text>"
        )
    for i, (kind, room) in enumerate(rows):
        y = top + i * row_h
        name = f"{label(room) if room else ''} · {label(kind)}".strip(" ·")
        if narrow and len(name) > 14:
            name = label(room) if room and kind == "pir_motion" else name[:13] + "…"
        parts.append(
            f'<text x="{left - 6}" y="{y + 17}" font-size="12" text-anchor="end"'
            f' fill="#1d2330">{escape(name)}</text>'
        )
        colour = _COLOURS[kind]
        mine = [e for e in events if e.kind == kind and e.room == room]
        if kind == "bed_mat":
            for a, b in _bed_intervals(mine, start, end):
                parts.append(
                    f'<rect x="{x(a):.1f}" y="{y + 6}" width="{max(x(b) - x(a), 1.0):.1f}"'
                    f' height="14" rx="3" fill="{colour}" opacity="0.55"/>'
                )
        else:
            for e in mine:
                if e.value >= 1.0:
                    parts.append(
                        f'<rect x="{x(e.ts) - 1:.1f}" y="{y + 4}" width="2.5" height="18"'
                        f' fill="{colour}"/>'
                    )
    parts.append("</svg>")
    return "".join(parts)
