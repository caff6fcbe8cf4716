"""Occupancy of the learned detectors: whether the elder is at home, seated, asleep or out.

An entry-door episode means out until activity inside confirms a return (two devices, or a
burst of one); a chair mat says whether the elder sits, and time seated whether the chair is
their usual seat; the hour and the room (bedroom, bathroom) say whether they are asleep.
"""

from __future__ import annotations

import math

import numpy as np

from alerts.detect.layout import DeviceInfo, Role
from alerts.detect.learned_homes import (
    ASLEEP,
    HOME,
    OUT,
    SEATED,
    SLOTS,
    T_OUT,
    T_RETURN,
    T_WANDER,
    LearnedHomes,
)
from alerts.detect.learned_outings import back_home, not_back_due, start_wander
from alerts.detect.learned_thresholds import refresh_thresholds
from devices.payload import Reading

# Chair mats: while one is occupied the elder sits (context `seated`, learned apart from
# `home`). Where a chair is the elder's usual seat (learned: occupied for hours a day), a
# silence at home while not seated is one of someone up and about, judged more tightly.
_CHAIR_KINDS = frozenset({"chair_mat", "chair"})
_RELEASE_KINDS = frozenset({"pir_motion", "motion", "radar"}) | _CHAIR_KINDS


def _release(reading: Reading) -> bool:
    """Motion or presence back to 0, or a chair mat emptied: the end of a presence."""
    return reading.value == 0.0 and reading.kind in _RELEASE_KINDS


def track_occupancy(d: LearnedHomes, h: int, info: DeviceInfo, reading: Reading, ts: float) -> None:
    """The home's context after this activity reading: out at a door episode, back when
    activity inside confirms it, else asleep, seated or at home by the hour and the room."""
    r = d.rules.inactivity
    home = d.homes[h]
    ctx = int(d.ctx[h])
    if info.role is Role.ENTRY_DOOR:
        # Any door episode means out until activity inside confirms otherwise: the silence
        # after a door is an outing, and a door opened while out is not proof of a return.
        if ts - d.last_door[h] > r.door_episode_s and ctx != OUT:
            d.ctx[h] = OUT
            home.out_start = ts
            start_wander(d, h, ts)
            if d.due[h, T_WANDER] == np.inf:  # by day: night wandering has the night
                d.due[h, T_OUT] = not_back_due(d, h, ts)
        home.out_device = ""
        home.out_count = 0
        home.inside_n = 0
        home.inside_dev = ""
        home.pending_return = math.nan  # a door again: whatever came before is no return
        d.due[h, T_RETURN] = np.inf
        d.last_door[h] = ts
        return
    _seat(d, h, info, reading, ts)  # also while out: sitting down may be the return
    if ctx == OUT:
        # Back only when activity inside confirms it: two devices, or a burst of one,
        # within `return_window_s` (a stray event from a pet or a sensor is not a return).
        # A release (motion or presence back to 0, a chair mat emptied) right after the door
        # lags the leaving (a PIR's hold time, a mat reporting late): it opens no return
        # window and is no second device; it counts only in a burst of its own device.
        lagging = (
            reading.value == 0.0
            and reading.kind in _RELEASE_KINDS
            and ts - d.last_door[h] <= r.release_lag_s
        )
        # Two activations inside soon after the door, or `inside_events` however late (each
        # within `inside_gap_s` of the one before):
        # a return, unless a door follows. If it is never confirmed, the elder is home
        # `unconfirmed_s` after the first of it (a sensor's stray event is not enough).
        soon = ts - d.last_door[h] <= r.return_window_s
        if reading.value != 0.0:  # an activation (a contact closing is the same one)
            if ts - home.inside_at > d.rules.outing.inside_gap_s:
                home.inside_n, home.inside_dev = 0, ""  # strays hours apart add up to none
            home.inside_at = ts
            home.inside_n += 1
            if home.inside_dev not in ("", reading.device_id):
                home.inside_dev = "*"
            elif not home.inside_dev:
                home.inside_dev = reading.device_id
        # Late, one device firing on its own (a PIR's stray triggers) needs twice as many.
        need = 2 if soon else d.rules.outing.inside_events
        if not soon and home.inside_dev != "*":
            need *= 2
        if not lagging and home.inside_n >= need and math.isnan(home.pending_return):
            home.pending_return = ts
            d.due[h, T_RETURN] = ts + d.rules.outing.unconfirmed_s
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
        back_home(d, h, ts)
    hour = d.local_hour(h, ts)
    presumed = hour >= r.presume_asleep_from_hour or hour < r.presume_asleep_to_hour
    if presumed or (info.bedroom and _sleep_time(d, h, ts)) or (info.bathroom and ctx == ASLEEP):
        d.ctx[h] = ASLEEP
    else:
        d.ctx[h] = SEATED if d.seated[h] else HOME


def _seat(d: LearnedHomes, h: int, info: DeviceInfo, reading: Reading, ts: float) -> None:
    """A chair mat says whether the elder sits (activity in another room ends it); time
    seated decides whether the chair is the elder's usual seat."""
    r = d.rules.inactivity
    home = d.homes[h]
    if reading.kind in _CHAIR_KINDS:
        home.seat_room = info.room
        if reading.value != 0.0:
            d.seated[h] = True
            if math.isnan(d.seat_on[h]):
                d.seat_on[h] = ts
            return
        if not math.isnan(d.seat_on[h]):
            d.seat_s[h] += min(ts - d.seat_on[h], r.seat_cap_s)
        d.seat_on[h] = np.nan
        d.seated[h] = False
        days = d.learned_days(h, ts)
        usual = days >= r.seat_min_days and d.seat_s[h] / days >= r.seat_min_s_per_day
        if usual != d.usual_seat[h]:
            d.usual_seat[h] = usual
            refresh_thresholds(d, h, ts)
    elif d.seated[h] and info.room != home.seat_room and not _release(reading):
        # A PIR re-arming (motion 0) or a radar's presence 0 elsewhere is the elder having
        # left that room (seconds before sitting down): no sign of getting up.
        d.seated[h] = False


def _sleep_time(d: LearnedHomes, h: int, ts: float) -> bool:
    """Evening or night, or a morning before the elder's usual latest wake-up."""
    r = d.rules.inactivity
    hour = d.local_hour(h, ts)
    if hour >= r.night_start_hour or hour < r.night_end_hour:
        return True
    wake = d.wake_h[h]
    return hour < SLOTS / 2 and not math.isnan(wake) and d.noon_hours(h, ts) < wake
