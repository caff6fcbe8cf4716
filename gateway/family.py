"""What the family page shows, as pure functions of an elder's readings: where they are
(home / out / asleep), their last activity, a daily summary, and the day as an SVG timeline."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from alerts.detect.layout import classify, is_activity
from alerts.usual import bed_spans
from gateway import timeline
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


def summarise(events: Sequence[Event], start: datetime, end: datetime) -> DaySummary:
    """The day [start, end) from its readings (oldest first)."""
    active = [e for e in events if _is_activity(e)]
    motion = [e for e in events if e.kind == "pir_motion" and e.value >= 1.0]
    temps = [e.value for e in events if e.kind == "temperature"]
    bed = sum((b - a).total_seconds() for a, b in bed_spans(events, start, end))
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


def timeline_svg(
    events: Sequence[Event],
    start: datetime,
    label: Callable[[str], str],
    *,
    width: int = 560,
    now: datetime | None = None,
) -> str:
    """The day starting `start` (local midnight) as an SVG (`gateway.timeline`): an hour
    grid, one row per room, bands for asleep and out of home, a legend. `label` translates
    words; `now` (default: the end of the day) ends what is drawn."""
    tl = timeline.day_timeline(events, start, now or start + timedelta(days=1), label)
    return timeline.svg(tl, label, width)
