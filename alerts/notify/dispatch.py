"""The notification dispatcher: runs escalation rounds, sends due notifications (with retries
and a fallback channel) and publishes device commands, all claimed from the database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from alerts import views
from alerts.config import AlertMetrics, AlertSettings, Clock, retry_delay_s, utc_now
from alerts.escalate import planning
from alerts.escalate.routing import Routing
from alerts.model import Outgoing, Scope
from alerts.notify import device_queue, messages, outbox
from alerts.notify.channels import Channel, DeliveryError, Notice
from alerts.notify.commands import CommandSink
from alerts.notify.links import ack_token
from ingest.db import Retry, is_transient

log = logging.getLogger(__name__)
Conn = psycopg.AsyncConnection[Any]
ACK_ROLES = frozenset({"village_worker", "town_staff", "district_staff", "operator"})
TURN = 50  # notifications a dispatcher step sends at most; the rest wait for the next step
STEP_RETRY = Retry(attempts=None, base_s=0.2, cap_s=2.0)
"""After a failed step: the next in at most 2 s (escalation timers are minutes)."""


class Dispatcher:
    """Runs escalation rounds and sends notifications until an alert is acknowledged.

    Timers, notifications and device commands live in the database and are claimed with row
    locks (FOR UPDATE SKIP LOCKED) inside the transaction that records their result, so after
    a restart they continue, and with several instances each step is handled exactly once.
    """

    def __init__(
        self,
        settings: AlertSettings,
        pool: AsyncConnectionPool[Any],
        channels: dict[str, Channel],
        metrics: AlertMetrics,
        console_url: str,
        clock: Clock = utc_now,
        commands: CommandSink | None = None,
        links_base: str | None = None,
        backup_after_s: float = 0.0,
    ) -> None:
        self._settings = settings
        # A backup dispatcher (beside a primary one in the urgent process) only takes what
        # has been due for this long, so the busy process does not take work from the idle
        # one, and nothing is left undone if the primary is gone.
        self._backup = timedelta(seconds=backup_after_s)
        self._pool = pool
        self._channels = channels
        self._metrics = metrics
        self._console_url = console_url
        self._clock = clock
        self._commands = commands
        self._links_base = (links_base or console_url.rsplit("/console", 1)[0]).rstrip("/")
        self._final: set[int] = set()  # notifications whose target is gone for good
        self._wake = asyncio.Event()
        self.routing = Routing(frozenset(channels), settings.demo_speed)

    def wake(self) -> None:
        """Look for due work now rather than at the next poll."""
        self._wake.set()

    async def _send(self, note: Outgoing, notice: Notice) -> str | None:
        channel = self._channels.get(note.channel)
        if channel is None:
            return f"no channel {note.channel!r} configured"
        try:
            async with asyncio.timeout(self._settings.send_timeout_s):
                await channel.send(note.target, notice)
        except DeliveryError as exc:
            if exc.final:
                self._final.add(note.id)
            return str(exc)
        except TimeoutError:
            return f"{note.channel} timed out after {self._settings.send_timeout_s:g} s"
        except Exception as exc:  # a plug-in's bug must not stop the others
            log.exception("channel %s raised", note.channel)
            return f"{note.channel} failed: {exc!r}"
        return None

    def _ack_url(self, note: Outgoing, role: str | None) -> str | None:
        if note.notice != "alert" or note.user_id is None:
            return None
        return self.ack_url(note.alert_id, note.user_id, role)

    def locale_of(self, locale: str | None) -> str:
        """A recipient's language: theirs, else the deployment's."""
        return messages.locale_of(locale, self._settings.locale)

    def ack_url(self, alert_id: int, user_id: int, role: str | None) -> str | None:
        """A signed one-click acknowledge link for a staff member (None for anyone else)."""
        if role not in ACK_ROLES:
            return None
        expires = self._clock() + timedelta(hours=self._settings.ack_link_hours)
        secret = self._settings.ack_link_secret.get_secret_value().encode()
        return f"{self._links_base}/ack/{ack_token(secret, alert_id, user_id, expires)}"

    async def _rounds(self, conn: Conn) -> int:
        now = self._clock()
        late_after = timedelta(seconds=self._settings.late_after_s)
        planned = 0
        async with conn.transaction():
            due = await planning.due_timers(conn, now - self._backup)
            for alert_id, next_round, status, due_at in due:
                if status != "open":
                    await planning.drop_timer(conn, alert_id)
                    continue
                at = due_at
                if now - due_at > late_after:
                    # After an outage: one round now, with everyone reached by now.
                    log.warning("alert %d round %d is %s late", alert_id, next_round, now - due_at)
                    at = now
                await planning.plan_round(conn, alert_id, next_round, at, self.routing)
                planned += 1
        return planned

    async def send_now(self, alert_id: int) -> int:
        """Send a just-opened alert's due notifications at once, without waiting for the
        dispatcher's next step (the urgent path calls this right after the commit)."""
        async with self._pool.connection() as conn:
            return (await self._notifications(conn, alert_id))[1]

    async def _notifications(
        self, conn: Conn, alert_id: int | None = None, limit: int = TURN
    ) -> tuple[int, int]:
        """Claim up to `limit` due notifications (of `alert_id` only, if given), send them
        side by side, record each result and commit; returns (claimed, attempted)."""
        now = self._clock()
        async with conn.transaction(), conn.pipeline():
            notes = await outbox.due_notifications(
                conn, now - self._backup, limit=limit, alert_id=alert_id
            )
            if not notes:
                return 0, 0
            alert_ids = sorted({n.alert_id for n in notes})
            # Sent before the alerts are read: answered in the same round trip (pipeline).
            people = await conn.execute(
                "SELECT id, role, locale FROM users WHERE id = ANY(%s)",
                ([n.user_id for n in notes if n.user_id is not None],),
            )
            places = await conn.execute(
                "SELECT a.id, nullif(h.address, '') FROM alerts a JOIN homes h ON h.id = a.home_id"
                " WHERE a.id = ANY(%s)",
                (alert_ids,),
            )
            alerts = {
                a_id: await views.get_alert(conn, Scope(everything=True), a_id)
                for a_id in alert_ids
            }
            users = {int(u): (str(r), loc) for u, r, loc in await people.fetchall()}
            roles = {u: r for u, (r, _) in users.items()}
            address = {int(a): None if t is None else str(t) for a, t in await places.fetchall()}
            sendable = [n for n in notes if alerts[n.alert_id] is not None]
            results = await asyncio.gather(
                *(
                    self._send(
                        n,
                        Notice(
                            alert,
                            n.round,
                            n.user_id,
                            self._console_url,
                            n.notice,
                            self._ack_url(n, roles.get(n.user_id or 0)),
                            self.locale_of(users.get(n.user_id or 0, ("", None))[1]),
                            address.get(n.alert_id),
                            self._settings.timezone,
                        ),
                    )
                    for n in sendable
                    if (alert := alerts[n.alert_id]) is not None
                )
            )
            for note, error in zip(sendable, results, strict=True):
                retry_at = None
                final = note.id in self._final
                self._final.discard(note.id)
                if (
                    error is not None
                    and not final
                    and note.attempts + 1 < self._settings.max_attempts
                ):
                    retry_at = now + timedelta(
                        seconds=retry_delay_s(self._settings.retry_base_s, note.attempts)
                    )
                await outbox.record_attempt(
                    conn, note, error is None, error, retry_at, now, self.routing.channels
                )
                self._metrics.notifications.labels(
                    note.channel, "sent" if error is None else "failed"
                ).inc()
                if error is not None:
                    log.warning("notification %d failed: %s", note.id, error)
        return len(notes), len(sendable)

    async def _device_commands(self, conn: Conn) -> int:
        if self._commands is None:
            return 0
        now = self._clock()
        async with conn.transaction():
            due = await device_queue.due_commands(conn, now - self._backup)
            for command_id, home_id, device_id, command, attempts in due:
                error: str | None = None
                try:
                    await self._commands.send(home_id, device_id, command)
                except Exception as exc:
                    error = repr(exc)
                    log.warning("command %d to %s failed: %s", command_id, device_id, error)
                backoff = retry_delay_s(self._settings.retry_base_s, min(attempts, 8))
                await device_queue.record_command(
                    conn, command_id, error, now + timedelta(seconds=backoff)
                )
        return len(due)

    async def step(self) -> int:
        """Do everything that is due now (up to `TURN` notifications); returns how many
        notifications were attempted.

        Notifications go out `send_concurrency` at a time, each batch claimed, sent side by
        side and committed before the next, with the escalation rounds planned again in
        between: the urgent path, which shares the primary dispatcher's process, never waits
        behind more than a batch (a turn of 30 failing e-mails sent together held an SOS up
        230 ms in the benchmark), and a batch of sends that time out delays the next rounds
        by one `send_timeout_s`, as a whole turn did before."""
        batch = self._settings.send_concurrency
        sent = 0
        async with self._pool.connection() as conn:
            for _ in range(-(-TURN // batch)):
                await self._rounds(conn)
                claimed, attempted = await self._notifications(conn, limit=batch)
                sent += attempted
                if claimed < batch:
                    break
            await self._device_commands(conn)
        return sent

    async def run(self) -> None:
        """Work until cancelled. A failed step (the database away, a failover) is tried
        again after a jittered backoff (at most `STEP_RETRY.cap_s`), the pool's dead
        connections dropped first; a step whose transaction was lost after its sends sends
        them again (at least once, never not at all)."""
        failures = 0
        while True:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for returns the result when the
            # awaited thing is done as the task is cancelled, swallowing the cancellation. A
            # wake() at the moment of shutdown left this loop running for ever (two benchmark
            # processes never stopped; tests/unit/test_cancellation.py).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.poll_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.step()
                failures = 0
            except psycopg.Error as exc:
                failures += 1
                delay = max(self._settings.poll_s, STEP_RETRY.delay(failures))
                log.warning("dispatcher step failed: %r; next in %.2f s", exc, delay)
                if is_transient(exc):
                    with contextlib.suppress(psycopg.Error):
                        await self._pool.check()
                await asyncio.sleep(delay)
