"""The alerts stage at run time: readings through the detectors into stored alerts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from alerts import store
from alerts.config import AlertMetrics, AlertSettings, Clock, retry_delay_s, utc_now
from alerts.detect.detectors import IMMEDIATE_KINDS, DetectorSet, immediate_detectors
from alerts.detect.layout import Layout
from alerts.detect.learned import LearnedDetector
from alerts.detect.state import Marks, catch_up
from alerts.detect.technical import DeviceWatch
from alerts.model import Raised, Severity, Signal
from alerts.mutes import MuteChain, default_mutes
from alerts.notify.dispatch import Dispatcher
from alerts.notify.fallback import EmergencyFallback
from alerts.notify.fastpath import Attempt, FastPath, Prepared
from devices import payload, status, topics
from devices.catalogue import CATALOGUE, SOS_KINDS
from devices.payload import Reading, Rejection
from devices.registry import Registry
from ingest.db import read_in_chunks
from ingest.mqtt import Message, Subscriber
from ingest.registry import RegistryCache

log = logging.getLogger(__name__)
_LAYOUT_RETRY_S = 30.0

Installed = tuple[str, str, str, datetime]
"""A registered device as the device watch is seeded with: id, home, kind, installed at."""


async def load_installed(pool: AsyncConnectionPool[Any]) -> list[Installed]:
    """Every registered device with the time it was registered (`devices.created_at`),
    read in chunks: from then on it is expected to report."""
    out: list[Installed] = []
    query = "SELECT id, home_id, kind, created_at FROM devices"
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


class AlertService:
    """Runs readings through the detectors and stores what they raise.

    It has its own QoS 1 subscription, separate from ingest's batching, and a second,
    `urgent`, one to only the topics of urgent devices (see `urgent_filters`), so that an SOS
    waits neither behind bulk writes nor behind the full stream of readings. A message is
    acknowledged once what it raised is committed.
    """

    def __init__(
        self,
        settings: AlertSettings,
        pool: AsyncConnectionPool[Any],
        subscriber: Subscriber | None,
        cache: RegistryCache,
        detectors: DetectorSet,
        dispatcher: Dispatcher,
        metrics: AlertMetrics,
        clock: Clock = utc_now,
        fallback: EmergencyFallback | None = None,
        urgent: Subscriber | None = None,
        immediate: DetectorSet | None = None,
        mutes: MuteChain | None = None,
        fast: FastPath | None = None,
        urgent_grace_s: float = 0.0,
        layout: Callable[[], Awaitable[Layout]] | None = None,
        layout_of: Registry | None = None,
        installed: Callable[[], Awaitable[list[Installed]]] | None = None,
        marks: Marks | None = None,
        stored: Callable[[], Awaitable[list[Reading]]] | None = None,
    ) -> None:
        self._settings = settings
        # The last reading handled per device (alerts.detect.state): a reading the detectors' saved
        # state holds already (the broker handing it again after a restart) is not observed
        # twice. `stored` gives, at start, the readings ingest stored since that state was
        # saved, replayed before the live stream (`resume`).
        self.marks = marks
        self._stored = stored
        self._resumed = asyncio.Event()  # the clock waits for the replay (`tick`)
        # Seeds the device watch with every registered device and its install time (at
        # start); `_watch_of` is the registry copy the watch last followed.
        self._load_installed = installed
        self._watch_of: Registry | None = None
        # Loads the detectors' layout (rooms, time zones) again after the registry changed;
        # `_layout_of` is the registry copy the current one was loaded with.
        self._load_layout = layout
        self._layout_of = layout_of
        self._layout_retry_at = 0.0
        self._fast = fast
        self.last_reading_at = clock()  # wall time of the last reading on the full stream
        self._urgent = urgent
        # Urgent topic -> monotonic time from which the full stream leaves its emergencies
        # to the urgent path (see `refresh_urgent`).
        self._urgent_from: dict[str, float] = {}
        self._urgent_grace_s = urgent_grace_s
        self._followed: Registry | None = None
        self._immediate = immediate or immediate_detectors()
        self._fallback = fallback
        self._pending: set[asyncio.Task[None]] = set()
        self._device_locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        self._urgent_slots = asyncio.Semaphore(64)
        self._mutes = mutes if mutes is not None else default_mutes()
        self._pool = pool
        self._sub = subscriber
        self._cache = cache
        self._detectors = detectors
        self._dispatcher = dispatcher
        self._metrics = metrics
        self._clock = clock

    @staticmethod
    def filters() -> list[str]:
        """Every reading of every home, and every device's (retained) status: its last
        will says when it is gone."""
        return [
            topics.subscription(topics.Channel.READINGS),
            topics.subscription(topics.Channel.STATUS),
        ]

    def watch(self) -> DeviceWatch | None:
        """The detectors' device watch, if they have one."""
        detectors: DetectorSet | None = self._detectors
        return None if detectors is None else detectors.find(DeviceWatch)

    async def seed_watch(self) -> int:
        """Expect every registered device from its install time on (so that one that never
        reports, or stopped while this process was down, is flagged after its grace).
        Without the install times (the database unreachable), from now. Returns how many
        devices were new to the watch."""
        watch = self.watch()
        if watch is None:
            return 0
        registry = self._cache.current
        now = self._clock()
        try:
            load = self._load_installed or (lambda: load_installed(self._pool))
            installed = await load()
        except Exception as exc:  # whatever it is, the registry copy still names them
            log.warning("no install times for the device watch (%r); expecting from now", exc)
            installed = [(d.device_id, d.home_id, d.kind, now) for d in registry]
        new = sum(watch.expect(d, h, k, min(at, now)) for d, h, k, at in installed)
        if installed:  # devices restored from before the restart but since removed
            watch.retain(d for d, _h, _k, _at in installed)
        self._watch_of = registry
        log.info("device watch seeded: %d devices expected (%d new)", len(installed), new)
        return new

    def follow_watch(self) -> None:
        """After the registry changed: expect its new devices from now, forget the removed."""
        registry = self._cache.current
        previous = self._watch_of
        watch = self.watch()
        if watch is None or registry is previous:
            return
        self._watch_of = registry
        now = self._clock()
        for d in registry:
            if not watch.known(d.device_id):
                watch.expect(d.device_id, d.home_id, d.kind, now)
        if previous is not None and len(registry):
            for d in previous:
                if registry.get(d.device_id) is None:
                    watch.forget(d.device_id)

    async def handle_status(self, msg: Message, topic: topics.Topic) -> list[Signal]:
        """A device's status message: to the device watch (an "offline" raises its silence
        at once). Unknown devices, other homes' topics and bad payloads are ignored."""
        watch = self.watch()
        parsed = status.parse(msg.payload)
        if watch is None or parsed is None:
            return []
        device = self._cache.current.get(topic.device_id)
        if device is None and await self._cache.maybe_refresh(miss=True):
            device = self._cache.current.get(topic.device_id)
        if device is None or device.home_id != topic.home_id:
            log.info("status on %s ignored: not a registered device of that home", msg.topic)
            return []
        now = self._clock()
        at = now
        if parsed.ts is not None:
            with contextlib.suppress(ValueError, OverflowError, OSError):
                at = min(now, datetime.fromtimestamp(parsed.ts, tz=UTC))
        return watch.observe_status(
            device.device_id,
            parsed.state is status.State.ONLINE,
            at,
            home_id=device.home_id,
            kind=device.kind,
            reason=parsed.reason,
        )

    async def _store_once(
        self, signal: Signal, alert_id: int | None = None, hold_s: float = 0.0
    ) -> Raised | None:
        """Store a signal once, unless a mute holds it back (then it is recorded as
        suppressed and None is returned). `alert_id` / `hold_s`: see `store.raise_signal`."""
        async with self._pool.connection(timeout=self._settings.store_timeout_s) as conn:
            now = self._clock()
            muted = await self._mutes.check(conn, signal, now)
            if muted is not None:
                await self._mutes.record(conn, signal, muted)
                await conn.commit()
                log.info(
                    "%s at %s muted by %s: %s",
                    signal.kind,
                    signal.home_id,
                    muted.stage,
                    muted.reason,
                )
                return None
            await conn.commit()
            return await store.raise_signal(
                conn, signal, now, self._dispatcher.routing, alert_id, hold_s
            )

    async def raise_signal(
        self, signal: Signal, alert_id: int | None = None, hold_s: float = 0.0
    ) -> Raised | None:
        """Store a signal (None when muted), retrying while the database is unreachable."""
        delay = 0.1
        while True:
            try:
                raised = await self._store_once(signal, alert_id, hold_s)
                break
            except (psycopg.OperationalError, TimeoutError) as exc:
                log.error(
                    "could not store %s alert for %s (%r); retrying",
                    signal.kind,
                    signal.home_id,
                    exc,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self._opened(signal, raised)
        return raised

    def _opened(self, signal: Signal, raised: Raised | None) -> None:
        if raised is not None and raised.created:
            self._metrics.opened.labels(signal.kind, signal.severity.value).inc()
            log.warning("alert %d opened: %s at %s", raised.alert_id, signal.kind, signal.home_id)
        self._dispatcher.wake()

    async def _store_later(
        self,
        signals: list[tuple[Signal, Prepared | None, list[Attempt]]],
        msg: Message,
        sub: Subscriber,
    ) -> None:
        for signal, prepared, attempts in signals:
            if prepared is None:
                await self.raise_signal(signal)
                continue
            raised = await self.raise_signal(signal, prepared.alert.id, self._hold_s())
            await self._told_ahead(signal, prepared, attempts, raised)
        sub.ack(msg)

    def _hold_s(self) -> float:
        return 0.0 if self._fast is None else self._fast.hold_s

    async def _told_ahead(
        self,
        signal: Signal,
        prepared: Prepared,
        attempts: list[Attempt],
        raised: Raised | None,
    ) -> None:
        """After the fast path: record how its sends went against the stored first round."""
        assert self._fast is not None
        self._fast.stored(signal.home_id, signal.kind, None if raised is None else raised.alert_id)
        if raised is None or raised.alert_id != prepared.alert.id:
            # Muted after all, or an unresolved alert of this kind existed: the fast path's
            # notice named an alert that was not stored under that id.
            log.warning(
                "fast path told %d people of %s at %s as alert %d, stored as %s",
                sum(a.ok for a in attempts),
                signal.kind,
                signal.home_id,
                prepared.alert.id,
                "muted" if raised is None else f"alert {raised.alert_id}",
            )
            return
        for attempt in range(5):
            try:
                recorded = await self._fast.record(
                    raised.alert_id, attempts, self._retry_at, self._dispatcher.routing.channels
                )
                break
            except (psycopg.OperationalError, TimeoutError) as exc:
                log.error("fast-path sends not recorded (%r); retrying", exc)
                await asyncio.sleep(0.2 * 2**attempt)
        else:
            return  # the hold runs out and the dispatcher sends the round again
        self._metrics.notifications.labels("fast_path", "sent").inc(recorded)
        self._dispatcher.wake()

    async def _raise_all(self, signals: list[Signal], msg: Message, sub: Subscriber) -> bool:
        """Store `signals`; True when all are committed. What cannot be stored now is
        retried in the background (acknowledging `msg` after), and a critical one is sent
        straight away from the fallback's cached contacts, so one outage does not hold up
        the next emergency."""
        failed: list[tuple[Signal, Prepared | None, list[Attempt]]] = []
        opened: list[int] = []
        for signal in signals:
            prepared = None
            if sub is self._urgent and self._fast is not None:
                prepared = self._fast.take(signal)
            sending = (
                None
                if prepared is None
                else asyncio.create_task(self._fast_send(prepared), name="alerts-fast-path")
            )
            if failed:
                failed.append((signal, prepared, [] if sending is None else await sending))
                continue
            try:
                raised = (
                    await self._store_once(signal)
                    if prepared is None
                    else await self._store_once(signal, prepared.alert.id, self._hold_s())
                )
                self._opened(signal, raised)
                if sending is not None and prepared is not None:
                    await self._told_ahead(signal, prepared, await sending, raised)
                    continue
                if self._fast is not None and sub is self._urgent and raised is not None:
                    # Stored without the fast path (e.g. before it was ready): from now on a
                    # press in this home is evidence for this alert, not news to tell of.
                    self._fast.stored(signal.home_id, signal.kind, raised.alert_id)
                if raised is not None and raised.created and signal.severity is Severity.CRITICAL:
                    opened.append(raised.alert_id)
            except (psycopg.OperationalError, TimeoutError) as exc:
                log.error("alert store unavailable (%r)", exc)
                failed.append((signal, prepared, [] if sending is None else await sending))
        if sub is self._urgent:
            # An emergency's first notifications go out now, not at the dispatcher's next
            # turn; whatever this misses, the dispatcher (already woken) sends.
            for alert_id in opened:
                try:
                    await self._dispatcher.send_now(alert_id)
                except (psycopg.Error, TimeoutError) as exc:
                    log.error(
                        "immediate send for alert %d failed (%r); dispatcher retries", alert_id, exc
                    )
        if not failed:
            return True
        if self._fallback is not None:
            for signal, _prepared, attempts in failed:
                if signal.severity is Severity.CRITICAL and not any(a.ok for a in attempts):
                    self._metrics.fallback.inc(await self._fallback.notify(signal))
        task = asyncio.create_task(self._store_later(failed, msg, sub), name="alerts-store-later")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return False

    async def _fast_send(self, prepared: Prepared) -> list[Attempt]:
        assert self._fast is not None
        attempts = await self._fast.send(prepared)
        log.warning(
            "alert %d (%s at %s): fast path delivered %d of %d first notifications",
            prepared.alert.id,
            prepared.alert.kind,
            prepared.alert.home_id,
            sum(a.ok for a in attempts),
            len(attempts),
        )
        return attempts

    def _retry_at(self, attempts: int) -> datetime | None:
        """When a failed first-round send is tried again (as the dispatcher would)."""
        if attempts + 1 >= self._settings.max_attempts:
            return None
        return self._clock() + timedelta(
            seconds=retry_delay_s(self._settings.retry_base_s, attempts)
        )

    async def clear(self, home_id: str, kind: str, reason: str) -> int | None:
        """The data shows the condition is over: resolve the home's alert of this kind with
        the reason recorded (a detector's "all clear"). Returns the alert id, if one was open."""
        async with self._pool.connection() as conn:
            cleared = await store.clear_by_data(conn, home_id, kind, reason, self._clock())
        if cleared is not None:
            self._dispatcher.wake()
        return cleared

    async def self_cancel(self, reading: Reading) -> tuple[int | None, bool]:
        """A cancel from the elder's SOS button (recorded; cancels within the window)."""
        window = timedelta(seconds=self._settings.sos_cancel_window_s)
        async with self._pool.connection() as conn:
            alert_id, cancelled = await store.self_cancel(
                conn, reading.home_id, reading.device_id, reading.ts, window
            )
        if cancelled:
            log.warning("alert %s cancelled by the elder on %s", alert_id, reading.device_id)
            self._dispatcher.wake()
        return alert_id, cancelled

    async def handle(self, msg: Message, urgent: bool = False) -> None:
        """Detect on one message and acknowledge it once what it raised is stored.

        On the urgent path only the immediate detectors run; on the full stream, immediate
        signals (and SOS cancels) from devices that the urgent path covers are left to it."""
        sub = self._urgent if urgent else self._sub
        assert sub is not None
        started = asyncio.get_running_loop().time()
        now = self._clock()
        parsed = topics.parse(msg.topic)
        if not urgent and parsed is not None and parsed.channel is topics.Channel.STATUS:
            signals = await self.handle_status(msg, parsed)
            if signals and not await self._raise_all(signals, msg, sub):
                return  # acknowledged once stored, by the background retry
            sub.ack(msg)
            return
        if not urgent:
            self.last_reading_at = now
        result = payload.decode(msg.topic, msg.payload, self._cache.current, now)
        if (
            isinstance(result, Rejection)
            and result.reason is payload.Reason.UNKNOWN_DEVICE
            and await self._cache.maybe_refresh(miss=True)
        ):
            self.refresh_urgent()  # a new urgent device joins the urgent path now
            if not urgent:
                await self.follow_layout()  # and a new device is in its room from the start
            result = payload.decode(msg.topic, msg.payload, self._cache.current, now)
        if not isinstance(result, Rejection):  # rejects are ingest's to count and keep
            left = not urgent and self.left_to_urgent(msg.topic)
            if not left:
                for r in result:
                    if is_cancel(r):
                        await self.self_cancel(r)
            if urgent:
                signals = [s for r in result for s in self._immediate.observe(r)]
            else:
                marks = self.marks
                fresh = result if marks is None else [r for r in result if not marks.seen(r)]
                signals = [s for r in fresh for s in self._detectors.observe(r)]
                if marks is not None:
                    for r in fresh:
                        marks.note(r)
                if left:
                    signals = [s for s in signals if s.kind not in IMMEDIATE_KINDS]
            if signals:
                if not await self._raise_all(signals, msg, sub):
                    return  # acknowledged once stored, by the background retry
                self._metrics.alert_latency.observe(asyncio.get_running_loop().time() - started)
        sub.ack(msg)

    async def run(self) -> None:
        """Handle messages until cancelled."""
        if self._sub is None:
            self._resumed.set()
            return
        try:
            await self._cache.maybe_refresh()
            self.refresh_urgent()
            await self.seed_watch()
            await self.resume()
        finally:
            self._resumed.set()
        while True:
            msg = await self._sub.messages.get()
            try:
                await self._cache.maybe_refresh()
                self.refresh_urgent()
                await self.follow_layout()
                self.follow_watch()
                await self.handle(msg)
            except Exception:
                log.exception(
                    "alert handling failed for %s; message left unacknowledged", msg.topic
                )

    async def resume(self) -> int:
        """Replay the readings stored since the detectors' state was saved (a restart, even
        a kill, loses nothing the alerts stage had handled but not saved yet), and raise
        what they, and the deadlines passed meanwhile, give. Returns readings replayed."""
        if self._stored is None or self.marks is None:
            return 0
        try:
            readings = await self._stored()
        except psycopg.Error:
            log.exception("could not read the readings stored since the last save")
            return 0
        replayed, signals = catch_up(self._detectors, self.marks, readings, self._clock())
        for signal in signals:
            await self.raise_signal(signal)
        log.info("caught up on %d stored readings: %d signals", replayed, len(signals))
        return replayed

    def refresh_urgent(self) -> None:
        """Follow the current registry copy (cheap when it has not changed since): point the
        urgent subscription at its urgent devices, if the urgent path runs here, and note from
        when the full stream leaves each one's emergencies to the urgent path.

        In this process that is at once. With the urgent path in a process of its own, whose
        registry copy is reloaded on its own timer, a device that appears here is left to it
        only after `urgent_grace_s` (its longest time to notice, plus a margin): until then
        the full stream raises that device's emergencies too, so the first press of a newly
        installed button is never dropped by both (at worst its people are told twice)."""
        registry = self._cache.current
        if registry is self._followed:
            return
        first = self._followed is None
        self._followed = registry
        wanted = urgent_filters(registry)
        if self._urgent_from.keys() == set(wanted):
            return
        if self._urgent is not None:
            added, removed = self._urgent.set_filters(wanted)
            log.info("urgent path: %d topics (+%d, -%d)", len(wanted), added, removed)
        at = float("-inf") if first or self._urgent is not None else time.monotonic()
        self._urgent_from = {t: self._urgent_from.get(t, at) for t in wanted}

    async def follow_layout(self) -> None:
        """After the registry changed, load the detectors' layout again, so that a device
        installed (or moved) while the service runs is judged in its room and its home's
        time zone: the learned rules need the bathroom, the bedroom and the entry door, and
        a device missing from the layout counts only by its kind. A failed load is logged and
        tried again after `_LAYOUT_RETRY_S` (the detectors keep the layout they have)."""
        registry = self._cache.current
        if (
            self._load_layout is None
            or registry is self._layout_of
            or time.monotonic() < self._layout_retry_at
        ):
            return
        learned = self._detectors.find(LearnedDetector)
        if learned is None:
            self._layout_of = registry
            return
        try:
            layout = await self._load_layout()
        except Exception:  # whatever it is, the messages go on with the rooms there are
            self._layout_retry_at = time.monotonic() + _LAYOUT_RETRY_S
            log.exception("could not reload device rooms; retrying in %.0f s", _LAYOUT_RETRY_S)
            return
        self._layout_of = registry
        learned.set_layout(layout)
        log.info("detectors follow the registry: %d devices placed", len(registry))

    def left_to_urgent(self, topic: str) -> bool:
        """True when the urgent path has this topic's emergencies (see `refresh_urgent`)."""
        since = self._urgent_from.get(topic)
        return since is not None and time.monotonic() - since >= self._urgent_grace_s

    async def run_urgent(self) -> None:
        """Handle urgent devices' messages until cancelled."""
        if self._urgent is None:
            return
        self.refresh_urgent()
        keeper = asyncio.create_task(self._keep_registry(), name="alerts-urgent-registry")
        try:
            while True:
                msg = await self._urgent.messages.get()
                # Each device's messages in order (a cancel after its press), devices side by
                # side: one home's alert waiting on a slow store does not hold up another's.
                await self._urgent_slots.acquire()
                task = asyncio.create_task(self._handle_urgent(msg), name="alerts-urgent-message")
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
        finally:
            keeper.cancel()

    async def _keep_registry(self) -> None:
        """The urgent path's registry check, on its own timer, never in front of a message
        (a message from a device not in the copy still triggers one, in `handle`)."""
        while True:
            await asyncio.sleep(self._settings.poll_s * 5)
            try:
                await self._cache.maybe_refresh()
                self.refresh_urgent()  # also after a reload by a miss on the full stream
            except Exception:
                log.exception("registry refresh failed on the urgent path")

    async def _handle_urgent(self, msg: Message) -> None:
        entry = self._device_locks.setdefault(msg.topic, (asyncio.Lock(), [0]))
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                await self.handle(msg, urgent=True)
        except Exception:
            log.exception("urgent handling failed for %s; left unacknowledged", msg.topic)
        finally:
            self._urgent_slots.release()
            users[0] -= 1
            if users[0] == 0:
                del self._device_locks[msg.topic]

    async def tick(self, interval_s: float = 1.0) -> None:
        """Advance detection time with the wall clock (live mode), once the readings stored
        since the last save are replayed (before: a silence would be judged without them)."""
        await self._resumed.wait()
        while True:
            await asyncio.sleep(interval_s)
            for signal in self._detectors.advance(self._clock()):
                await self.raise_signal(signal)
