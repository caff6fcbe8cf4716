"""The learned detectors' limits: each home's inactivity thresholds per context and local
hour (from its records of normal silences), the limits of the timer rules (from its learned
maxima), and which homes' silences are past them now (one vectorised pass over all homes).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from alerts.detect.learned_homes import ASLEEP, DAY, HOME, OUT, SEATED, LearnedHomes
from alerts.detect.rules import HOUR, InactivityRule


def refresh_thresholds(d: LearnedHomes, h: int, now: float | None = None) -> None:
    """Recompute one home's inactivity thresholds from its records (O(3 x 24))."""
    r = d.rules.inactivity
    rec = d.records[h]
    smeared = rec.copy()
    for k in range(1, r.smear_slots + 1):
        smeared = np.maximum(smeared, np.roll(rec, k, axis=1))
        smeared = np.maximum(smeared, np.roll(rec, -k, axis=1))
    if not d.usual_seat[h]:  # seated or not, one at-home context as far as judged
        smeared[[HOME, SEATED]] = smeared[[HOME, SEATED]].max(axis=0)
    thr = smeared * r.factor + r.margin_s
    thr[[HOME, SEATED]] = np.maximum(thr[[HOME, SEATED]], r.floor_home_s)
    if d.usual_seat[h]:  # not in the usual seat, nor in bed, nor out: up and about
        moving = np.maximum(smeared[HOME] * r.factor + r.margin_moving_s, r.floor_moving_s)
        if not d.nobed[h]:  # else maybe lying on a bed no sensor sees, at any hour
            thr[HOME] = moving
    thr[ASLEEP] = np.maximum(thr[ASLEEP], r.floor_asleep_s)
    warm = now is not None and d.learned_days(h, now) >= r.warmup_days
    if not warm:
        thr[[HOME, SEATED]] = np.maximum(thr[[HOME, SEATED]], r.default_home_s)
        # Not seated, and every room would see the elder move (a bedroom with no device
        # would not).
        if d.homes[h].covered and not d.nobed[h]:
            day = slice(r.night_end_hour, r.night_start_hour)  # daytime hours only
            thr[HOME, day] = np.maximum(
                smeared[HOME, day] * r.factor + r.margin_s, r.default_covered_s
            )
        thr[ASLEEP] = np.maximum(thr[ASLEEP], r.default_asleep_s)
    cap = d.caps.get(d.homes[h].home_id)
    if cap is not None:  # the elder's own limit: up at home, never longer than this
        thr[[HOME, SEATED]] = np.minimum(thr[[HOME, SEATED]], cap)
    thr[OUT] = np.inf  # out of home: no inactivity alert (night wandering covers it)
    d.thresholds[h] = thr


def learned_limit(
    d: LearnedHomes,
    h: int,
    col: int,
    default: float,
    floor: float,
    warmup: float,
    factor: float,
    now: float,
) -> float:
    """The limit of a timer rule for a home: its learned maximum in column `col` x
    `factor`, at least `floor`, and at least `default` within `warmup` days (`default`
    alone while nothing is learned)."""
    learned = float(d.maxima[h, col])
    if math.isnan(learned):
        return default
    limit = max(floor, learned * factor)
    if d.learned_days(h, now) < warmup:
        limit = max(limit, default)
    return limit


def learn_max(d: LearnedHomes, h: int, col: int, value: float) -> None:
    """Raise a home's learned maximum in column `col` to `value` (if over it, or unset)."""
    cur = d.maxima[h, col]
    if math.isnan(cur) or value > cur:
        d.maxima[h, col] = value


def presumed_asleep(r: InactivityRule, pos: Any, hours: Any, wake: Any) -> Any:
    """Whether a silence that began at `pos` (hours after local noon) and lasted `hours`
    reached the presumed night (`presume_asleep_from_hour` to `presume_asleep_to_hour`) or
    began between `night_start_hour` and the usual wake-up `wake` (noon hours; nan:
    `night_end_hour`). Scalars or arrays alike."""
    lo = float((r.presume_asleep_from_hour - 12) % 24)
    hi = float((r.presume_asleep_to_hour - 12) % 24)
    evening = float((r.night_start_hour - 12) % 24)
    wake = np.where(np.isnan(wake), float((r.night_end_hour - 12) % 24), wake)
    return ((pos < hi) & (pos + hours > lo)) | ((pos >= evening) & (pos < wake))


def unseen_night(d: LearnedHomes, h: int, start: float, length: float) -> bool:
    """A silence at home presumed asleep (`presumed_asleep`) in a home with no bedroom
    device heard (as `effective_ctx`, for one home)."""
    if not d.nobed[h]:
        return False
    pos = d.noon_hours(h, start)
    return bool(presumed_asleep(d.rules.inactivity, pos, length / HOUR, float(d.wake_h[h])))


def inactive(d: LearnedHomes, t: float, n: int) -> npt.NDArray[np.intp]:
    """Indices of homes whose silence is past the threshold for their context and hour."""
    slot = (((t + d.offset[:n]) % DAY) // HOUR).astype(np.intp)
    home_ctx = d.ctx[:n].astype(np.intp)
    ctx = effective_ctx(d, home_ctx, t, n)
    hourly = d.thresholds[np.arange(n), ctx, slot]
    r = d.rules.inactivity
    # The room's limit needs every room seen: not in a home whose bed no sensor sees (the
    # elder lies down unseen).
    rooms_seen = (ctx == home_ctx) & ~d.nobed[:n]
    room = np.where(rooms_seen, d.room_thr[:n], np.inf)
    thr = np.minimum(hourly, room)
    elapsed = t - d.last_act[:n]
    pos = ((t + d.offset[:n] - DAY / 2) % DAY) / HOUR
    with np.errstate(invalid="ignore"):
        late = (
            (ctx == ASLEEP)
            & (pos >= d.wake_h[:n] + r.wake_margin_s / HOUR)
            & (elapsed > r.floor_asleep_s)
            & (t - d.first_seen[:n] >= r.wake_warmup_days * DAY)
        )
    return np.nonzero(((elapsed > thr) | late) & ~d.fired[:n])[0]


def effective_ctx(
    d: LearnedHomes, ctx: npt.NDArray[np.intp], t: float, n: int
) -> npt.NDArray[np.intp]:
    """The context a silence is judged in: at home in a home whose bed no sensor sees,
    a silence presumed asleep (`presumed_asleep`) is asleep until activity ends it."""
    start = d.last_act[:n]
    pos = ((start + d.offset[:n] - DAY / 2) % DAY) / HOUR
    with np.errstate(invalid="ignore"):
        night = presumed_asleep(d.rules.inactivity, pos, (t - start) / HOUR, d.wake_h[:n])
    return np.where((ctx == HOME) & d.nobed[:n] & night, ASLEEP, ctx)


def late_wake(d: LearnedHomes, h: int, t: float) -> bool:
    """Asleep past the elder's latest usual wake-up (plus margin): not up."""
    r = d.rules.inactivity
    wake = float(d.wake_h[h])
    return (
        int(d.ctx[h]) == ASLEEP
        and not math.isnan(wake)
        and d.noon_hours(h, t) >= wake + r.wake_margin_s / HOUR
        and t - float(d.last_act[h]) > r.floor_asleep_s
        and d.learned_days(h, t) >= r.wake_warmup_days
    )
