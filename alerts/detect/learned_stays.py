"""Stays the learned timer rules watch, each with a deadline armed in the home's `due` row:
too long in the bathroom, out of bed at night (and not back), and no water or power use for
longer than the elder's learned longest gap. Limits are the learned maxima (`learned_limit`).
"""

from __future__ import annotations

import math

import numpy as np

from alerts.detect.layout import DeviceInfo, Role
from alerts.detect.learned_homes import (
    L_BATH,
    L_BED,
    L_WATER,
    OUT,
    T_BATH,
    T_BED,
    T_POWER,
    T_WATER,
    LearnedHomes,
)
from alerts.detect.learned_thresholds import learn_max, learned_limit
from devices.payload import Reading


def track_stays(d: LearnedHomes, h: int, info: DeviceInfo, reading: Reading, ts: float) -> None:
    """A reading's part in a bathroom stay (motion in the bathroom starts or goes on with one,
    activity elsewhere ends it) and in a night out of bed (the bed mat emptied at night)."""
    rr = d.rules.rooms
    home = d.homes[h]
    hour = d.local_hour(h, ts)
    night = hour >= rr.out_of_bed_from_hour or hour < rr.night_to_hour  # the bed's night
    # Too long in the bathroom: only where a motion sensor shows presence there. A PIR
    # re-arming (motion 0) or a radar's presence 0 comes after the elder left: it neither
    # starts nor ends a stay (nor does the bathroom door).
    if info.bathroom and reading.kind in ("pir_motion", "motion", "radar") and reading.value != 0.0:
        home.has_bath_motion = True
        # A stray event while out is nobody in the bathroom; one alert per stay.
        if int(d.ctx[h]) != OUT:
            if math.isnan(home.bath_since):
                home.bath_since = ts
                home.bath_fired = False
            if not home.bath_fired:
                limit = learned_limit(
                    d,
                    h,
                    L_BATH,
                    rr.bathroom_default_s,
                    rr.bathroom_floor_s,
                    rr.warmup_days,
                    rr.factor,
                    ts,
                )
                d.due[h, T_BATH] = home.bath_since + limit
    elif not info.bathroom and not math.isnan(home.bath_since):
        if not home.bath_fired:  # a flagged stay is not learned
            learn_max(d, h, L_BATH, ts - home.bath_since)
        home.bath_since = math.nan
        home.bath_fired = False
        d.due[h, T_BATH] = np.inf
    # Out of bed at night: the mat emptied at night and nobody came back.
    if info.role is Role.BED:
        home.has_bed = True
        if reading.value == 0.0 and night:
            home.bed_left = ts
            home.bed_elsewhere = False
            limit = learned_limit(
                d,
                h,
                L_BED,
                rr.out_of_bed_default_s,
                rr.out_of_bed_floor_s,
                rr.warmup_days,
                rr.factor,
                ts,
            )
            d.due[h, T_BED] = ts + limit
        elif reading.value == 1.0:
            if not math.isnan(home.bed_left) and d.due[h, T_BED] < np.inf:
                learn_max(d, h, L_BED, ts - home.bed_left)
            home.bed_left = math.nan
            d.due[h, T_BED] = np.inf
    elif not night and d.due[h, T_BED] < np.inf:
        home.bed_left = math.nan  # up for the day
        d.due[h, T_BED] = np.inf
    elif not math.isnan(home.bed_left) and not info.bedroom:
        home.bed_elsewhere = True  # seen out of the bedroom after leaving the bed


def track_utility(d: LearnedHomes, h: int, info: DeviceInfo, ts: float) -> None:
    """Water or power used: learn the gap since the last use, and re-arm the timer."""
    u = d.rules.utility
    col = 0 if info.role is Role.WATER else 1
    timer = T_WATER if col == 0 else T_POWER
    last = d.last_use[h, col]
    if not math.isnan(last) and ts - last <= u.learn_cap_s and ts > last:
        learn_max(d, h, L_WATER + col, ts - last)
    d.last_use[h, col] = ts
    limit = learned_limit(d, h, L_WATER + col, u.default_s, u.floor_s, u.warmup_days, u.factor, ts)
    d.due[h, timer] = ts + limit


def _night(d: LearnedHomes, h: int, ts: float) -> bool:
    """Whether `ts` is in the inactivity rule's night (`night_start_hour` to `night_end_hour`)."""
    r = d.rules.inactivity
    hour = d.local_hour(h, ts)
    return hour >= r.night_start_hour or hour < r.night_end_hour


def bath_unseen_night(d: LearnedHomes, h: int, t: float) -> bool:
    """A bathroom stay at night, or begun at night (the toilet at 05:10, back to bed),
    in a home whose bedroom no sensor sees: maybe back in bed, unseen."""
    if not d.nobed[h]:
        return False
    since = d.homes[h].bath_since
    return _night(d, h, t) or (not math.isnan(since) and _night(d, h, since))
