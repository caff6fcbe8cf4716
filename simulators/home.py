"""A simulated home: an elder's ordinary day turned into device readings.

`SimulatedHome.events_between` is a pure function of the seed and the time window (apart from
the per-device ``seq`` counters it advances), so a day can be produced in one call or in
one-second ticks with the same result. Each local day is planned from its own random stream:

- night: into bed about 22:00 (± 40 min), one bathroom visit between 01:00 and 04:30 (usually),
  up about 06:30 (± 30 min);
- day: the elder moves between rooms (kitchen at meal times, mostly the living room), each PIR
  reporting 1 on motion and 0 once it rearms 10-30 s later; with an entry door, 0-2 outings
  (door open/close on leaving and on return, no motion while out) and 0-2 door answers;
- temperature: every 5 minutes, 20-22 °C with a daily swing and slow drift;
- with ``upkeep=True``, what every device sends besides (docs/protocol.md): a `heartbeat`
  every `heartbeat_s` of its kind (at a phase of its own), and on battery the `battery` level
  with every `BATTERY_EVERY`-th heartbeat and at boot (`boot_readings`), a slow drain over
  the kind's `battery_days` between 100 % and 20 % (a new battery then), never low.

Behaviour keys off room names: the bed mat's room is the bedroom, ``bathroom`` and ``kitchen``
are recognised, and the first door contact is the entry door.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from devices import topics
from devices.catalogue import BATTERY, CATALOGUE, HEARTBEAT
from devices.payload import Reading

BEDROOM = "bedroom"
BATHROOM = "bathroom"
KITCHEN = "kitchen"
LIVING_ROOM = "living_room"

_TEMPERATURE_PERIOD_S = 300
_MEAL_HOURS = frozenset({7, 11, 12, 17, 18})
_CACHE_DAYS = 8
BATTERY_EVERY = 6
"""A battery device sends its level with every sixth heartbeat (and at boot)."""
_BATTERY_FULL, _BATTERY_REPLACED = 100.0, 20.0


@dataclass(frozen=True, slots=True)
class SimDevice:
    """One simulated device: its id, catalogue kind and the room it is in."""

    device_id: str
    kind: str
    room: str


@dataclass(frozen=True, slots=True)
class _Event:
    ts: datetime
    device_id: str
    value: float
    metric: str | None = None  # None: the kind's first metric


@dataclass(frozen=True, slots=True)
class _Night:
    bed_in: datetime
    wake: datetime


@dataclass(frozen=True, slots=True)
class _Plan:
    """Everything one local day's generators produced, sorted by time."""

    events: tuple[_Event, ...]
    times: tuple[datetime, ...]


class SimulatedHome:
    """One home's devices and the elder's routine, as a deterministic stream of readings."""

    def __init__(
        self,
        home_id: str,
        devices: list[SimDevice],
        seed: int,
        *,
        tz: tzinfo = UTC,
        boot: int | None = None,
        upkeep: bool = False,
    ) -> None:
        if not topics.valid_id(home_id):
            raise ValueError(f"invalid home id {home_id!r}")
        seen: set[str] = set()
        for d in devices:
            if not topics.valid_id(d.device_id) or d.device_id in seen:
                raise ValueError(f"invalid or repeated device id {d.device_id!r}")
            if d.kind not in CATALOGUE:
                raise ValueError(f"device {d.device_id!r} has unknown kind {d.kind!r}")
            seen.add(d.device_id)
        self.home_id = home_id
        self.devices: tuple[SimDevice, ...] = tuple(devices)
        self.seed = seed
        self.tz = tz
        self.upkeep = upkeep
        self._by_id = {d.device_id: d for d in devices}
        self._boot = {
            d.device_id: boot
            if boot is not None
            else random.Random(f"{seed}/{home_id}/{d.device_id}/boot").randrange(1, 1000)
            for d in devices
        }
        self._seq = dict.fromkeys(self._by_id, 0)
        self._plans: dict[date, _Plan] = {}

        self._pir = {d.room: d.device_id for d in reversed(devices) if d.kind == "pir_motion"}
        self._rooms = sorted(self._pir)
        beds = [d for d in devices if d.kind == "bed_mat"]
        self._bed = beds[0].device_id if beds else None
        self._bedroom = beds[0].room if beds else BEDROOM
        doors = [d for d in devices if d.kind == "door_contact"]
        self._door = doors[0].device_id if doors else None
        self._entrance = doors[0].room if doors else None
        self._thermometers = [d.device_id for d in devices if d.kind == "temperature"]
        sos = [d for d in devices if d.kind == "sos_button"]
        self._sos = sos[0].device_id if sos else None

    def boot(self, device_id: str) -> int:
        """The boot counter `device_id` reports (fixed for this run)."""
        return self._boot[device_id]

    def events_between(self, start: datetime, end: datetime) -> list[Reading]:
        """Readings with ``start <= ts < end``, sorted by time; call with consecutive windows."""
        _check_aware(start, end)
        if end <= start:
            return []
        first = start.astimezone(self.tz).date() - timedelta(days=1)
        last = end.astimezone(self.tz).date()
        picked: list[_Event] = []
        day = first
        while day <= last:
            plan = self._plan(day)
            lo = bisect.bisect_left(plan.times, start)
            hi = bisect.bisect_left(plan.times, end)
            picked.extend(plan.events[lo:hi])
            day += timedelta(days=1)
        picked.sort(key=lambda e: (e.ts, e.device_id))
        return [self._reading(e) for e in picked]

    def boot_readings(self, at: datetime) -> list[Reading]:
        """What each device sends when it starts at `at`: a heartbeat, and its battery level
        when it has one."""
        _check_aware(at)
        at = at.astimezone(UTC)
        out: list[Reading] = []
        for d in self.devices:
            out.append(self._reading(_Event(at, d.device_id, 1.0, HEARTBEAT)))
            if CATALOGUE[d.kind].battery:
                level = self._battery_level(d, at)
                out.append(self._reading(_Event(at, d.device_id, level, BATTERY)))
        return out

    def sos_press(self, at: datetime) -> Reading:
        """A press of this home's SOS button at `at`."""
        _check_aware(at)
        if self._sos is None:
            raise ValueError(f"home {self.home_id!r} has no sos_button device")
        return self._reading(_Event(at.astimezone(UTC), self._sos, 1.0), metric="press")

    # --- readings -------------------------------------------------------------------------

    def _reading(self, event: _Event, metric: str | None = None) -> Reading:
        device = self._by_id[event.device_id]
        seq = self._seq[device.device_id]
        self._seq[device.device_id] = seq + 1
        return Reading(
            home_id=self.home_id,
            device_id=device.device_id,
            kind=device.kind,
            boot=self._boot[device.device_id],
            seq=seq,
            ts=event.ts,
            metric=metric or event.metric or CATALOGUE[device.kind].metrics[0].name,
            value=event.value,
        )

    # --- planning: pure functions of (seed, home, local date) -----------------------------

    def _rng(self, what: str, day: date) -> random.Random:
        return random.Random(f"{self.seed}/{self.home_id}/{what}/{day.isoformat()}")

    def _at(self, day: date, hours: float) -> datetime:
        """`hours` after local midnight starting `day`, in UTC."""
        midnight = datetime.combine(day, time(), tzinfo=self.tz).astimezone(UTC)
        return midnight + timedelta(hours=hours)

    def _plan(self, day: date) -> _Plan:
        plan = self._plans.get(day)
        if plan is None:
            events = [*self._night_events(day), *self._day_events(day), *self._temperatures(day)]
            if self.upkeep:
                events.extend(self._upkeep(day))
            events.sort(key=lambda e: (e.ts, e.device_id))
            plan = _Plan(tuple(events), tuple(e.ts for e in events))
            if len(self._plans) >= _CACHE_DAYS:
                del self._plans[min(self._plans)]
            self._plans[day] = plan
        return plan

    def _night(self, day: date) -> _Night:
        """The night that starts on the evening of `day`."""
        rng = self._rng("night", day)
        bed_in = self._at(day, 22 + rng.uniform(-40, 40) / 60)
        wake = self._at(day, 24 + 6.5 + rng.uniform(-30, 30) / 60)
        return _Night(bed_in, wake)

    def _night_events(self, day: date) -> Iterator[_Event]:
        night = self._night(day)
        rng = self._rng("night-events", day)
        if self._bed is not None:
            yield _Event(night.bed_in, self._bed, 1.0)
            yield _Event(night.wake, self._bed, 0.0)
        if rng.random() < 0.9:  # the night-time bathroom visit
            out = self._at(day, 24 + rng.uniform(1.0, 4.5))
            back = out + timedelta(minutes=rng.uniform(3, 10))
            if self._bed is not None:
                yield _Event(out, self._bed, 0.0)
                yield _Event(back, self._bed, 1.0)
            bedroom_pir = self._pir.get(self._bedroom)
            if bedroom_pir is not None:
                yield from _pulse(rng, bedroom_pir, out + timedelta(seconds=rng.uniform(2, 6)))
                yield from _pulse(rng, bedroom_pir, back - timedelta(seconds=rng.uniform(3, 8)))
            if BATHROOM in self._pir and self._bedroom != BATHROOM:
                yield from self._stay(
                    rng,
                    BATHROOM,
                    out + timedelta(seconds=rng.uniform(20, 40)),
                    back - timedelta(seconds=40),
                    {},
                )

    def _day_events(self, day: date) -> Iterator[_Event]:
        """From getting up (planned by the previous night) to going to bed."""
        rng = self._rng("day", day)
        wake = self._night(day - timedelta(days=1)).wake
        bed_in = self._night(day).bed_in
        rearm: dict[str, datetime] = {}
        visits = self._door_visits(rng, wake, bed_in)
        entrance = self._entrance or ""
        t = wake + timedelta(seconds=rng.uniform(3, 10))
        room = self._bedroom
        bedtime = bed_in - timedelta(minutes=15)
        while t < bedtime:
            end = min(t + self._stay_length(rng, room), bedtime)
            visit = visits.pop(0) if visits and visits[0][0] < end else None
            if visit is not None:
                end = max(t, visit[0] - timedelta(seconds=20))
            yield from self._stay(rng, room, t, end, rearm)
            if visit is not None:  # walk to the door, open it; go out or talk to the caller
                start, stop, away = visit
                yield from self._stay(rng, entrance, start - timedelta(seconds=10), start, rearm)
                yield from self._door_pairs(rng, start, stop, away)
                if not away:
                    yield from self._stay(rng, entrance, start, stop, rearm)
                end = stop + timedelta(seconds=rng.uniform(2, 8))
                yield from self._stay(rng, entrance, end, end + timedelta(minutes=1), rearm)
                end += timedelta(minutes=1)
                room = entrance if entrance in self._pir else room
            t = end + timedelta(seconds=rng.uniform(5, 20))
            room = self._next_room(rng, room, t)
        for start, stop, away in visits:  # none left in practice: visits end well before bed
            yield from self._door_pairs(rng, start, stop, away)
        # Getting ready for bed: the last stay is in the bedroom, up to the bed mat.
        yield from self._stay(rng, self._bedroom, t, bed_in, rearm)

    def _door_visits(
        self, rng: random.Random, wake: datetime, bed_in: datetime
    ) -> list[tuple[datetime, datetime, bool]]:
        """Non-overlapping (start, end, away) uses of the entry door during the day."""
        if self._door is None:
            return []
        earliest = wake + timedelta(minutes=45)
        latest = bed_in - timedelta(minutes=150)
        if latest <= earliest:
            return []
        span = (latest - earliest).total_seconds()
        wanted = [(True, rng.choice((0, 1, 1, 2))), (False, rng.choice((0, 1, 2)))]
        candidates: list[tuple[datetime, datetime, bool]] = []
        for away, count in wanted:
            for _ in range(count):
                start = earliest + timedelta(seconds=rng.uniform(0, span))
                length = rng.uniform(20, 120) * 60 if away else rng.uniform(30, 180)
                candidates.append((start, start + timedelta(seconds=length), away))
        candidates.sort()
        visits: list[tuple[datetime, datetime, bool]] = []
        for visit in candidates:
            if not visits or visit[0] >= visits[-1][1] + timedelta(minutes=30):
                visits.append(visit)
        return visits

    def _door_pairs(
        self, rng: random.Random, start: datetime, end: datetime, away: bool
    ) -> Iterator[_Event]:
        if self._door is None:
            return
        if away:  # leave and come back: the door opens and shuts each way
            for at in (start, end):
                yield _Event(at, self._door, 1.0)
                yield _Event(at + timedelta(seconds=rng.uniform(4, 15)), self._door, 0.0)
        else:  # a caller at the door; the elder stays home
            yield _Event(start, self._door, 1.0)
            yield _Event(end, self._door, 0.0)

    def _stay(
        self,
        rng: random.Random,
        room: str,
        start: datetime,
        end: datetime,
        rearm: dict[str, datetime],
    ) -> Iterator[_Event]:
        """PIR pulses while the elder is in `room` from `start` to `end`."""
        pir = self._pir.get(room)
        if pir is None:
            return
        mean_gap = {LIVING_ROOM: 150.0, KITCHEN: 50.0, BATHROOM: 40.0}.get(room, 90.0)
        t = max(start, rearm.get(pir, start))
        while t < end:
            pulse = list(_pulse(rng, pir, t))
            yield from pulse
            rearm[pir] = pulse[-1].ts + timedelta(seconds=1)
            t = rearm[pir] + timedelta(seconds=rng.expovariate(1 / mean_gap))

    def _stay_length(self, rng: random.Random, room: str) -> timedelta:
        low, high = {
            BATHROOM: (3, 12),
            KITCHEN: (10, 40),
            LIVING_ROOM: (15, 75),
            BEDROOM: (5, 30),
        }.get(room, (5, 25))
        return timedelta(minutes=rng.uniform(low, high))

    def _next_room(self, rng: random.Random, current: str, at: datetime) -> str:
        if not self._rooms:
            return current
        hour = at.astimezone(self.tz).hour
        choices = [r for r in self._rooms if r != current] or self._rooms
        weights = [
            4.0
            if (r == KITCHEN and hour in _MEAL_HOURS) or r == LIVING_ROOM
            else 1.5
            if r == BATHROOM
            else 1.0
            for r in choices
        ]
        return rng.choices(choices, weights)[0]

    def _temperatures(self, day: date) -> Iterator[_Event]:
        """One reading per sensor every 5 minutes within the local day."""
        start, end = self._at(day, 0), self._at(day + timedelta(days=1), 0)
        rng = self._rng("temperature", day)
        for device_id in self._thermometers:
            shape = random.Random(f"{self.seed}/{self.home_id}/{device_id}/shape")
            base = shape.uniform(20.6, 21.4)
            offset = shape.randrange(_TEMPERATURE_PERIOD_S)
            phases = (shape.uniform(0, 2 * math.pi), shape.uniform(0, 2 * math.pi))
            k = math.ceil((start.timestamp() - offset) / _TEMPERATURE_PERIOD_S)
            while (ts := k * _TEMPERATURE_PERIOD_S + offset) < end.timestamp():
                at = datetime.fromtimestamp(ts, UTC)
                local = at.astimezone(self.tz)
                hour = local.hour + local.minute / 60
                hours = ts / 3600
                value = (
                    base
                    + 0.4 * math.sin(2 * math.pi * (hour - 9) / 24)  # warmest mid-afternoon
                    + 0.3 * math.sin(2 * math.pi * hours / 61 + phases[0])  # slow drift
                    + 0.15 * math.sin(2 * math.pi * hours / 7.3 + phases[1])
                    + rng.gauss(0, 0.03)
                )
                yield _Event(at, device_id, round(value, 2))
                k += 1

    def _upkeep(self, day: date) -> Iterator[_Event]:
        """Every device's heartbeats within the local day, with battery levels."""
        start, end = self._at(day, 0).timestamp(), self._at(day + timedelta(days=1), 0).timestamp()
        for d in self.devices:
            spec = CATALOGUE[d.kind]
            period = spec.heartbeat_s
            phase = random.Random(f"{self.seed}/{self.home_id}/{d.device_id}/beat").uniform(
                0, period
            )
            k = math.ceil((start - phase) / period)
            while (ts := k * period + phase) < end:
                at = datetime.fromtimestamp(ts, UTC)
                yield _Event(at, d.device_id, 1.0, HEARTBEAT)
                if spec.battery and k % BATTERY_EVERY == 0:
                    yield _Event(at, d.device_id, self._battery_level(d, at), BATTERY)
                k += 1

    def _battery_level(self, device: SimDevice, at: datetime) -> float:
        """The battery's charge at `at` (percent): a steady drain over the kind's battery
        life from 100 % to 20 %, where it is replaced; each device at a point of its own."""
        life_days = CATALOGUE[device.kind].battery_days or 365
        start = random.Random(f"{self.seed}/{self.home_id}/{device.device_id}/battery")
        used = ((at.timestamp() / 86400 + start.uniform(0, life_days)) % life_days) / life_days
        return round(_BATTERY_FULL - (_BATTERY_FULL - _BATTERY_REPLACED) * used, 1)


def _pulse(rng: random.Random, pir: str, at: datetime) -> Iterator[_Event]:
    """Motion seen at `at`, and the sensor rearming 10-30 s later."""
    yield _Event(at, pir, 1.0)
    yield _Event(at + timedelta(seconds=rng.uniform(10, 30)), pir, 0.0)


def _check_aware(*values: datetime) -> None:
    for value in values:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{value!r} has no time zone: pass an aware datetime")
