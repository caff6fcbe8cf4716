"""Detection spread by home (issue 18), on real Mosquitto and PostgreSQL: two instances of
the service (`a` and `b`, ingest and alerts each) with the detection in 4 shards. Each shard
is held by the instance rendezvous hashing prefers, each home's readings are judged once,
by its shard's holder; when `b` stops, `a` takes its shards over, with the state `b` saved
of their homes, and judges them on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from alerts.detect.technical import DeviceWatch
from alerts.lease import preferred
from devices.shards import Shard, shard_of
from devstack.broker import EmbeddedBroker
from runtime.settings import Settings
from tests.integration.helpers import eventually, make_settings, running_service, scalar
from tests.integration.test_detection_feed import publish_heat

SHARDS = 4
TTL_S = 1.2
LEASES = [Shard(k, SHARDS).lease for k in range(SHARDS)]
HOLDERS = "SELECT json_object_agg(name, holder) FROM leases WHERE name LIKE 'detection-_'"


def instance(db_url: str, broker: EmbeddedBroker, name: str) -> Settings:
    base = make_settings(db_url, broker, ingest={"detection_shards": SHARDS},
                         leases={"ttl_s": TTL_S})  # fmt: skip
    return base.model_copy(update={"instance_id": name})


def held_as(db_url: str, wanted: dict[str, str]) -> Callable[[], Awaitable[Any]]:
    async def check() -> Any:
        holders = await scalar(db_url, HOLDERS)
        if holders != wanted:
            return None
        live = "SELECT count(*) FROM leases WHERE name LIKE 'detection-_' AND expires_at > now()"
        return await scalar(db_url, live) == SHARDS or None

    return check


HEAT = "SELECT count(*) FROM alerts WHERE kind = 'indoor_heat' AND home_id = %s"


def heat(db_url: str, home: str) -> Callable[[], Awaitable[Any]]:
    """The home's `indoor_heat` alerts, once there is one."""

    async def count() -> Any:
        return await scalar(db_url, HEAT, home) or None

    return count


async def test_two_instances_share_the_shards_and_judge_each_home_once(
    db_url: str, mosquitto: EmbeddedBroker
) -> None:
    homes = [f"h{i:02d}" for i in range(1, 9)]
    by_shard = {k: [h for h in homes if shard_of(h, SHARDS) == k] for k in range(SHARDS)}
    assert all(by_shard.values()), by_shard  # the seeded homes cover every shard
    share = {name: preferred(name, ["a", "b"]) for name in LEASES}
    assert set(share.values()) == {"a", "b"}, share  # both instances have a part
    async with running_service(instance(db_url, mosquitto, "a"), ("ingest", "alerts")) as a:
        # Alone, `a` is the only member: every shard prefers it.
        await eventually(held_as(db_url, dict.fromkeys(LEASES, "a")), 20, "a holds all")
        assert sorted(a.shards) == list(range(SHARDS))
        b_settings = instance(db_url, mosquitto, "b")
        async with running_service(b_settings, ("ingest", "alerts")) as b:
            # b joins: each shard moves to the instance it prefers, and only those.
            await eventually(held_as(db_url, share), 20, "the shards shared out")
            await eventually(lambda: _holds(b, share, "b"), 20, "b's detections running")
            assert sorted(a.shards) == sorted(k for k, n in enumerate(LEASES) if share[n] == "a")
            # Each shard watches its own homes' devices only.
            for k, detectors in {**a.shards, **b.shards}.items():
                watch = detectors.find(DeviceWatch)
                assert watch is not None
                assert watch.homes() == set(by_shard[k]), k
            first = [by_shard[k][0] for k in range(SHARDS)]
            for home in first:
                await publish_heat(mosquitto.url, home)
            for home in first:
                assert await eventually(heat(db_url, home), 30, home) == 1
            await eventually(
                lambda: scalar(db_url, "SELECT count(*) = 0 FROM detection_feed"),
                what="every shard's rows judged",
            )
        # b stopped (its leases released, its state saved): a takes its shards over.
        await eventually(held_as(db_url, dict.fromkeys(LEASES, "a")), 20, "a holds all again")
        await eventually(lambda: _holds(a, share, None), 20, "a's detections running")
        second = [by_shard[k][-1] for k in range(SHARDS) if len(by_shard[k]) > 1]
        for home in second:
            await publish_heat(mosquitto.url, home)
        for home in second:
            assert await eventually(heat(db_url, home), 30, home) == 1
        # The homes b judged are not judged again by a (their marks came with the state).
        for home in first:
            assert await scalar(db_url, HEAT, home) == 1
    restored = await scalar(
        db_url, "SELECT count(*) FROM device_watch_state WHERE id BETWEEN 1 AND %s", SHARDS
    )
    assert restored == SHARDS  # one device watch row per shard


async def _holds(svc: Any, share: dict[str, str], who: str | None) -> bool | None:
    """True once `svc` runs the detection of every shard `who` is preferred for (all: None)."""
    wanted = {k for k, name in enumerate(LEASES) if who is None or share[name] == who}
    return set(svc.shards) == wanted or None
