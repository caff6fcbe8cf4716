"""Reports: the monthly alert KPIs of a region."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from alerts import kpi
from gateway.deps import ApiUser, Db
from gateway.errors import ApiError
from gateway.schemas.alerts import KpiReport, KpiRow

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])


@router.get("/alerts")
async def kpi_report(
    principal: ApiUser,
    conn: Db,
    month: Annotated[str, Query(pattern=r"^\d{4}-\d{2}$")],
    region: str | None = None,
) -> KpiReport:
    """The month's alert KPIs: total, per kind, per town, per village (staff: their region)."""
    if not principal.is_staff:
        raise ApiError(403, "forbidden", "reports are for staff")
    region = region or principal.region_id
    if region != principal.region_id and principal.role != "district_staff":
        raise ApiError(403, "forbidden", "you may report on your own region only")
    try:
        rows = await kpi.report(conn, month, region)
    except ValueError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None
    return KpiReport(month=month, region=region, rows=[KpiRow.model_validate(r) for r in rows])
