"""Leases in the database: what must run once, across instances of the service.

A lease is a row of `leases` (migration 0023): its holder, the process that holds it (a
token new at every start), an epoch and `expires_at`. `Leases.hold(name, work)` runs `work`
while this process holds lease `name`:

- taking it is one statement, `INSERT ... ON CONFLICT DO UPDATE ... WHERE expires_at <
  now()`: a lease is taken only once its holder let it run out (or released it), by the
  database's clock, and each take moves the epoch on;
- the holder renews it every third of its TTL; the moment a renewal fails, finds the lease
  no longer its own, or has not succeeded by two thirds of the TTL after the last good one
  was sent, the work is cancelled: it stops at least a third of the TTL before anyone else
  can take the lease (the database's `expires_at` is counted from when it ran the renewal,
  which is after this process sent it);
- a holder that dies (kill -9, a lost machine) simply stops renewing: another instance takes
  the lease within a TTL plus a third of one (its next attempt);
- a stopping process cancels its work first and then releases the lease, so the other
  instance takes it at its next attempt.

Writes that must never come from a former holder check the epoch in their own transaction
(`Term.fence`: the row is read `FOR SHARE` with this process's token and epoch, so a take
waits for that transaction and the new holder sees what it wrote). The rest of the singleton
work is idempotent in the database (docs/reliability.md "Two instances and leases").

Renewals go over a connection of their own, not the pool: a pool emptied by a burst of work
would otherwise make the holder late and stop its work for nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import BaseModel, Field

log = logging.getLogger(__name__)
Conn = psycopg.AsyncConnection[Any]


class LeaseSettings(BaseModel):
    """How long a lease lasts without renewal (`ELDERCARE_LEASES__*`)."""

    ttl_s: float = Field(
        default=6.0,
        ge=0.6,
        le=300.0,
        description="a lease not renewed for this long may be taken by another instance; the"
        " holder renews it every third of this and stops its work when a renewal fails or is"
        " two thirds late, so a dead holder's work moves to another instance within about"
        " 1.3 times this",
    )


HANDED_OVER = "handed over"
"""Why a shared lease's work stopped when another member became its preferred holder."""


class LeaseLost(Exception):
    """The lease this work ran under is no longer this process's (see `Term.fence`)."""


class LeaseMetrics:
    """Prometheus series of the leases."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.held = Gauge(
            "eldercare_lease_held", "1 while this process holds the lease", ["name"],
            registry=registry,
        )  # fmt: skip
        self.taken = Counter(
            "eldercare_lease_taken", "times this process took the lease", ["name"],
            registry=registry,
        )  # fmt: skip
        self.lost = Counter(
            "eldercare_lease_lost",
            "times this process stopped its work under a lease (renewal failed, late, lost)",
            ["name", "reason"],
            registry=registry,
        )


@dataclass(slots=True)
class Term:
    """One holding of a lease: from its take to its loss or release."""

    name: str
    token: uuid.UUID
    epoch: int
    previous: str | None = None
    previous_expired_at: datetime | None = None
    acquired_at: datetime | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)
    """Set by the work once it is running (the service is `ready` after that)."""

    async def fence(self, conn: Conn) -> None:
        """Inside the caller's transaction: raise `LeaseLost` unless this term still holds
        the lease. The row stays share-locked until that transaction ends, so no other
        instance takes the lease in between."""
        cur = await conn.execute(
            "SELECT 1 FROM leases WHERE name = %s AND token = %s AND epoch = %s"
            " AND expires_at > now() FOR SHARE",
            (self.name, self.token, self.epoch),
        )
        if await cur.fetchone() is None:
            raise LeaseLost(f"lease {self.name} epoch {self.epoch} is no longer held here")


_TAKE = """
INSERT INTO leases AS l (name, holder, token, epoch, acquired_at, renewed_at, expires_at)
VALUES (%(name)s, %(holder)s, %(token)s, 1, now(), now(), now() + make_interval(secs => %(ttl)s))
ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, token = EXCLUDED.token,
    epoch = l.epoch + 1, acquired_at = now(), renewed_at = now(),
    expires_at = EXCLUDED.expires_at, previous = l.holder, previous_expired_at = l.expires_at
WHERE l.expires_at < now() OR l.token = EXCLUDED.token
RETURNING epoch, previous, previous_expired_at, acquired_at
"""
_RENEW = (
    "UPDATE leases SET renewed_at = now(), expires_at = now() + make_interval(secs => %s)"
    " WHERE name = %s AND token = %s AND epoch = %s AND expires_at > now()"
)
_RELEASE = (
    "UPDATE leases SET expires_at = now() WHERE name = %s AND token = %s AND epoch = %s"
    " AND expires_at > now()"
)


class Leases:
    """This process's leases: take, renew and release over one connection of its own."""

    def __init__(
        self,
        dsn: str,
        holder: str,
        settings: LeaseSettings,
        metrics: LeaseMetrics | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._dsn = dsn
        self.holder = holder
        self.token = uuid.uuid4()
        self.ttl_s = settings.ttl_s
        self._metrics = metrics
        self._monotonic = monotonic
        self._conn: Conn | None = None
        self._lock = asyncio.Lock()
        self.terms: dict[str, Term] = {}
        """The leases held now, by name."""

    async def _execute(self, query: str, params: Any, timeout_s: float) -> list[tuple[Any, ...]]:
        async with self._lock, asyncio.timeout(timeout_s):
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = await psycopg.AsyncConnection.connect(
                        self._dsn, autocommit=True, connect_timeout=max(1, int(timeout_s))
                    )
                cur = await self._conn.execute(query, params)
                return await cur.fetchall() if cur.description else []
            except BaseException:
                conn, self._conn = self._conn, None  # its state is unknown: a new one next time
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
                raise

    async def take(self, name: str) -> Term | None:
        """Take lease `name` if it is free (expired, released, or already this process's);
        None when another instance holds it. Raises on a database error."""
        rows = await self._execute(
            _TAKE,
            {"name": name, "holder": self.holder, "token": self.token, "ttl": self.ttl_s},
            self.ttl_s / 3,
        )
        if not rows:
            return None
        epoch, previous, previous_expired_at, acquired_at = rows[0]
        return Term(name, self.token, int(epoch), previous, previous_expired_at, acquired_at)

    async def renew(self, term: Term, timeout_s: float) -> bool:
        """Move the lease's expiry on; False when it is no longer this term's."""
        rows = await self._execute(
            _RENEW + " RETURNING 1", (self.ttl_s, term.name, term.token, term.epoch), timeout_s
        )
        return bool(rows)

    async def release(self, term: Term) -> None:
        """Let the lease go now (after the work has stopped)."""
        await self._execute(_RELEASE, (term.name, term.token, term.epoch), self.ttl_s / 3)

    async def close(self) -> None:
        """Close the lease connection."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def _taken(
        self, name: str, settled: asyncio.Event | None, share: Members | None = None
    ) -> tuple[Term, float]:
        """Try to take the lease every third of the TTL until it is taken; returns the term
        and when (monotonic) the take that succeeded was sent. Within a `share`, a lease
        another live member is preferred for is tried once a TTL only (three rounds)."""
        waiting_for: str | None = None
        rounds = 0  # rounds left out for the preferred holder, since the last try
        while True:
            if share is not None and rounds < 3 and await share.prefers(name) is False:
                rounds += 1
                if settled is not None:
                    settled.set()  # another member's part; this one stands by
                await asyncio.sleep(self.ttl_s / 3)
                continue
            rounds = 0
            sent = self._monotonic()
            try:
                term = await self.take(name)
            except (psycopg.Error, OSError, TimeoutError) as exc:
                log.warning("lease %s: could not ask the database (%r)", name, exc)
                term = None
            if term is not None:
                return term, sent
            if waiting_for is None:
                waiting_for = name
                log.info("lease %s is held by another instance; standing by", name)
            if settled is not None:
                settled.set()  # ready: this instance is the standby of this lease
            await asyncio.sleep(self.ttl_s / 3)

    async def _keep(
        self, term: Term, work: asyncio.Task[None], taken_at: float, share: Members | None = None
    ) -> str:
        """Renew every third of the TTL while `work` runs; returns why it must stop.
        (`taken_at`: when the take was sent, from which its expiry counts at the earliest.)
        Within a `share`, stops when another live member is the lease's preferred holder."""
        period = self.ttl_s / 3
        valid_until = taken_at + 2 * period
        while True:
            wait = min(period, valid_until - self._monotonic())
            if wait > 0:
                done, _ = await asyncio.wait([work], timeout=wait)
                if done:
                    return "work ended"
            sent = self._monotonic()
            left = valid_until - sent
            if left <= 0:
                return "late"
            try:
                ok = await self.renew(term, min(left, period))
            except TimeoutError:
                return "late"
            except (psycopg.Error, OSError) as exc:
                log.warning("lease %s: renewal failed (%r)", term.name, exc)
                return "renewal failed"
            if not ok:
                return "taken"
            valid_until = sent + 2 * period
            if share is not None and await share.prefers(term.name) is False:
                return HANDED_OVER

    async def hold(
        self,
        name: str,
        work: Callable[[Term], Coroutine[Any, Any, None]],
        settled: asyncio.Event | None = None,
        signals_start: bool = False,
        share: Members | None = None,
    ) -> None:
        """Run `work(term)` whenever this process holds lease `name`, until cancelled.

        With `share` (a group of leases the instances share out, e.g. the detection's
        shards), this process takes the lease at once only when it is the group's preferred
        holder of it (`Members.prefers`); otherwise only after the lease stayed free for a TTL
        (its preferred holder is gone or not started yet); and it hands a lease over, its work
        stopped and the lease released, when another live member is preferred.

        `settled` is set once this process knows its part: it holds the lease and its work
        has started (at once, or when the work sets `term.started` if `signals_start`), or
        another instance holds it. Work that ends or fails is started again after a pause,
        the lease released meanwhile."""
        metrics = self._metrics
        while True:
            term, sent = await self._taken(name, settled, share)
            gap = ""
            if term.previous is not None and term.previous_expired_at is not None:
                late = (term.acquired_at or term.previous_expired_at) - term.previous_expired_at
                gap = f" from {term.previous} (its lease ran out {late.total_seconds():.2f} s ago)"
            log.warning("lease %s taken by %s (epoch %d)%s", name, self.holder, term.epoch, gap)
            self.terms[name] = term
            if metrics is not None:
                metrics.held.labels(name).set(1)
                metrics.taken.labels(name).inc()
            task: asyncio.Task[None] = asyncio.create_task(work(term), name=f"{name}-under-lease")
            if not signals_start:
                term.started.set()
            reason = "stopping"
            # Renewals start at once; `settled` follows the work's start beside them (a slow
            # start, e.g. a large state to restore, must not make the holder late).
            announcer = (
                None
                if settled is None or settled.is_set()
                else asyncio.create_task(_announce(term, settled, self.ttl_s))
            )
            try:
                reason = await self._keep(term, task, sent, share)
            finally:
                if announcer is not None:
                    announcer.cancel()
                self.terms.pop(name, None)
                if metrics is not None:
                    metrics.held.labels(name).set(0)
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
                if reason == HANDED_OVER:
                    log.warning("lease %s handed over to its preferred holder", name)
                elif reason != "stopping":
                    log.error("lease %s: %s; its work stopped", name, reason)
                    if metrics is not None:
                        metrics.lost.labels(name, reason).inc()
                with contextlib.suppress(Exception):
                    await self.release(term)
                if settled is not None:
                    settled.set()
            if task.done() and not task.cancelled() and task.exception() is not None:
                log.error("lease %s: its work failed", name, exc_info=task.exception())
            if reason == "work ended":
                await asyncio.sleep(self.ttl_s)


async def _announce(term: Term, settled: asyncio.Event, ttl_s: float) -> None:
    """Set `settled` once the work has started, or after a TTL whatever it does."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(ttl_s):
            await term.started.wait()
    settled.set()


async def _forever(_term: Term) -> None:
    await asyncio.Event().wait()


class Members:
    """The instances that share out a group of leases, and which of them each lease prefers.

    Each member holds lease `{group}-member:{holder}` while it runs (`run`); the live
    members are the holders of unexpired such leases. A lease's preferred holder is the
    member with the highest hash of (member, lease name): rendezvous hashing, so each
    instance works the same answer out alone, and a member that joins or leaves moves only
    the leases it wins or held. The list is read at most every third of the TTL.
    """

    def __init__(self, leases: Leases, group: str) -> None:
        self._leases = leases
        self.group = group
        self._live: list[str] = []
        self._read_at = -math.inf

    @property
    def lease(self) -> str:
        """This instance's member lease."""
        return f"{self.group}-member:{self._leases.holder}"

    async def run(self) -> None:
        """Be a member (hold the member lease) until cancelled."""
        await self._leases.hold(self.lease, _forever)

    async def live(self) -> list[str] | None:
        """The live members (sorted), None when the database did not answer."""
        leases = self._leases
        if leases._monotonic() - self._read_at < leases.ttl_s / 3:
            return self._live
        try:
            rows = await leases._execute(
                "SELECT holder FROM leases WHERE name LIKE %s AND expires_at > now()",
                (self.group.replace("%", r"\%").replace("_", r"\_") + "-member:%",),
                leases.ttl_s / 3,
            )
        except (psycopg.Error, OSError, TimeoutError) as exc:
            log.warning("lease group %s: could not read its members (%r)", self.group, exc)
            return None
        self._live = sorted({str(holder) for (holder,) in rows})
        self._read_at = leases._monotonic()
        return self._live

    async def prefers(self, name: str) -> bool | None:
        """True when this instance is lease `name`'s preferred holder, False when another
        live member is, None when unknown (no answer, or this instance not a member yet)."""
        live = await self.live()
        holder = self._leases.holder
        if not live or holder not in live:
            return None
        return preferred(name, live) == holder


def preferred(name: str, members: list[str]) -> str:
    """The member that lease `name` prefers (highest random weight)."""
    return max(
        members, key=lambda m: hashlib.blake2b(f"{m}\0{name}".encode(), digest_size=8).digest()
    )
