"""The composition root: builds every stage from settings and runs them as named tasks in
one TaskGroup, each resource owned by a context manager."""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import io
import logging
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from prometheus_client import CollectorRegistry
from psycopg_pool import AsyncConnectionPool

from alerts import store as alert_store
from alerts.care import CareMetrics, CareTask
from alerts.config import AlertMetrics
from alerts.coverage import RotaGapAlerts
from alerts.detect.detectors import IMMEDIATE_KINDS, immediate_detectors
from alerts.digest import DigestTask
from alerts.digest import Senders as DigestSenders
from alerts.emergency.fallback import EmergencyFallback
from alerts.emergency.fastpath import FastPath
from alerts.emergency.path import EmergencyPath
from alerts.escalate.routing import ALL_CHANNELS, Routing
from alerts.feed_reader import FeedMetrics
from alerts.lease import LeaseMetrics, Leases, Members
from alerts.notify import push_store
from alerts.notify.channels import (
    AppriseChannel,
    Channel,
    ConsoleChannel,
    EmailChannel,
    SmtpConfig,
    WebhookChannel,
    WebPushChannel,
)
from alerts.notify.cn_cloud import cn_channels
from alerts.notify.commands import MqttCommandPublisher
from alerts.notify.dispatch import Dispatcher
from alerts.service import AlertService, Detection, Sources, urgent_filters
from alerts.vapid import VapidKeys, load_keys
from alerts.writer import SignalWriter
from devices.shards import Shard
from gateway.app import create_app
from gateway.context import AppContext
from gateway.live import Broadcaster
from ingest import store as ingest_store
from ingest.migrate import migrate
from ingest.mqtt import Subscriber
from ingest.registry import RegistryCache
from ingest.service import IngestMetrics, IngestWorker, leave_check
from runtime.detection import DetectionParts, detection_work
from runtime.instances import client_id, commands_client_id, holder_name, ingest_settings
from runtime.settings import Settings

log = logging.getLogger(__name__)
SHUTDOWN_STUCK_EXIT = 70  # EX_SOFTWARE


def _guard_shutdown(
    loop: asyncio.AbstractEventLoop, timeout_s: float, stopped: threading.Event
) -> None:
    """If `stopped` is not set `timeout_s` after this process was asked to stop, log every
    task and thread it is stuck in and exit. (The benchmark found processes that never
    stopped after SIGTERM and lived on, reconnecting, after their broker and database were
    gone.)"""

    def tasks() -> None:
        for task in asyncio.all_tasks(loop):
            out = io.StringIO()
            task.print_stack(limit=12, file=out)
            log.error("still running: %s", out.getvalue().rstrip())

    def guard() -> None:
        if stopped.wait(timeout_s):
            return
        log.error("not stopped %g s after being asked to; exiting", timeout_s)
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to list
            loop.call_soon_threadsafe(tasks)
        time.sleep(1.0)  # (a loop too busy to list its tasks in 1 s says as much)
        faulthandler.dump_traceback(all_threads=True)
        logging.shutdown()
        os._exit(SHUTDOWN_STUCK_EXIT)

    threading.Thread(target=guard, name="shutdown-guard", daemon=True).start()


COMPONENTS = ("ingest", "alerts", "gateway")
"""What `serve` runs by default. `alerts` includes the urgent path (SOS, smoke, gas...) unless
`urgent` is named too: then that path runs on its own (give it its own process with
`--components urgent` and the rest with `--components ingest,alerts,gateway` plus
ELDERCARE_ALERTS__URGENT_SEPARATE=true), so an emergency never shares a CPU-bound event loop
with detection over the full stream."""
ALL_COMPONENTS = ("ingest", "alerts", "urgent", "gateway")


class _Shutdown(Exception):
    """Raised inside the TaskGroup to end it once a stop was asked for."""


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the service owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass(slots=True)
class Running:
    """Handles to the running service, for callers that need them (the demo, tests)."""

    settings: Settings
    pool: AsyncConnectionPool[Any]
    metrics: CollectorRegistry
    stop: asyncio.Event
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    subscribers: dict[str, Subscriber] = field(default_factory=dict)
    http_port: int | None = None
    app: Any = None
    detectors: Any = None  # the full stream's DetectorSet, when the alerts stage runs here
    shards: dict[int, Any] = field(default_factory=dict)
    """The DetectorSet of each detection shard this process holds now (`detectors`: shard 0)."""


ExtraTask = Callable[[Running], Awaitable[None]]


def vapid_keys(settings: Settings) -> VapidKeys:
    """The web push VAPID keys: from settings, or (development) created once in the state
    directory. Production settings cannot load without them (see runtime.settings)."""
    a = settings.alerts
    return load_keys(
        None if a.vapid_private_key is None else a.vapid_private_key.get_secret_value(),
        a.vapid_public_key,
        a.vapid_subject,
        settings.state_dir / "vapid_private_key",
    )


def _channels(
    settings: Settings,
    http: httpx.AsyncClient,
    pool: AsyncConnectionPool[Any],
    vapid: VapidKeys,
) -> dict[str, Channel]:
    smtp = settings.alerts.smtp

    async def subscription_gone(target: str) -> None:
        async with pool.connection() as conn:
            removed = await push_store.forget_target(conn, target)
        log.warning("web push subscription gone; %d contact channel(s) removed", removed)

    async def to_console(alert_id: int) -> None:
        async with pool.connection() as conn:
            await conn.execute(
                "SELECT pg_notify(%s, %s)", (alert_store.NOTIFY_CHANNEL, str(alert_id))
            )

    return {
        **cn_channels(http, settings.alerts),  # sms, voice (China), when configured
        "apprise": AppriseChannel(),
        "console": ConsoleChannel(to_console),
        "webhook": WebhookChannel(http, settings.alerts.webhook_secret.get_secret_value().encode()),
        "webpush": WebPushChannel(http, vapid, subscription_gone, settings.alerts.webpush_ttl_s),
        "email": EmailChannel(
            SmtpConfig(
                host=smtp.host,
                port=smtp.port,
                sender=smtp.sender,
                username=smtp.username,
                password=smtp.password.get_secret_value() if smtp.password else None,
                starttls=smtp.starttls,
            )
        ),
    }


def _digest(
    settings: Settings,
    http: httpx.AsyncClient,
    pool: AsyncConnectionPool[Any],
    vapid: VapidKeys,
) -> DigestTask:
    """The family's daily summaries, over the alerts' SMTP server and VAPID keys."""
    push = _channels(settings, http, pool, vapid)["webpush"]
    assert isinstance(push, WebPushChannel)
    smtp = settings.alerts.smtp
    config = SmtpConfig(
        host=smtp.host,
        port=smtp.port,
        sender=smtp.sender,
        username=smtp.username,
        password=smtp.password.get_secret_value() if smtp.password else None,
        starttls=smtp.starttls,
    )

    async def gone(target: str) -> None:
        async with pool.connection() as conn:
            await push_store.forget_target(conn, target)

    senders = DigestSenders(config, push, http)
    return DigestTask(pool, senders, settings.gateway.base_url(), on_gone=gone)


async def serve(
    settings: Settings,
    components: tuple[str, ...] = COMPONENTS,
    extra: tuple[tuple[str, ExtraTask], ...] = (),
    routers: tuple[Any, ...] = (),
    stop: asyncio.Event | None = None,
    on_ready: Callable[[Running], None] | None = None,
    handle_signals: bool = True,
) -> None:
    """Run the chosen components until `stop` is set (or SIGINT/SIGTERM arrives)."""
    unknown = set(components) - set(ALL_COMPONENTS)
    if unknown:
        raise ValueError(f"unknown components {sorted(unknown)}; choose from {ALL_COMPONENTS}")
    dsn = settings.database.dsn()
    applied = await migrate(dsn, settings.database.timescale)
    if applied:
        log.info("migrations applied: %s", applied)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM) if handle_signals else ():
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    metrics = CollectorRegistry()
    vapid = vapid_keys(settings)
    stopped = threading.Event()
    async with AsyncExitStack() as stack:
        stack.callback(stopped.set)  # the last thing on the way out
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            dsn,
            min_size=settings.database.pool_min,
            max_size=settings.database.pool_max,
            reconnect_timeout=settings.database.reconnect_timeout_s,
            open=False,
            name="eldercare",
        )
        await stack.enter_async_context(pool)
        running = Running(settings, pool, metrics, stop)

        async def load_registry() -> Any:
            async with pool.connection(timeout=2.0) as conn:
                return await ingest_store.load_registry(conn)

        async def registry_version() -> int | None:
            async with pool.connection(timeout=2.0) as conn:
                return await ingest_store.registry_version(conn)

        def registry_cache() -> RegistryCache:
            return RegistryCache(
                load_registry, settings.ingest.registry_refresh_s, version=registry_version
            )

        http = await stack.enter_async_context(httpx.AsyncClient(timeout=10.0))
        tasks: list[tuple[str, Awaitable[None]]] = []
        server: _Server | None = None

        if "ingest" in components:
            ingest = ingest_settings(settings)  # its own client id; shared by instances
            sub = await stack.enter_async_context(
                Subscriber(
                    settings.mqtt,
                    ingest.client_id,
                    ingest.filters(),
                    may_leave=leave_check(ingest, dsn) if ingest.shared_group else None,
                )
            )
            running.subscribers["ingest"] = sub
            worker = IngestWorker(
                ingest,
                dsn,
                sub,
                registry_cache(),
                IngestMetrics(metrics),
            )
            tasks += [
                ("ingest", worker.run()),
                ("ingest-maintenance", worker.maintain()),
                ("ingest-heartbeat", worker.heartbeat(ingest.heartbeat_s)),
            ]
            if ingest.shared_group is not None:
                tasks.append(("ingest-gap-scan", worker.scan_gaps()))

        full = "alerts" in components
        urgent_here = "urgent" in components or (full and not settings.alerts.urgent_separate)
        if full or urgent_here:
            alert_metrics = AlertMetrics(metrics)
            commands = await stack.enter_async_context(
                MqttCommandPublisher(settings.mqtt, commands_client_id(settings, full))
            )
            dispatcher = Dispatcher(
                settings.alerts,
                pool,
                _channels(settings, http, pool, vapid),
                alert_metrics,
                settings.gateway.base_url() + "/console",
                commands=commands,
                links_base=settings.gateway.base_url(),
                # With the urgent path elsewhere, its process dispatches; this one backs it up.
                backup_after_s=0.0 if urgent_here else settings.alerts.backup_dispatch_after_s,
            )
            alerts_cache = registry_cache()
            await alerts_cache.refresh()
            urgent: Subscriber | None = None
            if urgent_here:
                urgent = await stack.enter_async_context(
                    Subscriber(
                        settings.mqtt,
                        client_id(settings, settings.alerts.client_id, "-urgent"),
                        urgent_filters(alerts_cache.current),
                    )
                )
                running.subscribers["alerts_urgent"] = urgent
            fallback = EmergencyFallback(
                pool,
                _channels(settings, http, pool, vapid),
                settings.gateway.base_url() + "/console",
                refresh_s=settings.alerts.fallback_refresh_s,
                locale=settings.alerts.locale,
                timezone=settings.alerts.timezone,
            )
            fast: FastPath | None = None
            if urgent_here and settings.alerts.fast_path:
                fast = FastPath(
                    pool,
                    fallback,
                    _channels(settings, http, pool, vapid),
                    settings.gateway.base_url() + "/console",
                    dispatcher.ack_url,
                    IMMEDIATE_KINDS,
                    send_timeout_s=settings.alerts.send_timeout_s,
                    refresh_s=settings.alerts.fast_path_refresh_s,
                    claims_dsn=dsn,  # every instance has the press: the first claim tells
                    holder=holder_name(settings),
                )
            writer = SignalWriter(settings.alerts, pool, dispatcher, alert_metrics)
            emergency = EmergencyPath(
                settings.alerts, writer, dispatcher, alert_metrics, fast=fast, fallback=fallback
            )
            # A separate urgent process notices a new device within its registry check period
            # plus its timer's; until then the full stream raises its emergencies too.
            grace = (
                0.0
                if urgent_here
                else settings.ingest.registry_refresh_s + 5 * settings.alerts.poll_s + 5.0
            )
            tasks += [("alerts-fallback", fallback.run()), ("dispatcher", dispatcher.run())]
            if urgent_here:
                urgent_service = AlertService(
                    settings.alerts,
                    Sources(alerts_cache, None, urgent),
                    Detection(immediate_detectors()),
                    writer,
                    emergency,
                    alert_metrics,
                )
                tasks.append(("alerts-urgent", urgent_service.run_urgent()))
            if fast is not None:
                tasks.append(("alerts-fast-path", fast.run()))
        if "gateway" in components:
            broadcaster = Broadcaster(dsn)
            subs = running.subscribers

            def health() -> dict[str, bool]:
                checks = {f"mqtt_{name}": s.connected for name, s in subs.items()}
                checks["alert_stream"] = broadcaster.connected
                return checks

            ctx = AppContext(
                settings.gateway,
                pool,
                broadcaster,
                metrics,
                health,
                alert_settings=settings.alerts,
                vapid_public_key=vapid.public_key,
                local_tz=settings.alerts.zone(),
                default_locale=settings.alerts.locale,
                broker=settings.broker,
            )
            app = create_app(ctx)
            for router in routers:
                app.include_router(router)
            running.app = app
            config = uvicorn.Config(
                app,
                host=settings.gateway.host,
                port=settings.gateway.port,
                log_level="warning",
                lifespan="off",
                proxy_headers=True,  # X-Forwarded-Proto/-For, from trusted_proxies only
                forwarded_allow_ips=settings.gateway.trusted_proxies,
            )
            server = _Server(config)
            tasks += [("live", broadcaster.run()), ("http", server.serve())]

        settles: list[asyncio.Event] = []  # each lease: held and started, or held elsewhere
        if full:
            # What must run once, each under its lease (alerts/lease.py): on one instance.
            leases = Leases(dsn, holder_name(settings), settings.leases, LeaseMetrics(metrics))
            stack.push_async_callback(leases.close)

            def started(shard: Shard, stream: Subscriber, detectors: Any) -> None:
                running.shards[shard.index] = detectors
                if shard.index == 0:
                    running.subscribers["alerts"] = stream
                    running.detectors = detectors
                else:
                    running.subscribers[f"alerts-s{shard.index}"] = stream

            def gone(shard: Shard) -> None:
                running.shards.pop(shard.index, None)
                name = "alerts" if shard.index == 0 else f"alerts-s{shard.index}"
                running.subscribers.pop(name, None)

            parts = DetectionParts(
                settings,
                pool,
                alerts_cache,
                writer,
                emergency,
                dispatcher,
                alert_metrics,
                grace,
                started,
                gone,
                FeedMetrics(metrics) if settings.ingest.feed_detection else None,
            )
            gaps = RotaGapAlerts(settings.alerts, pool, alert_metrics, dispatcher)
            # Care visits raise alerts: an alerts task, whether or not this process serves HTTP.
            care = CareTask(
                pool,
                Routing(ALL_CHANNELS, settings.alerts.demo_speed),
                settings.alerts.care_poll_s,
                metrics=CareMetrics(metrics),
            )
            digest = _digest(settings, http, pool, vapid)
            # Detection by shard of homes: with several, the instances share the shards out.
            count = settings.ingest.detection_shards
            members = Members(leases, "detection") if count > 1 else None
            if members is not None:
                tasks.append(("lease-detection-member", members.run()))
            for index in range(count):
                shard = Shard(index, count)
                settles.append(asyncio.Event())
                hold = leases.hold(
                    shard.lease, detection_work(parts, shard), settles[-1], True, members
                )
                tasks.append((f"lease-{shard.lease}", hold))
            for name, work in (
                ("rota-watch", lambda _term: gaps.run()),
                ("care", lambda _term: care.run()),
                ("daily-summary", lambda _term: digest.run()),
            ):
                settles.append(asyncio.Event())
                tasks.append((f"lease-{name}", leases.hold(name, work, settles[-1])))

        async def watch() -> None:
            if server is not None:
                while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for this
                    await asyncio.sleep(0.02)
                running.http_port = server.servers[0].sockets[0].getsockname()[1]
            for settled in settles:
                await settled.wait()
            running.ready.set()
            if on_ready is not None:
                on_ready(running)
            await stop.wait()
            log.info("stopping")
            _guard_shutdown(asyncio.get_running_loop(), settings.shutdown_timeout_s, stopped)
            if server is not None:
                server.should_exit = True
                await asyncio.wait([created["http"]], timeout=5.0)
            raise _Shutdown

        created: dict[str, asyncio.Task[None]] = {}
        try:
            async with asyncio.TaskGroup() as tg:
                for name, coro in tasks:
                    created[name] = tg.create_task(coro, name=name)  # type: ignore[arg-type]
                for name, make in extra:
                    tg.create_task(make(running), name=name)  # type: ignore[arg-type]
                tg.create_task(watch(), name="watch")
        except* _Shutdown:
            log.info("stopped cleanly")
