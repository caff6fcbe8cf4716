"""A refreshing copy of the device registry, shared by the stages that validate messages."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from devices.registry import Registry

log = logging.getLogger(__name__)


class RegistryCache:
    """Holds the latest registry snapshot and reloads it periodically or on a miss.

    A miss (unknown device) triggers a reload at most once per `miss_interval_s`, so a flood
    of messages from unknown devices cannot turn into a flood of queries.
    """

    def __init__(
        self,
        load: Callable[[], Awaitable[Registry]],
        refresh_s: float = 30.0,
        miss_interval_s: float = 2.0,
    ) -> None:
        self._load = load
        self._refresh_s = refresh_s
        self._miss_interval_s = miss_interval_s
        self.current = Registry()
        self._loaded_at = float("-inf")

    async def refresh(self) -> Registry:
        """Reload now."""
        self.current = await self._load()
        self._loaded_at = time.monotonic()
        return self.current

    async def maybe_refresh(self, miss: bool = False) -> bool:
        """Reload when the snapshot is old, or after a miss when allowed; True if reloaded."""
        age = time.monotonic() - self._loaded_at
        if age >= self._refresh_s or (miss and age >= self._miss_interval_s):
            try:
                await self.refresh()
            except Exception as exc:
                # Keep the previous snapshot and wait a full interval before trying again, so
                # an unreachable database does not stall every message behind a reload.
                self._loaded_at = time.monotonic()
                log.warning("registry reload failed (%r); keeping the previous snapshot", exc)
                return False
            return True
        return False
