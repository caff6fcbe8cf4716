"""Request bodies and answers of device installation, replacement, rotation and retirement."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from devices.catalogue import CATALOGUE
from gateway.schemas.common import Schema

DEVICE_ID = r"^[a-z0-9][a-z0-9_-]{0,63}$"


def _known_kind(kind: str | None) -> str | None:
    if kind is not None and kind not in CATALOGUE:
        raise ValueError(f"unknown kind {kind!r}; known: {', '.join(sorted(CATALOGUE))}")
    return kind


class DeviceInstall(BaseModel):
    """A new device for a home: its id (never used before), catalogue kind, room, label."""

    model_config = ConfigDict(extra="forbid")

    device_id: str = Field(pattern=DEVICE_ID)
    kind: str
    room: str = Field(default="", max_length=80)
    label: str = Field(default="", max_length=200)

    _kind = field_validator("kind")(_known_kind)


class DeviceReplace(BaseModel):
    """A new unit in a device's place: under `new_device_id` (the old one is retired), or
    under the same id when absent (new credentials, the install check starts again)."""

    model_config = ConfigDict(extra="forbid")

    new_device_id: str | None = Field(default=None, pattern=DEVICE_ID)
    kind: str | None = None
    room: str | None = Field(default=None, max_length=80)
    label: str | None = Field(default=None, max_length=200)

    _kind = field_validator("kind")(_known_kind)


class BrokerState(Schema):
    """What became of the broker's files: written (false: this service does not manage
    them), the broker reloaded, or the error of a failed reload."""

    files_written: bool
    reloaded: bool
    error: str | None = None


class InstallState(Schema):
    """Whether a device was heard since its install: `heard`, `waiting` (not yet, before
    `due_at`), `overdue` (not heard by `due_at`), `retired`."""

    device_id: str
    home_id: str
    kind: str
    installed_at: datetime
    first_heard_at: datetime | None
    retired_at: datetime | None
    due_at: datetime
    status: Literal["heard", "waiting", "overdue", "retired"]


class DeviceChange(Schema):
    """A device change as recorded. `password` (with `username`) is the device's new broker
    login, shown only in this answer; null for a retirement."""

    action: Literal["install", "replace", "rotate", "retire"]
    device_id: str
    home_id: str
    kind: str
    username: str | None
    password: str | None
    retired: str | None
    broker: BrokerState
    install: InstallState | None = None
