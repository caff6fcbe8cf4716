"""The on-duty rota: the shifts a staff member may read, the whole rota's coverage, and
adding and removing shifts (district staff and operators)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from alerts.escalate import rota
from gateway import access
from gateway.access import Area
from gateway.auth import Principal
from gateway.deps import ApiUser, Clock, Db
from gateway.errors import ApiError
from gateway.params import MAX_RANGE, time_range
from gateway.queries import care
from gateway.queries.base import Conn
from gateway.schemas.care import (
    Coverage,
    CoverageGap,
    CoverageShift,
    Removed,
    Rota,
    RotaShift,
    ShiftBody,
)
from gateway.schemas.common import Created

router = APIRouter(prefix="/api/v1/rota", tags=["rota"])

EDITORS = frozenset({"district_staff", "operator"})
"""Roles that keep the whole rota."""


@dataclass(frozen=True, slots=True)
class PageGap:
    """An uncovered stretch as the rota page shows it."""

    tier: str
    region: str
    """The region's name ("" for the operator tier, which covers every region)."""
    starts_at: datetime
    ends_at: datetime
    open_ended: bool
    """It goes on past the end of the time looked at."""


async def page_gaps(
    conn: Conn, principal: Principal, start: datetime, end: datetime
) -> list[PageGap]:
    """The uncovered stretches of [start, end) the caller may see: every region's and the
    operator tier's for those who keep the whole rota, else those of the regions whose rota
    they read (their subtree and the tiers above)."""
    gaps = await rota.coverage_gaps(conn, start, end)
    visible = (
        access.region_filter(principal)  # every region
        if principal.role == "operator"
        else access.rota_filter(principal, "r.id")
    )
    names = await care.rota_regions(conn, visible)
    keep = principal.role in EDITORS
    return [
        PageGap(
            g.tier,
            "" if g.region_id == "*" else names.get(g.region_id, g.region_id),
            g.starts_at,
            g.ends_at,
            g.ends_at >= end,
        )
        for g in gaps
        if g.region_id in names or (keep and g.region_id == "*")
    ]


@router.get("")
async def get_rota(
    principal: ApiUser,
    conn: Db,
    clock: Clock,
    start: datetime | None = None,
    end: datetime | None = None,
    region: str | None = None,
) -> Rota:
    """Shifts overlapping [start, end) (default: the next 7 days) in the caller's regions
    and the tiers above them (staff)."""
    access.need(principal, Area.CARE)
    now = clock()
    start, end = time_range(start or now, end or (start or now) + timedelta(days=7), now, MAX_RANGE)
    rows = await care.rota(conn, access.rota_filter(principal), start, end, region)
    return Rota(
        items=[
            RotaShift(**dataclasses.asdict(s), on_duty_now=s.starts_at <= now < s.ends_at)
            for s in rows
        ]
    )


@router.get("/coverage")
async def rota_coverage(
    principal: ApiUser,
    conn: Db,
    clock: Clock,
    region: str | None = None,
    hours: Annotated[float, Query(gt=0, le=24 * 62)] = 48,
) -> Coverage:
    """Shifts of every region from now for `hours`, who is on duty now, and the uncovered
    stretches (district staff and operators, who keep the whole rota; others read their own
    regions' shifts at GET /api/v1/rota)."""
    if principal.role not in EDITORS:
        raise ApiError(403, "forbidden", "rota coverage is for district staff and operators")
    now = clock()
    shifts = await rota.list_shifts(conn, now, now + timedelta(hours=hours), region)
    gaps = await rota.coverage_gaps(conn, now, now + timedelta(hours=hours))
    return Coverage(
        shifts=[CoverageShift.of(s) for s in shifts],
        on_duty_now=[CoverageShift.of(s) for s in shifts if s.starts_at <= now < s.ends_at],
        gaps=[
            CoverageGap.model_validate(g) for g in gaps if region is None or g.region_id == region
        ],
    )


@router.post("", status_code=201)
async def add_shift(body: ShiftBody, principal: ApiUser, conn: Db) -> Created:
    """Add a shift (district staff and operators)."""
    if principal.role not in EDITORS:
        raise ApiError(403, "forbidden", "only district staff and operators edit the rota")
    try:
        shift_id = await rota.add_shift(
            conn, body.user, body.region_id, body.starts_at, body.ends_at
        )
    except rota.RotaError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None
    return Created(id=shift_id)


@router.delete("/{shift_id}")
async def remove_shift(shift_id: int, principal: ApiUser, conn: Db) -> Removed:
    """Remove a shift (district staff and operators)."""
    if principal.role not in EDITORS:
        raise ApiError(403, "forbidden", "only district staff and operators edit the rota")
    if not await rota.remove_shift(conn, shift_id):
        raise ApiError(404, "not_found", f"no shift {shift_id}")
    return Removed(removed=shift_id)
