"""When the database cannot be reached, an emergency is still told to people.

The fallback keeps in memory, refreshed from the database every minute, who is to be told at
once about an emergency in each home (the on-duty village worker(s) and the family's first
contact, over each of their channels). If a critical alert cannot be stored, it is sent from
this copy straight away; the alert is stored, and notified again through the normal path, as
soon as the database is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import Any

import msgspec
import psycopg
from psycopg_pool import AsyncConnectionPool

from alerts.config import Clock, utc_now
from alerts.model import Alert, Signal, Status
from alerts.notify import messages
from alerts.notify.channels import Channel, DeliveryError, Notice
from ingest.db import read_in_chunks

log = logging.getLogger(__name__)

_QUERY = """
WITH people AS (
    SELECT h.id AS home_id, d.user_id
    FROM homes h
    JOIN duty_shifts d ON d.region_id = h.village_id AND d.starts_at <= %(at)s
                      AND d.ends_at > %(at)s
    UNION
    SELECT e.home_id, f.user_id
    FROM family_links f JOIN elders e ON e.id = f.elder_id
    WHERE f.first_contact
)
SELECT p.home_id, p.user_id, c.channel, c.target, e.full_name, v.name, u.role, u.locale,
       nullif(h.address, '')
FROM people p
JOIN users u ON u.id = p.user_id
JOIN contact_channels c ON c.user_id = p.user_id
JOIN homes h ON h.id = p.home_id
JOIN regions v ON v.id = h.village_id
LEFT JOIN elders e ON e.home_id = h.id
ORDER BY p.home_id, p.user_id, c.position, c.id
"""


class Contact(msgspec.Struct, frozen=True, gc=False):
    """One person at one channel, as cached. (Untracked by the cyclic GC, as
    `devices.registry.DeviceRecord` and for the same reason: only strings and numbers.)"""

    user_id: int
    channel: str
    target: str
    role: str = ""
    locale: str = ""
    """The person's language (users.locale)."""


class HomeContacts(msgspec.Struct, frozen=True, gc=False):
    """Who to tell about an emergency in one home, and how to name it. (Untracked too: its
    tuple of contacts holds only untracked structs.)"""

    elder_name: str | None
    village: str | None
    contacts: tuple[Contact, ...]
    address: str | None = None


def unstored_alert(
    signal: Signal, home: HomeContacts, alert_id: int, now: datetime, summary: str
) -> Alert:
    """An alert as a notice shows it, built from a signal and the cached home before (or
    without) the alert being stored."""
    return Alert(
        id=alert_id,
        home_id=signal.home_id,
        kind=signal.kind,
        category=signal.category,
        severity=signal.severity,
        status=Status.OPEN,
        event_at=signal.event_at,
        opened_at=now,
        summary=summary,
        evidence_count=1,
        last_evidence_at=signal.event_at,
        acknowledged_at=None,
        acknowledged_by=None,
        acknowledged_by_name=None,
        resolved_at=None,
        outcome=None,
        elder_name=home.elder_name,
        village=home.village,
    )


class EmergencyFallback:
    """An in-memory copy of emergency contacts, and direct sending from it."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        channels: dict[str, Channel],
        console_url: str,
        refresh_s: float = 60.0,
        clock: Clock = utc_now,
        locale: str = "zh",
        timezone: str = "Asia/Shanghai",
    ) -> None:
        self.locale = locale
        """The deployment's language (of people who chose none)."""
        self.timezone = timezone
        """The deployment's time zone (of the times a notice shows)."""
        self._pool = pool
        self._channels = channels
        self._console_url = console_url
        self._refresh_s = refresh_s
        self._clock = clock
        self._homes: dict[str, HomeContacts] = {}
        self.refreshed_at: datetime | None = None

    async def refresh(self) -> int:
        """Reload the contacts; returns how many homes have someone to tell."""
        collected: dict[str, tuple[str | None, str | None, str | None, list[Contact]]] = {}
        # In chunks: in the urgent process an SOS must not wait behind tens of thousands of rows.
        async with (
            self._pool.connection(timeout=10) as conn,
            contextlib.aclosing(
                read_in_chunks(conn, "eldercare_fallback", _QUERY, {"at": self._clock()})
            ) as chunks,
        ):
            async for rows in chunks:
                for home_id, user_id, channel, target, elder, village, role, loc, addr in rows:
                    entry = collected.setdefault(home_id, (elder, village, addr, []))
                    entry[3].append(
                        Contact(int(user_id), str(channel), str(target), str(role), str(loc))
                    )
        self._homes = {h: HomeContacts(e, v, tuple(c), a) for h, (e, v, a, c) in collected.items()}
        self.refreshed_at = self._clock()
        return len(self._homes)

    async def run(self) -> None:
        """Refresh periodically until cancelled; a failed refresh keeps the last copy."""
        while True:
            try:
                await self.refresh()
            except (psycopg.Error, TimeoutError) as exc:
                log.warning("emergency contacts not refreshed (%r); keeping the last copy", exc)
            await asyncio.sleep(self._refresh_s)

    def notice(
        self, alert: Alert, home: HomeContacts, contact: Contact, ack_url: str | None
    ) -> Notice:
        """A first-round notice to a cached contact, in their language."""
        return Notice(
            alert,
            0,
            contact.user_id,
            self._console_url,
            "alert",
            ack_url,
            messages.locale_of(contact.locale, self.locale),
            home.address,
            self.timezone,
        )

    def contacts(self, home_id: str) -> HomeContacts | None:
        """The cached contacts of a home."""
        return self._homes.get(home_id)

    async def notify(self, signal: Signal) -> int:
        """Send `signal` to its home's cached contacts now; returns how many deliveries
        succeeded. Never raises."""
        home = self._homes.get(signal.home_id)
        if home is None or not home.contacts:
            log.critical(
                "EMERGENCY %s at %s could not be stored and nobody is cached to tell",
                signal.kind,
                signal.home_id,
            )
            return 0
        alert = unstored_alert(
            signal,
            home,
            0,
            self._clock(),
            f"{signal.summary} (sent directly: the alert store is unavailable)",
        )

        async def send(contact: Contact) -> bool:
            channel = self._channels.get(contact.channel)
            if channel is None:
                return False
            try:
                notice = self.notice(alert, home, contact, None)
                async with asyncio.timeout(10.0):
                    await channel.send(contact.target, notice)
            except (DeliveryError, TimeoutError) as exc:
                log.error("fallback notification to %s failed: %s", contact.target, exc)
                return False
            return True

        results = await asyncio.gather(*(send(c) for c in home.contacts))
        delivered = sum(results)
        log.critical(
            "EMERGENCY %s at %s sent directly to %d of %d contacts (alert store unavailable)",
            signal.kind,
            signal.home_id,
            delivered,
            len(results),
        )
        return delivered
