"""Alerts, their audit trail, resolving them, silences and the monthly KPI report."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from alerts import model
from alerts.model import Category, Outcome, Severity, Status
from gateway.schemas.common import IsoTimestamp, Schema


class Alert(Schema):
    """An alert as the API shows it."""

    id: int
    home_id: str | None
    elder: str | None
    village: str | None
    kind: str
    category: Category
    severity: Severity
    status: Status
    summary: str
    event_at: IsoTimestamp
    opened_at: IsoTimestamp
    evidence_count: int
    last_evidence_at: IsoTimestamp
    acknowledged_at: IsoTimestamp | None
    acknowledged_by: str | None
    resolved_at: IsoTimestamp | None
    outcome: str | None
    elder_id: str | None = None
    village_id: str | None = None
    en_route_at: IsoTimestamp | None = None
    """When the owner said "on my way"."""
    en_route_by: str | None = None
    arrived_at: IsoTimestamp | None = None
    """When a worker said "arrived"."""
    arrived_by: str | None = None
    acknowledged_by_phone: str | None = None
    """The owner's phone (what a family calls once someone owns the alert)."""

    @classmethod
    def of(cls, alert: model.Alert) -> Alert:
        """A stored alert as the API shows it (people by name)."""
        return cls(
            id=alert.id,
            home_id=alert.home_id,
            elder=alert.elder_name,
            village=alert.village,
            kind=alert.kind,
            category=alert.category,
            severity=alert.severity,
            status=alert.status,
            summary=alert.summary,
            event_at=alert.event_at,
            opened_at=alert.opened_at,
            evidence_count=alert.evidence_count,
            last_evidence_at=alert.last_evidence_at,
            acknowledged_at=alert.acknowledged_at,
            acknowledged_by=alert.acknowledged_by_name,
            resolved_at=alert.resolved_at,
            outcome=alert.outcome,
            elder_id=alert.elder_id,
            village_id=alert.region_id,
            en_route_at=alert.en_route_at,
            en_route_by=alert.en_route_by_name,
            arrived_at=alert.arrived_at,
            arrived_by=alert.arrived_by_name,
            acknowledged_by_phone=alert.acknowledged_by_phone,
        )


def alert_json(alert: model.Alert) -> dict[str, Any]:
    """An alert as the API shows it, as JSON-ready values (for the stream and the pages)."""
    return Alert.of(alert).model_dump(mode="json")


class ToldSchema(Schema):
    """One person told about an alert over one channel (their latest round)."""

    user_id: int | None
    name: str | None
    tier: str | None
    channel: str
    status: str = Field(description="pending, sent, failed or cancelled")
    round: int
    attempts: int
    at: IsoTimestamp | None = Field(description="sent at, else due at")
    error: str | None


class EscalationSchema(Schema):
    """Where an alert's escalation stands."""

    alert_id: int
    round: int
    tiers: list[str] = Field(description="tiers reached, in the order the policy adds them")
    told: list[ToldSchema]
    next_at: IsoTimestamp | None = Field(description="next round due (None: stopped or none)")
    next_tiers: list[str] = Field(description="tiers the next round adds")


class EscalationList(Schema):
    """The escalation state of the alerts asked for that the caller may see."""

    items: list[EscalationSchema]


class AlertList(Schema):
    """Alerts, newest first; the next page starts `before=next_before` (None at the end)."""

    items: list[Alert]
    next_before: int | None

    @classmethod
    def of(cls, rows: list[model.Alert], limit: int) -> AlertList:
        """The first `limit` of `rows` (fetched `limit + 1` to know whether more follow)."""
        items = rows[:limit]
        next_before = items[-1].id if len(rows) > limit else None
        return cls(items=[Alert.of(a) for a in items], next_before=next_before)


class AlertEvent(Schema):
    """One entry of an alert's audit trail."""

    at: IsoTimestamp
    action: str
    actor_id: int | None
    actor: str | None
    detail: dict[str, Any]


class AlertDetail(Alert):
    """An alert and its audit trail, oldest first."""

    events: list[AlertEvent]


class ResolveBody(BaseModel):
    """How an alert ended."""

    outcome: Outcome
    note: str = Field(default="", max_length=2000)


class SilenceBody(BaseModel):
    """A silence: for one home or one region, some kinds or all, until an end time."""

    home_id: str | None = None
    region_id: str | None = None
    kinds: list[str] | None = None
    ends_at: datetime
    reason: str = Field(min_length=1, max_length=500)


class KpiRow(Schema):
    """The KPIs of one group (the whole month, one kind, one town or one village)."""

    grouping: str
    key: str
    alerts: int
    self_cancelled: int
    acknowledged: int
    ack_p50_s: float | None
    ack_p90_s: float | None
    ack_p99_s: float | None
    resolve_p50_s: float | None
    resolve_p90_s: float | None
    resolve_p99_s: float | None
    acked_within_60s: float | None
    acked_within_180s: float | None
    false_alarm_share: float | None


class KpiReport(Schema):
    """A month's alert KPIs of a region."""

    month: str
    region: str | None
    rows: list[KpiRow]
