"""Consent records, the export and the erasure of an elder's personal information."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from alerts.consent import GivenBy, Method, Purpose
from gateway.privacy.erase import Reason
from gateway.schemas.common import Schema


class ConsentBody(BaseModel):
    """A consent to record: for which purpose, given by whom (the elder, or a guardian with
    name and relation), how (`reference`: e.g. the scanned paper form's number), when
    (default now)."""

    purpose: Purpose
    given_by: GivenBy = GivenBy.ELDER
    guardian_name: str = Field(default="", max_length=120)
    guardian_relation: str = Field(default="", max_length=60)
    method: Method
    reference: str = Field(default="", max_length=200)
    given_at: datetime | None = None


class WithdrawBody(BaseModel):
    """Withdrawing a consent (from now on); `note`: how it was withdrawn."""

    note: str = Field(default="", max_length=500)


class Consent(Schema):
    """One consent record; `current`: not withdrawn."""

    id: int
    elder_id: str
    purpose: str
    given_by: str
    guardian_name: str
    guardian_relation: str
    method: str
    reference: str
    given_at: datetime
    recorded_at: datetime
    recorded_by: int | None
    recorded_by_name: str | None
    withdrawn_at: datetime | None
    withdrawn_by: int | None
    withdrawn_by_name: str | None
    withdrawal_note: str
    current: bool


class ConsentList(Schema):
    """An elder's consent records, and which purposes have no current consent."""

    items: list[Consent]
    missing: list[str]


class EraseBody(BaseModel):
    """Erasing an elder who left the service: why (a code), and the elder's id again."""

    reason: Reason
    confirm: str = Field(max_length=100, description="the elder's id, again")


class ErasureResult(Schema):
    """The erasure record (`id`: a receipt number; it holds no personal data) and rows per
    kind erased or anonymised."""

    id: int
    at: datetime
    counts: dict[str, int]
