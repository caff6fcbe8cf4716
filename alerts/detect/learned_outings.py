"""Outings of the learned detectors: the deadline of `not_back` for an outing begun by day
(the elder's longest outing begun in that part of the day, the night bound, the cap), the
`night_wandering` timer of an outing begun at night, the return home (confirmed, or
unconfirmed activity inside that becomes one), and what a confirmed return teaches.
"""

from __future__ import annotations

import math

import numpy as np

from alerts.detect.learned_homes import (
    ASLEEP,
    HOME,
    L_WANDER,
    OUT,
    SEATED,
    T_OUT,
    T_POWER,
    T_RETURN,
    T_WANDER,
    T_WATER,
    LearnedHomes,
)
from alerts.detect.learned_rooms import room_threshold
from alerts.detect.learned_thresholds import learn_max, learned_limit
from alerts.detect.rules import HOUR


def not_back_due(d: LearnedHomes, h: int, start: float) -> float:
    """When an outing begun at `start` (by day) is too long: its learned limit, the night
    bound, and the cap, whichever comes first."""
    o = d.rules.outing
    part = d.part(h, start)
    if d.out_n[h, part] >= o.min_outings:
        limit = max(o.floor_s, float(d.out_rec[h, part]) * o.factor + o.margin_s)
    else:
        limit = max(o.default_s, float(d.out_rec[h, part]) * o.factor + o.margin_s)
    due = start + min(limit, o.cap_s)
    # Not back by night: `night_hour` local, or the latest the elder came back + margin,
    # for an outing begun before it (never sooner than `floor_s` after leaving).
    start_pos = d.day_hours(h, start)
    bound = float((o.night_hour - 6) % 24)
    late = float(d.back_late[h])
    if not math.isnan(late):
        bound = max(bound, late + o.night_margin_s / HOUR)
    if start_pos < bound < 24.0:
        due = min(due, start + max((bound - start_pos) * HOUR, o.floor_s))
    return due


def start_wander(d: LearnedHomes, h: int, ts: float) -> None:
    """Out of the door at night: arm `night_wandering` at its learned limit."""
    rr = d.rules.rooms
    hour = d.local_hour(h, ts)
    if hour >= rr.night_from_hour or hour < rr.night_to_hour:
        d.homes[h].wander_exit = ts
        limit = learned_limit(
            d, h, L_WANDER, rr.wander_default_s, rr.wander_floor_s, rr.warmup_days, rr.factor, ts
        )
        d.due[h, T_WANDER] = ts + limit


def end_wander(d: LearnedHomes, h: int, ts: float) -> None:
    """Back from a night outing: learn its length if its timer was still armed, disarm."""
    home = d.homes[h]
    if not math.isnan(home.wander_exit) and d.due[h, T_WANDER] < np.inf:
        learn_max(d, h, L_WANDER, ts - home.wander_exit)
    home.wander_exit = math.nan
    d.due[h, T_WANDER] = np.inf


def back_home(d: LearnedHomes, h: int, ts: float) -> None:
    """The elder is back home: end a night outing; time out does not count for the
    utility timers (no water or power use is expected while out)."""
    end_wander(d, h, ts)
    home = d.homes[h]
    if not math.isnan(home.out_start):
        away = max(0.0, ts - home.out_start)
        d.last_use[h] = np.minimum(d.last_use[h] + away, ts)
        d.due[h, T_WATER : T_POWER + 1] += away
        if d.due[h, T_OUT] < np.inf or not math.isnan(d.flagged_out[h]):
            _learn_outing(d, h, home.out_start, ts)  # an outing begun by day
        home.out_start = math.nan
    home.pending_return = math.nan
    d.due[h, T_OUT] = np.inf
    d.due[h, T_RETURN] = np.inf
    d.flagged_out[h] = np.nan


def _learn_outing(d: LearnedHomes, h: int, start: float, end: float) -> None:
    """A confirmed return from an outing begun by day: learn its length and how late the
    elder comes back (`back_late`, hours after 06:00; +inf once they stayed out past the
    next 06:00, when "not back by night" is no sign for them: the cap still bounds)."""
    o = d.rules.outing
    length = end - start
    if length <= 0:
        return
    start_pos = d.day_hours(h, start)
    end_pos = start_pos + length / HOUR
    night_pos = float((o.night_hour - 6) % 24)
    late = float(d.back_late[h])
    if end_pos >= 24.0 and start_pos < night_pos:
        d.back_late[h] = np.inf
    elif end_pos > night_pos and (math.isnan(late) or end_pos > late):
        d.back_late[h] = end_pos
    if length > o.learn_cap_s:
        return  # an absence (away mode's business), not an outing's length
    part = d.part(h, start)
    d.out_rec[h, part] = max(float(d.out_rec[h, part]), length)
    d.out_n[h, part] += 1


def unconfirmed_return(d: LearnedHomes, h: int) -> None:
    """Activity inside after the door, never confirmed, and no door since: the elder is
    home (as of that activity); the silence since its last reading is judged as one at
    home from now on."""
    home = d.homes[h]
    if int(d.ctx[h]) != OUT or math.isnan(home.pending_return):
        return
    r = d.rules.inactivity
    back_home(d, h, home.pending_return)
    home.out_device = ""
    last = float(d.last_act[h])
    hour = d.local_hour(h, last)
    asleep = hour >= r.presume_asleep_from_hour or hour < r.presume_asleep_to_hour
    d.ctx[h] = ASLEEP if asleep else (SEATED if d.seated[h] else HOME)
    d.fired[h] = False
    d.room_thr[h] = room_threshold(d, h, last)
