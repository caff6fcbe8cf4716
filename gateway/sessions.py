"""Session credentials over HTTP: the bearer token or the session cookie, the same-origin
check of cookie-authenticated writes, and signing in with the login metrics."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Request, Response

from gateway.auth import BadCredentials, RateLimited, Session
from gateway.config import GatewaySettings
from gateway.context import GatewayState

COOKIE_NAME = "eldercare_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods that change nothing, so a cookie may authenticate them from anywhere."""


def credentials(request: Request) -> tuple[str | None, bool]:
    """The session token of a request and whether it came from the cookie."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip(), False
    cookie = request.cookies.get(COOKIE_NAME)
    return (cookie, True) if cookie else (None, False)


def same_origin(request: Request, settings: GatewaySettings) -> bool:
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


def set_session_cookie(response: Response, session: Session, settings: GatewaySettings) -> None:
    """Give the browser the session's cookie (HttpOnly, SameSite=Lax, Secure if set)."""
    response.set_cookie(
        COOKIE_NAME,
        session.token,
        max_age=settings.session_hours * 3600,
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response, settings: GatewaySettings) -> None:
    """Make the browser forget the session cookie."""
    response.delete_cookie(
        COOKIE_NAME, path="/", secure=settings.cookie_secure, httponly=True, samesite="lax"
    )


async def sign_in(state: GatewayState, request: Request, username: str, password: str) -> Session:
    """Check the credentials and open a session, counting the attempt by its result.

    Raises `RateLimited` or `BadCredentials` like `Authenticator.login`."""
    client = request.client.host if request.client else "unknown"
    try:
        session = await state.auth.login(state.ctx.pool, username, password, client)
    except RateLimited:
        state.metrics.logins.labels("rate_limited").inc()
        raise
    except BadCredentials:
        state.metrics.logins.labels("bad_credentials").inc()
        raise
    state.metrics.logins.labels("ok").inc()
    return session
