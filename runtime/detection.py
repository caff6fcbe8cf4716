"""The full-stream detection as the work of the `detection` lease (alerts/lease.py).

Detection is spread by home over `ingest.detection_shards` shards (devices/shards.py; one by
default); each shard runs on one instance at a time, the holder of its lease (`detection`,
or `detection-{k}`), and the instances share the shards out (alerts.lease.Members). Each
time this process takes a shard's lease it builds the detectors afresh from the database
(rooms, learned baselines, then the whole saved state of the shard's homes:
alerts.detect.state), subscribes under the shard's client id (`alerts.client_id`, `-s{k}`
with several shards; the same on every instance: the MQTT session, with what the former
holder had not acknowledged, follows the lease), replays the readings stored since the state
was saved, and runs the clock, the state saves (fenced by the lease's epoch) and the
self-check. Its readings come from ingest through the database (`ingest.feed_detection`, the
default: ingest/feed.py, alerts/feed_reader.py), so each reading is received and decoded once
and its own subscription carries device status only; with the feed off it subscribes to
every reading as well. When the lease is lost all of it stops: the tasks (the state saved a
last time, if the lease still allows it), then the subscription."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from alerts.config import AlertMetrics, utc_now
from alerts.detect import baselines, state
from alerts.detect.detectors import default_detectors
from alerts.detect.learned import LearnedDetector
from alerts.detect.technical import DeviceWatch
from alerts.emergency.path import EmergencyPath
from alerts.feed_reader import FeedMetrics, FeedReader
from alerts.lease import Term
from alerts.notify.dispatch import Dispatcher
from alerts.service import AlertService, Detection, Sources
from alerts.watchdog import PipelineWatchdog
from alerts.writer import SignalWriter
from devices.payload import Reading
from devices.shards import EVERY_HOME, Shard
from ingest.mqtt import Subscriber
from ingest.registry import RegistryCache
from runtime.settings import Settings

log = logging.getLogger(__name__)


def devices_in(cache: RegistryCache, shard: Shard) -> int:
    """How many registered devices are in `shard`'s homes."""
    registry = cache.current
    if shard.count == 1:
        return len(registry)
    return sum(1 for d in registry if shard.has(d.home_id))


def shard_client_id(client_id: str, shard: Shard) -> str:
    """The MQTT client id of a shard's detection: the configured one for the single shard
    (its session as before shards), with `-s{k}` for shard k of several. The same on every
    instance: the session follows the shard's lease."""
    return client_id if shard.count == 1 else f"{client_id}-s{shard.index}"


@dataclass(slots=True, frozen=True)
class DetectionParts:
    """What the detection shares with the rest of the process."""

    settings: Settings
    pool: AsyncConnectionPool[Any]
    cache: RegistryCache
    writer: SignalWriter
    emergency: EmergencyPath
    dispatcher: Dispatcher
    metrics: AlertMetrics
    urgent_grace_s: float
    on_start: Callable[[Shard, Subscriber, Any], None]
    """Called once a shard's detection runs (the `Running` handles follow it)."""
    on_stop: Callable[[Shard], object]
    feed_metrics: FeedMetrics | None = None
    """With ingest feeding the detection (`ingest.feed_detection`): the feed's figures."""


def detection_work(
    parts: DetectionParts, shard: Shard = EVERY_HOME
) -> Callable[[Term], Coroutine[Any, Any, None]]:
    """The work run under the lease of `shard` (`detection`, or `detection-{k}`): the
    detection of that shard's homes."""

    async def work(term: Term) -> None:
        settings, pool, cache = parts.settings, parts.pool, parts.cache
        fed = settings.ingest.feed_detection  # readings from ingest (ingest/feed.py)
        await cache.refresh()
        layout_of = None  # the registry copy the layout was loaded with
        restored = False
        marks = state.Marks()
        since: datetime | None = None  # the oldest save restored: replayed from there
        try:  # rooms and learned baselines; detection runs without them if unreachable
            async with pool.connection() as conn:
                layout_of = cache.current
                detectors = default_detectors(await baselines.load_layout(conn))
                learned = detectors.find(LearnedDetector)
                if learned is not None:
                    await baselines.restore(conn, learned, shard=shard)
                    # The whole state (silences, contexts, deadlines), newer than those.
                    got = await state.restore(
                        conn, learned, marks, detectors.find(DeviceWatch), utc_now(), shard
                    )
                    since = got.oldest
                    log.info(
                        "detector state restored (lease epoch %d, %s): %d homes, %d devices,"
                        " saved from %s",
                        term.epoch,
                        shard,
                        got.homes,
                        got.watch,
                        since,
                    )
                restored = True
        except psycopg.Error:
            log.exception("could not load device rooms / baselines; starting without them")
            layout_of = None  # the rooms follow once the database answers
            detectors = default_detectors()
            learned = detectors.find(LearnedDetector)

        async def stored() -> list[Reading]:
            if since is None:
                return []
            async with pool.connection() as conn:
                return await state.stored_since(conn, since, utc_now(), shard)

        async with AsyncExitStack() as stack:
            stream = await stack.enter_async_context(
                Subscriber(
                    settings.mqtt,
                    shard_client_id(settings.alerts.client_id, shard),
                    AlertService.filters(not fed),
                    drop=AlertService.filters(),  # the readings, when they were its own
                )
            )
            service = AlertService(
                settings.alerts,
                Sources(cache, stream, None, urgent_grace_s=parts.urgent_grace_s),
                Detection.on_pool(
                    pool,
                    detectors,
                    marks=marks,
                    stored=stored,
                    layout_of=layout_of,
                    homes=None if shard.count == 1 else shard.has,
                ),
                parts.writer,
                parts.emergency,
                parts.metrics,
            )
            tasks: list[tuple[str, Coroutine[Any, Any, None]]] = [
                ("alerts", service.run()),
                ("alerts-tick", service.tick()),
            ]
            if shard.index == 0:  # the self-check watches the whole pipeline: once
                # "No reading" is about this shard's stream, so it counts this shard's
                # devices: a shard without a device (a few homes in many shards) is quiet.
                watchdog = PipelineWatchdog(
                    settings.alerts,
                    pool,
                    parts.dispatcher.routing,
                    lambda: service.last_reading_at,
                    lambda: devices_in(cache, shard),
                    parts.dispatcher.wake,
                )
                tasks.append(("watchdog", watchdog.run()))
            if fed:
                reader = FeedReader(
                    settings.database.dsn(), pool, service, parts.feed_metrics, shard=shard.index
                )
                tasks.append(("alerts-feed", reader.run()))
            if learned is not None:
                tasks.append(
                    (
                        "alerts-baselines",
                        baselines.keep(pool, learned, restored=restored, shard=shard),
                    )
                )
                tasks.append(
                    (
                        "alerts-state",
                        state.keep(
                            pool,
                            learned,
                            marks,
                            detectors.find(DeviceWatch),
                            interval_s=settings.alerts.state_save_s,
                            restored=restored,
                            fence=term.fence,
                            shard=shard,
                        ),
                    )
                )
            parts.on_start(shard, stream, detectors)
            term.started.set()
            try:
                async with asyncio.TaskGroup() as tg:
                    for name, coro in tasks:
                        tg.create_task(coro, name=name)
            finally:
                parts.on_stop(shard)

    return work
