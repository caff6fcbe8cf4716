"""Detection spread by home (issue 18): a fixed number of shards, each home in one of them.

A home's shard is a stable hash of its id (CRC-32, the same on every instance and every
version), so a home never moves while the number of shards stays the same: what moves between
instances is a whole shard, with its lease, its rows of the detection feed and the saved
state of its homes. The number is a deployment setting (`ELDERCARE_INGEST__DETECTION_SHARDS`);
changing it moves homes between shards, whose state (saved per home) follows them.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass


def shard_of(home_id: str, shards: int) -> int:
    """The shard (0 .. shards-1) that judges `home_id`'s readings."""
    if shards <= 1:
        return 0
    return zlib.crc32(home_id.encode()) % shards


def lease_name(shard: int, shards: int) -> str:
    """The lease under which a shard's detection runs: `detection` when there is one shard
    (as before shards), else `detection-{shard}`."""
    return "detection" if shards <= 1 else f"detection-{shard}"


@dataclass(frozen=True, slots=True)
class Shard:
    """One shard of `count`: the homes it judges, its lease, its row of the device watch."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index} of {self.count} does not exist")

    def has(self, home_id: str) -> bool:
        """True when this shard judges `home_id`."""
        return self.count <= 1 or shard_of(home_id, self.count) == self.index

    @property
    def lease(self) -> str:
        """The name of the lease this shard's detection runs under."""
        return lease_name(self.index, self.count)

    @property
    def watch_row(self) -> int:
        """Its row of `device_watch_state` (1 for the single shard, as before shards)."""
        return self.index + 1

    def __str__(self) -> str:
        return f"shard {self.index + 1}/{self.count}"


EVERY_HOME = Shard()
"""The one shard of a deployment that does not spread its detection."""
