"""A refreshing copy of the device registry, shared by the stages that validate messages."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from devices.registry import Registry

log = logging.getLogger(__name__)

MISS_INTERVAL_S = 2.0
"""A message from an unknown device checks the registry again at most this often: a device
registered this long before its first message is known by then to every process."""


class RegistryCache:
    """Holds the latest registry snapshot and reloads it periodically or on a miss.

    A miss (unknown device) triggers a check at most once per `miss_interval_s`, so a flood
    of messages from unknown devices cannot turn into a flood of queries. With `version`
    (the registry's version number in the database), a check asks for that number and
    reloads only when it changed.
    """

    def __init__(
        self,
        load: Callable[[], Awaitable[Registry]],
        refresh_s: float = 30.0,
        miss_interval_s: float = MISS_INTERVAL_S,
        version: Callable[[], Awaitable[int | None]] | None = None,
    ) -> None:
        self._load = load
        self._version = version
        self._refresh_s = refresh_s
        self._miss_interval_s = miss_interval_s
        self.current = Registry()
        self.loaded_version: int | None = None
        self._loaded_at = float("-inf")
        # One check-and-load at a time: callers on several tasks (the message loop, the
        # urgent path's timer, a miss) would otherwise load twice and might keep the older.
        self._lock = asyncio.Lock()

    async def refresh(self) -> Registry:
        """Reload now."""
        # The version is read first: a change committed between the two reads is in the
        # load, and the next check sees a newer version and reloads once more (never less).
        version = None if self._version is None else await self._version()
        self.current = await self._load()
        self.loaded_version = version
        self._loaded_at = time.monotonic()
        return self.current

    async def _changed(self) -> bool:
        if self._version is None or self.loaded_version is None:
            return True
        version = await self._version()
        if version is None:
            log.warning("the registry has no version row; reloading it at every check")
            return True
        if version != self.loaded_version:
            return True
        self._loaded_at = time.monotonic()
        return False

    async def maybe_refresh(self, miss: bool = False) -> bool:
        """Reload when the snapshot is old, or after a miss when allowed (and, with a
        version, only if the registry changed since); True if reloaded."""
        age = time.monotonic() - self._loaded_at
        if age < self._refresh_s and not (miss and age >= self._miss_interval_s):
            return False
        before = self.current
        async with self._lock:
            if self.current is not before:
                return True  # another task reloaded while this one waited
            if time.monotonic() - self._loaded_at < age:
                return False  # another task checked while this one waited: no change
            try:
                if not await self._changed():
                    return False
                await self.refresh()
            except Exception as exc:
                # Keep the previous snapshot and wait a full interval before trying again, so
                # an unreachable database does not stall every message behind a reload.
                self._loaded_at = time.monotonic()
                log.warning("registry reload failed (%r); keeping the previous snapshot", exc)
                return False
            return True
