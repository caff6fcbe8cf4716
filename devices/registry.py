"""The device registry as an in-memory value: which device belongs to which home, of what kind.

Loading it from the database is the ingest package's job; here it is only data.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(slots=True, frozen=True)
class DeviceRecord:
    """One registered device."""

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
