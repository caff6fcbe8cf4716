"""Learned, per-elder detectors on event time: occupancy, inactivity, routine rules.

State lives in numpy arrays indexed by home (alerts.detect.learned_homes), so per-reading work
is O(1) (a bounded number of slot updates) and the periodic `advance` is one vectorised pass
over all homes. Baselines are learned online per local hour from the elder's own history,
start from conservative defaults, and are exported/imported as `Baseline` values for
persistence (alerts.detect.learned_persist). `LearnedDetector` is the one entry point; the
rules it runs are functions on its state in the modules beside it: occupancy
(learned_occupancy), outings and `not_back` (learned_outings), the bathroom, bed and utility
timers (learned_stays), the room and part-of-day statistics (learned_rooms), the thresholds
(learned_thresholds) and the signals (learned_signals).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import numpy as np

from alerts.detect.layout import METER_METRICS, NON_ACTIVITY_METRICS, Layout, Role
from alerts.detect.learned_homes import (
    ASLEEP,
    DAY,
    HOME,
    OUT,
    SLOTS,
    LearnedHomes,
    utc_at,
)
from alerts.detect.learned_occupancy import track_occupancy
from alerts.detect.learned_persist import (
    Baseline,
    export_baseline,
    export_states,
    restore_baseline,
    restore_home_state,
)
from alerts.detect.learned_rooms import learn_room_silence, room_index, room_threshold
from alerts.detect.learned_signals import fire_inactivity, fire_timer
from alerts.detect.learned_stays import track_stays, track_utility
from alerts.detect.learned_thresholds import inactive, refresh_thresholds, unseen_night
from alerts.detect.rules import HOUR
from alerts.model import Category, Severity, Signal
from devices.payload import Reading

# A fall or an SOS press: the silence that follows is an incident, not the elder's normal.
_ALARM_METRICS = frozenset({"fall", "press"})


def _ts(at: datetime) -> float:
    return at.timestamp()


class LearnedDetector(LearnedHomes):
    """Occupancy (home / out / asleep) and the learned per-elder rules, for many homes."""

    def set_layout(self, layout: Layout) -> None:
        """Follow a reloaded layout (a device installed or moved while running): roles,
        rooms and time zones from the next reading on; each home's room-rule coverage is
        recomputed now, and used by its thresholds from their next refresh (a learned
        silence, a change of the usual seat, the end of the warm-up)."""
        self.layout = layout
        for h, home in enumerate(self.homes):
            home.covered = layout.motion_covered(home.home_id)
            self.nobed[h] = layout.bed_unseen(home.home_id)

    def set_inactivity_caps(self, caps: dict[str, float], now: datetime | None = None) -> None:
        """The elders' own caps on a silence at home while up (seconds, by home; a home
        left out has none): the thresholds of every home whose cap changed are recomputed
        now (as of `now`, or of the home's last activity)."""
        changed = set(caps.items()) ^ set(self.caps.items())
        self.caps = dict(caps)
        for home_id in {home_id for home_id, _ in changed}:
            h = self.index.get(home_id)
            if h is None:
                continue  # computed with its cap when first seen
            at = now.timestamp() if now is not None else float(self.last_act[h])
            refresh_thresholds(self, h, None if math.isnan(at) else at)

    def home(self, home_id: str) -> int:
        """The array index of a home, allocating one on first sight."""
        idx = self.index.get(home_id)
        if idx is None:
            idx = self.add_home(home_id)
            refresh_thresholds(self, idx)
        return idx

    # -- observe -----------------------------------------------------------------------------
    def observe(self, reading: Reading) -> list[Signal]:
        """Update occupancy and baselines with one reading; signals due at its event time."""
        info = self.layout.device(reading.device_id, reading.kind)
        if info.role is Role.PASSIVE or reading.metric in NON_ACTIVITY_METRICS:
            return []
        h = self.home(reading.home_id)
        self.dirty.add(h)
        ts = _ts(reading.ts)
        if info.bedroom or info.role is Role.BED:
            self.nobed[h] = False
        tz = self.layout.tz(reading.home_id)
        off = reading.ts.astimezone(tz).utcoffset()
        self.offset[h] = off.total_seconds() if off is not None else 0.0
        out: list[Signal] = self._due(h, ts)
        if reading.metric in METER_METRICS:
            if reading.value > 0:
                track_utility(self, h, info, ts)
            return out
        if math.isnan(self.first_seen[h]):
            self.first_seen[h] = ts
        out += self._rollover(h, ts)
        self._end_silence(h, ts)
        if reading.metric in _ALARM_METRICS and reading.value == 1.0:
            self.flag(h, ts)
        track_occupancy(self, h, info, reading, ts)
        track_stays(self, h, info, reading, ts)
        if info.role in (Role.WATER, Role.POWER):
            track_utility(self, h, info, ts)
        self.last_room[h] = room_index(self, h, info.room)
        self.room_thr[h] = room_threshold(self, h, ts)
        return out

    def _end_silence(self, h: int, ts: float) -> None:
        """A silence ended with activity: learn it (when plausible) and re-arm."""
        r = self.rules.inactivity
        start = self.last_act[h]
        if not math.isnan(start) and ts > start:
            ctx = int(self.ctx[h])
            length = ts - start
            if ctx == HOME and unseen_night(self, h, start, length):
                ctx = ASLEEP  # the night of an elder whose bed no sensor sees
            cap = (r.learn_cap_home_s, r.learn_cap_asleep_s, r.learn_cap_out_s)[ctx % 3]
            home = self.homes[h]
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
            if length <= cap and ctx != OUT and not incident and not self.unseen(home.home_id):
                self._learn_silence(h, ctx, start, ts)
                if ctx == HOME:
                    learn_room_silence(self, h, start, length)
                if ctx == ASLEEP:
                    self._learn_wake(h, ts)
        self.last_act[h] = ts
        self.fired[h] = False
        self.flagged_at[h] = np.nan  # a new silence, with no alert on it yet

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
        if changed or self.learned_days(h, end) >= self.rules.inactivity.warmup_days:
            refresh_thresholds(self, h, end)

    def _learn_wake(self, h: int, ts: float) -> None:
        """An asleep silence ended with activity: remember the latest usual end of sleep."""
        pos = self.noon_hours(h, ts)
        if pos >= SLOTS / 2:  # ended between midnight and noon
            cur = self.wake_h[h]
            if math.isnan(cur) or pos > cur:
                self.wake_h[h] = pos

    def _up_as_usual(self, h: int, ts: float) -> bool:
        """Whether `ts` is a morning no later than the elder's latest usual wake-up."""
        wake = self.wake_h[h]
        pos = self.noon_hours(h, ts)
        return not math.isnan(wake) and SLOTS / 2 <= pos <= wake

    def _rollover(self, h: int, ts: float) -> list[Signal]:
        """Close the elder's previous local day: compare its activity with the baseline."""
        d = self.rules.daily
        home = self.homes[h]
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
                        utc_at(ts),
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
        sig = fire_inactivity(self, np.array([h]), now)
        cols = np.nonzero(self.due[h] <= now)[0]
        return sig + [s for c in cols if (s := fire_timer(self, h, int(c), now)) is not None]

    def advance(self, now: datetime) -> list[Signal]:
        """Signals due because event time reached `now`: one vectorised pass over all homes."""
        t = _ts(now)
        n = len(self.homes)
        if n == 0:
            return []
        out = fire_inactivity(self, inactive(self, t, n), t)
        hs, cols = np.nonzero(self.due[:n] <= t)
        for h, c in zip(hs.tolist(), cols.tolist(), strict=True):
            signal = fire_timer(self, h, c, t)
            if signal is not None:
                out.append(signal)
        return out

    # -- persistence -------------------------------------------------------------------------
    def export(self) -> list[Baseline]:
        """Every home's learned baseline, for persisting."""
        return [export_baseline(self, h) for h in range(len(self.homes))]

    def restore(self, baselines: list[Baseline], now: datetime) -> None:
        """Load persisted baselines (before live readings arrive)."""
        for b in baselines:
            restore_baseline(self, self.home(b.home_id), b, _ts(now))

    def take_dirty(self) -> list[str]:
        """The homes whose state changed since the last call (to persist only those)."""
        homes = [self.homes[h].home_id for h in sorted(self.dirty)]
        self.dirty.clear()
        return homes

    def mark_dirty(self, home_ids: Iterable[str]) -> None:
        """Persist these homes next time again (their save failed)."""
        self.dirty.update(self.index[i] for i in home_ids if i in self.index)

    def export_state(self, home_ids: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """Each home's whole state (learned baselines, silence in progress, occupancy, open
        stays, pending deadlines), as plain values (floats may be nan / inf): what a restart
        needs to go on exactly where it stopped. All homes unless `home_ids` says which."""
        return export_states(self, home_ids)

    def restore_state(self, states: dict[str, dict[str, Any]], now: datetime) -> int:
        """Load what `export_state` gave (after `restore` of the baselines, before live
        readings). A value whose shape no longer fits (saved by another build) is skipped with
        a warning, leaving what the baselines gave. Returns how many homes were restored."""
        done = 0
        for home_id, state in states.items():
            h = self.home(home_id)
            restore_home_state(self, h, home_id, state, _ts(now))
            done += 1
        return done

    def threshold(self, home_id: str, context: int, hour: int) -> float:
        """The current inactivity threshold (seconds) of a home, context and local hour."""
        return float(self.thresholds[self.home(home_id), context, hour])
