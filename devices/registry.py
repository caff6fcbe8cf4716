"""The device registry as an in-memory value: which device belongs to which home, of what kind.

Loading it from the database is the ingest package's job; here it is only data.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType

import msgspec


class DeviceRecord(msgspec.Struct, frozen=True, gc=False):
    """One registered device. (Not tracked by Python's cyclic GC: it holds only strings, so
    it can be in no cycle, and 70 000 of them made every full collection of a process
    that holds the registry take 20-100 ms, a pause of its event loop.)"""

    device_id: str
    home_id: str
    kind: str


class Registry:
    """An immutable snapshot of registered devices, keyed by device id."""

    __slots__ = ("_devices",)

    def __init__(self, devices: Iterable[DeviceRecord] = ()) -> None:
        self._devices: Mapping[str, DeviceRecord] = MappingProxyType(
            {d.device_id: d for d in devices}
        )

    def get(self, device_id: str) -> DeviceRecord | None:
        """The record for `device_id`, or None when it is not registered."""
        return self._devices.get(device_id)

    def __len__(self) -> int:
        return len(self._devices)

    def __iter__(self) -> Iterator[DeviceRecord]:
        return iter(self._devices.values())
