"""Environment and health: indoor temperature too cold/hot for too long, vitals out of range."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from alerts.detect.rules import TemperatureRule, VitalsRule
from alerts.model import Category, Severity, Signal
from devices.payload import Reading

TEMPERATURE_METRICS = frozenset({"temperature", "temperature_c"})


class TemperatureWatch:
    """Per home: since when it has been too cold / too hot; fires once per episode."""

    def __init__(self, rule: TemperatureRule | None = None, capacity: int = 64) -> None:
        self.rule = rule or TemperatureRule()
        # Per home, the elder's own (too cold below, too hot above); None: the rule's.
        self.limits: dict[str, tuple[float | None, float | None]] = {}
        self._index: dict[str, int] = {}
        self._homes: list[str] = []
        self.since: npt.NDArray[np.float64] = np.full((capacity, 2), np.nan)  # cold, heat
        self.fired = np.zeros((capacity, 2), bool)
        self.last_value: npt.NDArray[np.float64] = np.full((capacity, 2), np.nan)
        self.latest: npt.NDArray[np.float64] = np.full(capacity, -np.inf)  # latest reading

    def _home(self, home_id: str) -> int:
        idx = self._index.get(home_id)
        if idx is None:
            idx = len(self._homes)
            if idx >= len(self.since):
                n = len(self.since)
                self.since = np.concatenate([self.since, np.full((n, 2), np.nan)])
                self.fired = np.concatenate([self.fired, np.zeros((n, 2), bool)])
                self.last_value = np.concatenate([self.last_value, np.full((n, 2), np.nan)])
                self.latest = np.concatenate([self.latest, np.full(n, -np.inf)])
            self._index[home_id] = idx
            self._homes.append(home_id)
        return idx

    def bounds(self, home_id: str) -> tuple[float, float]:
        """Too cold below, too hot above, in this home (the elder's limits, or the rule's)."""
        lo, hi = self.limits.get(home_id, (None, None))
        return (
            self.rule.cold_below_c if lo is None else lo,
            self.rule.heat_above_c if hi is None else hi,
        )

    def observe(self, reading: Reading) -> list[Signal]:
        """Track the episode a temperature reading starts, continues or ends."""
        if reading.metric not in TEMPERATURE_METRICS:
            return []
        h = self._home(reading.home_id)
        ts = reading.ts.timestamp()
        cold, heat = self.bounds(reading.home_id)
        late = ts < self.latest[h]  # after a later one (two ingest batches, either order)
        self.latest[h] = max(self.latest[h], ts)
        for col, bad in enumerate((reading.value < cold, reading.value > heat)):
            since = self.since[h, col]
            if late:  # it can only move an open episode's start earlier
                if bad and not math.isnan(since) and ts < since:
                    self.since[h, col] = ts
            elif bad:
                if math.isnan(since):
                    self.since[h, col] = ts
                self.last_value[h, col] = reading.value
            else:
                self.since[h, col] = np.nan
                self.fired[h, col] = False
        return self._check(np.array([h]), float(self.latest[h]))  # never back in time

    def advance(self, now: datetime) -> list[Signal]:
        """Episodes that have now lasted `sustained_s`: one vectorised comparison."""
        n = len(self._homes)
        return self._check(np.arange(n), now.timestamp())

    def _check(self, homes: npt.NDArray[np.intp], t: float) -> list[Signal]:
        since = self.since[homes]
        due = (t - since >= self.rule.sustained_s) & ~self.fired[homes]
        out: list[Signal] = []
        for i, col in zip(*np.nonzero(due), strict=True):
            h = int(homes[i])
            self.fired[h, col] = True
            cold = col == 0
            value = float(self.last_value[h, col])
            limit = self.bounds(self._homes[h])[0 if cold else 1]
            start = datetime.fromtimestamp(float(self.since[h, col]), tz=UTC)
            out.append(
                Signal(
                    self._homes[h],
                    "indoor_cold" if cold else "indoor_heat",
                    Category.ENVIRONMENT,
                    Severity.WARNING,
                    datetime.fromtimestamp(t, tz=UTC),
                    f"indoor {value:.1f} °C, {'below' if cold else 'above'} {limit:g} °C "
                    f"since {start:%H:%M}Z",
                    evidence={
                        "since": start.isoformat(),
                        "last_c": value,
                        "limit_c": limit,
                        "sustained_s": self.rule.sustained_s,
                    },
                )
            )
        return out


@dataclass(frozen=True, slots=True)
class VitalLimits:
    """One elder's own limits (from their profile); None fields use the rule's defaults."""

    heart_rate_low: float | None = None
    heart_rate_high: float | None = None
    spo2_low: float | None = None


class VitalsWatch:
    """Vital signs outside the elder's limits for `consecutive` readings, or far off their own
    learned level (an EWMA mean and variance that does not learn from flagged readings)."""

    def __init__(
        self, rule: VitalsRule | None = None, profiles: Mapping[str, VitalLimits] | None = None
    ) -> None:
        self.rule = rule or VitalsRule()
        self.profiles = dict(profiles or {})
        self._state: dict[tuple[str, str], list[float]] = {}  # [run, n, mean, var, fired]

    def _limits(self, home_id: str, metric: str) -> tuple[float, float]:
        p = self.profiles.get(home_id, VitalLimits())
        if metric == "heart_rate":
            lo = p.heart_rate_low if p.heart_rate_low is not None else self.rule.heart_rate_low
            hi = p.heart_rate_high if p.heart_rate_high is not None else self.rule.heart_rate_high
            return lo, hi
        lo = p.spo2_low if p.spo2_low is not None else self.rule.spo2_low
        return lo, math.inf

    def observe(self, reading: Reading) -> list[Signal]:
        """O(1): update the run of out-of-range readings and the learned level."""
        if reading.metric not in ("heart_rate", "spo2"):
            return []
        key = (reading.home_id, reading.metric)
        st = self._state.setdefault(key, [0.0, 0.0, 0.0, 0.0, 0.0])
        lo, hi = self._limits(reading.home_id, reading.metric)
        v = reading.value
        r = self.rule
        outside = not lo <= v <= hi
        z = 0.0
        if st[1] >= r.trend_min_readings and st[3] > 0:
            z = abs(v - st[2]) / math.sqrt(st[3])
        anomalous = outside or z >= r.trend_z
        st[0] = st[0] + 1 if anomalous else 0
        if not anomalous:  # learn only from readings not flagged
            a = r.trend_alpha if st[1] >= 1 else 1.0
            delta = v - st[2]
            st[2] += a * delta
            st[3] = (1 - a) * (st[3] + a * delta * delta)
            st[1] += 1
            st[4] = 0.0
        if st[0] < r.consecutive or st[4]:
            return []
        st[4] = 1.0
        expected = f"{lo:g}..{hi:g}" if math.isfinite(hi) else f">= {lo:g}"
        return [
            Signal(
                reading.home_id,
                "vitals",
                Category.HEALTH,
                Severity.WARNING,
                reading.ts,
                f"{reading.metric} {v:g} outside the elder's range ({expected})"
                if outside
                else f"{reading.metric} {v:g} far from the elder's usual {st[2]:.0f}",
                device_id=reading.device_id,
                boot=reading.boot,
                seq=reading.seq,
                evidence={
                    "metric": reading.metric,
                    "value": v,
                    "limits": [lo, hi if math.isfinite(hi) else None],
                    "learned_mean": round(st[2], 1),
                    "z": round(z, 1),
                    "consecutive": int(st[0]),
                },
            )
        ]

    def advance(self, now: datetime) -> list[Signal]:
        """Vitals are judged on readings only."""
        return []
