"""A recorded home's readings as its devices would send them.

The recordings of real homes (``../shared/data``: ``events.csv`` + ``sensors.json``) hold one
row per state change and nothing else. A live device also sends a heartbeat every
``heartbeat_s`` of its catalogue row (so that silence can be told from "nothing happened"),
numbers its messages per device within a boot, and stamps them with the time it sends them.
`as_sent` adds those three things; the offline and the live replay both use it, so they feed
the detectors the same stream (the live one with timestamps moved to now).

The recordings do not say whether a sensor was alive when it reported nothing, so the
heartbeats assume it was: a replay raises no `device_silent` for a quiet sensor.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from devices.catalogue import CATALOGUE, HEARTBEAT
from devices.payload import Reading

# Heartbeats of a home's devices are spread over the interval (not all at one instant), as
# devices powered up one after another would send them.
_STAGGER_S = 397


@dataclass(frozen=True, slots=True)
class RecordedDevice:
    """A device of a recorded home, as registered: id, home, catalogue kind, room."""

    device_id: str
    home_id: str
    kind: str
    room: str = ""


def heartbeats(
    devices: Iterable[RecordedDevice], start: datetime, end: datetime
) -> Iterator[Reading]:
    """Every device's heartbeats in [start, end), in time order (seq 0: `as_sent` numbers)."""

    def one(i: int, d: RecordedDevice) -> Iterator[Reading]:
        spec = CATALOGUE.get(d.kind)
        if spec is None:
            raise ValueError(f"{d.device_id}: kind {d.kind!r} is not in the catalogue")
        step = timedelta(seconds=spec.heartbeat_s)
        at = start + timedelta(seconds=(i * _STAGGER_S) % spec.heartbeat_s)
        while at < end:
            yield Reading(d.home_id, d.device_id, d.kind, 0, 0, at, HEARTBEAT, 1.0)
            at += step

    return heapq.merge(*(one(i, d) for i, d in enumerate(devices)), key=lambda r: r.ts)


def as_sent(
    readings: Iterable[Reading],
    devices: Iterable[RecordedDevice],
    *,
    start: datetime,
    end: datetime,
    boot: int = 0,
    live_start: datetime | None = None,
    speed: float = 1.0,
) -> Iterator[Reading]:
    """The recorded `readings` (in time order) from `start` to `end` (data time) with each
    device's heartbeats, numbered per device from 1 within `boot`.

    With `live_start`, each is stamped ``live_start + (t - start) / speed``: when it is sent
    by a live replay (speed 1 keeps every gap as recorded; 60 makes an hour a minute, which
    the learned detectors then see as a minute)."""
    if speed <= 0:
        raise ValueError("speed must be positive")
    recorded = (r for r in readings if start <= r.ts < end)
    merged = heapq.merge(recorded, heartbeats(devices, start, end), key=lambda r: r.ts)
    seqs: dict[str, int] = {}
    for r in merged:
        seq = seqs[r.device_id] = seqs.get(r.device_id, 0) + 1
        ts = r.ts if live_start is None else live_start + (r.ts - start) / speed
        yield replace(r, boot=boot, seq=seq, ts=ts)
