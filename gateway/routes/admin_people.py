"""The administration API of people (`/api/v1/admin`): staff accounts, family invitations,
closing accounts, the audit of changes; and accepting an invitation
(`/api/v1/invitations/{token}`, no sign-in: the link is the credential)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from gateway.admin import auditlog, invitations, people
from gateway.admin.common import Actor
from gateway.deps import ApiUser, Ctx, Db
from gateway.routes.admin import Listing, api_errors, links

router = APIRouter(tags=["admin"])


@router.get("/api/v1/admin/staff")
async def list_staff(
    principal: ApiUser,
    conn: Db,
    role: Literal["district_staff", "town_staff", "village_worker", "operator", "family"]
    | None = None,
    include_closed: bool = False,
) -> Listing[people.AccountOut]:
    """Staff accounts of the caller's region (`role=family`: the family members of its
    elders)."""
    with api_errors():
        rows = await people.list_accounts(conn, Actor.of(principal), role, include_closed)
    return Listing[people.AccountOut](items=rows)


@router.post("/api/v1/admin/staff", status_code=201)
async def create_staff(
    body: people.StaffCreate, principal: ApiUser, conn: Db, ctx: Ctx
) -> people.StaffCreated:
    """Create a staff account (role, region of that tier, phone, language, channels) and
    the invitation link that sets its password (shown only in this answer)."""
    with api_errors():
        return await people.create_staff(conn, links(ctx), Actor.of(principal), body)


@router.patch("/api/v1/admin/staff/{username}")
async def update_staff(
    username: str, body: people.StaffUpdate, principal: ApiUser, conn: Db
) -> people.AccountOut:
    """Change a staff member's name, phone or language."""
    with api_errors():
        return await people.update_staff(conn, Actor.of(principal), username, body)


@router.post("/api/v1/admin/staff/{username}/password-link", status_code=201)
async def reset_password(
    username: str, principal: ApiUser, conn: Db, ctx: Ctx
) -> invitations.InvitationOut:
    """A new link that sets the staff member's password (the old one stops working)."""
    with api_errors():
        return await people.reset_password(conn, links(ctx), Actor.of(principal), username)


@router.post("/api/v1/admin/accounts/{username}/close")
async def close_account(username: str, principal: ApiUser, conn: Db) -> people.AccountOut:
    """Close a staff or family account (it can no longer sign in or be told of alerts)."""
    with api_errors():
        return await people.close_account(conn, Actor.of(principal), username)


@router.post("/api/v1/admin/invitations", status_code=201)
async def invite_family(
    body: invitations.FamilyInvite, principal: ApiUser, conn: Db, ctx: Ctx
) -> invitations.InvitationOut:
    """An invitation link for a family member of one elder (expires, single use): send
    `url` to them; they choose a username and password at that page."""
    with api_errors():
        return await invitations.invite_family(conn, links(ctx), Actor.of(principal), body)


@router.get("/api/v1/admin/audit")
async def list_audit(
    principal: ApiUser,
    conn: Db,
    entity: Annotated[str | None, Query(max_length=40)] = None,
    entity_id: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Listing[auditlog.AuditRow]:
    """Administrative changes in the caller's region, newest first."""
    with api_errors():
        rows = await auditlog.list_audit(conn, Actor.of(principal), entity, entity_id, limit)
    return Listing[auditlog.AuditRow](items=rows)


@router.get("/api/v1/invitations/{token}")
async def view_invitation(token: str, conn: Db, ctx: Ctx) -> invitations.InvitationView:
    """What an invitation is for (404 a link that is not valid, 410 used or expired)."""
    with api_errors():
        return await invitations.view_invitation(conn, links(ctx), token)


@router.post("/api/v1/invitations/{token}/accept", status_code=201)
async def accept_invitation(
    token: str, body: invitations.AcceptInvite, conn: Db, ctx: Ctx
) -> invitations.Accepted:
    """Use an invitation once: set the password (a family member also the username), then
    sign in as usual."""
    with api_errors():
        return await invitations.accept_invitation(conn, links(ctx), token, body)
