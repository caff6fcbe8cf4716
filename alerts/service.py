"""The alerts stage at run time: readings through the detectors into stored alerts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg

from alerts.config import AlertMetrics, AlertSettings, Clock, utc_now
from alerts.detect.detectors import IMMEDIATE_KINDS, DetectorSet
from alerts.detect.learned import LearnedDetector
from alerts.detect.limits import apply_limits
from alerts.detect.state import catch_up
from alerts.detect.technical import DeviceWatch
from alerts.emergency.path import EmergencyPath
from alerts.model import Signal
from alerts.sources import Detection, Installed, Sources, is_cancel, urgent_filters
from alerts.writer import SignalWriter
from devices import payload, status, topics
from devices.catalogue import CATALOGUE
from devices.payload import Reading, Rejection
from devices.registry import Registry
from ingest.mqtt import Message

__all__ = ["AlertService", "Detection", "Installed", "Sources", "is_cancel", "urgent_filters"]

log = logging.getLogger(__name__)
_LAYOUT_RETRY_S = 30.0


def _every_home(_home_id: str) -> bool:
    return True


URGENT_KINDS = frozenset(k for k, spec in CATALOGUE.items() if spec.urgent)
"""Device kinds the urgent path covers (their emergencies may be left to it)."""


class AlertService:
    """Runs readings through the detectors and stores what they raise.

    It has its own QoS 1 subscription, separate from ingest's batching, and a second,
    `urgent`, one to only the topics of urgent devices (see `urgent_filters`), so that an SOS
    waits neither behind bulk writes nor behind the full stream of readings. A message is
    acknowledged once what it raised is committed (`EmergencyPath.raise_signals`); what
    the clock and the replay at start raise is stored by the `SignalWriter`.
    """

    def __init__(
        self,
        settings: AlertSettings,
        sources: Sources,
        detection: Detection,
        writer: SignalWriter,
        emergency: EmergencyPath,
        metrics: AlertMetrics,
        clock: Clock = utc_now,
    ) -> None:
        self._settings = settings
        self._cache = sources.cache
        self._sub = sources.stream
        self._urgent = sources.urgent
        self._urgent_grace_s = sources.urgent_grace_s
        self._detectors = detection.detectors
        self._immediate = detection.immediate
        self.marks = detection.marks
        self._stored = detection.stored
        self._load_installed = detection.installed
        self._load_layout = detection.layout
        self._layout_of = detection.layout_of  # the registry copy the layout was loaded with
        self._load_limits = detection.limits
        self._mine = detection.homes or _every_home  # this detection's homes (its shard)
        self._limits_of: Registry | None = None  # the registry copy the limits followed
        self._limits_retry_at = 0.0
        self._writer = writer
        self._emergency = emergency
        self._metrics = metrics
        self._clock = clock
        self._resumed = asyncio.Event()  # the clock waits for the replay (`tick`)
        self._watch_of: Registry | None = None  # the registry copy the watch last followed
        self._layout_retry_at = 0.0
        self.last_reading_at = clock()  # wall time of the last reading on the full stream
        # Urgent topic -> monotonic time from which the full stream leaves its emergencies
        # to the urgent path (see `refresh_urgent`).
        self._urgent_from: dict[str, float] = {}
        self._followed: Registry | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._device_locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        self._urgent_slots = asyncio.Semaphore(64)

    @staticmethod
    def filters(readings: bool = True) -> list[str]:
        """Every device's (retained) status: its last will says when it is gone; and every
        reading of every home, unless ingest feeds them (`handle_readings`)."""
        status = [topics.subscription(topics.Channel.STATUS)]
        return [topics.subscription(topics.Channel.READINGS), *status] if readings else status

    async def resumed(self) -> None:
        """Wait until the readings stored since the saved state are replayed (`run`)."""
        await self._resumed.wait()

    async def handle_readings(
        self, readings: list[Reading], acknowledge: Callable[[], object]
    ) -> bool:
        """Detect on readings ingest decoded and stored (the detection feed, ingest/feed.py),
        as `handle` does on one message of the full stream: True when what they raised is
        committed; otherwise it is stored in the background, which calls `acknowledge`."""
        started = asyncio.get_running_loop().time()
        self.last_reading_at = self._clock()
        registry = self._cache.current
        if any(registry.get(r.device_id) is None for r in readings) and (
            await self._cache.maybe_refresh(miss=True)
        ):
            self.refresh_urgent()
            await self.follow_layout()  # a new device is in its room from the start
        marks = self.marks
        signals: list[Signal] = []
        for i, r in enumerate(readings):
            if i % 256 == 255:
                await asyncio.sleep(0)  # a batch of thousands must not hold the loop (leases)
            left = r.kind in URGENT_KINDS and self.left_to_urgent(
                topics.topic(r.home_id, r.device_id, topics.Channel.READINGS)
            )
            if not left and is_cancel(r):
                await self._writer.self_cancel(r)
            if marks is not None:
                if marks.seen(r):
                    continue
                marks.note(r)
            raised = self._detectors.observe(r)
            signals += [s for s in raised if s.kind not in IMMEDIATE_KINDS] if left else raised
        if not signals:
            return True
        if not await self._emergency.raise_signals(signals, False, acknowledge):
            return False
        self._metrics.alert_latency.observe(asyncio.get_running_loop().time() - started)
        return True

    def watch(self) -> DeviceWatch | None:
        """The detectors' device watch, if they have one."""
        detectors: DetectorSet | None = self._detectors
        return None if detectors is None else detectors.find(DeviceWatch)

    async def seed_watch(self) -> int:
        """Expect every registered device from its install time on (so that one that never
        reports, or stopped while this process was down, is flagged after its grace).
        Without the install times (none given, or the database unreachable), from now.
        Returns how many devices were new to the watch."""
        watch = self.watch()
        if watch is None:
            return 0
        registry = self._cache.current
        now = self._clock()
        installed: list[Installed] | None = None
        if self._load_installed is not None:
            try:
                installed = await self._load_installed()
            except Exception as exc:  # whatever it is, the registry copy still names them
                log.warning("no install times for the device watch (%r); expecting from now", exc)
        if installed is None:
            installed = [(d.device_id, d.home_id, d.kind, now) for d in registry]
        installed = [row for row in installed if self._mine(row[1])]
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
            if not watch.known(d.device_id) and self._mine(d.home_id):
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
        if not self._mine(device.home_id):
            return []  # another shard's home: its own detection takes it
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
            if signals and not await self._emergency.raise_signals(
                signals, False, lambda: sub.ack(msg)
            ):
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
                        await self._writer.self_cancel(r)
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
                if not await self._emergency.raise_signals(signals, urgent, lambda: sub.ack(msg)):
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
            await self.follow_limits()
            await self.resume()
        finally:
            self._resumed.set()
        handled = 0
        while True:
            msg = await self._sub.messages.get()
            handled += 1
            if handled % 256 == 0:
                # A full queue never makes `get` wait: without this the loop ran messages
                # back to back and the leases' renewals came late (the benchmark's detection
                # lost its lease 34 times in one run and restarted each time).
                await asyncio.sleep(0)
            try:
                await self._follow()
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
        # An emergency of a device the urgent path covers was that path's to raise when the
        # press came (on every instance): raised again here, after its alert was resolved,
        # it would open a second alert for the same press.
        signals = [s for s in signals if not self._left_to_urgent(s)]
        for signal in signals:
            await self._writer.raise_signal(signal)
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

    async def follow_limits(self) -> None:
        """After the registry changed (an elder's limits edited moves it too), load the
        elders' own limits again and give them to the detectors. A failed load keeps the
        limits they have and is tried again after `_LAYOUT_RETRY_S`."""
        registry = self._cache.current
        if (
            self._load_limits is None
            or registry is self._limits_of
            or time.monotonic() < self._limits_retry_at
        ):
            return
        try:
            limits = await self._load_limits()
        except Exception:  # whatever it is, detection goes on with the limits it has
            self._limits_retry_at = time.monotonic() + _LAYOUT_RETRY_S
            log.exception("could not reload elders' limits; retrying in %.0f s", _LAYOUT_RETRY_S)
            return
        self._limits_of = registry
        apply_limits(self._detectors, limits, self._clock())
        log.info("detectors follow the elders' limits: %d homes with their own", len(limits))

    def _left_to_urgent(self, signal: Signal) -> bool:
        return (
            signal.kind in IMMEDIATE_KINDS
            and signal.device_id is not None
            and self.left_to_urgent(
                topics.topic(signal.home_id, signal.device_id, topics.Channel.READINGS)
            )
        )

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

    async def _follow(self) -> None:
        """Reload the registry copy when due; the urgent topics, rooms, limits and watched
        devices follow it (each cheap when the copy has not changed)."""
        await self._cache.maybe_refresh()
        self.refresh_urgent()
        await self.follow_layout()
        await self.follow_limits()
        self.follow_watch()

    async def follow_registry(self) -> None:
        """Reload the registry when due and follow it (rooms, elders' limits, watched
        devices), on the clock as well as on each message: a limit edited, or a device
        installed, in a quiet hour applies before the next reading is judged and to what the
        clock alone decides (an inactivity cap), not only after a message has come."""
        try:
            await self._follow()
        except Exception:  # the clock goes on with the copy it has
            log.exception("registry follow-up failed on the clock")

    async def tick(self, interval_s: float = 1.0) -> None:
        """Advance detection time with the wall clock (live mode), once the readings stored
        since the last save are replayed (before: a silence would be judged without them)."""
        await self._resumed.wait()
        while True:
            await asyncio.sleep(interval_s)
            await self.follow_registry()
            for signal in self._detectors.advance(self._clock()):
                await self._writer.raise_signal(signal)
