"""Consent to the processing of an elder's personal information (PIPL art. 28-29: health
data is sensitive personal information and needs a separate consent).

The purposes are a small fixed set (`Purpose`); a consent is current from `given_at` until
it is withdrawn. The alerts stage asks `home_consent` before raising a wellbeing, health or
environment alert (`alerts.mutes.ConsentMute`); the gateway asks `missing` before showing
health data. Emergencies are processed without it (vital interest, PIPL art. 13(4)).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

Conn = psycopg.AsyncConnection[Any]


class Purpose(enum.StrEnum):
    """What an elder (or their guardian) consents to."""

    MONITORING = "monitoring"
    """The home's sensors are monitored and the health data they give (activity, sleep,
    presence, indoor climate, vital signs) is processed into wellbeing, health and
    environment alerts, and shown to the staff who look after the elder."""
    SHARE_FAMILY = "share_family"
    """That health data (status, day timeline, readings) is shown to the linked family
    members on the family page and API."""


PURPOSE_TEXT = {
    Purpose.MONITORING: "monitoring of the home's sensors and processing of the health data",
    Purpose.SHARE_FAMILY: "sharing the health data with the linked family members",
}


class Method(enum.StrEnum):
    """How the consent was given."""

    PAPER_FORM = "paper_form"
    IN_PERSON = "in_person"
    PHONE_RECORDED = "phone_recorded"
    ELECTRONIC = "electronic"


class GivenBy(enum.StrEnum):
    """Who gave it: the elder, or a guardian (with name and relation)."""

    ELDER = "elder"
    GUARDIAN = "guardian"


@dataclass(frozen=True, slots=True)
class HomeConsent:
    """Whether a home's health data may be processed now, and why not."""

    elder_id: str | None
    """The elder living there; None when nobody is enrolled in the home."""
    missing: frozenset[Purpose]


async def current_purposes(conn: Conn, elder_id: str, at: datetime) -> frozenset[Purpose]:
    """The purposes the elder has a current consent for at `at`."""
    cur = await conn.execute(
        "SELECT purpose FROM elder_consents WHERE elder_id = %s AND given_at <= %s"
        " AND (withdrawn_at IS NULL OR withdrawn_at > %s)",
        (elder_id, at, at),
    )
    return frozenset(Purpose(str(p)) for (p,) in await cur.fetchall())


async def missing(
    conn: Conn, elder_id: str, wanted: frozenset[Purpose], at: datetime
) -> frozenset[Purpose]:
    """Which of `wanted` the elder has no current consent for at `at`."""
    return wanted - await current_purposes(conn, elder_id, at)


async def home_consent(conn: Conn, home_id: str, at: datetime) -> HomeConsent:
    """The monitoring consent of the elder living in `home_id` at `at`."""
    cur = await conn.execute("SELECT id FROM elders WHERE home_id = %s", (home_id,))
    row = await cur.fetchone()
    if row is None:
        return HomeConsent(None, frozenset({Purpose.MONITORING}))
    elder_id = str(row[0])
    return HomeConsent(elder_id, await missing(conn, elder_id, frozenset({Purpose.MONITORING}), at))
