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

Several instances (each with its own urgent subscription) receive the same press. Before
anything is sent, each one claims the press in `emergency_claims` (one statement on a
connection of its own, without waiting for the WAL flush: `claim`): the first insert wins
and tells people; the others learn the alert id it chose and store the press under that id
(or nothing, once that alert is stored), telling nobody. A claim that cannot be made within
`claim_timeout_s` (database down or slow) is skipped: people may then be told twice, never
not at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
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
CLAIMS_KEPT_S = 86_400.0  # a press's claim row is kept this long
_CLAIM = """
WITH ins AS (
    INSERT INTO emergency_claims (device_id, boot, seq, kind, home_id, alert_id, hold_s, holder)
    VALUES (%(device)s, %(boot)s, %(seq)s, %(kind)s, %(home)s,
            coalesce(%(id)s, nextval(pg_get_serial_sequence('alerts', 'id'))), %(hold)s, %(holder)s)
    ON CONFLICT DO NOTHING RETURNING alert_id, hold_s)
SELECT alert_id, hold_s, true, false FROM ins
UNION ALL
SELECT c.alert_id, c.hold_s, false, EXISTS (SELECT 1 FROM alerts a WHERE a.id = c.alert_id)
FROM emergency_claims c
WHERE (c.device_id, c.boot, c.seq, c.kind) = (%(device)s, %(boot)s, %(seq)s, %(kind)s)
  AND NOT EXISTS (SELECT 1 FROM ins)
"""
_CLAIMED = (  # the winner committed after the statement above took its snapshot
    "SELECT alert_id, hold_s, false, EXISTS (SELECT 1 FROM alerts a WHERE a.id = c.alert_id)"
    " FROM emergency_claims c WHERE (c.device_id, c.boot, c.seq, c.kind) = (%(device)s,"
    " %(boot)s, %(seq)s, %(kind)s)"
)


@dataclass(slots=True, frozen=True)
class Claim:
    """Which instance tells people of one press, and the alert id it is stored under."""

    key: tuple[str, int, int, str]
    """The press: device, boot, seq, kind."""
    alert_id: int
    lead: bool
    """This process made the claim: it tells people (fast path, or the stored round)."""
    hold_s: float
    """The stored first round is held this long (the fast path of the lead sends it)."""
    stored: bool = False
    """(Not the lead) the alert is stored already: nothing is left to do here."""


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
        claims_dsn: str | None = None,
        holder: str = "",
        claim_timeout_s: float = 0.5,
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
        # Claims (see the module's doc): None, no claims (one instance, or tests).
        self._claims_dsn = claims_dsn
        self._holder = holder
        self._claim_timeout_s = claim_timeout_s
        self._claim_conn: psycopg.AsyncConnection[Any] | None = None
        self._claim_lock = asyncio.Lock()
        self._purge_at = 0.0

    async def refresh(self) -> None:
        """Top up the reserved ids and re-read which homes have an unresolved alert."""
        async with self._pool.connection(timeout=10) as conn:
            if len(self._ids) < self._reserve // 2:
                self._ids += await store.reserve_alert_ids(conn, self._reserve - len(self._ids))
            found = await store.open_alerts_of(conn, sorted(self._kinds))
            if self._claims_dsn is not None and time.monotonic() >= self._purge_at:
                await conn.execute(
                    "DELETE FROM emergency_claims"
                    " WHERE claimed_at < now() - make_interval(secs => %s)",
                    (CLAIMS_KEPT_S,),
                )
                self._purge_at = time.monotonic() + 600.0
            await conn.commit()
        self._open = {**found, **self._inflight}

    async def run(self) -> None:
        """Refresh until cancelled; a failed refresh keeps what it had."""
        # httpx (httpcore) loads anyio's event-loop backend at its first request: about 40 ms,
        # more on a busy machine, that would otherwise fall on the first emergency.
        await anyio.lowlevel.checkpoint()
        if self._claims_dsn is not None:
            try:
                async with self._claim_lock:
                    await self._claims()
            except (psycopg.Error, OSError) as exc:
                log.warning("no claims connection yet (%r); opened at the first press", exc)
        try:
            while True:
                try:
                    await self.refresh()
                except (psycopg.Error, TimeoutError) as exc:
                    log.warning("fast path not refreshed (%r); keeping what it has", exc)
                await asyncio.sleep(self._refresh_s)
        finally:
            with contextlib.suppress(Exception):
                await self.close()

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

    async def _claims(self) -> psycopg.AsyncConnection[Any]:
        """The claims' connection (opened at start by `run`, again after a failure)."""
        if self._claim_conn is None or self._claim_conn.closed:
            assert self._claims_dsn is not None
            conn = await psycopg.AsyncConnection.connect(
                self._claims_dsn, autocommit=True, connect_timeout=2
            )
            # A claim lost in a crash of the database only risks a second message.
            await conn.execute("SET synchronous_commit = off")
            self._claim_conn = conn
        return self._claim_conn

    async def _claim_query(self, params: dict[str, Any]) -> tuple[Any, ...] | None:
        async with self._claim_lock:
            try:
                conn = await self._claims()
                cur = await conn.execute(_CLAIM, params)
                row = await cur.fetchone()
                if row is None:
                    cur = await conn.execute(_CLAIMED, params)
                    row = await cur.fetchone()
                return row
            except BaseException:
                broken, self._claim_conn = self._claim_conn, None
                if broken is not None:
                    with contextlib.suppress(Exception):
                        await broken.close()
                raise

    async def claim(self, signal: Signal, prepared: Prepared | None) -> Claim | None:
        """Claim this press for this process before anyone is told of it (see the module's
        doc). `prepared`: what `take` gave for it (the fast path applies here), else None.
        None when no claim was made (claims are off, the signal is not an emergency the
        fast path knows, or the database did not answer in time):
        then the press is handled as if this process were alone. A lost claim gives back
        what `take` reserved."""
        if (
            self._claims_dsn is None
            or signal.severity is not Severity.CRITICAL
            or signal.kind not in self._kinds
            or signal.category not in NEVER_MUTED
            or signal.device_id is None
            or signal.boot is None
            or signal.seq is None
        ):
            return None
        alert_id: int | None = None  # None: one from the sequence (none reserved yet)
        if prepared is not None:
            alert_id = prepared.alert.id
        elif self._ids:
            alert_id = self._ids.pop(0)
        hold = 0.0 if prepared is None else self.hold_s
        key = (signal.device_id, signal.boot, signal.seq, signal.kind)
        params = {
            "device": key[0],
            "boot": key[1],
            "seq": key[2],
            "kind": key[3],
            "home": signal.home_id,
            "id": alert_id,
            "hold": hold,
            "holder": self._holder,
        }
        try:
            async with asyncio.timeout(self._claim_timeout_s):
                row = await self._claim_query(params)
        except (psycopg.Error, OSError, TimeoutError) as exc:
            log.warning(
                "press %s not claimed (%r): told of as if this instance were alone", key, exc
            )
            row = None
        if row is None:
            if prepared is None and alert_id is not None:
                self._ids.insert(0, alert_id)
            return None
        claimed_id, claimed_hold, lead, stored = (
            int(row[0]),
            float(row[1]),
            bool(row[2]),
            bool(row[3]),
        )
        if lead:
            return Claim(key, claimed_id, True, claimed_hold)
        if alert_id is not None:
            self._ids.insert(0, alert_id)  # not used: the lead's id is
        home_kind = (signal.home_id, signal.kind)
        self._inflight.pop(home_kind, None)
        self._open[home_kind] = claimed_id
        log.info("press %s claimed by another instance as alert %d", key, claimed_id)
        return Claim(key, claimed_id, False, claimed_hold, stored)

    async def settle(self, claim: Claim, alert_id: int) -> None:
        """The lead stored its press under another alert (one was open already): the claim
        names that one, so that a late copy of the press elsewhere is known as stored."""
        if claim.alert_id == alert_id or not claim.lead:
            return
        try:
            async with self._pool.connection(timeout=2.0) as conn:
                await conn.execute(
                    "UPDATE emergency_claims SET alert_id = %s"
                    " WHERE (device_id, boot, seq, kind) = (%s, %s, %s, %s)",
                    (alert_id, *claim.key),
                )
        except (psycopg.Error, TimeoutError) as exc:
            log.warning("claim of press %s not updated (%r)", claim.key, exc)

    async def close(self) -> None:
        """Close the claims' connection."""
        conn, self._claim_conn = self._claim_conn, None
        if conn is not None:
            await conn.close()

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
