"""The emergency path's entry point: from the signals one message raised to stored alerts
and people told, whatever the state of the database.

`EmergencyPath.raise_signals` takes them, for the full stream and the urgent path alike. On
the urgent path a new critical signal takes the fast path (`alerts.emergency.fastpath`): its
first round is sent from memory, under a reserved alert id, while the alert is being stored,
and recorded against the stored first round after (which is then released to the
dispatcher); an emergency stored without it has its first round sent right after the commit.
What cannot be stored now is retried in the background, and a critical signal that nobody
was told of yet is sent at once from the cached contacts of the fallback
(`alerts.emergency.fallback`), so one outage does not hold up the next emergency.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import psycopg

from alerts.config import AlertMetrics, AlertSettings, Clock, retry_delay_s, utc_now
from alerts.emergency.fallback import EmergencyFallback
from alerts.emergency.fastpath import Attempt, Claim, FastPath, Prepared
from alerts.model import Raised, Severity, Signal
from alerts.notify.dispatch import Dispatcher
from alerts.writer import SignalWriter
from ingest.db import Retry, retrying

log = logging.getLogger(__name__)

RECORD_RETRY = Retry(attempts=5, base_s=0.2, cap_s=3.2)
"""Recording what the fast path sent: tried for a few seconds; if it still fails, the hold on
the stored first round runs out and the dispatcher sends that round (people told twice, never
not at all)."""

Deferred = tuple[Signal, Prepared | None, list[Attempt], Claim | None]
"""A signal left to the background store: with what the fast path took and sent for it, and
its claim (another instance's: that one tells people)."""


class EmergencyPath:
    """Stores signals, with the fast path, the immediate first round and the fallback."""

    def __init__(
        self,
        settings: AlertSettings,
        writer: SignalWriter,
        dispatcher: Dispatcher,
        metrics: AlertMetrics,
        fast: FastPath | None = None,
        fallback: EmergencyFallback | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._settings = settings
        self._writer = writer
        self._dispatcher = dispatcher
        self._metrics = metrics
        self._fast = fast
        self._fallback = fallback
        self._clock = clock
        self._pending: set[asyncio.Task[None]] = set()

    async def raise_signals(
        self, signals: list[Signal], urgent: bool, acknowledge: Callable[[], object]
    ) -> bool:
        """Store `signals` (raised by one message, on the urgent path if `urgent`); True when
        all are committed. Otherwise the rest is stored in the background, which calls
        `acknowledge` (the message's) once it is done."""
        failed: list[Deferred] = []
        opened: list[int] = []
        for signal in signals:
            prepared = None
            claim = None
            if urgent and self._fast is not None:
                prepared = self._fast.take(signal)
                # Another instance may have this press too: the first claim tells people.
                claim = await self._fast.claim(signal, prepared)
                if claim is not None and not claim.lead:
                    prepared = None  # its id given back: the lead's is used
                    if claim.stored:
                        continue  # stored by the lead already; nothing to do or tell here
            sending = (
                None
                if prepared is None
                else asyncio.create_task(self._fast_send(prepared), name="alerts-fast-path")
            )
            if failed:
                failed.append((signal, prepared, [] if sending is None else await sending, claim))
                continue
            try:
                if prepared is not None:
                    raised = await self._writer.store_once(
                        signal, prepared.alert.id, self._hold_s()
                    )
                elif claim is not None:  # under the claimed id, the round held as the lead's
                    raised = await self._writer.store_once(signal, claim.alert_id, claim.hold_s)
                else:
                    raised = await self._writer.store_once(signal)
                self._writer.opened(signal, raised)
                if claim is not None and raised is not None and self._fast is not None:
                    await self._fast.settle(claim, raised.alert_id)
                if sending is not None and prepared is not None:
                    await self._told_ahead(signal, prepared, await sending, raised)
                    continue
                if self._fast is not None and urgent and raised is not None:
                    # Stored without the fast path (e.g. before it was ready): from now on a
                    # press in this home is evidence for this alert, not news to tell of.
                    self._fast.stored(signal.home_id, signal.kind, raised.alert_id)
                if raised is not None and raised.created and signal.severity is Severity.CRITICAL:
                    opened.append(raised.alert_id)
            except (
                psycopg.OperationalError,
                psycopg.errors.ReadOnlySqlTransaction,
                TimeoutError,
            ) as exc:
                log.error("alert store unavailable (%r)", exc)
                failed.append((signal, prepared, [] if sending is None else await sending, claim))
        if urgent:
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
            for signal, _prepared, attempts, claim in failed:
                if (
                    signal.severity is Severity.CRITICAL
                    and not any(a.ok for a in attempts)
                    and (claim is None or claim.lead)  # else the lead tells them
                ):
                    self._metrics.fallback.inc(await self._fallback.notify(signal))
        task = asyncio.create_task(
            self._store_later(failed, acknowledge), name="alerts-store-later"
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return False

    async def _store_later(
        self, signals: list[Deferred], acknowledge: Callable[[], object]
    ) -> None:
        for signal, prepared, attempts, claim in signals:
            if prepared is None:
                if claim is None:
                    await self._writer.raise_signal(signal)
                else:
                    await self._writer.raise_signal(signal, claim.alert_id, claim.hold_s)
                continue
            raised = await self._writer.raise_signal(signal, prepared.alert.id, self._hold_s())
            await self._told_ahead(signal, prepared, attempts, raised)
        acknowledge()

    def _hold_s(self) -> float:
        return 0.0 if self._fast is None else self._fast.hold_s

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

    async def _told_ahead(
        self,
        signal: Signal,
        prepared: Prepared,
        attempts: list[Attempt],
        raised: Raised | None,
    ) -> None:
        """After the fast path: record how its sends went against the stored first round,
        and release the rest of that round to the dispatcher."""
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
        fast = self._fast
        try:
            recorded = await retrying(
                lambda: fast.record(
                    raised.alert_id, attempts, self._retry_at, self._dispatcher.routing.channels
                ),
                RECORD_RETRY,
                f"recording the fast path's sends of alert {raised.alert_id}",
            )
        except (
            psycopg.OperationalError,
            psycopg.errors.ReadOnlySqlTransaction,
            TimeoutError,
        ) as exc:
            log.error("fast-path sends not recorded (%r)", exc)
            return  # the hold runs out and the dispatcher sends the round again
        self._metrics.notifications.labels("fast_path", "sent").inc(recorded)
        self._dispatcher.wake()

    def _retry_at(self, attempts: int) -> datetime | None:
        """When a failed first-round send is tried again (as the dispatcher would)."""
        if attempts + 1 >= self._settings.max_attempts:
            return None
        return self._clock() + timedelta(
            seconds=retry_delay_s(self._settings.retry_base_s, attempts)
        )
