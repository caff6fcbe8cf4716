"""The MQTT topic scheme (contract version 1).

eldercare/{home_id}/{device_id}/readings   device -> service, QoS 1
eldercare/{home_id}/{device_id}/status     device -> service, retained; last will "offline"
eldercare/{home_id}/{device_id}/commands   service -> device, QoS 1
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

PREFIX = "eldercare"
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class Channel(enum.StrEnum):
    """The last level of a topic."""

    READINGS = "readings"
    STATUS = "status"
    COMMANDS = "commands"


@dataclass(slots=True, frozen=True)
class Topic:
    """A parsed topic: which home and device it claims to be, and which channel."""

    home_id: str
    device_id: str
    channel: Channel

    def __str__(self) -> str:
        return f"{PREFIX}/{self.home_id}/{self.device_id}/{self.channel.value}"


def valid_id(value: str) -> bool:
    """True when `value` may be used as a home or device identifier."""
    return ID_PATTERN.fullmatch(value) is not None


def topic(home_id: str, device_id: str, channel: Channel) -> str:
    """The topic string for a home, device and channel."""
    if not (valid_id(home_id) and valid_id(device_id)):
        raise ValueError(f"invalid home or device id: {home_id!r}, {device_id!r}")
    return str(Topic(home_id, device_id, channel))


def parse(value: str) -> Topic | None:
    """Parse a topic, or None when it is not one of ours."""
    parts = value.split("/")
    if len(parts) != 4 or parts[0] != PREFIX:
        return None
    _, home_id, device_id, channel = parts
    if not (valid_id(home_id) and valid_id(device_id)):
        return None
    try:
        return Topic(home_id, device_id, Channel(channel))
    except ValueError:
        return None


def subscription(channel: Channel) -> str:
    """The wildcard filter that matches `channel` for every home and device."""
    return f"{PREFIX}/+/+/{channel.value}"
