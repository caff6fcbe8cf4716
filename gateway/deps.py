"""The typed dependencies of the routers: the app's state and settings, a database
connection, the clock, and who is calling (API user, page user). Routers reach shared
state only through these."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool

from alerts.config import AlertSettings
from gateway.auth import Authenticator, Principal
from gateway.config import GatewaySettings
from gateway.context import AppContext, GatewayState
from gateway.errors import ApiError
from gateway.queries.base import Conn
from gateway.sessions import SAFE_METHODS, credentials, same_origin


def gateway_state(request: Request) -> GatewayState:
    """The app's shared state (set by `gateway.app.create_app`)."""
    state = request.app.state.gateway
    assert isinstance(state, GatewayState)
    return state


State = Annotated[GatewayState, Depends(gateway_state)]


def app_context(state: State) -> AppContext:
    """The resources the composition root gave the app."""
    return state.ctx


Ctx = Annotated[AppContext, Depends(app_context)]


def authenticator(state: State) -> Authenticator:
    """The app's authenticator (its login rate limiter lives as long as the app)."""
    return state.auth


Auth = Annotated[Authenticator, Depends(authenticator)]


def gateway_settings(ctx: Ctx) -> GatewaySettings:
    """The HTTP server's settings."""
    return ctx.settings


Settings = Annotated[GatewaySettings, Depends(gateway_settings)]


def connection_pool(ctx: Ctx) -> AsyncConnectionPool[Any]:
    """The database pool, for routes that take connections only when and while they need
    one (signing in, the live stream, health checks)."""
    return ctx.pool


Pool = Annotated[AsyncConnectionPool[Any], Depends(connection_pool)]


async def db_connection(pool: Pool) -> AsyncIterator[Conn]:
    """A connection from the pool for the route function: committed when the function
    returns, rolled back when it raises, and back in the pool before the answer is sent."""
    async with pool.connection() as conn:
        yield conn


Db = Annotated[Conn, Depends(db_connection, scope="function")]


def clock(ctx: Ctx) -> Callable[[], datetime]:
    """The clock requests are served by (UTC)."""
    return ctx.clock


Clock = Annotated[Callable[[], datetime], Depends(clock)]


async def api_principal(request: Request, state: State) -> Principal:
    """The caller of an API route, from the bearer token or the cookie (401 without a live
    session; 403 for a cookie-authenticated write from another site)."""
    token, via_cookie = credentials(request)
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
        and request.method not in SAFE_METHODS
        and not same_origin(request, state.ctx.settings)
    ):
        raise ApiError(403, "cross_origin", "cookie-authenticated request from another site")
    return principal


ApiUser = Annotated[Principal, Depends(api_principal)]


async def optional_principal(request: Request, state: State) -> Principal | None:
    """Whoever is signed in (bearer token or cookie), or None."""
    token, _ = credentials(request)
    if token is None:
        return None
    async with state.ctx.pool.connection() as conn:
        return await state.auth.principal(conn, token)


MaybeUser = Annotated[Principal | None, Depends(optional_principal)]


class SignInRequired(Exception):
    """A page was asked for without a session: answered by a redirect to the sign-in page."""


async def page_principal(principal: MaybeUser) -> Principal:
    """The person a page is for; without a session the page redirects to `/login`."""
    if principal is None:
        raise SignInRequired
    return principal


PageUser = Annotated[Principal, Depends(page_principal)]


def same_site(request: Request, settings: Settings) -> bool:
    """Whether the request comes from one of our own pages (see `sessions.same_origin`)."""
    return same_origin(request, settings)


SameSite = Annotated[bool, Depends(same_site)]


def alert_settings(ctx: Ctx) -> AlertSettings:
    """The alerting settings (503 when the app was built without them)."""
    if ctx.alert_settings is None:
        raise ApiError(503, "unavailable", "acknowledge links are not configured here")
    return ctx.alert_settings


AlertConfig = Annotated[AlertSettings, Depends(alert_settings)]


def push_public_key(ctx: AppContext) -> str:
    """The VAPID public key (503 when web push is not configured)."""
    if ctx.vapid_public_key is None:
        raise ApiError(503, "unavailable", "web push is not configured here")
    return ctx.vapid_public_key
