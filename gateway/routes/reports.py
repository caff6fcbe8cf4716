"""Reports: the monthly alert KPIs of a region, and the monthly report for civil affairs
as an Excel workbook."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from alerts import kpi, monthly, monthly_book
from gateway.deps import ApiUser, Ctx, Db
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


_IN_SUBTREE = """
WITH RECURSIVE subtree(id) AS (
    SELECT id FROM regions WHERE id = %(top)s
    UNION
    SELECT r.id FROM regions r JOIN subtree s ON r.parent_id = s.id
)
SELECT 1 FROM subtree WHERE id = %(region)s
"""


class XlsxResponse(Response):
    """An Excel workbook."""

    media_type = monthly_book.XLSX_TYPE


@router.get(
    "/monthly.xlsx",
    response_class=XlsxResponse,
    responses={
        200: {
            "content": {monthly_book.XLSX_TYPE: {"schema": {"type": "string", "format": "binary"}}},
            "description": "the workbook",
        }
    },
)
async def monthly_report(
    principal: ApiUser,
    conn: Db,
    ctx: Ctx,
    month: Annotated[str, Query(pattern=r"^\d{4}-\d{2}$", description="e.g. 2026-11")],
    region: Annotated[
        str | None, Query(description="a region in the caller's own (default: theirs)")
    ] = None,
    locale: Annotated[
        Literal["zh", "en"] | None, Query(description="default: the deployment's language")
    ] = None,
) -> Response:
    """The month's report for civil affairs as an .xlsx workbook (staff: their region or one
    inside it): visits per elder and week against the 3-a-week rule, alerts by kind and
    outcome, the emergencies' time to acknowledge against the TSA standard, false-alarm
    shares; in the deployment's time zone."""
    if not principal.is_staff or principal.region_id is None:
        raise ApiError(403, "forbidden", "reports are for staff")
    region = region or principal.region_id
    cur = await conn.execute(_IN_SUBTREE, {"top": principal.region_id, "region": region})
    if await cur.fetchone() is None:
        raise ApiError(404, "not_found", f"no region {region!r} in your area")
    try:
        period = monthly.month_in(month, ctx.local_tz)
    except ValueError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None
    report = await monthly.fetch(conn, region, period, ctx.clock())
    body = monthly_book.xlsx_bytes(report, locale or ctx.default_locale)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"eldercare-{region}-{month}.xlsx")
    return XlsxResponse(
        body,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )
