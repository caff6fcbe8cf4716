"""Learned, per-elder detectors on event time: occupancy, inactivity, routine rules.

State lives in numpy arrays indexed by home, so per-reading work is O(1) (a bounded number of
slot updates) and the periodic `advance` is one vectorised pass over all homes. Baselines are
learned online per local hour from the elder's own history, start from conservative defaults,
and are exported/imported as `Baseline` values for persistence.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from alerts.detect.layout import DeviceInfo, Layout, Role
from alerts.detect.rules import HOUR, InactivityRule, Rules
from alerts.model import Category, Severity, Signal
from devices.payload import Reading

log = logging.getLogger(__name__)

HOME, ASLEEP, OUT, SEATED = 0, 1, 2, 3
CONTEXTS = ("home", "asleep", "out", "seated")
# Chair mats: while one is occupied the elder sits (context `seated`, learned apart from
# `home`). Where a chair is the elder's usual seat (learned: occupied for hours a day), a
# silence at home while not seated is one of someone up and about, judged more tightly.
_CHAIR_KINDS = frozenset({"chair_mat", "chair"})
_RELEASE_KINDS = frozenset({"pir_motion", "motion", "radar"}) | _CHAIR_KINDS
SLOTS = 24
# Rooms per home whose silences are learned apart (where the silence began); more are not.
ROOMS = 8
# Parts of the local day a room's silences are learned apart in (0-6, 6-12, 12-18, 18-24 h):
# the living room's after-lunch nap is not the limit of its morning.
PARTS = 4
DAY = 86400.0
# Not a sign of the elder moving: housekeeping, and a radar's breathing rate (a person lying
# still after a collapse still breathes; the radar's `presence` and `fall` are what count).
_NON_ACTIVITY_METRICS = frozenset(
    {"heartbeat", "battery", "status", "rssi", "worn", "breathing_rate"}
)
# A fall or an SOS press: the silence that follows is an incident, not the elder's normal.
_ALARM_METRICS = frozenset({"fall", "press"})
_METER_METRICS = frozenset({"power", "watts", "flow", "energy"})

# Timers kept as deadlines (event-time seconds; +inf when unarmed), one column each.
# T_OUT: out of home too long (`not_back`); T_RETURN: an unconfirmed return becomes one (no
# signal of its own: the elder is then at home, and the inactivity rule takes over).
T_BATH, T_BED, T_WANDER, T_WATER, T_POWER, T_OUT, T_RETURN = range(7)
N_TIMERS = 7
_TIMER_KINDS = (
    "bathroom_too_long",
    "out_of_bed_night",
    "night_wandering",
    "no_utility_use",
    "no_utility_use",
    "not_back",
    "",
)
# Learned maxima per home (seconds): bathroom stay, night out-of-bed, night outing, water gap,
# power gap.
L_BATH, L_BED, L_WANDER, L_WATER, L_POWER = range(5)

F64 = npt.NDArray[np.float64]


def _release(reading: Reading) -> bool:
    """Motion or presence back to 0, or a chair mat emptied: the end of a presence."""
    return reading.value == 0.0 and reading.kind in _RELEASE_KINDS


def _ts(at: datetime) -> float:
    return at.timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def _rounded(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.3g}")


def _gpd_fit(
    n: float, s1: float, s2: float, k0: float, scale0: float, shape0: float, max_shape: float
) -> tuple[float, float]:
    """A generalised Pareto tail (scale, shape) by the method of moments on `n` excesses
    (sum `s1`, sum of squares `s2`) pooled with a prior tail worth `k0` of them."""
    m1_0 = scale0 / (1 - shape0)
    m2_0 = 2 * scale0 * scale0 / ((1 - shape0) * (1 - 2 * shape0))
    m1 = (k0 * m1_0 + s1) / (k0 + n)
    m2 = (k0 * m2_0 + s2) / (k0 + n)
    var = max(m2 - m1 * m1, 1e-9)
    shape = min(max(0.5 * (1 - m1 * m1 / var), 0.0), max_shape)
    return m1 * (1 - shape), shape


def _gpd_survival(scale: float, shape: float, excess: float) -> float:
    """The chance a generalised Pareto (scale, shape) tail exceeds `excess`."""
    if shape < 1e-6:
        return math.exp(-excess / scale)
    return float((1 + shape * excess / scale) ** (-1 / shape))


@dataclass(frozen=True, slots=True)
class Baseline:
    """One home's learned state, as persisted (migration 0007)."""

    home_id: str
    first_seen: float
    records: list[list[float]]  # [context][local hour] longest normal silence, seconds
    maxima: list[float]  # learned maxima for the timer rules, seconds (nan: none yet)
    daily_mean: float
    daily_days: int
    wake_h: float = math.nan  # latest usual end of sleep, hours after local noon (nan: none)
    seat_s: float = 0.0  # time seen seated on a chair mat, seconds (for the usual seat)
    # room -> [longest at-home silence that began there (s), learned silences >= the sample
    # length that began there], over the whole day (what a build before the parts reads)
    rooms: dict[str, list[float]] = field(default_factory=dict)
    # room -> the same pair per part of the day, PARTS pairs in a row; a room missing here
    # (saved before the parts, or with another number of parts) takes its `rooms` pair for
    # every part
    room_parts: dict[str, list[float]] = field(default_factory=dict)


class _Home:
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


class LearnedDetector:
    """Occupancy (home / out / asleep) and the learned per-elder rules, for many homes."""

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
        self._suppressed = suppressed or (lambda _home: False)
        # Whether a device of the home cannot be heard now (the device watch): a room may
        # then hide the elder, and a rule that needs every room seen does not judge.
        self._unseen = unseen or (lambda _home: False)
        self._index: dict[str, int] = {}
        self._homes: list[_Home] = []
        self._dirty: set[int] = set()  # homes whose state changed since `take_dirty`
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
        # for the tail model of each room and part (`_room_tail`).
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
        keep = {name: getattr(self, name) for name in _ARRAYS}
        self._alloc(old * 2)
        for name, arr in keep.items():
            getattr(self, name)[:old] = arr

    def set_layout(self, layout: Layout) -> None:
        """Follow a reloaded layout (a device installed or moved while running): roles,
        rooms and time zones from the next reading on; each home's room-rule coverage is
        recomputed now, and used by its thresholds from their next refresh (a learned
        silence, a change of the usual seat, the end of the warm-up)."""
        self.layout = layout
        for h, home in enumerate(self._homes):
            home.covered = layout.motion_covered(home.home_id)
            self.nobed[h] = layout.bed_unseen(home.home_id)

    def home(self, home_id: str) -> int:
        """The array index of a home, allocating one on first sight."""
        idx = self._index.get(home_id)
        if idx is None:
            idx = len(self._homes)
            if idx >= len(self.last_act):
                self._grow()
            self._index[home_id] = idx
            self._homes.append(_Home(home_id, self.layout.motion_covered(home_id)))
            self.nobed[idx] = self.layout.bed_unseen(home_id)
            self._refresh(idx)
        return idx

    # -- thresholds --------------------------------------------------------------------------
    def _learned_days(self, h: int, now: float) -> float:
        first = self.first_seen[h]
        return 0.0 if math.isnan(first) else (now - first) / DAY

    def _refresh(self, h: int, now: float | None = None) -> None:
        """Recompute one home's inactivity thresholds from its records (O(3 x 24))."""
        r = self.rules.inactivity
        rec = self.records[h]
        smeared = rec.copy()
        for k in range(1, r.smear_slots + 1):
            smeared = np.maximum(smeared, np.roll(rec, k, axis=1))
            smeared = np.maximum(smeared, np.roll(rec, -k, axis=1))
        if not self.usual_seat[h]:  # seated or not, one at-home context as far as judged
            smeared[[HOME, SEATED]] = smeared[[HOME, SEATED]].max(axis=0)
        thr = smeared * r.factor + r.margin_s
        thr[[HOME, SEATED]] = np.maximum(thr[[HOME, SEATED]], r.floor_home_s)
        if self.usual_seat[h]:  # not in the usual seat, nor in bed, nor out: up and about
            moving = np.maximum(smeared[HOME] * r.factor + r.margin_moving_s, r.floor_moving_s)
            if not self.nobed[h]:  # else maybe lying on a bed no sensor sees, at any hour
                thr[HOME] = moving
        thr[ASLEEP] = np.maximum(thr[ASLEEP], r.floor_asleep_s)
        warm = now is not None and self._learned_days(h, now) >= r.warmup_days
        if not warm:
            thr[[HOME, SEATED]] = np.maximum(thr[[HOME, SEATED]], r.default_home_s)
            # Not seated, and every room would see the elder move (a bedroom with no device
            # would not).
            if self._homes[h].covered and not self.nobed[h]:
                day = slice(r.night_end_hour, r.night_start_hour)  # daytime hours only
                thr[HOME, day] = np.maximum(
                    smeared[HOME, day] * r.factor + r.margin_s, r.default_covered_s
                )
            thr[ASLEEP] = np.maximum(thr[ASLEEP], r.default_asleep_s)
        thr[OUT] = np.inf  # out of home: no inactivity alert (night wandering covers it)
        self.thresholds[h] = thr

    def _local_hour(self, h: int, ts: float) -> int:
        return int(((ts + self.offset[h]) % DAY) // HOUR)

    def _limit(
        self,
        h: int,
        col: int,
        default: float,
        floor: float,
        warmup: float,
        factor: float,
        now: float,
    ) -> float:
        learned = float(self.maxima[h, col])
        if math.isnan(learned):
            return default
        limit = max(floor, learned * factor)
        if self._learned_days(h, now) < warmup:
            limit = max(limit, default)
        return limit

    def _learn_max(self, h: int, col: int, value: float) -> None:
        cur = self.maxima[h, col]
        if math.isnan(cur) or value > cur:
            self.maxima[h, col] = value

    # -- observe -----------------------------------------------------------------------------
    def observe(self, reading: Reading) -> list[Signal]:
        """Update occupancy and baselines with one reading; signals due at its event time."""
        info = self.layout.device(reading.device_id, reading.kind)
        if info.role is Role.PASSIVE or reading.metric in _NON_ACTIVITY_METRICS:
            return []
        h = self.home(reading.home_id)
        self._dirty.add(h)
        ts = _ts(reading.ts)
        if info.bedroom or info.role is Role.BED:
            self.nobed[h] = False
        tz = self.layout.tz(reading.home_id)
        off = reading.ts.astimezone(tz).utcoffset()
        self.offset[h] = off.total_seconds() if off is not None else 0.0
        out: list[Signal] = self._due(h, ts)
        if reading.metric in _METER_METRICS:
            if reading.value > 0:
                self._utility(h, info, ts)
            return out
        if math.isnan(self.first_seen[h]):
            self.first_seen[h] = ts
        out += self._rollover(h, ts)
        self._end_silence(h, ts)
        if reading.metric in _ALARM_METRICS and reading.value == 1.0:
            self._flag(h, ts)
        self._occupancy(h, info, reading, ts)
        self._rooms(h, info, reading, ts)
        if info.role in (Role.WATER, Role.POWER):
            self._utility(h, info, ts)
        self.last_room[h] = self._room_index(h, info.room)
        self.room_thr[h] = self._room_threshold(h, ts)
        return out

    def _room_index(self, h: int, room: str) -> int:
        """The per-home index of a room (-1: unnamed, or more rooms than are learned)."""
        rooms = self._homes[h].rooms
        idx = rooms.get(room)
        if idx is None:
            if not room or len(rooms) >= ROOMS:
                return -1
            idx = rooms[room] = len(rooms)
        return idx

    def _room_threshold(self, h: int, ts: float) -> float:
        """The limit of a silence at home (not seated) by the room it began in (inf: none)."""
        r = self.rules.inactivity
        room = int(self.last_room[h])
        part = self._part(h, ts)
        if (
            room < 0
            or int(self.ctx[h]) != HOME
            or not self._homes[h].covered
            or self._unseen(self._homes[h].home_id)  # a dead device: a room is not seen
            or self.room_n[h, room, part] < r.room_min_silences
            or self._learned_days(h, ts) < r.room_min_days
        ):
            return math.inf
        record = float(self.room_rec[h, room, part])
        return max(record * r.factor + r.room_margin_s, r.room_floor_s)

    def _room_tail(self, h: int, room: int, part: int) -> tuple[float, float] | None:
        """The tail of the silences that begin in this room and part of the day: a
        generalised Pareto (scale, shape) over `room_sample_s` by the method of moments,
        with the population prior (`tail_prior_*`, worth `tail_prior_n` silences) pooled in
        (None: moments not known, a baseline saved before them)."""
        r = self.rules.inactivity
        n = float(self.room_n[h, room, part])
        s1 = float(self.room_s1[h, room, part])
        if n > 0 and s1 <= 0:
            return None
        return _gpd_fit(
            n,
            s1,
            float(self.room_s2[h, room, part]),
            r.tail_prior_n,
            r.tail_prior_scale_s,
            r.tail_prior_shape,
            r.tail_max_shape,
        )

    def _room_tail_chance(self, h: int, silence_s: float, ts: float) -> float | None:
        """The estimated chance that a normal silence begun in the current silence's room
        and part of the day lasts `silence_s` or longer (None: no tail for it)."""
        r = self.rules.inactivity
        room = int(self.last_room[h])
        if room < 0 or silence_s < r.room_sample_s:
            return None
        part = self._part(h, float(self.last_act[h]))
        tail = self._room_tail(h, room, part)
        if tail is None:
            return None
        scale, shape = tail
        return _gpd_survival(scale, shape, silence_s - r.room_sample_s)

    def _part(self, h: int, ts: float) -> int:
        """The part of the local day (0..PARTS-1) at `ts`."""
        return min(int(self._local_hour(h, ts) * PARTS // SLOTS), PARTS - 1)

    def _end_silence(self, h: int, ts: float) -> None:
        """A silence ended with activity: learn it (when plausible) and re-arm."""
        r = self.rules.inactivity
        start = self.last_act[h]
        if not math.isnan(start) and ts > start:
            ctx = int(self.ctx[h])
            length = ts - start
            if ctx == HOME and self._unseen_night(h, start, length):
                ctx = ASLEEP  # the night of an elder whose bed no sensor sees
            cap = (r.learn_cap_home_s, r.learn_cap_asleep_s, r.learn_cap_out_s)[ctx % 3]
            home = self._homes[h]
            if ctx == OUT:
                home.day_out_s += length
            # A flagged silence that went on long after the alert was an incident (someone
            # came to help), not the elder's normal: learned only if it ended soon after.
            flagged = self.flagged_at[h]
            incident = ts - flagged > r.learn_flagged_within_s  # False when nan: no alert
            if (
                incident
                and ctx == ASLEEP
                and r.learn_night_to_usual_wake
                and self._up_as_usual(h, ts)
            ):
                incident = False  # a night's sleep that ended by the usual wake-up
            # With a device that sees the elder dead, silences are longer than they will be
            # once it is repaired: not learned.
            if length <= cap and ctx != OUT and not incident and not self._unseen(home.home_id):
                self._learn_silence(h, ctx, start, ts)
                room = int(self.last_room[h])
                if ctx == HOME and room >= 0:
                    part = self._part(h, start)  # where and when the silence began
                    rec = self.room_rec[h, room, part]
                    self.room_rec[h, room, part] = max(rec, length)
                    if length >= r.room_sample_s:
                        excess = length - r.room_sample_s
                        self.room_n[h, room, part] += 1
                        self.room_s1[h, room, part] += excess
                        self.room_s2[h, room, part] += excess * excess
                if ctx == ASLEEP:
                    self._learn_wake(h, ts)
        self.last_act[h] = ts
        self.fired[h] = False
        self.flagged_at[h] = np.nan  # a new silence, with no alert on it yet

    def _night(self, h: int, ts: float) -> bool:
        r = self.rules.inactivity
        hour = self._local_hour(h, ts)
        return hour >= r.night_start_hour or hour < r.night_end_hour

    def _bath_unseen_night(self, h: int, t: float) -> bool:
        """A bathroom stay at night, or begun at night (the toilet at 05:10, back to bed),
        in a home whose bedroom no sensor sees: maybe back in bed, unseen."""
        if not self.nobed[h]:
            return False
        since = self._homes[h].bath_since
        return self._night(h, t) or (not math.isnan(since) and self._night(h, since))

    def _unseen_night(self, h: int, start: float, length: float) -> bool:
        """A silence at home presumed asleep (`_presumed_asleep`) in a home with no bedroom
        device heard (as `_effective_ctx`, for one home)."""
        if not self.nobed[h]:
            return False
        pos = self._noon_hours(h, start)
        return bool(
            _presumed_asleep(self.rules.inactivity, pos, length / HOUR, float(self.wake_h[h]))
        )

    def _flag(self, h: int, t: float) -> None:
        """An alert on the current silence: remember when (the first one) for learning."""
        if math.isnan(self.flagged_at[h]):
            self.flagged_at[h] = t

    def _learn_silence(self, h: int, ctx: int, start: float, end: float) -> None:
        """Record, for every local hour the silence spanned, how long it had lasted there."""
        rec = self.records[h, ctx]
        t = start
        changed = False
        for _ in range(SLOTS + 1):
            if t >= end:
                break
            local = t + self.offset[h]
            slot = int((local % DAY) // HOUR)
            slot_end = t + (HOUR - (local % HOUR))
            upto = min(end, slot_end)
            elapsed = upto - start
            if elapsed > rec[slot]:
                rec[slot] = elapsed
                changed = True
            t = upto
        if changed or self._learned_days(h, end) >= self.rules.inactivity.warmup_days:
            self._refresh(h, end)

    def _learn_wake(self, h: int, ts: float) -> None:
        """An asleep silence ended with activity: remember the latest usual end of sleep."""
        pos = self._noon_hours(h, ts)
        if pos >= SLOTS / 2:  # ended between midnight and noon
            cur = self.wake_h[h]
            if math.isnan(cur) or pos > cur:
                self.wake_h[h] = pos

    def _up_as_usual(self, h: int, ts: float) -> bool:
        """Whether `ts` is a morning no later than the elder's latest usual wake-up."""
        wake = self.wake_h[h]
        pos = self._noon_hours(h, ts)
        return not math.isnan(wake) and SLOTS / 2 <= pos <= wake

    def _noon_hours(self, h: int, ts: float) -> float:
        """Hours since the last local noon (an evening is ~8-12, a morning ~18-24)."""
        return float(((ts + self.offset[h] - DAY / 2) % DAY) / HOUR)

    def _sleep_time(self, h: int, ts: float) -> bool:
        """Evening or night, or a morning before the elder's usual latest wake-up."""
        r = self.rules.inactivity
        hour = self._local_hour(h, ts)
        if hour >= r.night_start_hour or hour < r.night_end_hour:
            return True
        wake = self.wake_h[h]
        return hour < SLOTS / 2 and not math.isnan(wake) and self._noon_hours(h, ts) < wake

    def _occupancy(self, h: int, info: DeviceInfo, reading: Reading, ts: float) -> None:
        r = self.rules.inactivity
        home = self._homes[h]
        ctx = int(self.ctx[h])
        if info.role is Role.ENTRY_DOOR:
            # Any door episode means out until activity inside confirms otherwise: the silence
            # after a door is an outing, and a door opened while out is not proof of a return.
            if ts - self.last_door[h] > r.door_episode_s and ctx != OUT:
                self.ctx[h] = OUT
                home.out_start = ts
                self._wander_start(h, ts)
                if self.due[h, T_WANDER] == np.inf:  # by day: night wandering has the night
                    self.due[h, T_OUT] = self._not_back_due(h, ts)
            home.out_device = ""
            home.out_count = 0
            home.inside_n = 0
            home.inside_dev = ""
            home.pending_return = math.nan  # a door again: whatever came before is no return
            self.due[h, T_RETURN] = np.inf
            self.last_door[h] = ts
            return
        self._seat(h, info, reading, ts)  # also while out: sitting down may be the return
        if ctx == OUT:
            # Back only when activity inside confirms it: two devices, or a burst of one,
            # within `return_window_s` (a stray event from a pet or a sensor is not a return).
            # A release (motion or presence back to 0, a chair mat emptied) right after the door
            # lags the leaving (a PIR's hold time, a mat reporting late): it opens no return
            # window and is no second device; it counts only in a burst of its own device.
            lagging = (
                reading.value == 0.0
                and reading.kind in _RELEASE_KINDS
                and ts - self.last_door[h] <= r.release_lag_s
            )
            # Two activations inside soon after the door, or `inside_events` however late (each
            # within `inside_gap_s` of the one before):
            # a return, unless a door follows. If it is never confirmed, the elder is home
            # `unconfirmed_s` after the first of it (a sensor's stray event is not enough).
            soon = ts - self.last_door[h] <= r.return_window_s
            if reading.value != 0.0:  # an activation (a contact closing is the same one)
                if ts - home.inside_at > self.rules.outing.inside_gap_s:
                    home.inside_n, home.inside_dev = 0, ""  # strays hours apart add up to none
                home.inside_at = ts
                home.inside_n += 1
                if home.inside_dev not in ("", reading.device_id):
                    home.inside_dev = "*"
                elif not home.inside_dev:
                    home.inside_dev = reading.device_id
            # Late, one device firing on its own (a PIR's stray triggers) needs twice as many.
            need = 2 if soon else self.rules.outing.inside_events
            if not soon and home.inside_dev != "*":
                need *= 2
            if not lagging and home.inside_n >= need and math.isnan(home.pending_return):
                home.pending_return = ts
                self.due[h, T_RETURN] = ts + self.rules.outing.unconfirmed_s
            if ts - home.out_since > r.return_window_s or not home.out_device:
                if lagging:
                    return
                home.out_since = ts
                home.out_device = reading.device_id
                home.out_count = 0
            home.out_count += 1
            if reading.device_id == home.out_device and home.out_count < r.return_events:
                return
            if reading.device_id != home.out_device and lagging:
                return
            home.out_device = ""
            self._back(h, ts)
        hour = self._local_hour(h, ts)
        presumed = hour >= r.presume_asleep_from_hour or hour < r.presume_asleep_to_hour
        if (
            presumed
            or (info.bedroom and self._sleep_time(h, ts))
            or (info.bathroom and ctx == ASLEEP)
        ):
            self.ctx[h] = ASLEEP
        else:
            self.ctx[h] = SEATED if self.seated[h] else HOME

    def _seat(self, h: int, info: DeviceInfo, reading: Reading, ts: float) -> None:
        """A chair mat says whether the elder sits (activity in another room ends it); time
        seated decides whether the chair is the elder's usual seat."""
        r = self.rules.inactivity
        home = self._homes[h]
        if reading.kind in _CHAIR_KINDS:
            home.seat_room = info.room
            if reading.value != 0.0:
                self.seated[h] = True
                if math.isnan(self.seat_on[h]):
                    self.seat_on[h] = ts
                return
            if not math.isnan(self.seat_on[h]):
                self.seat_s[h] += min(ts - self.seat_on[h], r.seat_cap_s)
            self.seat_on[h] = np.nan
            self.seated[h] = False
            days = self._learned_days(h, ts)
            usual = days >= r.seat_min_days and self.seat_s[h] / days >= r.seat_min_s_per_day
            if usual != self.usual_seat[h]:
                self.usual_seat[h] = usual
                self._refresh(h, ts)
        elif self.seated[h] and info.room != home.seat_room and not _release(reading):
            # A PIR re-arming (motion 0) or a radar's presence 0 elsewhere is the elder having
            # left that room (seconds before sitting down): no sign of getting up.
            self.seated[h] = False

    def _rooms(self, h: int, info: DeviceInfo, reading: Reading, ts: float) -> None:
        rr = self.rules.rooms
        home = self._homes[h]
        hour = self._local_hour(h, ts)
        night = hour >= rr.out_of_bed_from_hour or hour < rr.night_to_hour  # the bed's night
        # Too long in the bathroom: only where a motion sensor shows presence there. A PIR
        # re-arming (motion 0) or a radar's presence 0 comes after the elder left: it neither
        # starts nor ends a stay (nor does the bathroom door).
        if (
            info.bathroom
            and reading.kind in ("pir_motion", "motion", "radar")
            and reading.value != 0.0
        ):
            home.has_bath_motion = True
            # A stray event while out is nobody in the bathroom; one alert per stay.
            if int(self.ctx[h]) != OUT:
                if math.isnan(home.bath_since):
                    home.bath_since = ts
                    home.bath_fired = False
                if not home.bath_fired:
                    limit = self._limit(
                        h,
                        L_BATH,
                        rr.bathroom_default_s,
                        rr.bathroom_floor_s,
                        rr.warmup_days,
                        rr.factor,
                        ts,
                    )
                    self.due[h, T_BATH] = home.bath_since + limit
        elif not info.bathroom and not math.isnan(home.bath_since):
            if not home.bath_fired:  # a flagged stay is not learned
                self._learn_max(h, L_BATH, ts - home.bath_since)
            home.bath_since = math.nan
            home.bath_fired = False
            self.due[h, T_BATH] = np.inf
        # Out of bed at night: the mat emptied at night and nobody came back.
        if info.role is Role.BED:
            home.has_bed = True
            if reading.value == 0.0 and night:
                home.bed_left = ts
                home.bed_elsewhere = False
                limit = self._limit(
                    h,
                    L_BED,
                    rr.out_of_bed_default_s,
                    rr.out_of_bed_floor_s,
                    rr.warmup_days,
                    rr.factor,
                    ts,
                )
                self.due[h, T_BED] = ts + limit
            elif reading.value == 1.0:
                if not math.isnan(home.bed_left) and self.due[h, T_BED] < np.inf:
                    self._learn_max(h, L_BED, ts - home.bed_left)
                home.bed_left = math.nan
                self.due[h, T_BED] = np.inf
        elif not night and self.due[h, T_BED] < np.inf:
            home.bed_left = math.nan  # up for the day
            self.due[h, T_BED] = np.inf
        elif not math.isnan(home.bed_left) and not info.bedroom:
            home.bed_elsewhere = True  # seen out of the bedroom after leaving the bed

    def _wander_start(self, h: int, ts: float) -> None:
        rr = self.rules.rooms
        hour = self._local_hour(h, ts)
        if hour >= rr.night_from_hour or hour < rr.night_to_hour:
            self._homes[h].wander_exit = ts
            limit = self._limit(
                h, L_WANDER, rr.wander_default_s, rr.wander_floor_s, rr.warmup_days, rr.factor, ts
            )
            self.due[h, T_WANDER] = ts + limit

    def _back(self, h: int, ts: float) -> None:
        """The elder is back home: end a night outing; time out does not count for the
        utility timers (no water or power use is expected while out)."""
        self._wander_end(h, ts)
        home = self._homes[h]
        if not math.isnan(home.out_start):
            away = max(0.0, ts - home.out_start)
            self.last_use[h] = np.minimum(self.last_use[h] + away, ts)
            self.due[h, T_WATER : T_POWER + 1] += away
            if self.due[h, T_OUT] < np.inf or not math.isnan(self.flagged_out[h]):
                self._learn_outing(h, home.out_start, ts)  # an outing begun by day
            home.out_start = math.nan
        home.pending_return = math.nan
        self.due[h, T_OUT] = np.inf
        self.due[h, T_RETURN] = np.inf
        self.flagged_out[h] = np.nan

    def _day_hours(self, h: int, ts: float) -> float:
        """Hours since the last local 06:00 (an outing's day runs from 0 to 24)."""
        return float(((ts + self.offset[h] - DAY / 4) % DAY) / HOUR)

    def _learn_outing(self, h: int, start: float, end: float) -> None:
        """A confirmed return from an outing begun by day: learn its length and how late the
        elder comes back (`back_late`, hours after 06:00; +inf once they stayed out past the
        next 06:00, when "not back by night" is no sign for them: the cap still bounds)."""
        o = self.rules.outing
        length = end - start
        if length <= 0:
            return
        start_pos = self._day_hours(h, start)
        end_pos = start_pos + length / HOUR
        night_pos = float((o.night_hour - 6) % 24)
        late = float(self.back_late[h])
        if end_pos >= 24.0 and start_pos < night_pos:
            self.back_late[h] = np.inf
        elif end_pos > night_pos and (math.isnan(late) or end_pos > late):
            self.back_late[h] = end_pos
        if length > o.learn_cap_s:
            return  # an absence (away mode's business), not an outing's length
        part = self._part(h, start)
        self.out_rec[h, part] = max(float(self.out_rec[h, part]), length)
        self.out_n[h, part] += 1

    def _not_back_due(self, h: int, start: float) -> float:
        """When an outing begun at `start` (by day) is too long: its learned limit, the night
        bound, and the cap, whichever comes first."""
        o = self.rules.outing
        part = self._part(h, start)
        if self.out_n[h, part] >= o.min_outings:
            limit = max(o.floor_s, float(self.out_rec[h, part]) * o.factor + o.margin_s)
        else:
            limit = max(o.default_s, float(self.out_rec[h, part]) * o.factor + o.margin_s)
        due = start + min(limit, o.cap_s)
        # Not back by night: `night_hour` local, or the latest the elder came back + margin,
        # for an outing begun before it (never sooner than `floor_s` after leaving).
        start_pos = self._day_hours(h, start)
        bound = float((o.night_hour - 6) % 24)
        late = float(self.back_late[h])
        if not math.isnan(late):
            bound = max(bound, late + o.night_margin_s / HOUR)
        if start_pos < bound < 24.0:
            due = min(due, start + max((bound - start_pos) * HOUR, o.floor_s))
        return due

    def _wander_end(self, h: int, ts: float) -> None:
        home = self._homes[h]
        if not math.isnan(home.wander_exit) and self.due[h, T_WANDER] < np.inf:
            self._learn_max(h, L_WANDER, ts - home.wander_exit)
        home.wander_exit = math.nan
        self.due[h, T_WANDER] = np.inf

    def _utility(self, h: int, info: DeviceInfo, ts: float) -> None:
        u = self.rules.utility
        col = 0 if info.role is Role.WATER else 1
        timer = T_WATER if col == 0 else T_POWER
        last = self.last_use[h, col]
        if not math.isnan(last) and ts - last <= u.learn_cap_s and ts > last:
            self._learn_max(h, L_WATER + col, ts - last)
        self.last_use[h, col] = ts
        limit = self._limit(h, L_WATER + col, u.default_s, u.floor_s, u.warmup_days, u.factor, ts)
        self.due[h, timer] = ts + limit

    def _rollover(self, h: int, ts: float) -> list[Signal]:
        """Close the elder's previous local day: compare its activity with the baseline."""
        d = self.rules.daily
        home = self._homes[h]
        day = int((ts + self.offset[h]) // DAY)
        out: list[Signal] = []
        if home.day < 0:
            home.day = day
        elif day != home.day:
            count = home.day_count
            mean = float(self.daily_mean[h])
            days = int(self.daily_days[h])
            if int(self.ctx[h]) == OUT:  # out across midnight: count the time out so far
                boundary = day * DAY - self.offset[h]
                home.day_out_s += max(0.0, boundary - max(self.last_act[h], boundary - DAY))
            whole = day == home.day + 1 and home.day_out_s <= d.max_out_s
            if whole and days >= d.min_days and count < d.ratio * mean:
                out.append(
                    Signal(
                        home.home_id,
                        "low_activity",
                        Category.WELLBEING,
                        Severity.WARNING,
                        _dt(ts),
                        f"activity yesterday {count} events, usually about {mean:.0f}",
                        evidence={
                            "seen": count,
                            "expected": round(mean, 1),
                            "ratio": d.ratio,
                            "day_index": home.day,
                        },
                    )
                )
            elif whole:  # a flagged day is not learned
                self.daily_mean[h] = (
                    count if days == 0 else (1 - d.ewma_alpha) * mean + d.ewma_alpha * count
                )
                self.daily_days[h] = days + 1
            home.day = day
            home.day_count = 0
            home.day_out_s = 0.0
        home.day_count += 1
        return out

    # -- time --------------------------------------------------------------------------------
    def _due(self, h: int, now: float) -> list[Signal]:
        """Timers of one home due by `now` (so replay raises them on event time too)."""
        sig = self._fire_inactivity(np.array([h]), now)
        cols = np.nonzero(self.due[h] <= now)[0]
        return sig + [s for c in cols if (s := self._fire_timer(h, int(c), now)) is not None]

    def advance(self, now: datetime) -> list[Signal]:
        """Signals due because event time reached `now`: one vectorised pass over all homes."""
        t = _ts(now)
        n = len(self._homes)
        if n == 0:
            return []
        out = self._fire_inactivity(self._inactive(t, n), t)
        hs, cols = np.nonzero(self.due[:n] <= t)
        for h, c in zip(hs.tolist(), cols.tolist(), strict=True):
            signal = self._fire_timer(h, c, t)
            if signal is not None:
                out.append(signal)
        return out

    def _inactive(self, t: float, n: int) -> npt.NDArray[np.intp]:
        """Indices of homes whose silence is past the threshold for their context and hour."""
        slot = (((t + self.offset[:n]) % DAY) // HOUR).astype(np.intp)
        home_ctx = self.ctx[:n].astype(np.intp)
        ctx = self._effective_ctx(home_ctx, t, n)
        hourly = self.thresholds[np.arange(n), ctx, slot]
        r = self.rules.inactivity
        # The room's limit needs every room seen: not in a home whose bed no sensor sees (the
        # elder lies down unseen).
        rooms_seen = (ctx == home_ctx) & ~self.nobed[:n]
        room = np.where(rooms_seen, self.room_thr[:n], np.inf)
        thr = np.minimum(hourly, room)
        elapsed = t - self.last_act[:n]
        pos = ((t + self.offset[:n] - DAY / 2) % DAY) / HOUR
        with np.errstate(invalid="ignore"):
            late = (
                (ctx == ASLEEP)
                & (pos >= self.wake_h[:n] + r.wake_margin_s / HOUR)
                & (elapsed > r.floor_asleep_s)
                & (t - self.first_seen[:n] >= r.wake_warmup_days * DAY)
            )
        return np.nonzero(((elapsed > thr) | late) & ~self.fired[:n])[0]

    def _effective_ctx(self, ctx: npt.NDArray[np.intp], t: float, n: int) -> npt.NDArray[np.intp]:
        """The context a silence is judged in: at home in a home whose bed no sensor sees,
        a silence presumed asleep (`_presumed_asleep`) is asleep until activity ends it."""
        start = self.last_act[:n]
        pos = ((start + self.offset[:n] - DAY / 2) % DAY) / HOUR
        with np.errstate(invalid="ignore"):
            night = _presumed_asleep(
                self.rules.inactivity, pos, (t - start) / HOUR, self.wake_h[:n]
            )
        return np.where((ctx == HOME) & self.nobed[:n] & night, ASLEEP, ctx)

    def _late_wake(self, h: int, t: float) -> bool:
        """Asleep past the elder's latest usual wake-up (plus margin): not up."""
        r = self.rules.inactivity
        wake = float(self.wake_h[h])
        return (
            int(self.ctx[h]) == ASLEEP
            and not math.isnan(wake)
            and self._noon_hours(h, t) >= wake + r.wake_margin_s / HOUR
            and t - float(self.last_act[h]) > r.floor_asleep_s
            and self._learned_days(h, t) >= r.wake_warmup_days
        )

    def _fire_inactivity(self, homes: npt.NDArray[np.intp], t: float) -> list[Signal]:
        r = self.rules.inactivity
        out: list[Signal] = []
        for h in homes.tolist():
            home_ctx = int(self.ctx[h])
            start = self.last_act[h]
            if home_ctx == OUT or math.isnan(start) or self.fired[h]:
                continue
            slot = self._local_hour(h, t)
            r_i = self.rules.inactivity
            unseen_night = self._unseen_night(h, float(start), t - float(start))
            ctx = ASLEEP if home_ctx == HOME and unseen_night else home_ctx
            hourly = float(self.thresholds[h, ctx, slot])
            seen = ctx == home_ctx and not self.nobed[h]
            room_thr = float(self.room_thr[h]) if seen else math.inf
            thr = min(hourly, room_thr)
            home_id = self._homes[h].home_id
            late = self._late_wake(h, t)
            if self._unseen(home_id):
                # A device that sees the elder is dead: they may sit where it looked, or
                # have got up at night (or in the morning) where it looked. At home, the
                # silence is alerted past `unseen_floor_s`; asleep, only not up past the usual
                # wake-up, and that silence too past `unseen_floor_s`.
                thr = max(thr, r_i.unseen_floor_s) if ctx in (HOME, SEATED) else math.inf
                late = late and t - start > r_i.unseen_floor_s
            if t - start <= thr and not late:
                continue
            room = self._room_name(h)
            if self._suppressed(home_id):
                continue  # the hub is offline: a technical alert, not an inactivity one
            self.fired[h] = True
            self._dirty.add(h)
            self._flag(h, t)
            morning = r.night_end_hour - 2 <= slot < r.morning_end_hour
            kind = "not_up" if ctx == ASLEEP and (morning or late) else "inactivity"
            out.append(
                Signal(
                    home_id,
                    kind,
                    Category.WELLBEING,
                    Severity.CRITICAL,
                    _dt(t),
                    f"no activity for {(t - start) / HOUR:.1f} h ({CONTEXTS[ctx]}), "
                    + (
                        "still asleep past the usual wake-up"
                        if late and t - start <= thr
                        else f"usual at most {thr / HOUR:.1f} h at this hour"
                        + (f" after activity in the {room}" if thr < hourly else "")
                    ),
                    evidence={
                        "since": _dt(start).isoformat(),
                        "silence_s": round(t - start),
                        "expected_max_s": None if math.isinf(thr) else round(thr),
                        "context": CONTEXTS[ctx],
                        "local_hour": slot,
                        "room": room,
                        "room_expected_max_s": (
                            None if math.isinf(self.room_thr[h]) else round(self.room_thr[h])
                        ),
                        "usual_wake_local_hour": (
                            None
                            if math.isnan(self.wake_h[h])
                            else round((float(self.wake_h[h]) + 12) % 24, 2)
                        ),
                        "learned_days": round(self._learned_days(h, t), 1),
                        # How unusual: the estimated chance that a normal silence begun in
                        # this room at this part of the day lasts this long (tail model).
                        "normal_chance": _rounded(self._room_tail_chance(h, t - start, t)),
                    },
                )
            )
        return out

    def _unconfirmed_return(self, h: int) -> None:
        """Activity inside after the door, never confirmed, and no door since: the elder is
        home (as of that activity); the silence since its last reading is judged as one at
        home from now on."""
        home = self._homes[h]
        if int(self.ctx[h]) != OUT or math.isnan(home.pending_return):
            return
        r = self.rules.inactivity
        self._back(h, home.pending_return)
        home.out_device = ""
        last = float(self.last_act[h])
        hour = self._local_hour(h, last)
        asleep = hour >= r.presume_asleep_from_hour or hour < r.presume_asleep_to_hour
        self.ctx[h] = ASLEEP if asleep else (SEATED if self.seated[h] else HOME)
        self.fired[h] = False
        self.room_thr[h] = self._room_threshold(h, last)

    def _room_name(self, h: int) -> str | None:
        """The room of the home's last activity reading (None: unknown)."""
        idx = int(self.last_room[h])
        return next((name for name, i in self._homes[h].rooms.items() if i == idx), None)

    def _fire_timer(self, h: int, col: int, t: float) -> Signal | None:
        self._dirty.add(h)
        due = float(self.due[h, col])
        self.due[h, col] = np.inf
        home = self._homes[h]
        if col in (T_WATER, T_POWER) and int(self.ctx[h]) == OUT:
            return None  # nobody home: no use expected
        if col == T_RETURN:
            self._unconfirmed_return(h)
            return None
        if col == T_OUT:
            if int(self.ctx[h]) != OUT or self._suppressed(home.home_id):
                return None  # back, or the hub is offline (a technical alert says so)
            o = self.rules.outing
            if self._unseen(home.home_id) and t < home.out_start + o.cap_s - 1.0:
                # A device that sees the elder is dead: they may be back unseen. Only the cap
                # (within 12 h of leaving) still holds.
                self.due[h, T_OUT] = home.out_start + o.cap_s
                return None
            self.flagged_out[h] = t
            # Alerted before the cap (unusually long, or not back by night): once more at
            # the cap if still out, and every `cap_s` after, so that a fall later in the
            # outing is alerted within 12 h too (away mode mutes a planned absence).
            cap_at = home.out_start + o.cap_s
            self.due[h, T_OUT] = cap_at if t < cap_at - o.floor_s / 4 else t + o.cap_s
        if col == T_BED and not home.bed_elsewhere:
            return None  # a mat that went to rest with nothing after: still in bed, asleep
        if col == T_BATH and (self._unseen(home.home_id) or self._bath_unseen_night(h, t)):
            # A room no sensor sees (a dead device; at night, a bedroom without one): the
            # elder may have left the bathroom unseen; the inactivity rule judges instead.
            home.bath_since = math.nan
            return None
        if col == T_BATH:
            since = home.bath_since
            home.bath_fired = True
            self._flag(h, t)
        elif col == T_BED:
            since = home.bed_left
        elif col == T_WANDER:
            since = home.wander_exit
        elif col == T_OUT:
            since = home.out_start
        else:
            since = self.last_use[h, col - T_WATER]
        if math.isnan(since):
            return None
        what = ("water" if col == T_WATER else "power") if col in (T_WATER, T_POWER) else None
        summary = {
            T_BATH: "in the bathroom for {:.1f} h",
            T_BED: "out of bed at night for {:.1f} h",
            T_WANDER: "went out at night {:.1f} h ago and has not come back",
            T_OUT: "went out {:.1f} h ago and has not come back",
        }.get(col, f"no {what} use for {{:.1f}} h")
        evidence: dict[str, Any] = {
            "since": _dt(since).isoformat(),
            "elapsed_s": round(t - since),
            "expected_max_s": round(due - since),
        }
        if what is not None:
            evidence["utility"] = what
        if col == T_OUT:
            part = self._part(h, since)
            evidence["usual_longest_s"] = (
                round(float(self.out_rec[h, part])) if self.out_n[h, part] else None
            )
            evidence["learned_outings"] = int(self.out_n[h, part])
        severity = Severity.CRITICAL if col in (T_BATH, T_WANDER, T_OUT) else Severity.WARNING
        return Signal(
            home.home_id,
            _TIMER_KINDS[col],
            Category.WELLBEING,
            severity,
            _dt(t),
            summary.format((t - since) / HOUR),
            evidence=evidence,
        )

    # -- persistence -------------------------------------------------------------------------
    def export(self) -> list[Baseline]:
        """Every home's learned baseline, for persisting."""
        return [
            Baseline(
                home_id=home.home_id,
                first_seen=float(self.first_seen[h]),
                records=self.records[h].round(1).tolist(),
                maxima=self.maxima[h].tolist(),
                daily_mean=float(self.daily_mean[h]),
                daily_days=int(self.daily_days[h]),
                wake_h=float(self.wake_h[h]),
                seat_s=float(self.seat_s[h]),
                rooms={
                    name: [
                        round(float(self.room_rec[h, i].max()), 1),
                        float(self.room_n[h, i].sum()),
                    ]
                    for name, i in home.rooms.items()
                },
                room_parts={
                    name: [
                        x
                        for p in range(PARTS)
                        for x in (
                            round(float(self.room_rec[h, i, p]), 1),
                            float(self.room_n[h, i, p]),
                        )
                    ]
                    for name, i in home.rooms.items()
                },
            )
            for h, home in enumerate(self._homes)
        ]

    def restore(self, baselines: list[Baseline], now: datetime) -> None:
        """Load persisted baselines (before live readings arrive)."""
        for b in baselines:
            h = self.home(b.home_id)
            self.first_seen[h] = b.first_seen
            rec = np.asarray(b.records, dtype=np.float64).reshape(-1, SLOTS)
            if len(rec) < len(CONTEXTS):  # saved before `seated`: seated starts as home
                rec = np.vstack([rec, rec[HOME : HOME + 1]])
            self.records[h] = rec
            self.seat_s[h] = b.seat_s
            days = self._learned_days(h, _ts(now))
            self.usual_seat[h] = (
                days >= self.rules.inactivity.seat_min_days
                and b.seat_s / days >= self.rules.inactivity.seat_min_s_per_day
            )
            maxima = np.asarray(b.maxima, dtype=np.float64)[:N_TIMERS]
            self.maxima[h, : len(maxima)] = maxima  # saved with fewer timers: the rest unset
            self.daily_mean[h] = b.daily_mean
            self.daily_days[h] = b.daily_days
            self.wake_h[h] = b.wake_h
            for name in sorted(b.rooms.keys() | b.room_parts.keys()):
                per_part = b.room_parts.get(name, [])
                if len(per_part) != 2 * PARTS:  # saved before the parts, or with other parts
                    pair = b.rooms.get(name, [])
                    if len(pair) != 2:
                        log.warning("baseline of %s: room %r unreadable", b.home_id, name)
                        continue
                    per_part = pair * PARTS
                idx = self._room_index(h, name)
                if idx >= 0:
                    self.room_rec[h, idx] = per_part[0::2]
                    self.room_n[h, idx] = [int(c) for c in per_part[1::2]]
            self._refresh(h, _ts(now))

    def take_dirty(self) -> list[str]:
        """The homes whose state changed since the last call (to persist only those)."""
        homes = [self._homes[h].home_id for h in sorted(self._dirty)]
        self._dirty.clear()
        return homes

    def mark_dirty(self, home_ids: Iterable[str]) -> None:
        """Persist these homes next time again (their save failed)."""
        self._dirty.update(self._index[i] for i in home_ids if i in self._index)

    def export_state(self, home_ids: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """Each home's whole state (learned baselines, silence in progress, occupancy, open
        stays, pending deadlines), as plain values (floats may be nan / inf): what a restart
        needs to go on exactly where it stopped. All homes unless `home_ids` says which."""
        wanted = (
            range(len(self._homes))
            if home_ids is None
            else [self._index[i] for i in home_ids if i in self._index]
        )
        rows = np.fromiter(wanted, dtype=np.intp)
        # One gather and one tolist per array for all the homes (per home and array it took
        # 0.36 s for 1 500 homes, blocking the event loop at every save).
        columns = [(name, getattr(self, name)[rows].tolist()) for name in _STATE_ARRAYS]
        out: dict[str, dict[str, Any]] = {}
        for k, h in enumerate(rows.tolist()):
            home = self._homes[h]
            out[home.home_id] = {
                "arrays": {name: values[k] for name, values in columns},
                "home": {slot: getattr(home, slot) for slot in _HOME_STATE},
            }
        return out

    def restore_state(self, states: dict[str, dict[str, Any]], now: datetime) -> int:
        """Load what `export_state` gave (after `restore` of the baselines, before live
        readings). A value whose shape no longer fits (saved by another build) is skipped with
        a warning, leaving what the baselines gave. Returns how many homes were restored."""
        done = 0
        for home_id, state in states.items():
            h = self.home(home_id)
            arrays = state.get("arrays", {})
            for name in _STATE_ARRAYS:
                if name not in arrays:
                    continue
                target = getattr(self, name)
                value = np.asarray(arrays[name], dtype=target.dtype)
                if value.shape != target[h].shape:
                    log.warning("state of %s: %s saved as %s, skipped", home_id, name, value.shape)
                    continue
                target[h] = value
            home = self._homes[h]
            for slot, value in state.get("home", {}).items():
                if slot in _HOME_STATE:
                    setattr(home, slot, dict(value) if slot == "rooms" else value)
            self._refresh(h, _ts(now))
            done += 1
        return done

    def threshold(self, home_id: str, context: int, hour: int) -> float:
        """The current inactivity threshold (seconds) of a home, context and local hour."""
        return float(self.thresholds[self.home(home_id), context, hour])


def _presumed_asleep(r: InactivityRule, pos: Any, hours: Any, wake: Any) -> Any:
    """Whether a silence that began at `pos` (hours after local noon) and lasted `hours`
    reached the presumed night (`presume_asleep_from_hour` to `presume_asleep_to_hour`) or
    began between `night_start_hour` and the usual wake-up `wake` (noon hours; nan:
    `night_end_hour`). Scalars or arrays alike."""
    lo = float((r.presume_asleep_from_hour - 12) % 24)
    hi = float((r.presume_asleep_to_hour - 12) % 24)
    evening = float((r.night_start_hour - 12) % 24)
    wake = np.where(np.isnan(wake), float((r.night_end_hour - 12) % 24), wake)
    return ((pos < hi) & (pos + hours > lo)) | ((pos >= evening) & (pos < wake))


_HOME_STATE = tuple(s for s in _Home.__slots__ if s not in ("home_id", "covered"))
"""A home's values persisted with its state (its id is the key; coverage is the layout's)."""

_ARRAYS = (
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

_STATE_ARRAYS = tuple(a for a in _ARRAYS if a != "thresholds")
"""The per-home arrays persisted (thresholds are recomputed from the records)."""
