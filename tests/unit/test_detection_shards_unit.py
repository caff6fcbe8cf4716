"""Detection in shards (issue 18): the home -> shard hash, the feed split, the marks' window
for readings that come out of order, and how the instances share the shards out."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alerts.detect.state import WINDOW, Marks
from alerts.lease import Leases, LeaseSettings, Members, preferred
from devices.payload import Reading
from devices.registry import DeviceRecord, Registry
from devices.shards import EVERY_HOME, Shard, shard_of
from ingest import feed
from ingest.registry import RegistryCache
from runtime.detection import devices_in

T0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def reading(seq: int, boot: int = 1, at: datetime | None = None, home: str = "h01") -> Reading:
    ts = at or T0 + timedelta(seconds=seq)
    return Reading(home, f"{home}-pir", "pir_motion", boot, seq, ts, "motion", 1.0)


def test_a_home_keeps_its_shard_and_homes_spread_over_all() -> None:
    homes = [f"home-{i}" for i in range(4000)]
    shards = [shard_of(h, 8) for h in homes]
    assert shards == [shard_of(h, 8) for h in homes]  # stable
    assert shard_of("h01", 4) == 3  # CRC-32: the same value on every machine and version
    counts = [shards.count(k) for k in range(8)]
    assert min(counts) > 400, counts  # 500 each, give or take
    assert max(counts) < 600, counts
    assert all(shard_of(h, 1) == 0 for h in homes[:50])
    assert all(Shard(shard_of(h, 8), 8).has(h) for h in homes[:50])
    assert not Shard((shard_of("h01", 8) + 1) % 8, 8).has("h01")
    assert EVERY_HOME.has("anything")
    assert EVERY_HOME.lease == "detection"
    assert Shard(3, 4).lease == "detection-3"
    assert Shard(3, 4).watch_row == 4
    with pytest.raises(ValueError, match="does not exist"):
        Shard(4, 4)


def test_the_feed_splits_a_batch_by_shard_keeping_the_order() -> None:
    batch = [reading(i, home=f"h0{i % 5 + 1}") for i in range(1, 40)]
    parts = feed.split(batch, 4)
    assert sorted(r.seq for rs in parts.values() for r in rs) == [r.seq for r in batch]
    for k, rs in parts.items():
        assert all(shard_of(r.home_id, 4) == k for r in rs)
        assert rs == [r for r in batch if shard_of(r.home_id, 4) == k]  # in batch order
    assert feed.split(batch, 1) == {0: batch}
    assert feed.split([], 4) == {}


def test_a_reading_after_a_later_one_is_judged_and_a_redelivery_is_not() -> None:
    marks = Marks()
    for seq in (1, 2, 5, 3):  # 4 still to come: two ingest batches committed either way
        assert not marks.seen(reading(seq))
        marks.note(reading(seq))
    assert not marks.seen(reading(4))  # late, never handled: judged
    for seq in (1, 2, 3, 5):
        assert marks.seen(reading(seq))  # handled: a redelivery is dropped
    marks.note(reading(4))
    assert marks.seen(reading(4))
    assert not marks.seen(reading(6))
    marks.note(reading(5 + WINDOW + 10))  # far ahead: the window starts again
    assert not marks.seen(reading(5 + WINDOW + 9))  # in the window, not handled
    assert marks.seen(reading(5))  # older than the window: counted as handled
    assert marks.seen(reading(99, boot=0, at=T0))  # an earlier boot
    assert not marks.seen(reading(1, boot=2, at=T0 + timedelta(days=1)))  # a new boot


def test_marks_saved_before_the_window_still_drop_what_they_covered() -> None:
    marks = Marks()
    marks.load("h01", [["h01-pir", 1, 10, (T0 + timedelta(seconds=10)).timestamp()]])
    assert marks.seen(reading(7))
    assert marks.seen(reading(10))
    marks.note(reading(12))
    assert not marks.seen(reading(11))
    assert marks.seen(reading(9))
    again = Marks()
    again.load("h01", marks.export("h01"))  # the window is saved with the mark
    assert not again.seen(reading(11))
    assert again.seen(reading(12))
    assert again.seen(reading(9))


def test_rendezvous_moves_only_the_shards_of_who_joins_or_leaves() -> None:
    leases = [Shard(k, 64).lease for k in range(64)]
    two = {name: preferred(name, ["a", "b"]) for name in leases}
    three = {name: preferred(name, ["a", "b", "c"]) for name in leases}
    assert 20 <= list(two.values()).count("a") <= 44, two
    moved = [name for name in leases if two[name] != three[name]]
    assert moved
    assert all(three[name] == "c" for name in moved)
    assert all(preferred(name, ["b", "a"]) == two[name] for name in leases)  # order-free


class FakeLeases(Leases):
    """Leases whose member query is answered from a list (no database)."""

    def __init__(self, holder: str, live: list[str]) -> None:
        super().__init__("postgresql://unused", holder, LeaseSettings(ttl_s=3.0))
        self.live = live
        self.asked = 0
        self.fail = False

    async def _execute(self, query: str, params: Any, timeout_s: float) -> list[tuple[Any, ...]]:
        assert "expires_at > now()" in query
        assert params == ("detection-member:%",)
        self.asked += 1
        if self.fail:
            raise TimeoutError
        return [(m,) for m in self.live]


def test_members_say_who_each_shard_prefers() -> None:
    async def go() -> None:
        leases = FakeLeases("a", ["a", "b"])
        members = Members(leases, "detection")
        assert members.lease == "detection-member:a"
        names = [Shard(k, 4).lease for k in range(4)]
        answers = [await members.prefers(n) for n in names]
        assert answers == [preferred(n, ["a", "b"]) == "a" for n in names]
        assert leases.asked == 1  # read once per third of the TTL
        leases.live = ["b"]  # a is not a member (yet): it does not know its part
        members._read_at = -1e9
        assert await members.prefers(names[0]) is None
        leases.fail = True
        members._read_at = -1e9
        assert await members.prefers(names[0]) is None  # no answer: unknown, not "no"

    asyncio.run(go())


def test_the_self_check_of_shard_0_counts_its_own_devices_only() -> None:
    async def never() -> Registry:
        raise AssertionError("not loaded")

    cache = RegistryCache(never)
    homes = [f"h{i:02d}" for i in range(1, 9)]
    cache.current = Registry(DeviceRecord(f"{h}-pir", h, "pir_motion") for h in homes)
    assert devices_in(cache, EVERY_HOME) == 8
    for count in (2, 4, 16):
        shards = [Shard(k, count) for k in range(count)]
        per_shard = [devices_in(cache, s) for s in shards]
        assert sum(per_shard) == 8
        assert per_shard == [sum(shard_of(h, count) == k for h in homes) for k in range(count)]
    assert 0 in [devices_in(cache, Shard(k, 16)) for k in range(16)]  # a shard with none
