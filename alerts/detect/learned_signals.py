"""The learned detectors' signals: an inactivity (or `not_up`) signal for a silence past its
limit, and the signal of each timer that fell due (or what the timer does instead: a return
confirmed by time, an outing re-armed up to the cap, a stay nobody can see judged no more).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from alerts.detect.learned_homes import (
    ASLEEP,
    CONTEXTS,
    HOME,
    OUT,
    SEATED,
    T_BATH,
    T_BED,
    T_OUT,
    T_POWER,
    T_RETURN,
    T_WANDER,
    T_WATER,
    LearnedHomes,
    utc_at,
)
from alerts.detect.learned_outings import unconfirmed_return
from alerts.detect.learned_rooms import room_name, room_tail_chance
from alerts.detect.learned_stays import bath_unseen_night
from alerts.detect.learned_thresholds import late_wake, unseen_night
from alerts.detect.rules import HOUR
from alerts.model import Category, Severity, Signal

# The kind of each timer's signal (by column; T_RETURN raises none).
_TIMER_KINDS = (
    "bathroom_too_long",
    "out_of_bed_night",
    "night_wandering",
    "no_utility_use",
    "no_utility_use",
    "not_back",
    "",
)


def _rounded(value: float | None) -> float | None:
    """To 3 significant digits (None stays None)."""
    return None if value is None else float(f"{value:.3g}")


def fire_inactivity(d: LearnedHomes, homes: npt.NDArray[np.intp], t: float) -> list[Signal]:
    """The inactivity or `not_up` signals of `homes` (candidates: checked again one by
    one, and once per silence) whose silence is past its limit at `t`."""
    r = d.rules.inactivity
    out: list[Signal] = []
    for h in homes.tolist():
        home_ctx = int(d.ctx[h])
        start = d.last_act[h]
        if home_ctx == OUT or math.isnan(start) or d.fired[h]:
            continue
        slot = d.local_hour(h, t)
        r_i = d.rules.inactivity
        night_unseen = unseen_night(d, h, float(start), t - float(start))
        ctx = ASLEEP if home_ctx == HOME and night_unseen else home_ctx
        hourly = float(d.thresholds[h, ctx, slot])
        seen = ctx == home_ctx and not d.nobed[h]
        room_thr = float(d.room_thr[h]) if seen else math.inf
        thr = min(hourly, room_thr)
        home_id = d.homes[h].home_id
        late = late_wake(d, h, t)
        if d.unseen(home_id):
            # A device that sees the elder is dead: they may sit where it looked, or
            # have got up at night (or in the morning) where it looked. At home, the
            # silence is alerted past `unseen_floor_s`; asleep, only not up past the usual
            # wake-up, and that silence too past `unseen_floor_s`.
            thr = max(thr, r_i.unseen_floor_s) if ctx in (HOME, SEATED) else math.inf
            late = late and t - start > r_i.unseen_floor_s
        if t - start <= thr and not late:
            continue
        room = room_name(d, h)
        if d.suppressed(home_id):
            continue  # the hub is offline: a technical alert, not an inactivity one
        d.fired[h] = True
        d.dirty.add(h)
        d.flag(h, t)
        morning = r.night_end_hour - 2 <= slot < r.morning_end_hour
        kind = "not_up" if ctx == ASLEEP and (morning or late) else "inactivity"
        out.append(
            Signal(
                home_id,
                kind,
                Category.WELLBEING,
                Severity.CRITICAL,
                utc_at(t),
                f"no activity for {(t - start) / HOUR:.1f} h ({CONTEXTS[ctx]}), "
                + (
                    "still asleep past the usual wake-up"
                    if late and t - start <= thr
                    else f"usual at most {thr / HOUR:.1f} h at this hour"
                    + (f" after activity in the {room}" if thr < hourly else "")
                ),
                evidence={
                    "since": utc_at(start).isoformat(),
                    "silence_s": round(t - start),
                    "expected_max_s": None if math.isinf(thr) else round(thr),
                    "context": CONTEXTS[ctx],
                    "local_hour": slot,
                    "room": room,
                    "room_expected_max_s": (
                        None if math.isinf(d.room_thr[h]) else round(d.room_thr[h])
                    ),
                    "usual_wake_local_hour": (
                        None
                        if math.isnan(d.wake_h[h])
                        else round((float(d.wake_h[h]) + 12) % 24, 2)
                    ),
                    "learned_days": round(d.learned_days(h, t), 1),
                    # How unusual: the estimated chance that a normal silence begun in
                    # this room at this part of the day lasts this long (tail model).
                    "normal_chance": _rounded(room_tail_chance(d, h, t - start, t)),
                },
            )
        )
    return out


def fire_timer(d: LearnedHomes, h: int, col: int, t: float) -> Signal | None:
    """The timer in column `col` of home `h` fell due at `t`: disarm it, and its signal
    (None: it raises none now)."""
    d.dirty.add(h)
    due = float(d.due[h, col])
    d.due[h, col] = np.inf
    home = d.homes[h]
    if col in (T_WATER, T_POWER) and int(d.ctx[h]) == OUT:
        return None  # nobody home: no use expected
    if col == T_RETURN:
        unconfirmed_return(d, h)
        return None
    if col == T_OUT:
        if int(d.ctx[h]) != OUT or d.suppressed(home.home_id):
            return None  # back, or the hub is offline (a technical alert says so)
        o = d.rules.outing
        if d.unseen(home.home_id) and t < home.out_start + o.cap_s - 1.0:
            # A device that sees the elder is dead: they may be back unseen. Only the cap
            # (within 12 h of leaving) still holds.
            d.due[h, T_OUT] = home.out_start + o.cap_s
            return None
        d.flagged_out[h] = t
        # Alerted before the cap (unusually long, or not back by night): once more at
        # the cap if still out, and every `cap_s` after, so that a fall later in the
        # outing is alerted within 12 h too (away mode mutes a planned absence).
        cap_at = home.out_start + o.cap_s
        d.due[h, T_OUT] = cap_at if t < cap_at - o.floor_s / 4 else t + o.cap_s
    if col == T_BED and not home.bed_elsewhere:
        return None  # a mat that went to rest with nothing after: still in bed, asleep
    if col == T_BATH and (d.unseen(home.home_id) or bath_unseen_night(d, h, t)):
        # A room no sensor sees (a dead device; at night, a bedroom without one): the
        # elder may have left the bathroom unseen; the inactivity rule judges instead.
        home.bath_since = math.nan
        return None
    if col == T_BATH:
        since = home.bath_since
        home.bath_fired = True
        d.flag(h, t)
    elif col == T_BED:
        since = home.bed_left
    elif col == T_WANDER:
        since = home.wander_exit
    elif col == T_OUT:
        since = home.out_start
    else:
        since = d.last_use[h, col - T_WATER]
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
        "since": utc_at(since).isoformat(),
        "elapsed_s": round(t - since),
        "expected_max_s": round(due - since),
    }
    if what is not None:
        evidence["utility"] = what
    if col == T_OUT:
        part = d.part(h, since)
        evidence["usual_longest_s"] = round(float(d.out_rec[h, part])) if d.out_n[h, part] else None
        evidence["learned_outings"] = int(d.out_n[h, part])
    severity = Severity.CRITICAL if col in (T_BATH, T_WANDER, T_OUT) else Severity.WARNING
    return Signal(
        home.home_id,
        _TIMER_KINDS[col],
        Category.WELLBEING,
        severity,
        utc_at(t),
        summary.format((t - since) / HOUR),
        evidence=evidence,
    )
