"""Technical detectors: device silent past its heartbeat, low battery, home hub offline.

Per-device state is kept in numpy arrays so `advance` checks every device in one pass.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from alerts.model import Category, Severity, Signal
from alerts.rules import TechnicalRule
from devices.catalogue import CATALOGUE
from devices.payload import Reading

HUB_KINDS = frozenset({"hub", "home_hub"})
BATTERY_METRICS = frozenset({"battery", "battery_pct"})


class DeviceWatch:
    """Knows when each device was last heard; a hub's silence marks its home offline."""

    def __init__(self, rule: TechnicalRule | None = None, capacity: int = 256) -> None:
        self.rule = rule or TechnicalRule()
        self._index: dict[str, int] = {}
        self._devices: list[tuple[str, str, str]] = []  # (device_id, home_id, kind)
        self._offline_homes: set[str] = set()
        self._low_battery: set[str] = set()
        self.last_seen: npt.NDArray[np.float64] = np.full(capacity, np.nan)
        self.limit: npt.NDArray[np.float64] = np.full(capacity, np.inf)
        self.silent = np.zeros(capacity, bool)

    def _slot(self, reading: Reading) -> int:
        idx = self._index.get(reading.device_id)
        if idx is None:
            idx = len(self._devices)
            if idx >= len(self.last_seen):
                n = len(self.last_seen)
                self.last_seen = np.concatenate([self.last_seen, np.full(n, np.nan)])
                self.limit = np.concatenate([self.limit, np.full(n, np.inf)])
                self.silent = np.concatenate([self.silent, np.zeros(n, bool)])
            self._index[reading.device_id] = idx
            self._devices.append((reading.device_id, reading.home_id, reading.kind))
            spec = CATALOGUE.get(reading.kind)
            self.limit[idx] = (
                spec.heartbeat_s * self.rule.heartbeat_grace if spec is not None else np.inf
            )
        return idx

    def hub_offline(self, home_id: str) -> bool:
        """Whether the home's hub is silent past its heartbeat (inactivity is then unknown)."""
        return home_id in self._offline_homes

    def observe(self, reading: Reading) -> list[Signal]:
        """Note the device alive; a battery reading below the limit is a technical alert."""
        idx = self._slot(reading)
        ts = reading.ts.timestamp()
        if math.isnan(self.last_seen[idx]) or ts > self.last_seen[idx]:
            self.last_seen[idx] = ts
        self.silent[idx] = False
        if reading.kind in HUB_KINDS:
            self._offline_homes.discard(reading.home_id)
        if reading.metric not in BATTERY_METRICS:
            return []
        if reading.value >= self.rule.battery_ok_pct:
            self._low_battery.discard(reading.device_id)
            return []
        if reading.value >= self.rule.battery_low_pct or reading.device_id in self._low_battery:
            return []
        self._low_battery.add(reading.device_id)
        return [
            Signal(
                reading.home_id,
                "low_battery",
                Category.TECHNICAL,
                Severity.INFO,
                reading.ts,
                f"battery of {reading.device_id} at {reading.value:.0f} %",
                device_id=reading.device_id,
                boot=reading.boot,
                seq=reading.seq,
                evidence={"battery_pct": reading.value, "limit_pct": self.rule.battery_low_pct},
            )
        ]

    def advance(self, now: datetime) -> list[Signal]:
        """Devices (and hubs) silent past their heartbeat, found in one vectorised pass."""
        n = len(self._devices)
        t = now.timestamp()
        due = np.nonzero(~self.silent[:n] & (t - self.last_seen[:n] > self.limit[:n]))[0]
        out: list[Signal] = []
        for idx in due.tolist():
            self.silent[idx] = True
            device_id, home_id, kind = self._devices[idx]
            hub = kind in HUB_KINDS
            if hub:
                self._offline_homes.add(home_id)
            since = datetime.fromtimestamp(float(self.last_seen[idx]), tz=UTC)
            what = "home hub" if hub else kind
            out.append(
                Signal(
                    home_id,
                    "hub_offline" if hub else "device_silent",
                    Category.TECHNICAL,
                    Severity.WARNING,
                    now,
                    f"{what} {device_id} silent since {since:%Y-%m-%d %H:%M}",
                    device_id=device_id,
                    evidence={
                        "last_seen": since.isoformat(),
                        "expected_within_s": float(self.limit[idx]),
                        "kind": kind,
                    },
                )
            )
        return out
