"""The HTTP front door: REST API, live alert stream, staff console pages, health, metrics."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import psycopg
from fastapi import Depends, FastAPI, Form, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alerts import store
from alerts.model import Alert, Status
from gateway.api import build_router
from gateway.auth import (
    MAX_PASSWORD_LENGTH,
    Authenticator,
    BadCredentials,
    Principal,
    RateLimited,
    Session,
    scope_for,
)
from gateway.config import GatewaySettings
from gateway.errors import ApiError, error_response
from gateway.i18n import translator
from gateway.live import Broadcaster
from gateway.pages import build_pages

log = logging.getLogger(__name__)

COOKIE_NAME = "eldercare_session"
SSE_PING_S = 15
DB_CHECK_TIMEOUT_S = 2.0
_HERE = Path(__file__).parent
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
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
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def _no_checks() -> dict[str, bool]:
    return {}


@dataclass
class AppContext:
    """Everything the HTTP app uses, owned and started by the composition root."""

    settings: GatewaySettings
    pool: AsyncConnectionPool[Any]
    broadcaster: Broadcaster
    metrics: CollectorRegistry
    health: Callable[[], dict[str, bool]] = _no_checks
    """Extra health checks (name → ok), e.g. the ingester's MQTT connection."""


class LoginRequest(BaseModel):
    """Body of `POST /api/v1/auth/login`."""

    username: str = Field(min_length=1, max_length=150)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def alert_json(alert: Alert) -> dict[str, Any]:
    """An alert as the API shows it."""
    return {
        "id": alert.id,
        "home_id": alert.home_id,
        "elder": alert.elder_name,
        "village": alert.village,
        "kind": alert.kind,
        "category": alert.category.value,
        "severity": alert.severity.value,
        "status": alert.status.value,
        "summary": alert.summary,
        "event_at": _iso(alert.event_at),
        "opened_at": _iso(alert.opened_at),
        "evidence_count": alert.evidence_count,
        "last_evidence_at": _iso(alert.last_evidence_at),
        "acknowledged_at": _iso(alert.acknowledged_at),
        "acknowledged_by": alert.acknowledged_by_name,
        "resolved_at": _iso(alert.resolved_at),
        "outcome": alert.outcome,
    }


def user_json(principal: Principal) -> dict[str, Any]:
    """The signed-in person as the API shows them."""
    return {
        "id": principal.user_id,
        "username": principal.username,
        "display_name": principal.display_name,
        "role": principal.role,
        "region_id": principal.region_id,
        "locale": principal.locale,
        "home_ids": list(principal.home_ids),
        "can_acknowledge": principal.is_staff,
    }


def _credentials(request: Request) -> tuple[str | None, bool]:
    """The session token of a request and whether it came from the cookie."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip(), False
    cookie = request.cookies.get(COOKIE_NAME)
    return (cookie, True) if cookie else (None, False)


def _same_origin(request: Request, settings: GatewaySettings) -> bool:
    """Whether a browser request comes from one of our own pages (no Origin: not a browser
    cross-site request, allowed)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    netloc = urlsplit(origin).netloc
    allowed = {request.headers.get("host", "")}
    if settings.public_url:
        allowed.add(urlsplit(settings.public_url).netloc)
    return netloc in allowed


@dataclass(frozen=True, slots=True)
class _State:
    ctx: AppContext
    auth: Authenticator


def _state(request: Request) -> _State:
    state = request.app.state.gateway
    assert isinstance(state, _State)
    return state


async def api_principal(request: Request) -> Principal:
    """FastAPI dependency: the caller of an API route, from the bearer token or cookie."""
    state = _state(request)
    token, via_cookie = _credentials(request)
    challenge = {"WWW-Authenticate": "Bearer"}
    if token is None:
        raise ApiError(
            401,
            "unauthenticated",
            "sign in first: send 'Authorization: Bearer <token>' or the session cookie",
            challenge,
        )
    async with state.ctx.pool.connection() as conn:
        principal = await state.auth.principal(conn, token)
    if principal is None:
        raise ApiError(
            401, "unauthenticated", "the session has expired or ended; sign in again", challenge
        )
    if (
        via_cookie
        and request.method not in _SAFE_METHODS
        and not _same_origin(request, state.ctx.settings)
    ):
        raise ApiError(403, "cross_origin", "cookie-authenticated request from another site")
    request.state.token = token
    return principal


ApiUser = Annotated[Principal, Depends(api_principal)]


class GatewayMetrics:
    """Prometheus metrics of the HTTP front door."""

    def __init__(self, registry: CollectorRegistry, broadcaster: Broadcaster) -> None:
        self.logins = Counter(
            "eldercare_gateway_logins", "login attempts", ["result"], registry=registry
        )
        self.requests = Histogram(
            "eldercare_gateway_request_seconds",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.stream_clients = Gauge(
            "eldercare_gateway_stream_clients",
            "clients attached to the live alert stream",
            registry=registry,
        )
        self.stream_clients.set_function(lambda: broadcaster.subscriber_count)


class _Observe:
    """Pure ASGI middleware (safe for streaming): security headers and request metrics."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        path: str = scope["path"]

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers: list[tuple[bytes, bytes]] = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"),
                ]
                if not path.startswith(("/api/", "/static/", "/metrics", "/healthz")):
                    extra.append((b"content-security-policy", _CSP.encode()))
                if path.startswith(("/api/", "/console")):
                    extra.append((b"cache-control", b"no-store"))
                headers.extend((k, v) for k, v in extra if k not in names)
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(scope["method"], route, str(status)).observe(
                time.perf_counter() - started
            )


def create_app(ctx: AppContext) -> FastAPI:
    """Build the gateway's ASGI app on resources owned by the caller.

    Registers the gateway's metrics in `ctx.metrics` (so call it once per registry)."""
    settings = ctx.settings
    auth = Authenticator(settings)
    metrics = GatewayMetrics(ctx.metrics, ctx.broadcaster)
    templates = Jinja2Templates(directory=_HERE / "templates")

    app = FastAPI(
        title="Eldercare gateway",
        version="1",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.gateway = _State(ctx, auth)
    # Imported here because the router module imports this one.
    from gateway.routes_alerting import router as alerting_router

    app.include_router(alerting_router)
    from gateway.routes_push import router as push_router

    app.include_router(push_router)
    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")
    app.add_middleware(_Observe, metrics=metrics)

    # ------------------------------------------------------------------ errors

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code in (204, 304):
            return Response(status_code=exc.status_code, headers=exc.headers)
        code = _ERROR_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return error_response(exc.status_code, code, str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
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

    @app.exception_handler(PoolTimeout)
    @app.exception_handler(psycopg.OperationalError)
    async def _db_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable: %s", exc)
        return error_response(
            503,
            "unavailable",
            "the database is unavailable; try again shortly",
            {"Retry-After": "5"},
        )

    @app.exception_handler(psycopg.DataError)
    async def _bad_value(request: Request, exc: Exception) -> JSONResponse:
        # A value the database cannot take (e.g. a NUL byte in a text parameter): the
        # request's fault, not the service's.
        log.info("rejected a value the database refused: %s", exc)
        return error_response(
            422, "invalid_request", f"a value in the request cannot be stored or searched: {exc}"
        )

    # ------------------------------------------------------------------ auth helpers

    async def optional_principal(request: Request) -> Principal | None:
        token, _ = _credentials(request)
        if token is None:
            return None
        async with ctx.pool.connection() as conn:
            return await auth.principal(conn, token)

    def set_session_cookie(response: Response, session: Session) -> None:
        response.set_cookie(
            COOKIE_NAME,
            session.token,
            max_age=settings.session_hours * 3600,
            path="/",
            secure=settings.cookie_secure,
            httponly=True,
            samesite="lax",
        )

    def clear_session_cookie(response: Response) -> None:
        response.delete_cookie(
            COOKIE_NAME, path="/", secure=settings.cookie_secure, httponly=True, samesite="lax"
        )

    async def do_login(request: Request, username: str, password: str) -> Session:
        client = request.client.host if request.client else "unknown"
        try:
            session = await auth.login(ctx.pool, username, password, client)
        except RateLimited:
            metrics.logins.labels("rate_limited").inc()
            raise
        except BadCredentials:
            metrics.logins.labels("bad_credentials").inc()
            raise
        metrics.logins.labels("ok").inc()
        return session

    # ------------------------------------------------------------------ operations

    async def database_ok() -> bool:
        try:
            async with asyncio.timeout(DB_CHECK_TIMEOUT_S):
                async with ctx.pool.connection(timeout=DB_CHECK_TIMEOUT_S) as conn:
                    await conn.execute("SELECT 1")
        except Exception as exc:
            log.warning("health: database check failed: %s", exc)
            return False
        return True

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> JSONResponse:
        """Liveness and readiness: the database and the service's own checks."""
        checks = {"database": await database_ok()}
        try:
            checks.update(ctx.health())
        except Exception:
            log.exception("health: a check raised")
            checks["health_checks"] = False
        if all(checks.values()):
            return JSONResponse({"status": "ok", "checks": checks})
        failing = sorted(name for name, ok in checks.items() if not ok)
        return JSONResponse({"status": "unavailable", "checks": checks, "failing": failing}, 503)

    @app.get("/metrics", tags=["operations"])
    async def prometheus_metrics() -> Response:
        """Prometheus text exposition of every metric in the service's registry."""
        return Response(generate_latest(ctx.metrics), media_type=CONTENT_TYPE_LATEST)

    # ------------------------------------------------------------------ API: auth

    @app.post("/api/v1/auth/login", tags=["auth"])
    async def api_login(request: Request, body: LoginRequest) -> JSONResponse:
        """Sign in; returns a bearer token and also sets the session cookie."""
        try:
            session = await do_login(request, body.username, body.password)
        except RateLimited as exc:
            raise ApiError(
                429, "rate_limited", str(exc), {"Retry-After": str(exc.retry_after)}
            ) from None
        except BadCredentials:
            raise ApiError(
                401, "invalid_credentials", "unknown username or wrong password"
            ) from None
        response = JSONResponse(
            {
                "token": session.token,
                "expires_at": _iso(session.expires_at),
                "user": user_json(session.principal),
            }
        )
        set_session_cookie(response, session)
        return response

    @app.post("/api/v1/auth/logout", status_code=204, tags=["auth"])
    async def api_logout(request: Request) -> Response:
        """End the current session (if any) and clear the cookie."""
        token, via_cookie = _credentials(request)
        if token is not None and not (via_cookie and not _same_origin(request, settings)):
            async with ctx.pool.connection() as conn:
                await auth.logout(conn, token)
        response = Response(status_code=204)
        clear_session_cookie(response)
        return response

    @app.get("/api/v1/me", tags=["auth"])
    async def me(principal: ApiUser) -> dict[str, Any]:
        """Who is signed in."""
        return user_json(principal)

    # ------------------------------------------------------------------ API: alerts

    @app.get("/api/v1/alerts", tags=["alerts"])
    async def list_alerts(
        principal: ApiUser,
        status: Annotated[list[Status] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        before: Annotated[int | None, Query(ge=1)] = None,
    ) -> dict[str, Any]:
        """Alerts the caller may see, newest first; page with `before=<next_before>`."""
        statuses = status or [Status.OPEN, Status.ACKNOWLEDGED]
        async with ctx.pool.connection() as conn:
            rows = await store.list_alerts(conn, scope_for(principal), statuses, limit + 1, before)
        items = rows[:limit]
        next_before = items[-1].id if len(rows) > limit else None
        return {"items": [alert_json(a) for a in items], "next_before": next_before}

    @app.get("/api/v1/alerts/stream", tags=["alerts"])
    async def alert_stream(request: Request, principal: ApiUser) -> EventSourceResponse:
        """Server-sent events: `hello` on connect, then `alert` (the alert's JSON) whenever
        an alert the caller may see changes. `resync` then end of stream: reconnect and
        re-read the list (some changes may have been missed)."""
        token: str = request.state.token

        async def events() -> AsyncIterator[ServerSentEvent]:
            async with ctx.broadcaster.subscribe() as feed:
                hello = {"user": principal.username, "role": principal.role}
                yield ServerSentEvent(json.dumps(hello), event="hello", retry=3000)
                while True:
                    alert_id = await feed.get()
                    if alert_id is None:
                        yield ServerSentEvent("{}", event="resync")
                        return
                    async with ctx.pool.connection() as conn:
                        current = await auth.principal(conn, token)
                        if current is None:
                            yield ServerSentEvent("{}", event="signed_out")
                            return
                        alert = await store.get_alert(conn, scope_for(current), alert_id)
                    if alert is not None:
                        yield ServerSentEvent(
                            json.dumps(alert_json(alert)), event="alert", id=str(alert.id)
                        )

        return EventSourceResponse(events(), ping=SSE_PING_S, send_timeout=30)

    @app.get("/api/v1/alerts/{alert_id}", tags=["alerts"])
    async def get_alert(alert_id: int, principal: ApiUser) -> dict[str, Any]:
        """One alert and its audit trail; 404 when it is not the caller's to see."""
        async with ctx.pool.connection() as conn:
            alert = await store.get_alert(conn, scope_for(principal), alert_id)
            if alert is None:
                raise ApiError(404, "not_found", f"no alert {alert_id}")
            events = await store.alert_events(conn, alert_id)
            actors = {e["actor_id"] for e in events if e["actor_id"] is not None}
            names: dict[int, str] = {}
            if actors:
                cur = await conn.execute(
                    "SELECT id, display_name FROM users WHERE id = ANY(%s)", (list(actors),)
                )
                names = {int(i): str(n) for i, n in await cur.fetchall()}
        return {
            **alert_json(alert),
            "events": [
                {
                    "at": _iso(e["at"]),
                    "action": e["action"],
                    "actor_id": e["actor_id"],
                    "actor": names.get(e["actor_id"]) if e["actor_id"] is not None else None,
                    "detail": e["detail"],
                }
                for e in events
            ],
        }

    @app.post("/api/v1/alerts/{alert_id}/ack", tags=["alerts"])
    async def acknowledge(alert_id: int, principal: ApiUser) -> dict[str, Any]:
        """Take ownership of an open alert: stops escalation and tells the others."""
        if not principal.is_staff:
            raise ApiError(
                403, "forbidden", "only village, town and district staff may acknowledge alerts"
            )
        scope = scope_for(principal)
        async with ctx.pool.connection() as conn:
            alert = await store.get_alert(conn, scope, alert_id)
            if alert is None:
                raise ApiError(404, "not_found", f"no alert {alert_id}")
            if alert.status is Status.OPEN and await store.acknowledge(
                conn, alert_id, principal.user_id, "api"
            ):
                alert = await store.get_alert(conn, scope, alert_id)
                assert alert is not None
                return alert_json(alert)
            alert = await store.get_alert(conn, scope, alert_id) or alert
        by = f" by {alert.acknowledged_by_name}" if alert.acknowledged_by_name else ""
        raise ApiError(409, "not_open", f"alert {alert_id} is already {alert.status.value}{by}")

    # ------------------------------------------------------------------ pages

    def login_words(request: Request) -> dict[str, Any]:
        wanted = request.query_params.get("lang") or request.headers.get("accept-language", "")
        locale = "zh" if wanted.lower().startswith("zh") else "en"
        return {"t": translator(locale), "locale": locale}

    @app.get("/", include_in_schema=False)
    async def index(request: Request) -> RedirectResponse:
        principal = await optional_principal(request)
        return RedirectResponse("/console" if principal else "/login", 303)

    @app.get("/login", include_in_schema=False)
    async def login_page(request: Request) -> Response:
        if await optional_principal(request):
            return RedirectResponse("/console", 303)
        return templates.TemplateResponse(
            request, "login.html", {"error": None, "username": "", **login_words(request)}
        )

    @app.post("/login", include_in_schema=False)
    async def login_form(
        request: Request,
        username: Annotated[str, Form(max_length=150)] = "",
        password: Annotated[str, Form(max_length=MAX_PASSWORD_LENGTH)] = "",
    ) -> Response:
        def again(error: str, status: int, headers: dict[str, str] | None = None) -> Response:
            return templates.TemplateResponse(
                request,
                "login.html",
                {"error": error, "username": username, **login_words(request)},
                status_code=status,
                headers=headers,
            )

        if not username or not password:
            return again("Enter your username and password.", 400)
        try:
            session = await do_login(request, username, password)
        except RateLimited as exc:
            return again(
                f"Too many failed attempts. Try again in {exc.retry_after} seconds.",
                429,
                {"Retry-After": str(exc.retry_after)},
            )
        except BadCredentials:
            return again("Unknown username or wrong password.", 401)
        home = "/family" if session.principal.role == "family" else "/console"
        response = RedirectResponse(home, 303)
        set_session_cookie(response, session)
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout_form(request: Request) -> RedirectResponse:
        token = request.cookies.get(COOKIE_NAME)
        if token and _same_origin(request, settings):
            async with ctx.pool.connection() as conn:
                await auth.logout(conn, token)
        response = RedirectResponse("/login", 303)
        clear_session_cookie(response)
        return response

    app.include_router(build_router(ctx.pool, api_principal, alert_json))
    app.include_router(
        build_pages(
            ctx.pool,
            templates,
            optional_principal,
            lambda request: _same_origin(request, settings),
            alert_json,
        )
    )

    return app
