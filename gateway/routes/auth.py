"""Signing in over the API: login, logout, who is signed in, and their language."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from gateway.auth import BadCredentials, RateLimited
from gateway.deps import ApiUser, Auth, Db, Pool, Settings, State
from gateway.errors import ApiError
from gateway.i18n import LOCALES
from gateway.queries import users
from gateway.schemas.auth import Locale, LocaleIn, Login, LoginRequest, User
from gateway.sessions import (
    clear_session_cookie,
    credentials,
    same_origin,
    set_session_cookie,
    sign_in,
)

router = APIRouter(prefix="/api/v1", tags=["auth"])


@router.post("/auth/login", response_model=Login)
async def login(request: Request, body: LoginRequest, state: State) -> JSONResponse:
    """Sign in; returns a bearer token and also sets the session cookie."""
    try:
        session = await sign_in(state, request, body.username, body.password)
    except RateLimited as exc:
        raise ApiError(
            429, "rate_limited", str(exc), {"Retry-After": str(exc.retry_after)}
        ) from None
    except BadCredentials:
        raise ApiError(401, "invalid_credentials", "unknown username or wrong password") from None
    answer = Login(
        token=session.token, expires_at=session.expires_at, user=User.of(session.principal)
    )
    response = JSONResponse(answer.model_dump(mode="json"))
    set_session_cookie(response, session, state.ctx.settings)
    return response


@router.post("/auth/logout", status_code=204)
async def logout(request: Request, pool: Pool, auth: Auth, settings: Settings) -> Response:
    """End the current session (if any) and clear the cookie."""
    token, via_cookie = credentials(request)
    if token is not None and not (via_cookie and not same_origin(request, settings)):
        async with pool.connection() as conn:
            await auth.logout(conn, token)
    response = Response(status_code=204)
    clear_session_cookie(response, settings)
    return response


@router.get("/me")
async def me(principal: ApiUser) -> User:
    """Who is signed in."""
    return User.of(principal)


@router.put("/me/locale")
async def set_locale(body: LocaleIn, principal: ApiUser, conn: Db) -> Locale:
    """Choose the language of the pages: `en` (English) or `zh` (Simplified Chinese)."""
    assert body.locale in LOCALES
    await users.set_locale(conn, principal.user_id, body.locale)
    return Locale(locale=body.locale)
