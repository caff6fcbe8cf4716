"""Typed values that cross the alerts stage's boundaries."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Category(enum.StrEnum):
    """What an alert is about."""

    EMERGENCY = "emergency"
    WELLBEING = "wellbeing"
    ENVIRONMENT = "environment"
    HEALTH = "health"
    TECHNICAL = "technical"
    CARE = "care"


class Severity(enum.StrEnum):
    """How urgent an alert is."""

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class Status(enum.StrEnum):
    """Where an alert is in its life."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Outcome(enum.StrEnum):
    """How an alert ended."""

    FALSE_ALARM = "false_alarm"
    VISITED_FINE = "visited_fine"
    NEEDED_HELP = "needed_help"
    AMBULANCE = "ambulance"
    HOSPITAL = "hospital"
    OTHER = "other"
    CLEARED_BY_DATA = "cleared_by_data"
    CANCELLED_BY_ELDER = "cancelled_by_elder"


HUMAN_OUTCOMES = tuple(
    o for o in Outcome if o not in (Outcome.CLEARED_BY_DATA, Outcome.CANCELLED_BY_ELDER)
)
"""Outcomes a person may choose when resolving an alert."""


@dataclass(slots=True, frozen=True)
class Signal:
    """A detector's finding: something that should open an alert (or add evidence to one)."""

    home_id: str
    kind: str
    category: Category
    severity: Severity
    event_at: datetime
    summary: str
    device_id: str | None = None
    boot: int | None = None
    seq: int | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class Alert:
    """An alert as stored."""

    id: int
    home_id: str | None  # None: an alert about the service itself
    kind: str
    category: Category
    severity: Severity
    status: Status
    event_at: datetime
    opened_at: datetime
    summary: str
    evidence_count: int
    last_evidence_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: int | None
    acknowledged_by_name: str | None
    resolved_at: datetime | None
    outcome: str | None
    elder_name: str | None
    village: str | None
    elder_id: str | None = None
    en_route_at: datetime | None = None
    """When the owner said "on my way"."""
    en_route_by_name: str | None = None
    arrived_at: datetime | None = None
    """When the owner (or another worker) said "arrived"."""
    arrived_by_name: str | None = None
    acknowledged_by_phone: str | None = None
    """The owner's phone, for the family once someone owns the alert."""
    region_id: str | None = None
    """The home's village (region id), for filters."""


@dataclass(slots=True, frozen=True)
class Raised:
    """What storing a signal did."""

    alert_id: int
    created: bool
    new_evidence: bool


@dataclass(slots=True, frozen=True)
class Scope:
    """Which alerts a person may see: a region subtree, a set of homes, or both limited
    to some categories. `None` fields do not restrict."""

    region_id: str | None = None
    home_ids: tuple[str, ...] | None = None
    categories: tuple[Category, ...] | None = None
    everything: bool = False
    service_alerts: bool = False
    """Also the alerts about the service itself (no home: rota gaps, no readings): the
    district centre's, whom their technical policy reaches."""


@dataclass(slots=True, frozen=True)
class Recipient:
    """A person to notify about an alert, over one channel."""

    user_id: int
    role: str
    channel: str
    target: str
    position: int = 0


@dataclass(slots=True, frozen=True)
class Outgoing:
    """A notification due to be sent."""

    id: int
    alert_id: int
    round: int
    user_id: int | None
    channel: str
    target: str
    attempts: int
    notice: str = "alert"
    position: int = 0
    fallback_queued: bool = False
