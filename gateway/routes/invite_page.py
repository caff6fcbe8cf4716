"""The invitation page `/invite/{token}` (no sign-in: the signed, expiring, single-use link
is the credential): a family member chooses a username and password, a new staff member a
password; then they sign in as usual."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from gateway.admin import invitations
from gateway.admin.common import AdminError, Invalid
from gateway.deps import Ctx, Db, SameSite
from gateway.rendering import TEMPLATES, login_words
from gateway.routes.admin import links
from gateway.routes.admin_pages import errors_of

router = APIRouter(include_in_schema=False)


def _page(request: Request, status: int = 200, **context: Any) -> Response:
    context.setdefault("errors", {})
    context.setdefault("values", {})
    return TEMPLATES.TemplateResponse(
        request, "invite.html", {**login_words(request), **context}, status_code=status
    )


@router.get("/invite/{token}")
async def invite_page(request: Request, token: str, conn: Db, ctx: Ctx) -> Response:
    """The form that sets the password (or why the link cannot be used)."""
    try:
        invitation = await invitations.view_invitation(conn, links(ctx), token)
    except AdminError as exc:
        return _page(request, exc.status, refused=exc.message)
    return _page(request, invitation=invitation)


@router.post("/invite/{token}")
async def invite_form(
    request: Request, token: str, conn: Db, ctx: Ctx, same_site: SameSite
) -> Response:
    """Use the invitation: problems are shown next to their fields."""
    signer = links(ctx)
    try:
        invitation = await invitations.view_invitation(conn, signer, token)
    except AdminError as exc:
        return _page(request, exc.status, refused=exc.message)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    values = {"username": form.get("username", "")}
    t = login_words(request)["t"]
    if not same_site:
        return _page(request, 403, invitation=invitation, values=values,
                     errors={"form": "cross-site request refused"})  # fmt: skip
    if form.get("password", "") != form.get("password_again", ""):
        return _page(request, 422, invitation=invitation, values=values,
                     errors={"password_again": t("passwords_differ")})  # fmt: skip
    try:
        body = invitations.AcceptInvite.model_validate({
            "username": form.get("username") or None if invitation.kind == "family" else None,
            "password": form.get("password", ""),
        })  # fmt: skip
        await invitations.accept_invitation(conn, signer, token, body)
    except (ValidationError, Invalid) as exc:
        return _page(request, 422, invitation=invitation, values=values, errors=errors_of(exc))
    except AdminError as exc:
        return _page(request, exc.status, refused=exc.message)
    return _page(request, done=True)
