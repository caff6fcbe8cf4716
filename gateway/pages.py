"""The web pages: the staff console (alerts, elders, devices, rota, care visits) and the
family page. Server-rendered, in the signed-in person's language; no external assets."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from psycopg_pool import AsyncConnectionPool

from alerts import store
from alerts.care import VISITS_PER_WEEK, week_start
from alerts.model import Alert, Severity, Status
from gateway import access, queries
from gateway.access import Area
from gateway.api import elder_status, local_day
from gateway.auth import Principal, scope_for
from gateway.i18n import messages, translator

CONSOLE_LIMIT = 200
_SEVERITY_ORDER = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}
_STATUS_ORDER = {Status.OPEN: 0, Status.ACKNOWLEDGED: 1, Status.RESOLVED: 2}
_JS_KEYS = (
    "critical",
    "warning",
    "info",
    "open",
    "acknowledged",
    "resolved",
    "acknowledge",
    "resolve",
    "no_open_alerts",
    "live",
    "connecting",
    "reconnecting",
    "just_now",
    "min",
    "h",
    "d",
    "alerts_title",
    "error_outcome",
    "sos",
    "care_visits",
)
PagePrincipal = Callable[[Request], Awaitable[Principal | None]]
SameOrigin = Callable[[Request], bool]


def age_text(since: datetime, now: datetime, t: Callable[..., str] | None = None) -> str:
    """A short, readable age: "just now", "3 min", "2 h 5 min", "3 d"."""
    t = t or translator("en")
    minutes = int((now - since).total_seconds() // 60)
    if minutes < 1:
        return t("just_now")
    if minutes < 60:
        return f"{minutes} {t('min')}"
    hours, rest = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} {t('h')} {rest} {t('min')}" if rest else f"{hours} {t('h')}"
    return f"{hours // 24} {t('d')}"


def console_order(alert: Alert) -> tuple[int, int, int]:
    """Sort key of the console: open first, then most severe, then newest."""
    return (_STATUS_ORDER[alert.status], _SEVERITY_ORDER[alert.severity], -alert.id)


def build_pages(
    pool: AsyncConnectionPool[Any],
    templates: Jinja2Templates,
    page_principal: PagePrincipal,
    same_origin: SameOrigin,
    alert_json: Callable[[Alert], dict[str, Any]],
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> APIRouter:
    """Routes of the console and family pages (cookie sessions; redirect to sign-in)."""
    router = APIRouter(include_in_schema=False)

    def render(
        request: Request, name: str, principal: Principal, http_status: int = 200, **context: Any
    ) -> Response:
        t = translator(principal.locale)
        now = clock()
        return templates.TemplateResponse(
            request,
            name,
            {
                "principal": principal,
                "t": t,
                "locale": principal.locale,
                "age": lambda value: age_text(value, now, t),
                "local": lambda value, tz="Asia/Shanghai": _local(value, tz),
                "is_staff": principal.is_staff,
                **context,
            },
            status_code=http_status,
        )

    def not_found(request: Request, principal: Principal) -> Response:
        return render(request, "not_found.html", principal, 404)

    async def signed_in(request: Request) -> Principal | Response:
        principal = await page_principal(request)
        if principal is None:
            return RedirectResponse("/login", 303)
        return principal

    @router.get("/console")
    async def console(request: Request) -> Response:
        principal = await signed_in(request)
        if isinstance(principal, Response):
            return principal
        if principal.role == "family":
            return RedirectResponse("/family", 303)
        async with pool.connection() as conn:
            alerts = await store.list_alerts(
                conn, scope_for(principal), [Status.OPEN, Status.ACKNOWLEDGED], CONSOLE_LIMIT
            )
        alerts.sort(key=console_order)
        return render(
            request,
            "console.html",
            principal,
            alerts=alerts,
            alerts_json=[alert_json(a) for a in alerts],
            can_ack=principal.is_staff,
            open_count=sum(a.status is Status.OPEN for a in alerts),
            js_messages=messages(principal.locale, _JS_KEYS),
            outcomes=store.OUTCOMES,
        )

    @router.get("/console/elders")
    async def elders_page(request: Request, q: str | None = None) -> Response:
        principal = await signed_in(request)
        if isinstance(principal, Response):
            return principal
        if not access.may(principal, Area.HEALTH):
            return not_found(request, principal)
        async with pool.connection() as conn:
            rows, _ = await queries.elders(
                conn, access.home_filter(principal), None, (q or "")[:80] or None, 500, 0
            )
        return render(request, "elders.html", principal, elders=rows, q=q or "")

    @router.get("/console/elders/{elder_id}")
    async def elder_page(request: Request, elder_id: str) -> Response:
        principal = await signed_in(request)
        if isinstance(principal, Response):
            return principal
        if not access.may(principal, Area.HEALTH):
            return not_found(request, principal)
        now = clock()
        async with pool.connection() as conn:
            elder = await queries.elder(conn, access.home_filter(principal), elder_id)
            if elder is None:
                return not_found(request, principal)
            await queries.audit_health_read(conn, principal.user_id, elder_id, "file", {})
            status = await elder_status(conn, principal, elder, now)
            scope = dataclasses.replace(scope_for(principal), home_ids=(elder.home_id,))
            history = await store.list_alerts(conn, scope, list(Status), 30)
            visits, _ = await queries.visits(
                conn,
                access.home_filter(principal),
                now - timedelta(days=31),
                now + timedelta(minutes=5),
                elder_id=elder_id,
                limit=20,
                offset=0,
            )
        return render(
            request,
            "elder.html",
            principal,
            elder=elder,
            status=status,
            history=history,
            visits=visits,
            saved=request.query_params.get("saved") == "1",
        )

    @router.post("/console/elders/{elder_id}/visits")
    async def record_visit_form(
        request: Request,
        elder_id: str,
        note: Annotated[str, Form(max_length=2000)] = "",
        source: Annotated[str, Form(max_length=10)] = "console",
    ) -> Response:
        principal = await signed_in(request)
        if isinstance(principal, Response):
            return principal
        if not same_origin(request) or not access.may(principal, Area.CARE):
            return render(request, "not_found.html", principal, 403)
        async with pool.connection() as conn:
            elder = await queries.elder(conn, access.home_filter(principal), elder_id)
            if elder is None:
                return not_found(request, principal)
            await queries.add_visit(
                conn,
                elder_id,
                principal.user_id,
                clock(),
                "phone" if source == "phone" else "console",
                note,
                principal.user_id,
            )
        return RedirectResponse(f"/console/elders/{elder_id}?saved=1", 303)

    @router.get("/console/devices")
    async def devices_page(request: Request, offline: bool = False) -> Response:
        principal = await signed_in(request)
        if isinstance(principal, Response):
            return principal
        if not access.may(principal, Area.DEVICES):
            return not_found(request, principal)
        async with pool.connection() as conn:
            rows = await queries.devices(conn, access.home_filter(principal), clock())
        if offline:
            rows = [d for d in rows if not d.online]
        return render(
            request,
            "devices.html",
            principal,
            devices=rows,
            offline=offline,
            show_elder=access.may(principal, Area.HEALTH),
            offline_count=sum(not d.online for d in rows),
        )

    @router.get("/console/rota")
    async def rota_page(request: Request) -> Response:
        principal = await signed_in(request)
        if isinstance(principal, Response):
            return principal
        if not access.may(principal, Area.CARE):
            return not_found(request, principal)
        now = clock()
        async with pool.connection() as conn:
            rows = await queries.rota(
                conn, access.rota_filter(principal), now, now + timedelta(days=7), None
            )
        return render(request, "rota.html", principal, shifts=rows, now=now)

    @router.get("/console/visits")
    async def visits_page(request: Request) -> Response:
        principal = await signed_in(request)
        if isinstance(principal, Response):
            return principal
        if not access.may(principal, Area.CARE):
            return not_found(request, principal)
        now = clock()
        week = week_start(now.date())
        async with pool.connection() as conn:
            rows = await queries.compliance(conn, access.home_filter(principal), week, None)
            recent, _ = await queries.visits(
                conn,
                access.home_filter(principal),
                now - timedelta(days=7),
                now + timedelta(minutes=5),
                elder_id=None,
                limit=50,
                offset=0,
            )
        below: dict[str, list[queries.Compliance]] = {}
        for r in rows:
            if r.visits < VISITS_PER_WEEK and not r.away:
                below.setdefault(r.village, []).append(r)
        return render(
            request,
            "visits.html",
            principal,
            week=week,
            below=below,
            target=VISITS_PER_WEEK,
            recent=recent,
        )

    @router.get("/family")
    async def family_home(request: Request) -> Response:
        principal = await signed_in(request)
        if isinstance(principal, Response):
            return principal
        if principal.role != "family":
            return RedirectResponse("/console", 303)
        async with pool.connection() as conn:
            rows, _ = await queries.elders(conn, access.home_filter(principal), None, None, 50, 0)
        if len(rows) == 1 and rows[0].elder_id:
            return RedirectResponse(f"/family/{rows[0].elder_id}", 303)
        return render(request, "family_list.html", principal, elders=rows)

    @router.get("/family/{elder_id}")
    async def family_page(request: Request, elder_id: str) -> Response:
        principal = await signed_in(request)
        if isinstance(principal, Response):
            return principal
        if not access.may(principal, Area.HEALTH):
            return not_found(request, principal)
        now = clock()
        async with pool.connection() as conn:
            elder = await queries.elder(conn, access.home_filter(principal), elder_id)
            if elder is None:
                return not_found(request, principal)
            await queries.audit_health_read(conn, principal.user_id, elder_id, "status", {})
            status = await elder_status(conn, principal, elder, now)
            scope = dataclasses.replace(scope_for(principal), home_ids=(elder.home_id,))
            open_alerts = await store.list_alerts(
                conn, scope, [Status.OPEN, Status.ACKNOWLEDGED], 20
            )
            past = await store.list_alerts(conn, scope, [Status.RESOLVED], 10)
        t = translator(principal.locale)
        return render(
            request,
            "family.html",
            principal,
            elder=elder,
            status=status,
            open_alerts=open_alerts,
            past_alerts=past,
            device_lines=[_device_line(d, elder.timezone, t) for d in status.devices],
            day_start=local_day(elder.timezone, None, now)[0],
        )

    @router.post("/locale")
    async def locale_form(
        request: Request, locale: Annotated[str, Form(max_length=5)] = "en"
    ) -> Response:
        principal = await signed_in(request)
        if isinstance(principal, Response):
            return principal
        if same_origin(request) and locale in ("en", "zh"):
            async with pool.connection() as conn:
                await queries.set_locale(conn, principal.user_id, locale)
        back = request.headers.get("referer", "")
        target = "/family" if principal.role == "family" else "/console"
        if back.startswith(str(request.base_url)):
            target = "/" + back[len(str(request.base_url)) :]
        return RedirectResponse(target, 303)

    return router


def _local(value: datetime | None, tz: str) -> str:
    if value is None:
        return "—"
    return value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


@dataclasses.dataclass(frozen=True, slots=True)
class DeviceLine:
    """A device described in plain words."""

    ok: bool
    text: str


def _device_line(d: queries.Device, tz: str, t: Callable[..., str]) -> DeviceLine:
    title, room = t(d.kind), t(d.room) if d.room else ""
    if d.last_seen is None:
        text = t("device_never", title=title, room=room)
    elif d.online:
        text = t("device_ok", title=title, room=room)
    else:
        text = t("device_silent", title=title, room=room, since=_local(d.last_seen, tz))
    low = d.battery is not None and d.battery < 20
    if low:
        text += "; " + t("battery_low", level=round(d.battery or 0))
    return DeviceLine(d.online and not low, text)
