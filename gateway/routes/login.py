"""The sign-in pages: the start page, signing in and out with the session cookie, and
choosing the pages' language."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from gateway.auth import MAX_PASSWORD_LENGTH, BadCredentials, RateLimited
from gateway.deps import Auth, Db, MaybeUser, PageUser, Pool, SameSite, Settings, State
from gateway.queries import users
from gateway.rendering import TEMPLATES, login_words
from gateway.sessions import COOKIE_NAME, clear_session_cookie, set_session_cookie, sign_in

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index(principal: MaybeUser) -> RedirectResponse:
    """The console when signed in, else the sign-in page."""
    return RedirectResponse("/console" if principal else "/login", 303)


@router.get("/login")
async def login_page(request: Request, principal: MaybeUser) -> Response:
    """The sign-in form (the console when already signed in)."""
    if principal:
        return RedirectResponse("/console", 303)
    return TEMPLATES.TemplateResponse(
        request, "login.html", {"error": None, "username": "", **login_words(request)}
    )


@router.post("/login")
async def login_form(
    request: Request,
    state: State,
    username: Annotated[str, Form(max_length=150)] = "",
    password: Annotated[str, Form(max_length=MAX_PASSWORD_LENGTH)] = "",
) -> Response:
    """Sign in from the form: the family page or the console, with the session cookie."""

    def again(error: str, status: int, headers: dict[str, str] | None = None) -> Response:
        return TEMPLATES.TemplateResponse(
            request,
            "login.html",
            {"error": error, "username": username, **login_words(request)},
            status_code=status,
            headers=headers,
        )

    if not username or not password:
        return again("Enter your username and password.", 400)
    try:
        session = await sign_in(state, request, username, password)
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
    set_session_cookie(response, session, state.ctx.settings)
    return response


@router.post("/logout")
async def logout_form(
    request: Request, pool: Pool, auth: Auth, settings: Settings, same_site: SameSite
) -> RedirectResponse:
    """End the cookie's session (from our own pages only) and go to the sign-in page."""
    token = request.cookies.get(COOKIE_NAME)
    if token and same_site:
        async with pool.connection() as conn:
            await auth.logout(conn, token)
    response = RedirectResponse("/login", 303)
    clear_session_cookie(response, settings)
    return response


@router.post("/locale")
async def locale_form(
    request: Request,
    principal: PageUser,
    conn: Db,
    same_site: SameSite,
    locale: Annotated[str, Form(max_length=5)] = "en",
) -> Response:
    """Remember the chosen language (from our own pages) and go back where the form was."""
    if same_site and locale in ("en", "zh"):
        await users.set_locale(conn, principal.user_id, locale)
    back = request.headers.get("referer", "")
    target = "/family" if principal.role == "family" else "/console"
    if back.startswith(str(request.base_url)):
        target = "/" + back[len(str(request.base_url)) :]
    return RedirectResponse(target, 303)
