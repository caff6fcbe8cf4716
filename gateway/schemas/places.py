"""The region tree, the homes in it and their devices."""

from __future__ import annotations

from datetime import datetime

from gateway.schemas.common import Schema


class Region(Schema):
    """One node of the region tree (district, town or village) and its number of homes."""

    id: str
    name: str
    tier: str
    parent_id: str | None
    homes: int


class RegionNode(Region):
    """A region with the regions under it, nested."""

    children: list[RegionNode]


class RegionTree(Schema):
    """The region tree the caller may see: its top regions, nested."""

    items: list[RegionNode]


class RegionDetail(Region):
    """One region and the regions directly under it."""

    children: list[Region]


class Home(Schema):
    """A home and who lives there (`elder_name` is null for the operator)."""

    id: str
    village_id: str
    village: str
    town_id: str | None
    address: str
    timezone: str
    elder_id: str | None
    elder_name: str | None


class Device(Schema):
    """A device and its health: its latest reading, whether it is online (something came
    within two heartbeat periods of its kind) and its battery level (`elder_name` is null
    for the operator)."""

    id: str
    home_id: str
    elder_name: str | None
    village: str
    kind: str
    title: str
    room: str
    label: str
    last_seen: datetime | None
    online: bool
    battery: float | None
    installed_at: datetime | None = None
    """When it was installed (or its unit replaced under the same id)."""
    first_heard_at: datetime | None = None
    """The first reading stored since then (null: not heard yet, see `/install`)."""
    retired_at: datetime | None = None
