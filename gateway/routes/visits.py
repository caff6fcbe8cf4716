"""Care visits: an elder's visits and recording one, the visits in the caller's region, and
each week's visits of elders living alone against the target."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from fastapi import APIRouter

from alerts.care import VISITS_PER_WEEK, week_start
from gateway import access
from gateway.access import Area
from gateway.deps import ApiUser, Clock, Ctx, Db
from gateway.errors import ApiError
from gateway.lookup import audited_elder, elder_or_404
from gateway.params import MAX_RANGE, Limit, Offset, time_range
from gateway.queries import care
from gateway.schemas.care import Compliance, ComplianceRow, VillageCompliance, Visit, VisitIn
from gateway.schemas.common import Page

router = APIRouter(prefix="/api/v1", tags=["visits"])


@router.get("/elders/{elder_id}/visits")
async def elder_visits(
    elder_id: str,
    principal: ApiUser,
    conn: Db,
    clock: Clock,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[Visit]:
    """Care visits to the elder in [start, end) (default: last 31 days), newest first."""
    start, end = time_range(start, end, clock(), MAX_RANGE)
    await audited_elder(conn, principal, elder_id, "visits")
    rows, total = await care.visits(
        conn,
        access.home_filter(principal),
        start,
        end,
        elder_id=elder_id,
        limit=limit,
        offset=offset,
    )
    return Page[Visit].of([Visit.model_validate(v) for v in rows], total, limit, offset)


@router.post("/elders/{elder_id}/visits", status_code=201)
async def record_visit(
    elder_id: str, body: VisitIn, principal: ApiUser, conn: Db, clock: Clock
) -> Visit:
    """Record a care visit by the signed-in staff member (default: now)."""
    access.need(principal, Area.CARE)
    now = clock()
    at = body.visited_at or now
    if at > now + timedelta(minutes=5):
        raise ApiError(422, "invalid_request", "visited_at is in the future")
    await elder_or_404(conn, principal, elder_id)
    visit_id = await care.add_visit(
        conn, elder_id, principal.user_id, at, body.source, body.note, principal.user_id
    )
    found = await care.visit(conn, access.home_filter(principal), visit_id)
    assert found is not None
    return Visit.model_validate(found)


@router.get("/visits")
async def list_visits(
    principal: ApiUser,
    conn: Db,
    clock: Clock,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[Visit]:
    """Care visits in the caller's region in [start, end) (default: last 7 days) (staff)."""
    access.need(principal, Area.CARE)
    start, end = time_range(start, end, clock(), timedelta(days=7))
    rows, total = await care.visits(
        conn,
        access.home_filter(principal),
        start,
        end,
        elder_id=None,
        limit=limit,
        offset=offset,
    )
    return Page[Visit].of([Visit.model_validate(v) for v in rows], total, limit, offset)


@router.get("/visits/compliance")
async def compliance(
    principal: ApiUser,
    conn: Db,
    ctx: Ctx,
    week: date | None = None,
    village: str | None = None,
    all_elders: bool = False,
) -> Compliance:
    """Elders living alone below the target of visits in the week (Monday; default this
    week), grouped by village; `all_elders=true` lists everyone (staff)."""
    access.need(principal, Area.CARE)
    start = week_start(week or ctx.clock().astimezone(ctx.local_tz).date())
    rows = await care.compliance(conn, access.home_filter(principal), start, village)
    villages: dict[str, VillageCompliance] = {}
    for r in rows:
        v = villages.setdefault(
            r.village_id,
            VillageCompliance(village_id=r.village_id, village=r.village, elders=0, below=[]),
        )
        v.elders += 1
        if all_elders or (r.visits < VISITS_PER_WEEK and not r.away):
            v.below.append(ComplianceRow.model_validate(r))
    return Compliance(week_start=start, target=VISITS_PER_WEEK, villages=list(villages.values()))
