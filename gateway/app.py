"""The HTTP front door: builds the app from the routers in `gateway.routes` (REST API, live
alert stream, ack links, staff console and family pages, health, metrics), the middleware
and the one error shape."""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.auth import Authenticator
from gateway.context import AppContext, GatewayState
from gateway.deps import SignInRequired
from gateway.errors import ApiError, error_response
from gateway.observe import GatewayMetrics, ObserveMiddleware
from gateway.routes import (
    ack_links,
    admin,
    admin_import,
    admin_pages,
    admin_people,
    alerts,
    api_docs,
    auth,
    console,
    daily_summary,
    device_admin,
    elders,
    family,
    history,
    homes,
    invite_page,
    login,
    mutes,
    operations,
    privacy,
    push,
    regions,
    reports,
    rota,
    visits,
    voice,
)

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
ROUTERS = (
    operations.router,
    auth.router,
    history.router,  # before alerts: /api/v1/alerts/history is not an alert id
    alerts.router,
    regions.router,
    homes.router,
    device_admin.router,
    elders.router,
    privacy.router,
    visits.router,
    rota.router,
    mutes.router,
    reports.router,
    push.router,
    daily_summary.router,
    admin.router,
    admin_import.router,
    admin_people.router,
    ack_links.router,
    voice.router,  # the voice provider's receipts: press 1 acknowledges
    login.router,
    console.router,
    admin_pages.router,
    invite_page.router,
    family.router,
    api_docs.router,
)
"""Every router of the app, in the order they are matched."""

_ERROR_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
}


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    code = _ERROR_CODES.get(exc.status_code, f"http_{exc.status_code}")
    return error_response(exc.status_code, code, str(exc.detail), exc.headers)


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    details = [
        {
            "field": ".".join(str(p) for p in err.get("loc", ())),
            "message": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in exc.errors()
    ]
    fields = ", ".join(d["field"] for d in details) or "the request"
    return error_response(
        422, "invalid_request", f"invalid request: check {fields}", details=details
    )


async def _db_down(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable: %s", exc)
    return error_response(
        503, "unavailable", "the database is unavailable; try again shortly", {"Retry-After": "5"}
    )


async def _bad_value(request: Request, exc: Exception) -> JSONResponse:
    # A value the database cannot take (e.g. a NUL byte in a text parameter): the request's
    # fault, not the service's.
    log.info("rejected a value the database refused: %s", exc)
    return error_response(
        422, "invalid_request", f"a value in the request cannot be stored or searched: {exc}"
    )


async def _sign_in_first(request: Request, exc: Exception) -> Response:
    return RedirectResponse("/login", 303)


def create_app(ctx: AppContext) -> FastAPI:
    """Build the gateway's ASGI app on resources owned by the caller.

    Registers the gateway's metrics in `ctx.metrics` (so call it once per registry)."""
    metrics = GatewayMetrics(ctx.metrics, ctx.broadcaster)
    app = FastAPI(
        title="Eldercare gateway",
        version="1",
        docs_url=None,  # gateway.routes.api_docs: Swagger UI from the service's own files
        redoc_url=None,
        openapi_url=api_docs.OPENAPI_URL,
    )
    app.state.gateway = GatewayState(ctx, Authenticator(ctx.settings), metrics)
    app.add_middleware(ObserveMiddleware, metrics=metrics)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(PoolTimeout, _db_down)
    app.add_exception_handler(psycopg.OperationalError, _db_down)
    app.add_exception_handler(psycopg.DataError, _bad_value)
    app.add_exception_handler(SignInRequired, _sign_in_first)
    for router in ROUTERS:
        app.include_router(router)
    api_docs.mount_assets(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
