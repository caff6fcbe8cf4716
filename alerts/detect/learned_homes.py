"""The learned detectors' per-home state, and the constants and local-time helpers over it.

State lives in numpy arrays indexed by home (what the vectorised tick reads), and in a
`HomeState` per home for the values that change rarely. `LearnedHomes` holds both, with the
layout, the rules and the device-watch callbacks the learned rules consult; `LearnedDetector`
(alerts.detect.learned) is this state with the rules run on it (the rules live in the
alerts.detect.learned_* modules, as functions on a `LearnedHomes`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from alerts.detect.layout import Layout
from alerts.detect.rules import HOUR, Rules

HOME, ASLEEP, OUT, SEATED = 0, 1, 2, 3
CONTEXTS = ("home", "asleep", "out", "seated")
SLOTS = 24
# Rooms per home whose silences are learned apart (where the silence began); more are not.
ROOMS = 8
# Parts of the local day a room's silences are learned apart in (0-6, 6-12, 12-18, 18-24 h):
# the living room's after-lunch nap is not the limit of its morning.
PARTS = 4
DAY = 86400.0

# Timers kept as deadlines (event-time seconds; +inf when unarmed), one column each.
# T_OUT: out of home too long (`not_back`); T_RETURN: an unconfirmed return becomes one (no
# signal of its own: the elder is then at home, and the inactivity rule takes over).
T_BATH, T_BED, T_WANDER, T_WATER, T_POWER, T_OUT, T_RETURN = range(7)
N_TIMERS = 7
# Learned maxima per home (seconds): bathroom stay, night out-of-bed, night outing, water gap,
# power gap.
L_BATH, L_BED, L_WANDER, L_WATER, L_POWER = range(5)

F64 = npt.NDArray[np.float64]


def utc_at(ts: float) -> datetime:
    """An event time (seconds since the epoch) as an aware UTC datetime."""
    return datetime.fromtimestamp(ts, tz=UTC)


class HomeState:
    """Per-home values that change rarely (not touched by the vectorised tick)."""

    __slots__ = (
        "bath_fired",
        "bath_since",
        "bed_elsewhere",
        "bed_left",
        "covered",
        "day",
        "day_count",
        "day_out_s",
        "has_bath_motion",
        "has_bed",
        "home_id",
        "inside_at",
        "inside_dev",
        "inside_n",
        "out_count",
        "out_device",
        "out_since",
        "out_start",
        "pending_return",
        "rooms",
        "seat_room",
        "wander_exit",
    )

    def __init__(self, home_id: str, covered: bool = False) -> None:
        self.home_id = home_id
        self.covered = covered  # every room with activity devices has a motion sensor
        self.out_count = 0
        self.out_device = ""
        self.out_since = -math.inf
        self.out_start = math.nan
        self.pending_return = math.nan  # first activity inside after the door, unconfirmed
        self.inside_n = 0  # activations inside (not releases) since the door, while out
        self.inside_dev = ""  # the first device of them ("*": more than one device)
        self.inside_at = -math.inf  # the last of them
        self.bath_since = math.nan
        self.bath_fired = False
        self.bed_left = math.nan
        self.bed_elsewhere = False
        self.wander_exit = math.nan
        self.has_bed = False
        self.has_bath_motion = False
        self.seat_room = ""
        self.rooms: dict[str, int] = {}
        self.day = -1
        self.day_count = 0
        self.day_out_s = 0.0


class LearnedHomes:
    """The learned detectors' state for many homes: the per-home arrays (one row a home, in
    the order homes were first seen), each home's `HomeState`, and what the rules consult
    (layout, rules, whether a home's hub is offline or a device of it unheard)."""

    def __init__(
        self,
        layout: Layout | None = None,
        rules: Rules | None = None,
        suppressed: Callable[[str], bool] | None = None,
        unseen: Callable[[str], bool] | None = None,
        capacity: int = 64,
    ) -> None:
        self.layout = layout or Layout()
        self.rules = rules or Rules()
        # Whether the home's hub is offline (a technical alert, not a wellbeing one, says so).
        self.suppressed = suppressed or (lambda _home: False)
        # Whether a device of the home cannot be heard now (the device watch): a room may
        # then hide the elder, and a rule that needs every room seen does not judge.
        self.unseen = unseen or (lambda _home: False)
        self.index: dict[str, int] = {}  # home id -> its row in the arrays
        # The elder's own cap on a silence at home while up (seconds; limits.py), by home.
        self.caps: dict[str, float] = {}
        self.homes: list[HomeState] = []
        self.dirty: set[int] = set()  # homes whose state changed since `take_dirty`
        self._alloc(capacity)

    # -- storage -----------------------------------------------------------------------------
    def _alloc(self, capacity: int) -> None:
        n = capacity
        self.last_act: F64 = np.full(n, np.nan)
        self.ctx = np.zeros(n, np.int8)
        self.fired = np.zeros(n, bool)
        self.flagged_at: F64 = np.full(n, np.nan)  # first alert on the current silence
        self.offset: F64 = np.zeros(n)
        self.first_seen: F64 = np.full(n, np.nan)
        self.last_door: F64 = np.full(n, -np.inf)
        self.records: F64 = np.zeros((n, len(CONTEXTS), SLOTS))
        self.thresholds: F64 = np.full((n, len(CONTEXTS), SLOTS), np.inf)
        self.seated = np.zeros(n, bool)
        # No bed mat nor bedroom device in the layout, nor heard: the elder goes to bed unseen,
        # so a silence at home through the night (`presume_asleep_from_hour` on) is judged,
        # and learned, asleep.
        self.nobed = np.zeros(n, bool)
        self.seat_on: F64 = np.full(n, np.nan)  # when the chair mat was last occupied
        self.seat_s: F64 = np.zeros(n)
        self.usual_seat = np.zeros(n, bool)
        self.due: F64 = np.full((n, N_TIMERS), np.inf)
        self.maxima: F64 = np.full((n, N_TIMERS), np.nan)
        self.last_use: F64 = np.full((n, 2), np.nan)
        self.daily_mean: F64 = np.zeros(n)
        self.daily_days = np.zeros(n, np.int32)
        self.wake_h: F64 = np.full(n, np.nan)
        self.last_room = np.full(n, -1, np.int8)  # room (per-home index) of the last activity
        self.room_rec: F64 = np.zeros((n, ROOMS, PARTS))
        self.room_n = np.zeros((n, ROOMS, PARTS), np.int32)
        # The same silences' excess over `room_sample_s`: sum and sum of squares (seconds),
        # for the tail model of each room and part (`learned_rooms.room_tail`).
        self.room_s1: F64 = np.zeros((n, ROOMS, PARTS))
        self.room_s2: F64 = np.zeros((n, ROOMS, PARTS))
        self.room_thr: F64 = np.full(n, np.inf)  # the current silence's limit by its room
        self.flagged_out: F64 = np.full(n, np.nan)  # when `not_back` fired on this outing
        # Outings: the longest one begun in each part of the day (confirmed returns), how
        # many, and the latest return (hours after local noon) of an outing begun by day.
        self.out_rec: F64 = np.zeros((n, PARTS))
        self.out_n = np.zeros((n, PARTS), np.int32)
        self.back_late: F64 = np.full(n, np.nan)

    def _grow(self) -> None:
        old = len(self.last_act)
        keep = {name: getattr(self, name) for name in ARRAYS}
        self._alloc(old * 2)
        for name, arr in keep.items():
            getattr(self, name)[:old] = arr

    def add_home(self, home_id: str) -> int:
        """Give a home first seen the next row (growing the arrays when full); its
        thresholds are left for the caller to compute."""
        idx = len(self.homes)
        if idx >= len(self.last_act):
            self._grow()
        self.index[home_id] = idx
        self.homes.append(HomeState(home_id, self.layout.motion_covered(home_id)))
        self.nobed[idx] = self.layout.bed_unseen(home_id)
        return idx

    # -- local time --------------------------------------------------------------------------
    def learned_days(self, h: int, now: float) -> float:
        """Days since the home was first seen (0 before)."""
        first = self.first_seen[h]
        return 0.0 if math.isnan(first) else (now - first) / DAY

    def local_hour(self, h: int, ts: float) -> int:
        """The local hour (0..23) of the home at `ts`."""
        return int(((ts + self.offset[h]) % DAY) // HOUR)

    def part(self, h: int, ts: float) -> int:
        """The part of the local day (0..PARTS-1) at `ts`."""
        return min(int(self.local_hour(h, ts) * PARTS // SLOTS), PARTS - 1)

    def noon_hours(self, h: int, ts: float) -> float:
        """Hours since the last local noon (an evening is ~8-12, a morning ~18-24)."""
        return float(((ts + self.offset[h] - DAY / 2) % DAY) / HOUR)

    def day_hours(self, h: int, ts: float) -> float:
        """Hours since the last local 06:00 (an outing's day runs from 0 to 24)."""
        return float(((ts + self.offset[h] - DAY / 4) % DAY) / HOUR)

    # -- alerts ------------------------------------------------------------------------------
    def flag(self, h: int, t: float) -> None:
        """An alert on the current silence: remember when (the first one) for learning."""
        if math.isnan(self.flagged_at[h]):
            self.flagged_at[h] = t


ARRAYS = (
    "last_act",
    "ctx",
    "fired",
    "flagged_at",
    "offset",
    "first_seen",
    "last_door",
    "records",
    "thresholds",
    "due",
    "maxima",
    "last_use",
    "daily_mean",
    "daily_days",
    "wake_h",
    "seated",
    "nobed",
    "seat_on",
    "seat_s",
    "usual_seat",
    "last_room",
    "room_rec",
    "room_n",
    "room_s1",
    "room_s2",
    "room_thr",
    "out_rec",
    "out_n",
    "flagged_out",
    "back_late",
)
"""The names of the per-home arrays (what `_grow` copies into the larger ones)."""
