"""What the learned detectors persist of a home: its learned `Baseline` (migration 0007,
alerts.detect.baselines) and its whole state (every per-home array but the thresholds, and
its `HomeState` slots, as plain values: alerts.detect.state), exported and restored.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alerts.detect.learned_homes import (
    ARRAYS,
    CONTEXTS,
    HOME,
    N_TIMERS,
    PARTS,
    SLOTS,
    HomeState,
    LearnedHomes,
)
from alerts.detect.learned_rooms import room_index
from alerts.detect.learned_thresholds import refresh_thresholds

log = logging.getLogger(__name__)


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


HOME_STATE = tuple(s for s in HomeState.__slots__ if s not in ("home_id", "covered"))
"""A home's values persisted with its state (its id is the key; coverage is the layout's)."""

STATE_ARRAYS = tuple(a for a in ARRAYS if a != "thresholds")
"""The per-home arrays persisted (thresholds are recomputed from the records)."""


def export_baseline(d: LearnedHomes, h: int) -> Baseline:
    """One home's learned baseline, for persisting."""
    home = d.homes[h]
    return Baseline(
        home_id=home.home_id,
        first_seen=float(d.first_seen[h]),
        records=d.records[h].round(1).tolist(),
        maxima=d.maxima[h].tolist(),
        daily_mean=float(d.daily_mean[h]),
        daily_days=int(d.daily_days[h]),
        wake_h=float(d.wake_h[h]),
        seat_s=float(d.seat_s[h]),
        rooms={
            name: [
                round(float(d.room_rec[h, i].max()), 1),
                float(d.room_n[h, i].sum()),
            ]
            for name, i in home.rooms.items()
        },
        room_parts={
            name: [
                x
                for p in range(PARTS)
                for x in (
                    round(float(d.room_rec[h, i, p]), 1),
                    float(d.room_n[h, i, p]),
                )
            ]
            for name, i in home.rooms.items()
        },
    )


def restore_baseline(d: LearnedHomes, h: int, b: Baseline, now: float) -> None:
    """Load a persisted baseline into home `h` (before live readings arrive); `now` is the
    event time (seconds) its thresholds are recomputed for."""
    d.first_seen[h] = b.first_seen
    rec = np.asarray(b.records, dtype=np.float64).reshape(-1, SLOTS)
    if len(rec) < len(CONTEXTS):  # saved before `seated`: seated starts as home
        rec = np.vstack([rec, rec[HOME : HOME + 1]])
    d.records[h] = rec
    d.seat_s[h] = b.seat_s
    days = d.learned_days(h, now)
    d.usual_seat[h] = (
        days >= d.rules.inactivity.seat_min_days
        and b.seat_s / days >= d.rules.inactivity.seat_min_s_per_day
    )
    maxima = np.asarray(b.maxima, dtype=np.float64)[:N_TIMERS]
    d.maxima[h, : len(maxima)] = maxima  # saved with fewer timers: the rest unset
    d.daily_mean[h] = b.daily_mean
    d.daily_days[h] = b.daily_days
    d.wake_h[h] = b.wake_h
    for name in sorted(b.rooms.keys() | b.room_parts.keys()):
        per_part = b.room_parts.get(name, [])
        if len(per_part) != 2 * PARTS:  # saved before the parts, or with other parts
            pair = b.rooms.get(name, [])
            if len(pair) != 2:
                log.warning("baseline of %s: room %r unreadable", b.home_id, name)
                continue
            per_part = pair * PARTS
        idx = room_index(d, h, name)
        if idx >= 0:
            d.room_rec[h, idx] = per_part[0::2]
            d.room_n[h, idx] = [int(c) for c in per_part[1::2]]
    refresh_thresholds(d, h, now)


def export_states(
    d: LearnedHomes, home_ids: Iterable[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Each home's whole state, keyed by home id: every persisted array's row and the home's
    slots, as plain values (floats may be nan / inf). All homes unless `home_ids` says which
    (those never seen are left out)."""
    wanted = (
        range(len(d.homes)) if home_ids is None else [d.index[i] for i in home_ids if i in d.index]
    )
    rows = np.fromiter(wanted, dtype=np.intp)
    # One gather and one tolist per array for all the homes (per home and array it took
    # 0.36 s for 1 500 homes, blocking the event loop at every save).
    columns = [(name, getattr(d, name)[rows].tolist()) for name in STATE_ARRAYS]
    out: dict[str, dict[str, Any]] = {}
    for k, h in enumerate(rows.tolist()):
        home = d.homes[h]
        out[home.home_id] = {
            "arrays": {name: values[k] for name, values in columns},
            "home": {slot: getattr(home, slot) for slot in HOME_STATE},
        }
    return out


def restore_home_state(
    d: LearnedHomes, h: int, home_id: str, state: dict[str, Any], now: float
) -> None:
    """Load one home's state as `export_states` gave it into home `h`, then recompute its
    thresholds for `now` (event time, seconds). A value whose shape no longer fits (saved by
    another build) is skipped with a warning, leaving what the baselines gave."""
    arrays = state.get("arrays", {})
    for name in STATE_ARRAYS:
        if name not in arrays:
            continue
        target = getattr(d, name)
        value = np.asarray(arrays[name], dtype=target.dtype)
        if value.shape != target[h].shape:
            log.warning("state of %s: %s saved as %s, skipped", home_id, name, value.shape)
            continue
        target[h] = value
    home = d.homes[h]
    for slot, value in state.get("home", {}).items():
        if slot in HOME_STATE:
            setattr(home, slot, dict(value) if slot == "rooms" else value)
    refresh_thresholds(d, h, now)
