"""The daily summary a family member chooses: the hour (on their elder's home clock) and
the channels (`alerts.digest` sends it)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from gateway.deps import ApiUser, Db
from gateway.errors import ApiError
from gateway.queries.base import Conn
from gateway.schemas.common import Schema

router = APIRouter(prefix="/api/v1/me", tags=["family"])

SummaryChannel = Literal["email", "webpush"]


class DailySummaryBody(BaseModel):
    """`hour` 0-23 on the elder's home clock (null: no summary) and the channels."""

    hour: int | None = Field(ge=0, le=23)
    channels: list[SummaryChannel] = Field(default=["email", "webpush"], max_length=2)


class DailySummary(Schema):
    """A family member's daily summary: when, over which channels, on which clock, and
    which of those channels they have (an e-mail address, a subscribed browser)."""

    hour: int | None
    channels: list[str]
    timezone: str | None
    reachable: list[str]


async def read(conn: Conn, user_id: int) -> DailySummary:
    """A person's daily summary setting."""
    cur = await conn.execute(
        "SELECT u.summary_hour, u.summary_channels,"
        " (SELECT h.timezone FROM family_links f JOIN elders e ON e.id = f.elder_id"
        "  JOIN homes h ON h.id = e.home_id WHERE f.user_id = u.id ORDER BY e.id LIMIT 1),"
        " ARRAY(SELECT DISTINCT c.channel FROM contact_channels c WHERE c.user_id = u.id"
        "  AND c.channel IN ('email', 'webpush') ORDER BY 1)"
        " FROM users u WHERE u.id = %s",
        (user_id,),
    )
    row = await cur.fetchone()
    assert row is not None  # the signed-in user exists
    hour, channels, tz, reachable = row
    return DailySummary(hour=hour, channels=list(channels), timezone=tz, reachable=list(reachable))


def _family_only(principal: ApiUser) -> None:
    if principal.role != "family":
        raise ApiError(403, "forbidden", "the daily summary is for family members")


@router.get("/daily-summary")
async def get_daily_summary(principal: ApiUser, conn: Db) -> DailySummary:
    """The caller's daily summary setting (family members)."""
    _family_only(principal)
    return await read(conn, principal.user_id)


@router.put("/daily-summary")
async def set_daily_summary(body: DailySummaryBody, principal: ApiUser, conn: Db) -> DailySummary:
    """Choose the hour (0-23, the elder's home time; null stops it) and the channels
    (`email`, `webpush`) of the caller's daily summary (family members). Sent once a day
    from that hour on; a new hour already past today sends today's at once."""
    _family_only(principal)
    if body.hour is not None and not body.channels:
        raise ApiError(422, "invalid_request", "choose at least one channel, or hour null")
    await conn.execute(
        "UPDATE users SET summary_hour = %s, summary_channels = %s WHERE id = %s",
        (body.hour, list(dict.fromkeys(body.channels)), principal.user_id),
    )
    return await read(conn, principal.user_id)
