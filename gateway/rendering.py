"""Rendering the server-side pages: the templates, in the signed-in person's language, with
readable ages and local times."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates

from alerts.notify import messages
from gateway.auth import Principal
from gateway.i18n import translator

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
"""The pages' Jinja templates (`gateway/templates`)."""


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


def local_time(value: datetime | None, tz: str) -> str:
    """`value` as `YYYY-MM-DD HH:MM` in time zone `tz` ("—" for none)."""
    if value is None:
        return "—"
    return value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


def render(
    request: Request,
    name: str,
    principal: Principal,
    at: datetime,
    http_status: int = 200,
    **context: Any,
) -> Response:
    """Template `name` for `principal` in their language, with ages as of `at` (the
    template's own variables in `context`)."""
    t = translator(principal.locale)
    zone = _deployment_zone(request)
    return TEMPLATES.TemplateResponse(
        request,
        name,
        {
            "principal": principal,
            "t": t,
            "locale": principal.locale,
            "age": lambda value: age_text(value, at, t),
            "local": lambda value, tz=zone.key: local_time(value, tz),
            "tz_label": tz_label(zone.key, principal.locale),
            "deployment_tz": zone.key,
            "is_staff": principal.is_staff,
            **context,
        },
        status_code=http_status,
    )


def _deployment_zone(request: Request) -> ZoneInfo:
    state = getattr(request.app.state, "gateway", None)
    return state.ctx.local_tz if state is not None else ZoneInfo("Asia/Shanghai")


def tz_label(zone: str, locale: str) -> str:
    """How a page labels its times: as notifications name the zone in Chinese ("北京时间"),
    "China time" in English for Asia/Shanghai, else the zone's name."""
    if locale == "zh":
        return messages.zone_label("zh", zone)
    return "China time" if zone == "Asia/Shanghai" else zone


def not_found(request: Request, principal: Principal, at: datetime) -> Response:
    """The page's "not found" answer (404)."""
    return render(request, "not_found.html", principal, at, 404)


def login_words(request: Request) -> dict[str, Any]:
    """The sign-in page's language (`?lang=` or the browser's) and its translator."""
    wanted = request.query_params.get("lang") or request.headers.get("accept-language", "")
    if not wanted:
        state = getattr(request.app.state, "gateway", None)
        wanted = state.ctx.default_locale if state is not None else "zh"
    locale = "zh" if wanted.lower().startswith("zh") else "en"
    return {"t": translator(locale), "locale": locale}
