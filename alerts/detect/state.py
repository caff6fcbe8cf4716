"""The detectors' state across restarts: saved, restored, and caught up from stored readings.

What a restart must not forget is more than the learned baselines (alerts.detect.baselines): a
silence in progress, the occupancy context (home / asleep / out), an open bathroom stay, a
pending `not_back` deadline, which devices went quiet. `keep` saves, every `interval_s`, the
homes whose state changed (msgpack of `LearnedDetector.export_state`, a few KiB a home) with
the last reading handled per device (`Marks`), and the device watch; `restore` loads them at
start; `catch_up` then replays the readings ingest stored since the save, in event-time order
(the alerts process may have been killed after handling them and before saving), skipping
what the saved state already holds, so nothing is counted twice when the broker hands the
same messages again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import numpy as np
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from alerts.detect.detectors import DetectorSet
from alerts.detect.learned import LearnedDetector
from alerts.detect.technical import DeviceWatch
from alerts.model import Signal
from devices.payload import Reading
from devices.shards import EVERY_HOME, Shard

Fence = Callable[[AsyncConnection[Any]], Awaitable[None]]
"""Checks, inside a save's transaction, that this process may still write the state."""

log = logging.getLogger(__name__)
VERSION = 1
# Readings stored this long before a home's save are replayed too: the alerts stage may
# handle a reading a while after ingest stored it (marks drop what the state already has).
CATCH_UP_SLACK = timedelta(minutes=10)
# No further back than this in event time, whatever the save (a state days old is stale: its
# silences are long alerted or over, and the replay must not take minutes).
CATCH_UP_MAX = timedelta(days=1)


def _plain(value: Any) -> Any:
    """numpy scalars (a slot assigned from an array) as the Python values they hold."""
    if isinstance(value, np.generic):
        return value.item()
    raise NotImplementedError(f"cannot persist {type(value).__name__}")


_encoder = msgspec.msgpack.Encoder(enc_hook=_plain)


def encode(value: Any) -> bytes:
    """msgpack of a state value as `save` stores it (numpy values as plain ones)."""
    return _encoder.encode(value)


_decoder = msgspec.msgpack.Decoder()


WINDOW = 64
"""How many sequence numbers below a device's latest the marks remember one by one."""
_FULL = (1 << WINDOW) - 1


@dataclass(slots=True)
class Mark:
    boot: int
    seq: int
    ts: float
    window: int = _FULL
    """Bit i set: sequence number `seq - 1 - i` (same boot) was handled. A mark saved before
    the window existed has every bit set: everything at or below it counts as handled."""


class Marks:
    """The readings handled per device, by home: the latest (boot, sequence number, time)
    and, as an anti-replay window does (RFC 4303 §3.4.3), which of the `WINDOW` sequence
    numbers below it were handled. A reading is one the state holds already (a replay or a
    redelivery) when it is not later in time than the mark and its number is the mark's,
    a handled one in the window, or older than the window or the boot. So a reading that
    comes after a later one of its device (two ingest instances behind a shared
    subscription commit their batches in either order) is judged, not dropped."""

    def __init__(self) -> None:
        self._by_home: dict[str, dict[str, Mark]] = {}
        self._dirty: set[str] = set()

    def seen(self, reading: Reading) -> bool:
        """Whether the state already holds this reading (a replay or a redelivery)."""
        mark = self._by_home.get(reading.home_id, {}).get(reading.device_id)
        if mark is None or reading.ts.timestamp() > mark.ts:
            return False
        if reading.boot != mark.boot:
            return reading.boot < mark.boot
        behind = mark.seq - reading.seq
        if behind <= 0:
            return behind == 0
        return behind > WINDOW or bool(mark.window >> (behind - 1) & 1)

    def note(self, reading: Reading) -> None:
        """This reading is handled: the mark moves to it if it is later, or remembers it in
        its window."""
        marks = self._by_home.setdefault(reading.home_id, {})
        mark = marks.get(reading.device_id)
        ts = reading.ts.timestamp()
        key = (reading.boot, reading.seq)
        if mark is None or reading.boot != mark.boot:
            if mark is None or key > (mark.boot, mark.seq) or ts > mark.ts:
                marks[reading.device_id] = Mark(reading.boot, reading.seq, ts, 0)
                self._dirty.add(reading.home_id)
            return
        ahead = reading.seq - mark.seq
        if ahead > 0:
            shifted = ((mark.window << 1) | 1) << (ahead - 1) if ahead <= WINDOW else 0
            mark.seq, mark.window = reading.seq, shifted & _FULL
            mark.ts = max(mark.ts, ts)
        elif ahead < 0 and -ahead <= WINDOW:
            mark.window |= 1 << (-ahead - 1)
        if ts > mark.ts:
            mark.ts = ts
        self._dirty.add(reading.home_id)

    def take_dirty(self) -> set[str]:
        dirty, self._dirty = self._dirty, set()
        return dirty

    def mark_dirty(self, home_ids: Iterable[str]) -> None:
        self._dirty.update(home_ids)

    def export(self, home_id: str) -> list[list[Any]]:
        return [
            [d, m.boot, m.seq, m.ts, m.window] for d, m in self._by_home.get(home_id, {}).items()
        ]

    def load(self, home_id: str, rows: Iterable[list[Any]]) -> None:
        self._by_home[home_id] = {
            str(row[0]): Mark(
                int(row[1]), int(row[2]), float(row[3]), int(row[4]) if len(row) > 4 else _FULL
            )
            for row in rows
        }


@dataclass(slots=True)
class Restored:
    """What `restore` found: homes restored, the oldest save among them, the watch."""

    homes: int
    oldest: datetime | None
    watch: int


async def save(
    conn: AsyncConnection[Any],
    learned: LearnedDetector,
    marks: Marks,
    watch: DeviceWatch | None,
    now: datetime,
    homes: Iterable[str] | None = None,
    fence: Fence | None = None,
    shard: Shard = EVERY_HOME,
) -> int:
    """Upsert the state of `homes` (all when None) and the device watch; returns homes.
    `fence` runs first in the same transaction and raises if this process may no longer
    write the state (alerts.lease.Term.fence: another instance took the detection over)."""
    wanted = None if homes is None else list(homes)
    states = learned.export_state(wanted)
    ids = set(states) if wanted is None else set(wanted)
    rows = [
        (
            home_id,
            _encoder.encode(states.get(home_id, {})),
            _encoder.encode(marks.export(home_id)),
        )
        for home_id in sorted(ids)
    ]
    async with conn.transaction():
        if fence is not None:
            await fence(conn)
        if rows:
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO detector_state AS s (home_id, version, saved_at, learned, marks)"
                    " SELECT %s, %s, %s, %s, %s WHERE EXISTS"
                    " (SELECT 1 FROM homes WHERE id = %s)"
                    " ON CONFLICT (home_id) DO UPDATE SET version = EXCLUDED.version,"
                    " saved_at = EXCLUDED.saved_at, learned = EXCLUDED.learned,"
                    " marks = EXCLUDED.marks",
                    [(h, VERSION, now, a, m, h) for h, a, m in rows],
                )
        if watch is not None:
            await conn.execute(
                "INSERT INTO device_watch_state (id, version, saved_at, state)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET"
                " version = EXCLUDED.version, saved_at = EXCLUDED.saved_at,"
                " state = EXCLUDED.state",
                (shard.watch_row, VERSION, now, _encoder.encode(watch.export_state())),
            )
    return len(rows)


async def restore(
    conn: AsyncConnection[Any],
    learned: LearnedDetector,
    marks: Marks,
    watch: DeviceWatch | None,
    now: datetime,
    shard: Shard = EVERY_HOME,
) -> Restored:
    """Load the saved state of `shard`'s homes (after the baselines: it holds them too, and
    is newer)."""
    cur = await conn.execute(
        "SELECT home_id, saved_at, learned, marks FROM detector_state WHERE version = %s",
        (VERSION,),
    )
    states: dict[str, dict[str, Any]] = {}
    oldest: datetime | None = None
    for home_id, saved_at, blob, mark_blob in await cur.fetchall():
        if not shard.has(home_id):
            continue
        try:
            state = _decoder.decode(blob)
            mark_rows = _decoder.decode(mark_blob)
        except msgspec.DecodeError:
            log.warning("detector state of %s unreadable; starting it afresh", home_id)
            continue
        if state:
            states[home_id] = state
        marks.load(home_id, mark_rows)
        oldest = saved_at if oldest is None else min(oldest, saved_at)
    homes = learned.restore_state(states, now) if states else 0
    devices = 0
    if watch is not None:
        cur = await conn.execute(
            "SELECT state, saved_at FROM device_watch_state WHERE id = %s AND version = %s",
            (shard.watch_row, VERSION),
        )
        row = await cur.fetchone()
        if row is not None:
            devices = watch.restore_state(_decoder.decode(row[0]), now)
            oldest = row[1] if oldest is None else min(oldest, row[1])
    return Restored(homes, oldest, devices)


async def stored_since(
    conn: AsyncConnection[Any], since: datetime, now: datetime, shard: Shard = EVERY_HOME
) -> list[Reading]:
    """The readings of `shard`'s homes ingest stored from `since` (less the slack) on, in
    event-time order."""
    cur = await conn.execute(
        "SELECT r.home_id, r.device_id, d.kind, r.boot, r.seq, r.ts, r.metric, r.value"
        " FROM readings r JOIN devices d ON d.id = r.device_id"
        " WHERE r.received_at > %s AND r.ts > %s AND r.ts <= %s"
        " ORDER BY r.ts, r.device_id, r.boot, r.seq",
        (since - CATCH_UP_SLACK, max(since - CATCH_UP_SLACK, now - CATCH_UP_MAX), now),
    )
    return [
        Reading(h, d, k, int(b), int(s), ts.astimezone(UTC), m, float(v))
        for h, d, k, b, s, ts, m, v in await cur.fetchall()
        if shard.has(h)
    ]


def catch_up(
    detectors: DetectorSet, marks: Marks, readings: Iterable[Reading], now: datetime
) -> tuple[int, list[Signal]]:
    """Replay stored readings the state does not hold, advancing event time as they go (a
    deadline that fell between two of them fires there), then up to `now`. Returns how many
    were replayed and the signals they raised."""
    signals: list[Signal] = []
    fresh = [r for r in readings if not marks.seen(r)]
    for r in fresh:
        signals += detectors.advance(r.ts)
        signals += detectors.observe(r)
    for r in fresh:
        marks.note(r)
    signals += detectors.advance(now)
    return len(fresh), signals


async def keep(
    pool: AsyncConnectionPool[Any],
    learned: LearnedDetector,
    marks: Marks,
    watch: DeviceWatch | None,
    interval_s: float = 5.0,
    restored: bool = True,
    clock: Callable[[], datetime] | None = None,
    fence: Fence | None = None,
    shard: Shard = EVERY_HOME,
) -> None:
    """Save the homes whose state changed every `interval_s`, and everything when cancelled
    (a clean shutdown). Until the state could be restored (`restored` False: the database
    was down at start), nothing is saved: it would overwrite what the elders' homes had."""
    now = clock or (lambda: datetime.now(UTC))
    try:
        while True:
            await asyncio.sleep(interval_s)
            if not restored:
                try:
                    async with pool.connection() as conn:
                        got = await restore(conn, learned, marks, watch, now(), shard)
                    restored = True
                    log.warning("detector state restored late: %d homes", got.homes)
                except Exception:
                    log.exception("could not restore the detector state; will retry")
                continue
            dirty = set(learned.take_dirty()) | marks.take_dirty()
            try:
                async with pool.connection() as conn:
                    await save(conn, learned, marks, watch, now(), dirty, fence, shard)
            except Exception:
                log.exception("could not save the detector state; will retry")
                marks.mark_dirty(dirty)  # saved next time round
                learned.mark_dirty(dirty)
    finally:
        if restored:
            try:
                async with pool.connection(timeout=2.0) as conn:
                    await save(conn, learned, marks, watch, now(), fence=fence, shard=shard)
            except Exception:
                log.exception("could not save the detector state at shutdown")
