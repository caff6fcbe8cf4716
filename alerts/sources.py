"""Where the alerts stage's readings come from and what keeps its detectors in step: the
sources (subscriptions, registry copy), the detection (detectors, saved state, layout,
limits), the urgent devices' topics, and the device watch's install times."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

from alerts.detect import baselines
from alerts.detect.detectors import DetectorSet, immediate_detectors
from alerts.detect.layout import Layout
from alerts.detect.limits import ElderLimits, load_limits_from
from alerts.detect.state import Marks
from devices import topics
from devices.catalogue import CATALOGUE, SOS_KINDS
from devices.payload import Reading
from devices.registry import Registry
from ingest.db import read_in_chunks
from ingest.mqtt import Subscriber
from ingest.registry import RegistryCache

Installed = tuple[str, str, str, datetime]
"""A registered device as the device watch is seeded with: id, home, kind, installed at."""


async def load_installed(pool: AsyncConnectionPool[Any]) -> list[Installed]:
    """Every device in service with the time it was installed (`devices.installed_at`),
    read in chunks: from then on it is expected to report. A retired one is not."""
    out: list[Installed] = []
    query = "SELECT id, home_id, kind, installed_at FROM devices WHERE retired_at IS NULL"
    async with (
        pool.connection(timeout=5.0) as conn,
        contextlib.aclosing(read_in_chunks(conn, "watch_devices", query, chunk=5000)) as rows,
    ):
        async for chunk in rows:
            out += [(str(d), str(h), str(k), at) for d, h, k, at in chunk]
    return out


def urgent_filters(registry: Registry) -> list[str]:
    """The readings topics of every registered device of an urgent kind (SOS buttons,
    smoke and gas detectors...): the urgent path subscribes to exactly these."""
    out = []
    for device in registry:
        kind = CATALOGUE.get(device.kind)
        if kind is not None and kind.urgent:
            out.append(topics.topic(device.home_id, device.device_id, topics.Channel.READINGS))
    return sorted(out)


def is_cancel(reading: Reading) -> bool:
    """A cancel press of an SOS button (the device sends it for a second press within its
    cancel window)."""
    return reading.kind in SOS_KINDS and reading.metric == "cancel" and reading.value == 1.0


@dataclass(slots=True, frozen=True)
class Sources:
    """Where the alerts stage's messages come from, and the registry copy they are decoded
    against."""

    cache: RegistryCache
    stream: Subscriber | None = None
    """Every reading and every device status (`AlertService.filters`); None: not here."""
    urgent: Subscriber | None = None
    """The urgent devices' readings only (`urgent_filters`); None: the urgent path is not
    here."""
    urgent_grace_s: float = 0.0
    """With the urgent path in a process of its own: how long after a new urgent device
    appears the full stream still raises its emergencies too (see `refresh_urgent`)."""


@dataclass(slots=True, frozen=True)
class Detection:
    """The detectors, and what keeps them in step with the registry and across restarts."""

    detectors: DetectorSet
    """The full stream's detectors."""
    immediate: DetectorSet = field(default_factory=immediate_detectors)
    """The urgent path's detectors (SOS, smoke, gas...)."""
    marks: Marks | None = None
    """The last reading handled per device (alerts.detect.state): a reading the detectors'
    saved state holds already (the broker handing it again after a restart) is not observed
    twice."""
    stored: Callable[[], Awaitable[list[Reading]]] | None = None
    """The readings ingest stored since that state was saved, replayed at start (`resume`)."""
    installed: Callable[[], Awaitable[list[Installed]]] | None = None
    """Every registered device and its install time, to seed the device watch (at start);
    None: the times are unknown (expected from now)."""
    layout: Callable[[], Awaitable[Layout]] | None = None
    """Loads the detectors' layout (rooms, time zones) again after the registry changed."""
    layout_of: Registry | None = None
    """The registry copy the detectors' current layout was loaded with."""
    limits: Callable[[], Awaitable[Mapping[str, ElderLimits]]] | None = None
    """Loads the elders' own limits (alerts.detect.limits) at start and again after the
    registry changed (an edit of an elder's limits moves the registry version)."""
    homes: Callable[[str], bool] | None = None
    """The homes this detection judges (its shard's: devices/shards.py); None: every home.
    The device watch expects, and device status is taken, for these homes only."""

    @classmethod
    def on_pool(
        cls,
        pool: AsyncConnectionPool[Any],
        detectors: DetectorSet,
        *,
        marks: Marks | None = None,
        stored: Callable[[], Awaitable[list[Reading]]] | None = None,
        layout_of: Registry | None = None,
        homes: Callable[[str], bool] | None = None,
    ) -> Detection:
        """The detection of a live service: install times, layout and limits from `pool`."""
        return cls(
            detectors,
            marks=marks,
            stored=stored,
            installed=lambda: load_installed(pool),
            layout=lambda: baselines.load_layout_from(pool),
            layout_of=layout_of,
            limits=lambda: load_limits_from(pool),
            homes=homes,
        )
