"""The timeline of a simulated day: segments (where the elder is and what they do), visits,
the day plan, and the time units the cohort counts in (Unix seconds)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

HOUR = 3600.0
MINUTE = 60.0
DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Segment:
    """The elder is at `place` doing `activity` from `start` to `end` (Unix seconds)."""

    start: float
    end: float
    place: str
    activity: str
    visitor: str = ""  # "staff", "family" or "helper" when someone else is there too


# Activities: sleep, toilet, shower, cook, eat, tv, nap, chores, idle, out, visit, evening,
# and for incidents: lying (on the floor, still), bed_ill, bathroom_long, night_up, wander,
# waiting (after pressing SOS).


@dataclass(frozen=True, slots=True)
class Visit:
    """Someone came to the home (or the elder went out)."""

    start: float
    end: float
    who: str  # staff, family, shopping, clinic


@dataclass(frozen=True, slots=True)
class DayPlan:
    """The timeline of one plan day, from waking on day k to waking on day k+1."""

    day: int
    wake: float
    bed: float
    next_wake: float
    segments: tuple[Segment, ...]
    visits: tuple[Visit, ...]
    wearable_worn: bool


def utc(ts: float) -> datetime:
    """Unix seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(ts, UTC)
