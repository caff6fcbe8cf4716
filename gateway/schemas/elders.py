"""The elder's file, its changes, away mode, readings, status at a glance and the audit of
reads of the elder's health data."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, RootModel, model_validator

from alerts.detect.limits import ElderLimits
from gateway.schemas.alerts import Alert
from gateway.schemas.common import Schema
from gateway.schemas.places import Device


class ElderUpdate(BaseModel):
    """Editable fields of an elder's file (staff only); absent fields are left alone."""

    phone: str | None = Field(default=None, max_length=40)
    notes: str | None = Field(default=None, max_length=4000)
    lives_alone: bool | None = None
    conditions: list[Annotated[str, Field(min_length=1, max_length=80)]] | None = Field(
        default=None, max_length=40
    )
    thresholds: ElderLimits | None = None
    """The elder's own limits (alerts.detect.limits; replaces all, `{}` clears them): the
    detectors follow them within a registry check."""


class AwayMode(BaseModel):
    """Away / hospital mode of the elder's home: which, from when, until when (open-ended
    when absent), and why. Stored as the home's mode (`alerts.mutes.set_home_mode`), which
    mutes its wellbeing alerts and care-visit targets while it lasts."""

    mode: Literal["away", "hospital"] = "away"
    away_from: datetime
    away_until: datetime | None = None
    reason: str = Field(default="", max_length=200)

    @model_validator(mode="after")
    def _ordered(self) -> AwayMode:
        if self.away_from.tzinfo is None or (
            self.away_until is not None and self.away_until.tzinfo is None
        ):
            raise ValueError("times need a time zone, e.g. 2026-01-31T08:00:00+08:00")
        if self.away_until is not None and self.away_until <= self.away_from:
            raise ValueError("away_until must be after away_from")
        return self


class Contact(Schema):
    """Someone to call about an elder (`is_user`: a linked family member's account)."""

    name: str
    relation: str
    phone: str
    is_user: bool
    holds_key: bool = False
    """Holds a key to the elder's home."""


class ElderFile(Schema):
    """The elder's file: profile, conditions, contacts, thresholds, away mode (`away_mode`
    away / hospital / null, its window, and whether it lasts now), devices, open alerts."""

    id: str
    home_id: str
    full_name: str
    born: date | None
    sex: str
    phone: str
    lives_alone: bool
    notes: str
    conditions: list[str]
    thresholds: dict[str, Any]
    away_mode: str | None
    away_from: datetime | None
    away_until: datetime | None
    away_reason: str
    village_id: str
    village: str
    address: str
    timezone: str
    contacts: list[Contact]
    away_now: bool
    devices: list[Device]
    open_alerts: list[Alert]


class Reading(Schema):
    """One stored reading."""

    ts: datetime
    device_id: str
    metric: str
    value: float


class RawReadings(Schema):
    """Readings oldest first; the next page starts `after=next_after` (None at the end).
    Raw readings before `raw_since` are no longer kept (ask with `bucket_s` for them)."""

    items: list[Reading]
    next_after: str | None
    raw_since: datetime | None = None


class ReadingBucket(Schema):
    """A rollup of one metric of one device over one time bucket."""

    start: datetime
    device_id: str
    metric: str
    count: int
    min: float
    max: float
    avg: float


class RolledUpReadings(Schema):
    """Readings rolled up per bucket of `bucket_s` seconds, device and metric; buckets
    before `raw_since` come from the hourly rollups (raw readings are no longer kept)."""

    bucket_s: int
    items: list[ReadingBucket]
    raw_since: datetime | None = None


class Readings(RootModel[RawReadings | RolledUpReadings]):
    """Raw readings, or rolled-up ones when `bucket_s` was asked for."""


class LastActivity(Schema):
    """The most recent sign of life and where it was."""

    at: datetime
    room: str
    kind: str


class DaySummary(Schema):
    """One day in numbers."""

    first_activity: datetime | None
    last_activity: datetime | None
    motion_events: int
    rooms_visited: int
    door_openings: int
    hours_in_bed: float
    temperature_min: float | None
    temperature_max: float | None


class ElderStatus(Schema):
    """At a glance: where the elder probably is (`home` / `out` / `asleep` / `unknown`),
    their last activity, the indoor temperature, today's summary and the devices."""

    elder_id: str
    name: str
    presence: str
    last_activity: LastActivity | None
    temperature: float | None
    day: date
    summary: DaySummary
    devices: list[Device]
    as_of: datetime


class ActivityHour(Schema):
    """A home's activity in one room over one UTC hour."""

    hour: datetime
    room: str
    events: int
    motion_events: int
    door_openings: int
    bed_events: int
    first_event: datetime | None
    last_event: datetime | None


class DayHistory(Schema):
    """One local day of the elder: its summary and hourly activity per room, from the raw
    readings (`source` 'raw') or, before `raw_since`, from the rollups ('rollup');
    `summary` is null for a day before the raw window with nothing rolled up."""

    elder_id: str
    day: date
    source: Literal["raw", "rollup"]
    raw_since: datetime | None
    summary: DaySummary | None
    hours: list[ActivityHour]


class HealthRead(Schema):
    """One read of the elder's health data: who, when, what and the query."""

    at: datetime
    user_id: int
    reader: str
    role: str
    what: str
    detail: dict[str, Any]


class HealthReads(Schema):
    """Reads of the elder's health data, newest first."""

    items: list[HealthRead]
