"""The retained status message (contract version 1) on ``eldercare/{home}/{device}/status``.

A device publishes ``{"state": "online", "boot": 3, "ts": 1763900000}`` (retained, QoS 1) when
it connects, and sets the same topic's last will to ``{"state": "offline", "reason": "lost"}``
(retained), so the broker tells everyone when the connection drops without a goodbye. A
device that shuts down cleanly publishes ``"offline"`` with reason ``"shutdown"`` itself. A
hub publishes the status of each sensor it bridges (``"offline"`` with reason ``"silent"``
when a sensor misses its heartbeats).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime

import msgspec

MAX_STATUS_BYTES = 1024


class State(enum.StrEnum):
    """Whether a device is connected."""

    ONLINE = "online"
    OFFLINE = "offline"


class Status(msgspec.Struct, frozen=True, forbid_unknown_fields=False, omit_defaults=True):
    """One status message."""

    state: State
    boot: int | None = None
    ts: float | None = None
    reason: str | None = None


_DECODER = msgspec.json.Decoder(Status)


def online(boot: int, at: datetime) -> bytes:
    """The payload a device publishes (retained) when it connects."""
    return msgspec.json.encode(Status(State.ONLINE, boot=boot, ts=at.timestamp()))


def last_will() -> bytes:
    """The payload of a device's last will (retained): the broker sends it on a lost link."""
    return msgspec.json.encode(Status(State.OFFLINE, reason="lost"))


def offline(reason: str, at: datetime | None = None) -> bytes:
    """The payload for an orderly or bridged 'offline'."""
    ts = at.astimezone(UTC).timestamp() if at is not None else None
    return msgspec.json.encode(Status(State.OFFLINE, ts=ts, reason=reason))


def parse(payload: bytes) -> Status | None:
    """The status in `payload`, or None when it is not a valid status message."""
    if len(payload) > MAX_STATUS_BYTES:
        return None
    try:
        return _DECODER.decode(payload)
    except msgspec.DecodeError:
        return None
