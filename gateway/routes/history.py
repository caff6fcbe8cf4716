"""Alert history: every alert the caller may see, filtered by region, kind, outcome, status
and opening day (in the deployment's time zone), as JSON, as CSV and as a console page."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from alerts import views
from alerts.model import Alert, Status
from gateway import access
from gateway.auth import Principal, scope_for
from gateway.deps import ApiUser, Clock, Ctx, Db, PageUser
from gateway.errors import ApiError
from gateway.i18n import translator
from gateway.params import Before, Limit
from gateway.privacy.reads import audit_list_read
from gateway.queries import places
from gateway.rendering import not_found, render, tz_label
from gateway.schemas.alerts import AlertList

router = APIRouter()


class CsvResponse(StreamingResponse):
    """A streamed CSV document."""

    media_type = "text/csv"


CSV_MAX_ROWS = 20_000
"""The most rows one CSV export holds (narrow the filter for more)."""

Kinds = Annotated[list[str] | None, Query(alias="kind", max_length=40)]
Outcomes = Annotated[list[str] | None, Query(alias="outcome", max_length=40)]
StatusList = Annotated[list[Status] | None, Query(alias="status")]
Region = Annotated[str | None, Query(max_length=40, description="a district, town or village")]
Day = Annotated[date | None, Query(description="a day, YYYY-MM-DD, in the deployment's zone")]


@dataclass(frozen=True, slots=True)
class _Wanted:
    filter: views.HistoryFilter
    zone: ZoneInfo


def _wanted(
    ctx_zone: ZoneInfo,
    region: str | None,
    kind: list[str] | None,
    outcome: list[str] | None,
    status: list[Status] | None,
    day_from: date | None,
    day_to: date | None,
) -> _Wanted:
    if day_from and day_to and day_to < day_from:
        raise ApiError(422, "invalid_request", "to: must not be before from")

    def start(day: date | None) -> datetime | None:
        return None if day is None else datetime.combine(day, time(), ctx_zone)

    return _Wanted(
        views.HistoryFilter(
            region_id=region or None,
            kinds=tuple(k for k in kind or () if k),
            outcomes=tuple(o for o in outcome or () if o),
            statuses=tuple(status or ()),
            opened_from=start(day_from),
            opened_to=start(day_to + timedelta(days=1) if day_to else None),
        ),
        ctx_zone,
    )


def _may_see(principal: Principal) -> None:
    if principal.role == "family":
        raise ApiError(403, "forbidden", "the alert history is for staff and operators")


@router.get("/api/v1/alerts/history", tags=["alerts"])
async def history(
    principal: ApiUser,
    ctx: Ctx,
    conn: Db,
    region: Region = None,
    kind: Kinds = None,
    outcome: Outcomes = None,
    status: StatusList = None,
    day_from: Annotated[date | None, Query(alias="from")] = None,
    day_to: Annotated[date | None, Query(alias="to")] = None,
    limit: Limit = 100,
    before: Before = None,
) -> AlertList:
    """Alerts the caller may see, any status, newest first, filtered; `from`/`to` are days
    (inclusive) in the deployment's time zone. Page with `before=<next_before>`."""
    _may_see(principal)
    wanted = _wanted(ctx.local_tz, region, kind, outcome, status, day_from, day_to)
    rows = await views.search_alerts(conn, scope_for(principal), wanted.filter, limit + 1, before)
    shown = rows[:limit]
    await audit_list_read(
        conn, principal.user_id, "alert_history", (a.elder_id for a in shown), len(shown)
    )
    return AlertList.of(rows, limit)


CSV_COLUMNS = (
    "id",
    "opened_at",
    "elder",
    "village",
    "home_id",
    "kind",
    "severity",
    "status",
    "summary",
    "acknowledged_at",
    "acknowledged_by",
    "en_route_at",
    "arrived_at",
    "resolved_at",
    "outcome",
    "minutes_to_acknowledge",
)


def _csv_row(a: Alert, zone: ZoneInfo) -> list[str]:
    def at(value: datetime | None) -> str:
        return "" if value is None else value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")

    took = (
        f"{(a.acknowledged_at - a.opened_at).total_seconds() / 60:.1f}" if a.acknowledged_at else ""
    )
    return [
        str(a.id),
        at(a.opened_at),
        a.elder_name or "",
        a.village or "",
        a.home_id or "",
        a.kind,
        a.severity.value,
        a.status.value,
        a.summary,
        at(a.acknowledged_at),
        a.acknowledged_by_name or "",
        at(a.en_route_at),
        at(a.arrived_at),
        at(a.resolved_at),
        a.outcome or "",
        took,
    ]


@router.get(
    "/api/v1/alerts/history.csv",
    tags=["alerts"],
    response_class=CsvResponse,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def history_csv(
    principal: ApiUser,
    ctx: Ctx,
    conn: Db,
    region: Region = None,
    kind: Kinds = None,
    outcome: Outcomes = None,
    status: StatusList = None,
    day_from: Annotated[date | None, Query(alias="from")] = None,
    day_to: Annotated[date | None, Query(alias="to")] = None,
) -> StreamingResponse:
    """The same filter as CSV (UTF-8 with BOM so spreadsheet programs read Chinese), times
    in the deployment's zone (named in the header), at most 20 000 rows, newest first."""
    _may_see(principal)
    wanted = _wanted(ctx.local_tz, region, kind, outcome, status, day_from, day_to)
    rows = await views.search_alerts(conn, scope_for(principal), wanted.filter, CSV_MAX_ROWS)
    await audit_list_read(
        conn, principal.user_id, "alert_history_csv", (a.elder_id for a in rows), len(rows)
    )

    async def body() -> AsyncIterator[bytes]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow([*CSV_COLUMNS[:1], f"opened_at ({wanted.zone.key})", *CSV_COLUMNS[2:]])
        yield ("\ufeff" + out.getvalue()).encode()
        for start in range(0, len(rows), 500):
            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerows(_csv_row(a, wanted.zone) for a in rows[start : start + 500])
            yield out.getvalue().encode()

    stamp = datetime.now(wanted.zone).strftime("%Y%m%d-%H%M")
    return CsvResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="alerts-{stamp}.csv"'},
    )


@router.get("/console/history", include_in_schema=False)
async def history_page(
    request: Request,
    principal: PageUser,
    clock: Clock,
    ctx: Ctx,
    conn: Db,
    region: str | None = None,
    kind: str | None = None,
    outcome: str | None = None,
    status: str | None = None,
    day_from: Annotated[str | None, Query(alias="from")] = None,
    day_to: Annotated[str | None, Query(alias="to")] = None,
) -> Response:
    """The alert history page: a filter form, the matching alerts, a CSV link."""
    if principal.role == "family":
        return not_found(request, principal, clock())
    t = translator(principal.locale)
    error = ""
    try:
        start = date.fromisoformat(day_from) if day_from else None
        end = date.fromisoformat(day_to) if day_to else None
        wanted = _wanted(
            ctx.local_tz,
            region,
            [kind] if kind else None,
            [outcome] if outcome else None,
            [Status(status)] if status else None,
            start,
            end,
        )
        rows = await views.search_alerts(conn, scope_for(principal), wanted.filter, 201)
    except (ValueError, ApiError):
        error = t("history_bad_filter")
        rows = []
    await audit_list_read(
        conn, principal.user_id, "history_page", (a.elder_id for a in rows[:200]), len(rows[:200])
    )
    regions = await places.regions(conn, access.region_filter(principal))
    query = str(request.url.query)
    return render(
        request,
        "history.html",
        principal,
        clock(),
        alerts=rows[:200],
        more=len(rows) > 200,
        regions=regions,
        chosen={
            "region": region or "",
            "kind": kind or "",
            "outcome": outcome or "",
            "status": status or "",
            "from": day_from or "",
            "to": day_to or "",
        },
        kinds=sorted({a.kind for a in rows} | {"sos", "fall", "inactivity", "not_up"}),
        outcomes=views.OUTCOMES,
        statuses=[s.value for s in Status],
        csv_url="/api/v1/alerts/history.csv" + (f"?{query}" if query else ""),
        error=error,
        zone_label=tz_label(ctx.local_tz.key, principal.locale),
    )
