"""The fast path: an emergency's first notifications go out before the alert is stored.

Storing an alert is a transaction of some twenty statements; on a database busy with ingest
it took tens to hundreds of milliseconds, and the first notification waited for it. On the
urgent path a critical signal now takes an alert id reserved ahead from the alerts'
sequence, and its first round (the on-duty village worker(s) and the family's first contact,
from the emergency contacts the fallback keeps in memory, each over their first usable
channel) is sent at once, while the alert is stored under that id. The stored first round is
held back for `hold_s`; once the sends are done, each is recorded against it (a delivery as
sent; a failure as the dispatcher records one: retried later unless final, the person's next
channel queued at once), the rest of the round is made due, and the dispatcher sends only
what the fast path did not (someone the cache did not have). A send the stored round did not
plan (a stale cache; a push subscription that the send itself found gone) is recorded as a
notification of its own, so every message sent is on record. If this process dies in
between, the hold runs out and the dispatcher sends the round: a duplicate rather than a
silence. The cached contacts are the fallback's (refreshed every `fallback_refresh_s`): a
change of someone's channels reaches the fast path that much later, and until then they may
be told twice (old channel by the fast path, new one by the stored round).

Skipped (the stored path alone then notifies, as before): a signal that is not critical, a
home with an unresolved alert of the same kind (a second press is evidence, not news; the
unresolved alerts are re-read every `refresh_s` and updated by every raise), a category that
a mute could hold back (only emergencies, which are never muted, take the fast path), a home
with no cached contact, and no reserved id left.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio.lowlevel
import psycopg
from psycopg_pool import AsyncConnectionPool

from alerts import store
from alerts.config import Clock, utc_now
from alerts.emergency.fallback import Contact, EmergencyFallback, HomeContacts, unstored_alert
from alerts.model import Alert, Severity, Signal
from alerts.mutes import NEVER_MUTED
from alerts.notify import outbox
from alerts.notify.channels import Channel, DeliveryError

log = logging.getLogger(__name__)

FIRST_ROUND_ROLES = frozenset({"village_worker", "family"})


@dataclass(slots=True, frozen=True)
class Prepared:
    """A critical signal the fast path will tell people about, under a reserved alert id."""

    alert: Alert
    contacts: tuple[Contact, ...]
    home: HomeContacts


@dataclass(slots=True, frozen=True)
class Attempt:
    """One fast-path send and how it went."""

    user_id: int
    channel: str
    target: str
    at: datetime
    error: str | None = None
    final: bool = False
    """The channel says retrying this target cannot help (e.g. a push subscription gone)."""

    @property
    def ok(self) -> bool:
        """The channel accepted it."""
        return self.error is None


class FastPath:
    """Sends a new emergency's first round from memory while the alert is being stored."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        fallback: EmergencyFallback,
        channels: dict[str, Channel],
        console_url: str,
        ack_url: Callable[[int, int, str], str | None],
        kinds: frozenset[str],
        send_timeout_s: float = 10.0,
        refresh_s: float = 2.0,
        reserve: int = 32,
        clock: Clock = utc_now,
    ) -> None:
        self._pool = pool
        self._fallback = fallback
        self._channels = channels
        self._console_url = console_url
        self._ack_url = ack_url
        self._kinds = kinds
        self._send_timeout_s = send_timeout_s
        self._refresh_s = refresh_s
        self._reserve = reserve
        self._clock = clock
        self._ids: list[int] = []
        self._open: dict[tuple[str, str], int] = {}
        # Taken, not yet known to be stored: a refresh that ran before the commit must not
        # forget them (a second press meanwhile would be told of as news).
        self._inflight: dict[tuple[str, str], int] = {}
        self.hold_s = send_timeout_s + 5.0

    async def refresh(self) -> None:
        """Top up the reserved ids and re-read which homes have an unresolved alert."""
        async with self._pool.connection(timeout=10) as conn:
            if len(self._ids) < self._reserve // 2:
                self._ids += await store.reserve_alert_ids(conn, self._reserve - len(self._ids))
            found = await store.open_alerts_of(conn, sorted(self._kinds))
            await conn.commit()
        self._open = {**found, **self._inflight}

    async def run(self) -> None:
        """Refresh until cancelled; a failed refresh keeps what it had."""
        # httpx (httpcore) loads anyio's event-loop backend at its first request: about 40 ms,
        # more on a busy machine, that would otherwise fall on the first emergency.
        await anyio.lowlevel.checkpoint()
        while True:
            try:
                await self.refresh()
            except (psycopg.Error, TimeoutError) as exc:
                log.warning("fast path not refreshed (%r); keeping what it has", exc)
            await asyncio.sleep(self._refresh_s)

    def take(self, signal: Signal) -> Prepared | None:
        """Reserve an alert id for `signal` if the fast path applies to it."""
        key = (signal.home_id, signal.kind)
        if (
            signal.severity is not Severity.CRITICAL
            or signal.kind not in self._kinds
            or key in self._open
            or signal.category not in NEVER_MUTED
            or not self._ids
        ):
            return None
        home = self._fallback.contacts(signal.home_id)
        if home is None:
            return None
        first: dict[int, Contact] = {}
        for contact in home.contacts:  # in each person's order of preference
            if contact.role in FIRST_ROUND_ROLES and contact.channel in self._channels:
                first.setdefault(contact.user_id, contact)
        if not first:
            return None
        alert_id = self._ids.pop(0)
        self._open[key] = self._inflight[key] = alert_id
        alert = unstored_alert(signal, home, alert_id, self._clock(), signal.summary)
        return Prepared(alert, tuple(first.values()), home)

    def stored(self, home_id: str, kind: str, alert_id: int | None) -> None:
        """What was taken for this home and kind has been stored (as `alert_id`; None: not
        stored, e.g. muted): from now on the database's list says whether it is open."""
        key = (home_id, kind)
        self._inflight.pop(key, None)
        if alert_id is None:
            self._open.pop(key, None)
        else:
            self._open[key] = alert_id

    async def send(self, prepared: Prepared) -> list[Attempt]:
        """Send the first round; returns how each send went. Never raises."""
        alert = prepared.alert

        async def one(contact: Contact) -> Attempt:
            channel = self._channels[contact.channel]
            notice = self._fallback.notice(
                alert,
                prepared.home,
                contact,
                self._ack_url(alert.id, contact.user_id, contact.role),
            )
            error, final = None, False
            try:
                async with asyncio.timeout(self._send_timeout_s):
                    await channel.send(contact.target, notice)
            except DeliveryError as exc:
                error, final = str(exc), exc.final
            except TimeoutError:
                error = f"{contact.channel} timed out after {self._send_timeout_s:g} s"
            except Exception as exc:  # a plug-in's bug must not stop the others
                log.exception("fast path: channel %s raised", contact.channel)
                error = f"{contact.channel} failed: {exc!r}"
            if error is not None:
                log.warning("fast path: %s to %s failed: %s", alert.kind, contact.target, error)
            return Attempt(
                contact.user_id, contact.channel, contact.target, self._clock(), error, final
            )

        return list(await asyncio.gather(*(one(c) for c in prepared.contacts)))

    async def record(
        self,
        alert_id: int,
        attempts: list[Attempt],
        retry_at: Callable[[int], datetime | None],
        usable: frozenset[str],
    ) -> int:
        """Record the attempts against the stored first round (a failure as the dispatcher
        would: a retry later unless final, the person's next channel queued now) and release
        the rest of the round; returns how many deliveries were recorded."""
        async with self._pool.connection() as conn, conn.transaction():
            pending = {
                (n.user_id, n.channel, n.target): n
                for n in await outbox.first_round_pending(conn, alert_id)
            }
            recorded, tried = 0, []
            for attempt in attempts:
                note = pending.get((attempt.user_id, attempt.channel, attempt.target))
                if note is None:
                    await outbox.record_unplanned(
                        conn,
                        alert_id,
                        attempt.user_id,
                        attempt.channel,
                        attempt.target,
                        attempt.at,
                        attempt.error,
                    )
                    recorded += attempt.ok
                    continue
                tried.append(note.id)
                if attempt.ok:
                    await outbox.record_sent_ahead(conn, note, attempt.at)
                    recorded += 1
                else:
                    await outbox.record_attempt(
                        conn,
                        note,
                        False,
                        attempt.error,
                        None if attempt.final else retry_at(note.attempts),
                        attempt.at,
                        usable,
                    )
            await outbox.release_first_round(conn, alert_id, self._clock(), tried)
            return recorded
