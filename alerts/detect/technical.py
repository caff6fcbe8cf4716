"""Technical detectors: device silent past its heartbeat, low battery, home hub offline.

Per-device state is kept in numpy arrays so `advance` checks every device in one pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from alerts.detect.rules import TechnicalRule
from alerts.model import Category, Severity, Signal
from devices.catalogue import CATALOGUE, HEARTBEAT, Link
from devices.payload import Reading

HUB_KINDS = frozenset({"hub", "home_hub"})
BATTERY_METRICS = frozenset({"battery", "battery_pct"})
STATE_VERSION = 1


class DeviceWatch:
    """Knows when each device was last heard; a hub's silence marks its home offline.

    Devices are known from their readings and, seeded from the registry (`expect`), from
    their installation on: a device that never reports is silent once its heartbeat (times
    the grace) has passed since it was installed. A device's own `status` message (its last
    will, see `devices.status`) saying it is offline makes it silent at once
    (`observe_status`). What the wellbeing rules must not read as the elder's doing can be
    asked of `device_dead` / `dead`; `export_state` / `restore_state` carry it across a
    restart.
    """

    def __init__(self, rule: TechnicalRule | None = None, capacity: int = 256) -> None:
        self.rule = rule or TechnicalRule()
        self._index: dict[str, int] = {}
        self._devices: list[tuple[str, str, str]] = []  # (device_id, home_id, kind)
        self._by_home: dict[str, set[int]] = {}
        self._offline_homes: set[str] = set()
        self._low_battery: set[str] = set()
        self._gone_at: dict[str, float] = {}  # device -> when its status said offline
        self._beats: set[str] = set()  # devices heard sending a heartbeat or battery
        self.last_seen: npt.NDArray[np.float64] = np.full(capacity, np.nan)
        self.limit: npt.NDArray[np.float64] = np.full(capacity, np.inf)
        self.silent = np.zeros(capacity, bool)

    def _slot(self, reading: Reading) -> int:
        return self._slot_for(reading.device_id, reading.home_id, reading.kind)

    def _slot_for(self, device_id: str, home_id: str, kind: str) -> int:
        idx = self._index.get(device_id)
        if idx is None:
            idx = len(self._devices)
            if idx >= len(self.last_seen):
                n = len(self.last_seen)
                self.last_seen = np.concatenate([self.last_seen, np.full(n, np.nan)])
                self.limit = np.concatenate([self.limit, np.full(n, np.inf)])
                self.silent = np.concatenate([self.silent, np.zeros(n, bool)])
            self._index[device_id] = idx
            self._devices.append((device_id, home_id, kind))
            self._by_home.setdefault(home_id, set()).add(idx)
            spec = CATALOGUE.get(kind)
            self.limit[idx] = (
                spec.heartbeat_s * self.rule.heartbeat_grace if spec is not None else np.inf
            )
        return idx

    def known(self, device_id: str) -> bool:
        """Whether the watch knows the device (heard, expected or restored)."""
        return device_id in self._index

    def expect(self, device_id: str, home_id: str, kind: str, since: datetime) -> bool:
        """A registered device, installed at `since`: expected to report from then on, so
        one never heard is silent after its heartbeat (times the grace) from `since`.
        Idempotent, and a device already heard keeps its last reading; True when new."""
        if device_id in self._index:
            return False
        idx = self._slot_for(device_id, home_id, kind)
        self.last_seen[idx] = since.timestamp()
        return True

    def forget(self, device_id: str) -> bool:
        """A device taken out of the registry: no longer watched; True if it was."""
        idx = self._index.pop(device_id, None)
        if idx is None:
            return False
        _, home_id, kind = self._devices[idx]
        self._by_home.get(home_id, set()).discard(idx)
        self.limit[idx] = np.inf
        self.last_seen[idx] = np.nan
        self.silent[idx] = False
        self._low_battery.discard(device_id)
        self._beats.discard(device_id)
        self._gone_at.pop(device_id, None)
        if kind in HUB_KINDS and not any(
            self.silent[i] and self._devices[i][2] in HUB_KINDS
            for i in self._by_home.get(home_id, ())
        ):
            self._offline_homes.discard(home_id)
        return True

    def retain(self, device_ids: Iterable[str]) -> int:
        """Forget every device not in `device_ids` (the registry); returns how many."""
        keep = set(device_ids)
        gone = [d for d in self._index if d not in keep]
        for device_id in gone:
            self.forget(device_id)
        return len(gone)

    def hub_offline(self, home_id: str) -> bool:
        """Whether the home's hub is silent past its heartbeat (inactivity is then unknown)."""
        return home_id in self._offline_homes

    def observe(self, reading: Reading) -> list[Signal]:
        """Note the device alive; a battery reading below the limit is a technical alert."""
        idx = self._slot(reading)
        ts = reading.ts.timestamp()
        if math.isnan(self.last_seen[idx]) or ts > self.last_seen[idx]:
            self.last_seen[idx] = ts
        gone = self._gone_at.get(reading.device_id)
        if gone is None or ts > gone:  # not a reading sent before it said it was gone
            self._gone_at.pop(reading.device_id, None)
            self.silent[idx] = False
            if reading.kind in HUB_KINDS:
                self._offline_homes.discard(reading.home_id)
        if reading.metric == HEARTBEAT or reading.metric in BATTERY_METRICS:
            self._beats.add(reading.device_id)
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

    def observe_status(
        self,
        device_id: str,
        online: bool,
        at: datetime,
        *,
        home_id: str | None = None,
        kind: str | None = None,
        reason: str | None = None,
    ) -> list[Signal]:
        """The device's own `status` (retained; its last will says offline).

        Online: it is alive at `at`. Offline: it said it is gone, so it is silent now, not
        after its grace (a hub: its home is offline), unless a reading came after `at`. A
        device the watch does not know is registered first when `home_id` and `kind` are
        given, and ignored otherwise."""
        idx = self._index.get(device_id)
        if idx is None:
            if home_id is None or kind is None:
                return []
            idx = self._slot_for(device_id, home_id, kind)
        _, home, dev_kind = self._devices[idx]
        ts = at.timestamp()
        last = float(self.last_seen[idx])
        if online:
            if math.isnan(last) or ts > last:
                self.last_seen[idx] = ts
            self._gone_at.pop(device_id, None)
            self.silent[idx] = False
            if dev_kind in HUB_KINDS:
                self._offline_homes.discard(home)
            return []
        if self.silent[idx] or (not math.isnan(last) and last > ts):
            return []  # already flagged, or heard from after it said goodbye
        if math.isnan(last):
            self.last_seen[idx] = ts
        self._gone_at[device_id] = ts
        self.silent[idx] = True
        if dev_kind in HUB_KINDS:
            self._offline_homes.add(home)
        return [self._silent_signal(idx, at, reason or "offline")]

    def device_dead(self, device_id: str, at: datetime | None = None) -> bool:
        """Whether the device cannot be heard: flagged silent (or gone offline), past its
        heartbeat at `at` when given, or bridged by a hub that is offline. Unknown: False."""
        idx = self._index.get(device_id)
        if idx is None:
            return False
        return self._dead(idx, None if at is None else at.timestamp())

    def _dead(self, idx: int, t: float | None) -> bool:
        if self.silent[idx]:
            return True
        if t is not None and t - float(self.last_seen[idx]) > float(self.limit[idx]):
            return True
        _, home_id, kind = self._devices[idx]
        if kind in HUB_KINDS or home_id not in self._offline_homes:
            return False
        spec = CATALOGUE.get(kind)
        return spec is not None and spec.link is Link.HUB

    def devices(self, home_id: str) -> list[tuple[str, str]]:
        """The home's watched devices: (device_id, kind)."""
        return [(self._devices[i][0], self._devices[i][2]) for i in self._by_home.get(home_id, ())]

    def homes(self) -> set[str]:
        """The homes with a watched device."""
        return {h for h, slots in self._by_home.items() if slots}

    def dead(self, home_id: str, at: datetime | None = None) -> set[str]:
        """The home's devices that cannot be heard (see `device_dead`)."""
        t = None if at is None else at.timestamp()
        return {self._devices[i][0] for i in self._by_home.get(home_id, ()) if self._dead(i, t)}

    def export_state(self) -> dict[str, Any]:
        """What the watch knows, as plain lists (JSON / msgpack): restore with
        `restore_state` after a restart. Times are Unix seconds (None: never heard)."""
        idx = sorted(self._index.values())
        return {
            "version": STATE_VERSION,
            "devices": [self._devices[i][0] for i in idx],
            "homes": [self._devices[i][1] for i in idx],
            "kinds": [self._devices[i][2] for i in idx],
            "last_seen": [
                None if math.isnan(v) else float(v) for v in self.last_seen[idx].tolist()
            ],
            "silent": [bool(v) for v in self.silent[idx].tolist()],
            "low_battery": sorted(self._low_battery),
            "beats": sorted(self._beats),
        }

    def restore_state(self, state: dict[str, Any], now: datetime) -> int:
        """Take back what `export_state` gave, merged with what is known already (the later
        of two last readings wins; a device heard since is not silent). Times after `now`
        are taken as `now`. Returns how many devices were restored (0 for a state of
        another version)."""
        if state.get("version") != STATE_VERSION:
            return 0
        t_now = now.timestamp()
        rows = zip(
            state["devices"],
            state["homes"],
            state["kinds"],
            state["last_seen"],
            state["silent"],
            strict=True,
        )
        n = 0
        for device_id, home_id, kind, seen, silent in rows:
            idx = self._slot_for(str(device_id), str(home_id), str(kind))
            n += 1
            last = float(self.last_seen[idx])
            restored = math.nan if seen is None else min(float(seen), t_now)
            if math.isnan(last) or restored >= last:
                self.last_seen[idx] = restored
                if silent:
                    self.silent[idx] = True
                    if kind in HUB_KINDS:
                        self._offline_homes.add(str(home_id))
        self._low_battery |= {str(d) for d in state.get("low_battery", ()) if d in self._index}
        self._beats |= {str(d) for d in state.get("beats", ()) if d in self._index}
        return n

    def _silent_signal(self, idx: int, now: datetime, status: str | None = None) -> Signal:
        device_id, home_id, kind = self._devices[idx]
        hub = kind in HUB_KINDS
        what = "home hub" if hub else kind
        last = float(self.last_seen[idx])
        since = datetime.fromtimestamp(last, tz=UTC) if not math.isnan(last) else now
        evidence: dict[str, Any] = {
            "last_seen": since.isoformat(),
            "expected_within_s": float(self.limit[idx]),
            "kind": kind,
        }
        if status is None:
            summary = f"{what} {device_id} silent since {since:%Y-%m-%d %H:%M}"
        else:
            summary = f"{what} {device_id} reported itself offline ({status})"
            evidence["status"] = "offline"
            evidence["reason"] = status
        return Signal(
            home_id,
            "hub_offline" if hub else "device_silent",
            Category.TECHNICAL,
            Severity.WARNING,
            now,
            summary,
            device_id=device_id,
            evidence=evidence,
        )

    def gone_quiet(self, home_id: str, kinds: Callable[[str], bool]) -> bool:
        """Whether a device of the home whose kind `kinds` accepts is dead of itself (not
        behind an offline hub): offline by its own status, or flagged silent after it had
        sent heartbeats or battery reports (an event-only sensor of a room nobody entered,
        as in the recordings, is silent for days: that says nothing)."""
        for i in self._by_home.get(home_id, ()):
            device_id, _, kind = self._devices[i]
            if (
                self.silent[i]
                and kinds(kind)
                and (device_id in self._gone_at or device_id in self._beats)
            ):
                return True
        return False

    def advance(self, now: datetime) -> list[Signal]:
        """Devices (and hubs) silent past their heartbeat, found in one vectorised pass."""
        n = len(self._devices)
        t = now.timestamp()
        due = np.nonzero(~self.silent[:n] & (t - self.last_seen[:n] > self.limit[:n]))[0]
        out: list[Signal] = []
        for idx in due.tolist():
            self.silent[idx] = True
            _, home_id, kind = self._devices[idx]
            if kind in HUB_KINDS:
                self._offline_homes.add(home_id)
            out.append(self._silent_signal(idx, now))
        return out
