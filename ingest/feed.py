"""The detection feed: ingest's decoded readings handed to the detection through the
database (migration 0024), so that each reading is received from the broker and decoded
once (issue 18, "one receive per reading"). With the detection in shards, a batch is one
row per shard (its homes' readings), read by that shard's holder only.

Ingest writes a batch's readings as one row in the transaction that stores them and
notifies `detection_feed`; the detection (alerts/feed_reader.py) reads the rows in id order
and deletes each once what it raised is stored. A row is msgpack of
`[home, device, kind, boot, seq, ts (epoch seconds), metric, value]` per reading.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import psycopg

from devices.payload import Reading
from devices.shards import shard_of

CHANNEL = "detection_feed"
"""The NOTIFY channel: a batch was written (no payload; the reader reads the table)."""

_Row = tuple[str, str, str, int, int, float, str, float]
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[_Row])


def encode(readings: list[Reading]) -> bytes:
    """One feed row's payload."""
    return _encoder.encode(
        [
            (r.home_id, r.device_id, r.kind, r.boot, r.seq, r.ts.timestamp(), r.metric, r.value)
            for r in readings
        ]
    )


def decode(blob: bytes) -> list[Reading]:
    """The readings of one feed row (raises msgspec.DecodeError on a corrupt one)."""
    return [
        Reading(h, d, k, b, s, datetime.fromtimestamp(ts, UTC), m, v)
        for h, d, k, b, s, ts, m, v in _decoder.decode(blob)
    ]


def split(readings: list[Reading], shards: int) -> dict[int, list[Reading]]:
    """The readings by the shard of their home (devices/shards.py), each in its order."""
    if shards <= 1:
        return {0: readings} if readings else {}
    out: dict[int, list[Reading]] = {}
    for r in readings:
        out.setdefault(shard_of(r.home_id, shards), []).append(r)
    return out


async def write(cur: psycopg.AsyncCursor[Any], readings: list[Reading], shards: int = 1) -> None:
    """Add `readings` to the feed inside the caller's transaction (seen at its commit): one
    row per shard of the detection that has readings in the batch."""
    parts = split(readings, shards)
    if not parts:
        return
    await cur.executemany(
        "INSERT INTO detection_feed (shard, readings, n) VALUES (%s, %s, %s)",
        [(shard, encode(rs), len(rs)) for shard, rs in sorted(parts.items())],
    )
    await cur.execute("SELECT pg_notify(%s, '')", (CHANNEL,))
