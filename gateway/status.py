"""An elder at a glance, for the API and the pages: presence, last activity, temperature,
today's summary and the devices, from the home's readings."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from gateway import access, family
from gateway.auth import Principal
from gateway.queries import devices, readings
from gateway.queries.base import Conn
from gateway.queries.devices import Device
from gateway.queries.elders import Elder


def local_day(tz_name: str, day: date | None, now: datetime) -> tuple[datetime, datetime, date]:
    """[start, end) of `day` (default: today) in the home's time zone, and the date."""
    tz = ZoneInfo(tz_name)
    day = day or now.astimezone(tz).date()
    start = datetime.combine(day, time(), tzinfo=tz)
    return start, start + timedelta(days=1), day


@dataclasses.dataclass(frozen=True, slots=True)
class ElderStatus:
    """What the family page shows at a glance."""

    elder_id: str
    name: str
    presence: str
    last_activity: family.LastActivity | None
    temperature: float | None
    day: date
    summary: family.DaySummary
    devices: list[Device]
    as_of: datetime


async def elder_status(
    conn: Conn, principal: Principal, elder: Elder, now: datetime
) -> ElderStatus:
    """Presence, last activity, temperature, today's summary and devices of an elder."""
    start, end, day = local_day(elder.timezone, None, now)
    latest = await readings.latest_events(conn, elder.home_id, now - family.STALE_AFTER)
    todays = await readings.events(conn, elder.home_id, start, end)
    devs = await devices.devices(conn, access.home_filter(principal), now, home_id=elder.home_id)
    return ElderStatus(
        elder_id=elder.id,
        name=elder.full_name,
        presence=family.presence(latest, now).value,
        last_activity=family.last_activity(latest),
        temperature=family.temperature(latest),
        day=day,
        summary=family.summarise(todays, start, end),
        devices=devs,
        as_of=now,
    )
