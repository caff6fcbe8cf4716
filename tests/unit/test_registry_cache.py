"""The registry copy: reloaded only when the registry's version changed."""

from __future__ import annotations

import asyncio

from devices.registry import DeviceRecord, Registry
from ingest.registry import RegistryCache


class Source:
    """A registry and its version number, as the database holds them."""

    def __init__(self) -> None:
        self.version = 1
        self.devices = [DeviceRecord("d1", "h01", "pir_motion")]
        self.loads = 0
        self.version_reads = 0
        self.down = False

    async def load(self) -> Registry:
        self.loads += 1
        return Registry(self.devices)

    async def read_version(self) -> int:
        self.version_reads += 1
        if self.down:
            raise OSError("database unreachable")
        return self.version


async def test_a_due_check_reloads_only_when_the_version_changed() -> None:
    src = Source()
    cache = RegistryCache(src.load, refresh_s=0.0, version=src.read_version)
    await cache.refresh()
    assert (src.loads, cache.loaded_version) == (1, 1)
    assert not await cache.maybe_refresh()
    assert not await cache.maybe_refresh(miss=True)
    assert (src.loads, src.version_reads) == (1, 3)

    src.devices.append(DeviceRecord("d2", "h01", "sos_button"))
    src.version = 2
    assert await cache.maybe_refresh()
    assert src.loads == 2
    assert cache.current.get("d2") is not None
    assert cache.loaded_version == 2


async def test_without_a_version_every_due_check_reloads() -> None:
    src = Source()
    cache = RegistryCache(src.load, refresh_s=0.0)
    await cache.refresh()
    assert await cache.maybe_refresh()
    assert src.loads == 2
    assert src.version_reads == 0


async def test_checks_wait_for_their_interval_and_a_failed_check_keeps_the_copy() -> None:
    src = Source()
    cache = RegistryCache(
        src.load, refresh_s=3600.0, miss_interval_s=3600.0, version=src.read_version
    )
    await cache.refresh()
    assert not await cache.maybe_refresh(miss=True)  # not due: nothing asked
    assert src.version_reads == 1

    cache = RegistryCache(src.load, refresh_s=0.0, version=src.read_version)
    first = await cache.refresh()
    src.down = True
    assert not await cache.maybe_refresh()
    assert cache.current is first


async def test_the_version_is_read_before_the_devices() -> None:
    """A change committed between the two reads is in the copy, and still seen as a change
    at the next check (so a change is never missed, at worst loaded twice)."""
    src = Source()
    order: list[str] = []

    async def load() -> Registry:
        order.append("load")
        src.version = 2  # a change commits while the devices are read
        return Registry(src.devices)

    async def read_version() -> int:
        order.append("version")
        return src.version

    cache = RegistryCache(load, refresh_s=0.0, version=read_version)
    await cache.refresh()
    assert order == ["version", "load"]
    assert cache.loaded_version == 1
    assert await cache.maybe_refresh()


async def test_concurrent_checks_load_once_and_both_see_the_new_copy() -> None:
    src = Source()
    gate = asyncio.Event()

    async def slow_load() -> Registry:
        src.loads += 1
        await gate.wait()
        return Registry(src.devices)

    cache = RegistryCache(slow_load, refresh_s=0.0, version=src.read_version)
    gate.set()
    await cache.refresh()
    gate.clear()
    src.version = 2
    first = asyncio.create_task(cache.maybe_refresh())
    second = asyncio.create_task(cache.maybe_refresh(miss=True))
    await asyncio.sleep(0.01)
    gate.set()
    assert [await first, await second] == [True, True]
    assert src.loads == 2  # the start, and one reload for both


async def test_a_missing_version_row_reloads_at_every_check() -> None:
    src = Source()

    async def no_row() -> int | None:
        return None

    cache = RegistryCache(src.load, refresh_s=0.0, version=no_row)
    await cache.refresh()
    assert await cache.maybe_refresh()
    assert await cache.maybe_refresh()
    assert src.loads == 3
