"""The alerts stage at run time: the detector loop and the notification dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, Counter, Histogram
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field, SecretStr

from alerts import store
from alerts.channels import Channel, DeliveryError, Notice
from alerts.detect import DetectorSet
from alerts.model import Outgoing, Raised, Scope, Signal
from devices import payload, topics
from devices.payload import Rejection
from ingest.mqtt import Message, Subscriber
from ingest.registry import RegistryCache

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


class SmtpSettings(BaseModel):
    """The SMTP server that e-mail notifications are handed to."""

    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    sender: str = "eldercare@localhost"
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = False


class AlertSettings(BaseModel):
    """Tuning of the alerts stage."""

    client_id: str = "eldercare-alerts"
    repeat_s: float = Field(default=300.0, gt=0, description="repeat until acknowledged")
    retry_base_s: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    poll_s: float = Field(default=1.0, gt=0)
    send_timeout_s: float = Field(default=10.0, gt=0)
    webhook_secret: SecretStr = SecretStr("development-webhook-secret")
    smtp: SmtpSettings = SmtpSettings()


class AlertMetrics:
    """Prometheus counters of the alerts stage."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.opened = Counter(
            "eldercare_alerts_opened", "alerts opened", ["kind", "severity"], registry=registry
        )
        self.notifications = Counter(
            "eldercare_notifications",
            "notification attempts",
            ["channel", "result"],
            registry=registry,
        )
        self.alert_latency = Histogram(
            "eldercare_alert_commit_seconds",
            "reading received to alert committed",
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )


class Dispatcher:
    """Sends due notifications and plans repeat rounds until an alert is acknowledged.

    Timers and notifications live in the database and are claimed with row locks
    (FOR UPDATE SKIP LOCKED), so after a restart they continue, and with several instances
    each one is handled once.
    """

    def __init__(
        self,
        settings: AlertSettings,
        pool: AsyncConnectionPool[Any],
        channels: dict[str, Channel],
        metrics: AlertMetrics,
        console_url: str,
        clock: Clock = utc_now,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._channels = channels
        self._metrics = metrics
        self._console_url = console_url
        self._clock = clock
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for due work now rather than at the next poll."""
        self._wake.set()

    async def _send(self, note: Outgoing, notice: Notice) -> str | None:
        channel = self._channels.get(note.channel)
        if channel is None:
            return f"no channel {note.channel!r} configured"
        try:
            await asyncio.wait_for(channel.send(note.target, notice), self._settings.send_timeout_s)
        except DeliveryError as exc:
            return str(exc)
        except TimeoutError:
            return f"{note.channel} timed out after {self._settings.send_timeout_s:g} s"
        return None

    async def step(self) -> int:
        """Do everything that is due now; returns how many notifications were attempted."""
        now = self._clock()
        repeat = timedelta(seconds=self._settings.repeat_s)
        async with self._pool.connection() as conn:
            async with conn.transaction():
                for alert_id, next_round, status in await store.due_timers(conn, now):
                    if status == "open":
                        await store.plan_round(conn, alert_id, next_round, now, repeat)
                    else:
                        await store.drop_timer(conn, alert_id)
            async with conn.transaction():
                notes = await store.due_notifications(conn, now)
                alerts = {
                    a_id: await store.get_alert(conn, Scope(everything=True), a_id)
                    for a_id in {n.alert_id for n in notes}
                }
                results = await asyncio.gather(
                    *(
                        self._send(n, Notice(alert, n.round, n.user_id, self._console_url))
                        for n in notes
                        if (alert := alerts[n.alert_id]) is not None
                    )
                )
                for note, error in zip(notes, results, strict=True):
                    retry_at = None
                    if error is not None and note.attempts + 1 < self._settings.max_attempts:
                        retry_at = now + timedelta(
                            seconds=self._settings.retry_base_s * 2**note.attempts
                        )
                    await store.record_attempt(conn, note, error is None, error, retry_at)
                    self._metrics.notifications.labels(
                        note.channel, "sent" if error is None else "failed"
                    ).inc()
                    if error is not None:
                        log.warning("notification %d failed: %s", note.id, error)
        return len(notes)

    async def run(self) -> None:
        """Work until cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.poll_s)
            self._wake.clear()
            try:
                await self.step()
            except psycopg.Error as exc:
                log.warning("dispatcher step failed: %r", exc)
                await asyncio.sleep(self._settings.poll_s)


class AlertService:
    """Runs readings through the detectors and stores what they raise.

    It has its own QoS 1 subscription, separate from ingest's batching, so an SOS does not
    wait behind bulk writes; a message is acknowledged once its alert is committed.
    """

    def __init__(
        self,
        settings: AlertSettings,
        pool: AsyncConnectionPool[Any],
        subscriber: Subscriber,
        cache: RegistryCache,
        detectors: DetectorSet,
        dispatcher: Dispatcher,
        metrics: AlertMetrics,
        clock: Clock = utc_now,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._sub = subscriber
        self._cache = cache
        self._detectors = detectors
        self._dispatcher = dispatcher
        self._metrics = metrics
        self._clock = clock

    @staticmethod
    def filters() -> list[str]:
        """Every reading of every home."""
        return [topics.subscription(topics.Channel.READINGS)]

    async def raise_signal(self, signal: Signal) -> Raised:
        """Store a signal, retrying while the database is unreachable."""
        delay = 0.1
        while True:
            try:
                async with self._pool.connection() as conn:
                    raised = await store.raise_signal(
                        conn, signal, self._clock(), timedelta(seconds=self._settings.repeat_s)
                    )
                break
            except psycopg.OperationalError as exc:
                log.error(
                    "could not store %s alert for %s (%r); retrying",
                    signal.kind,
                    signal.home_id,
                    exc,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        if raised.created:
            self._metrics.opened.labels(signal.kind, signal.severity.value).inc()
            log.warning("alert %d opened: %s at %s", raised.alert_id, signal.kind, signal.home_id)
        self._dispatcher.wake()
        return raised

    async def handle(self, msg: Message) -> None:
        """Detect on one message and acknowledge it once what it raised is stored."""
        started = asyncio.get_running_loop().time()
        now = self._clock()
        result = payload.decode(msg.topic, msg.payload, self._cache.current, now)
        if (
            isinstance(result, Rejection)
            and result.reason is payload.Reason.UNKNOWN_DEVICE
            and await self._cache.maybe_refresh(miss=True)
        ):
            result = payload.decode(msg.topic, msg.payload, self._cache.current, now)
        if not isinstance(result, Rejection):  # rejects are ingest's to count and keep
            signals = [s for r in result for s in self._detectors.observe(r)]
            for signal in signals:
                await self.raise_signal(signal)
            if signals:
                self._metrics.alert_latency.observe(asyncio.get_running_loop().time() - started)
        self._sub.ack(msg)

    async def run(self) -> None:
        """Handle messages until cancelled."""
        await self._cache.maybe_refresh()
        while True:
            msg = await self._sub.messages.get()
            try:
                await self._cache.maybe_refresh()
                await self.handle(msg)
            except Exception:
                log.exception(
                    "alert handling failed for %s; message left unacknowledged", msg.topic
                )

    async def tick(self, interval_s: float = 1.0) -> None:
        """Advance detection time with the wall clock (live mode)."""
        while True:
            await asyncio.sleep(interval_s)
            for signal in self._detectors.advance(self._clock()):
                await self.raise_signal(signal)
