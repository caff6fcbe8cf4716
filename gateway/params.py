"""Request parameters several routers share: list paging and time ranges."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import Query

from alerts.model import Status
from gateway.errors import ApiError

MAX_RANGE = timedelta(days=31)
"""The longest time range one request may ask for."""

Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0)]
Before = Annotated[int | None, Query(ge=1)]
"""Alert lists page by id: the next page starts before the last id of this one."""
Statuses = Annotated[list[Status] | None, Query()]


def time_range(
    start: datetime | None, end: datetime | None, now: datetime, default: timedelta
) -> tuple[datetime, datetime]:
    """[start, end) of a request: `end` defaults to now, `start` to `default` before `end`;
    both need a time zone, and at most `MAX_RANGE` apart (422 otherwise)."""
    end = end or now
    start = start or end - default
    for name, value in (("start", start), ("end", end)):
        if value.tzinfo is None:
            raise ApiError(422, "invalid_request", f"{name} needs a time zone (e.g. ...Z)")
    if end <= start:
        raise ApiError(422, "invalid_request", "end must be after start")
    if end - start > MAX_RANGE:
        raise ApiError(422, "invalid_request", f"ask for at most {MAX_RANGE.days} days at once")
    return start, end
