"""A device's life in a home as data: what may be installed, the credential it is issued,
and the broker files the registry makes. Pure: the ingest package stores the changes
(ingest.device_lifecycle) and writes the files (ingest.broker_files).

Install: a device of a catalogue kind joins a home that is open, under an id no device
ever had, with a fresh broker password (shown once). Replace: a new unit takes the place of
an old one, under a new id (the old one is retired) or under the same id (its credential
is rotated and its install time starts again). Rotate: a new password, the old one stops
working at the broker's reload. Retire: the device leaves the registry, the broker files
and the device watch; its readings are kept.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from devices import topics
from devices.catalogue import CATALOGUE
from devices.provisioning import (
    Credential,
    ServiceAccount,
    acl_file,
    device_username,
    hash_password,
    new_password,
    password_file,
)
from devices.registry import DeviceRecord

MAX_LABEL = 200
MAX_ROOM = 80


class Refusal(enum.StrEnum):
    """Why an operation on a device was refused (nothing was changed)."""

    INVALID_ID = "invalid_id"
    UNKNOWN_KIND = "unknown_kind"
    INVALID_FIELD = "invalid_field"
    NO_HOME = "no_home"
    HOME_CLOSED = "home_closed"
    DUPLICATE_ID = "duplicate_id"
    NOT_FOUND = "not_found"
    RETIRED = "retired"


class DeviceRefused(Exception):
    """An operation refused before anything changed: the registry, the broker files and
    every credential are as they were. `reason` says why, the message what to do."""

    def __init__(self, reason: Refusal, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(slots=True, frozen=True)
class Issued:
    """A credential just issued: the password in clear (shown once, never stored) and
    what is stored (its hash)."""

    password: str
    credential: Credential


@dataclass(slots=True, frozen=True)
class BrokerFiles:
    """The Mosquitto password file and ACL of a registry."""

    passwd: str
    acl: str


def check_new(device_id: str, home_id: str, kind: str, room: str = "", label: str = "") -> None:
    """Refuse a device that cannot be installed whatever the database holds: an id that is
    not a topic segment, a kind not in the catalogue, a room or label too long."""
    for what, value in (("device id", device_id), ("home id", home_id)):
        if not topics.valid_id(value):
            raise DeviceRefused(
                Refusal.INVALID_ID,
                f"{what} {value!r} is not valid: lower-case letters, digits, '-' and '_',"
                " at most 64, starting with a letter or digit",
            )
    if kind not in CATALOGUE:
        raise DeviceRefused(
            Refusal.UNKNOWN_KIND, f"unknown kind {kind!r}; known: {', '.join(sorted(CATALOGUE))}"
        )
    if len(room) > MAX_ROOM or "\n" in room:
        raise DeviceRefused(Refusal.INVALID_FIELD, f"room: one line of at most {MAX_ROOM}")
    if len(label) > MAX_LABEL or "\n" in label:
        raise DeviceRefused(Refusal.INVALID_FIELD, f"label: one line of at most {MAX_LABEL}")


def issue(device: DeviceRecord) -> Issued:
    """A fresh random password for `device` and its ``mosquitto_passwd`` hash."""
    password = new_password()
    return Issued(password, Credential(device_username(device), hash_password(password)))


def broker_files(
    devices: Iterable[tuple[DeviceRecord, Credential]], services: Iterable[ServiceAccount]
) -> BrokerFiles:
    """The password file and ACL of the devices with a live credential and the services."""
    devs = list(devices)
    svcs = list(services)
    return BrokerFiles(
        password_file([*(c for _, c in devs), *svcs]), acl_file([d for d, _ in devs], svcs)
    )
