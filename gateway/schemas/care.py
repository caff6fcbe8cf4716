"""Care: the on-duty rota and its coverage, care visits and each week's visits against the
target."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from alerts.escalate import rota
from gateway.schemas.common import IsoTimestamp, Schema


class RotaShift(Schema):
    """One on-duty shift and whether it is on now."""

    id: int
    user_id: int
    staff: str
    role: str
    region_id: str
    region: str
    tier: str
    starts_at: datetime
    ends_at: datetime
    on_duty_now: bool


class Rota(Schema):
    """Shifts by tier, region and start."""

    items: list[RotaShift]


class CoverageShift(Schema):
    """A shift of the rota as the alerting side keeps it."""

    id: int
    user: str
    name: str
    region_id: str
    tier: str
    starts_at: IsoTimestamp
    ends_at: IsoTimestamp

    @classmethod
    def of(cls, s: rota.Shift) -> CoverageShift:
        """A stored shift (the person by username and display name)."""
        return cls(
            id=s.id,
            user=s.username,
            name=s.display_name,
            region_id=s.region_id,
            tier=s.tier,
            starts_at=s.starts_at,
            ends_at=s.ends_at,
        )


class CoverageGap(Schema):
    """A time with nobody on duty at a region and tier."""

    region_id: str
    tier: str
    starts_at: IsoTimestamp
    ends_at: IsoTimestamp


class Coverage(Schema):
    """The rota of a stretch of time: its shifts, who is on duty now, and the gaps."""

    shifts: list[CoverageShift]
    on_duty_now: list[CoverageShift]
    gaps: list[CoverageGap]


class ShiftBody(BaseModel):
    """A new shift."""

    user: str
    region_id: str
    starts_at: datetime
    ends_at: datetime


class Removed(Schema):
    """The id of what was just removed."""

    removed: int


class VisitIn(BaseModel):
    """A care visit to record (by the signed-in staff member unless `user_id` says who)."""

    visited_at: datetime | None = None
    source: Literal["console", "phone"] = "console"
    note: str = Field(default="", max_length=2000)

    @model_validator(mode="after")
    def _aware(self) -> VisitIn:
        if self.visited_at is not None and self.visited_at.tzinfo is None:
            raise ValueError("visited_at needs a time zone")
        return self


class Visit(Schema):
    """A care visit: to whom, by whom (`staff`), when, how it was recorded, and a note."""

    id: int
    elder_id: str
    elder_name: str
    village: str
    user_id: int | None
    staff: str | None
    visited_at: datetime
    source: str
    note: str


class ComplianceRow(Schema):
    """One elder's visits in a week, and whether their home was away during it."""

    elder_id: str
    elder_name: str
    home_id: str
    village_id: str
    village: str
    visits: int
    away: bool


class VillageCompliance(Schema):
    """A village's elders living alone and those of them below the target."""

    village_id: str
    village: str
    elders: int
    below: list[ComplianceRow]


class Compliance(Schema):
    """A week's visits against the target, by village."""

    week_start: date
    target: int
    villages: list[VillageCompliance]
