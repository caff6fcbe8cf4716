"""SQL of the devices in the homes and their health, as seen from their readings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from devices.catalogue import CATALOGUE
from gateway.access import HomeFilter
from gateway.queries.base import Conn, compose, fetch_dicts

OFFLINE_AFTER_HEARTBEATS = 2
"""A device is offline when nothing came from it for this many heartbeat periods."""


@dataclass(frozen=True, slots=True)
class Device:
    """A device and its health, as seen from its readings."""

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
    first_heard_at: datetime | None = None
    retired_at: datetime | None = None


async def devices(
    conn: Conn,
    f: HomeFilter,
    now: datetime,
    *,
    home_id: str | None = None,
    region: str | None = None,
    device_id: str | None = None,
) -> list[Device]:
    """Devices in the filter with their last reading and battery level, by home and id
    (in service; a retired one only when asked for by id)."""
    params = {**f.params, "home": home_id, "region": region, "device": device_id}
    query = compose(
        f,
        """SELECT d.id, d.home_id, e.full_name AS elder_name, v.name AS village, d.kind,
                  d.room, d.label, d.installed_at, d.first_heard_at, d.retired_at,
                  (SELECT max(r.ts) FROM readings r
                   WHERE r.home_id = d.home_id AND r.device_id = d.id) AS last_seen,
                  (SELECT r.value FROM readings r WHERE r.home_id = d.home_id
                     AND r.device_id = d.id AND r.metric = 'battery'
                   ORDER BY r.ts DESC LIMIT 1) AS battery
           FROM devices d JOIN homes h ON h.id = d.home_id
           JOIN regions v ON v.id = h.village_id LEFT JOIN elders e ON e.home_id = h.id
           WHERE {where} AND (%(home)s::text IS NULL OR d.home_id = %(home)s)
             AND (%(device)s::text IS NULL OR d.id = %(device)s)
             AND (d.retired_at IS NULL OR %(device)s::text IS NOT NULL)
             AND (%(region)s::text IS NULL OR h.village_id = %(region)s
                  OR v.parent_id = %(region)s
                  OR v.parent_id IN (SELECT id FROM regions WHERE parent_id = %(region)s))
           ORDER BY d.home_id, d.id""",
    )
    out = []
    for r in await fetch_dicts(conn, query, params):
        spec = CATALOGUE.get(r["kind"])
        heartbeat = timedelta(seconds=(spec.heartbeat_s if spec else 3600))
        seen = r["last_seen"]
        online = seen is not None and now - seen <= heartbeat * OFFLINE_AFTER_HEARTBEATS
        out.append(Device(**r, title=spec.title if spec else r["kind"], online=online))
    return out


async def device_in_scope(conn: Conn, f: HomeFilter, device_id: str) -> str | None:
    """The home of `device_id` if the filter lets it through (retired or not), else None."""
    query = compose(
        f,
        "SELECT d.home_id FROM devices d JOIN homes h ON h.id = d.home_id"
        " WHERE {where} AND d.id = %(device)s",
    )
    rows = await fetch_dicts(conn, query, {**f.params, "device": device_id})
    return str(rows[0]["home_id"]) if rows else None
