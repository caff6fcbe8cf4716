"""The administration pages of the console (`/console/admin`, staff): the elders of the
region with add / edit / close, emergency contacts, staff accounts, family invitations, and
the import of a village's register (upload → dry-run report → confirm). Each form is
checked on the server by `gateway.admin`; a problem is shown next to its field."""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from gateway.admin import elders, importing, invitations, leaving, people, spreadsheet
from gateway.admin.common import Actor, AdminError, Conn, Invalid, plain
from gateway.admin.limits import LIMIT_KEYS
from gateway.auth import Principal
from gateway.deps import Clock, Ctx, Db, PageUser, SameSite
from gateway.queries.elders import audit_health_read
from gateway.rendering import not_found, render
from gateway.routes.admin import links
from ingest.broker_files import BrokerReloadError

log = logging.getLogger(__name__)
router = APIRouter(prefix="/console/admin", include_in_schema=False)

ELDER_FIELDS = ("full_name", "born", "sex", "phone", "language", "conditions", "notes")


def _field_of(loc: tuple[Any, ...]) -> str:
    """The form field a model error is about."""
    if not loc:
        return "form"
    if loc[0] == "home" and len(loc) > 1:
        return str(loc[1])
    if loc[0] == "contacts" and len(loc) > 2:
        return f"contact_{loc[2]}"
    if loc[0] == "thresholds":
        return str(loc[1]) if len(loc) > 1 else "limits"
    return str(loc[0])


def errors_of(exc: Exception) -> dict[str, str]:
    """Field name -> message, for the form."""
    if isinstance(exc, ValidationError):
        found: dict[str, str] = {}
        for err in exc.errors():
            found.setdefault(_field_of(tuple(err["loc"])), plain(str(err["msg"])))
        return found
    if isinstance(exc, Invalid):
        return {_field_of(tuple(p.field.split("."))): p.message for p in exc.problems}
    assert isinstance(exc, AdminError)
    return {"form": exc.message}


def _staff_only(principal: Principal) -> bool:
    return principal.is_staff


def _elder_values(form: dict[str, str], new: bool) -> dict[str, Any]:
    values: dict[str, Any] = {k: form.get(k, "") for k in ELDER_FIELDS}
    values["born"] = values["born"] or None
    values["language"] = values["language"] or "zh"
    values["conditions"] = [c.strip() for c in values["conditions"].splitlines() if c.strip()]
    values["lives_alone"] = form.get("lives_alone") == "on"
    values["thresholds"] = {k: form[k] for k in LIMIT_KEYS if form.get(k, "").strip()}
    if new:
        home = {k: form.get(k, "") for k in ("village_id", "address", "lat", "lon")}
        values["home"] = {k: v for k, v in home.items() if v != ""}
        contact = {k: form.get(f"contact_{k}", "") for k in ("name", "relation", "phone")}
        if contact["name"] or contact["phone"]:
            contact["holds_key"] = form.get("contact_holds_key") == "on"  # type: ignore[assignment]
            values["contacts"] = [contact]
    return values


async def _form(request: Request) -> dict[str, str]:
    data = await request.form()
    return {k: v for k, v in data.items() if isinstance(v, str)}


async def _villages(conn: Conn, principal: Principal) -> list[tuple[str, str]]:
    cur = await conn.execute(
        "WITH RECURSIVE subtree(id) AS (SELECT id FROM regions WHERE id = %(r)s UNION ALL"
        " SELECT r.id FROM regions r JOIN subtree s ON r.parent_id = s.id)"
        " SELECT id, name FROM regions WHERE tier = 'village' AND id IN (SELECT id FROM subtree)"
        " ORDER BY name",
        {"r": principal.region_id},
    )
    return [(str(i), str(n)) for i, n in await cur.fetchall()]


@router.get("")
async def admin_page(
    request: Request, principal: PageUser, clock: Clock, conn: Db, village: str | None = None
) -> Response:
    """The elders of the staff member's region, with add / edit / close."""
    if not _staff_only(principal):
        return not_found(request, principal, clock())
    rows = await elders.list_elders(conn, Actor.of(principal), None, True)
    return render(request, "admin.html", principal, clock(), rows=rows,
                  can_enrol=principal.role != "village_worker",
                  saved=request.query_params.get("saved"))  # fmt: skip


async def _elder_form(
    request: Request, principal: Principal, conn: Conn, clock: Any, status: int = 200,
    **context: Any,
) -> Response:  # fmt: skip
    context.setdefault("values", {})
    context.setdefault("errors", {})
    return render(request, "admin_elder.html", principal, clock(), status,
                  villages=await _villages(conn, principal), limit_keys=list(LIMIT_KEYS),
                  **context)  # fmt: skip


@router.get("/elders/new")
async def new_elder_page(request: Request, principal: PageUser, clock: Clock, conn: Db) -> Response:
    """The form that enrols an elder with a new home."""
    if not _staff_only(principal):
        return not_found(request, principal, clock())
    return await _elder_form(request, principal, conn, clock, new=True,
                             values={"lives_alone": True, "language": "zh"})  # fmt: skip


@router.post("/elders/new")
async def new_elder_form(
    request: Request, principal: PageUser, clock: Clock, conn: Db, ctx: Ctx, same_site: SameSite
) -> Response:
    """Enrol the elder, or show the form again with each problem next to its field."""
    if not _staff_only(principal) or not same_site:
        return not_found(request, principal, clock())
    form = await _form(request)
    try:
        body = elders.ElderCreate.model_validate(_elder_values(form, new=True))
        out = await elders.create_elder(conn, Actor.of(principal), body, ctx.local_tz.key)
    except (ValidationError, AdminError) as exc:
        values = {**form, "lives_alone": form.get("lives_alone") == "on"}
        return await _elder_form(request, principal, conn, clock, 422, new=True,
                                 values=values, errors=errors_of(exc))  # fmt: skip
    return RedirectResponse(f"/console/admin/elders/{out.id}?saved=1", 303)


def _values_of(elder: elders.ElderOut) -> dict[str, Any]:
    values: dict[str, Any] = elder.model_dump()
    values["born"] = "" if elder.born is None else elder.born.isoformat()
    values["conditions"] = "\n".join(elder.conditions)
    values.update({k: f"{v:g}" for k, v in elder.thresholds.items()})
    return values


@router.get("/elders/{elder_id}")
async def edit_elder_page(
    request: Request, elder_id: str, principal: PageUser, clock: Clock, conn: Db
) -> Response:
    """An elder's record to edit: profile, limits, contacts; closing it."""
    if not _staff_only(principal):
        return not_found(request, principal, clock())
    try:
        elder = await elders.read_elder(conn, Actor.of(principal), elder_id)
    except AdminError:
        return not_found(request, principal, clock())
    await audit_health_read(conn, principal.user_id, elder_id, "admin_record")
    return await _elder_form(request, principal, conn, clock, new=False, elder=elder,
                             values=_values_of(elder),
                             saved=request.query_params.get("saved") == "1",
                             can_close=principal.role != "village_worker")  # fmt: skip


@router.post("/elders/{elder_id}")
async def edit_elder_form(
    request: Request, elder_id: str, principal: PageUser, clock: Clock, conn: Db,
    same_site: SameSite, ctx: Ctx,
) -> Response:  # fmt: skip
    """Save the elder's record (or one of its sub-forms: add / remove a contact, close)."""
    if not _staff_only(principal) or not same_site:
        return not_found(request, principal, clock())
    actor = Actor.of(principal)
    form = await _form(request)
    action = form.get("action", "save")
    try:
        elder = await elders.read_elder(conn, actor, elder_id)
    except AdminError:
        return not_found(request, principal, clock())
    try:
        if action == "add_contact":
            contact = {k: form.get(f"contact_{k}", "") for k in ("name", "relation", "phone")}
            body_c = elders.ContactIn.model_validate(
                {**contact, "holds_key": form.get("contact_holds_key") == "on"}
            )
            await elders.add_contact(conn, actor, elder_id, body_c)
        elif action.startswith("remove_contact:") and action.split(":", 1)[1].isdigit():
            await elders.remove_contact(conn, actor, elder_id, int(action.split(":", 1)[1]))
        elif action == "close":
            close = elders.ElderClose.model_validate({"reason": form.get("reason", "")})
            try:
                await leaving.close_and_lock_out(conn, actor, elder_id, close, ctx.broker)
            except BrokerReloadError as exc:  # closed; the broker catches up at its next sync
                log.error("elder %s closed, but the broker was not reloaded: %s", elder_id, exc)
        else:
            values = _elder_values(form, new=False)
            await elders.update_elder(conn, actor, elder_id,
                                      elders.ElderUpdate.model_validate(values))  # fmt: skip
    except (ValidationError, AdminError) as exc:
        problems = errors_of(exc)
        values = {**_values_of(elder), **(form if action == "save" else {})}
        return await _elder_form(request, principal, conn, clock, 422, new=False, elder=elder,
                                 values=values, errors=problems,
                                 can_close=principal.role != "village_worker")  # fmt: skip
    return RedirectResponse(f"/console/admin/elders/{elder_id}?saved=1", 303)


# --------------------------------------------------------------------------- staff


async def _staff_page(
    request: Request, principal: Principal, conn: Conn, clock: Any, status: int = 200,
    **context: Any,
) -> Response:  # fmt: skip
    rows = await people.list_accounts(conn, Actor.of(principal))
    cur = await conn.execute(
        "WITH RECURSIVE subtree(id) AS (SELECT id FROM regions WHERE id = %(r)s UNION ALL"
        " SELECT r.id FROM regions r JOIN subtree s ON r.parent_id = s.id)"
        " SELECT id, name, tier FROM regions WHERE id IN (SELECT id FROM subtree) ORDER BY tier,"
        " name",
        {"r": principal.region_id},
    )
    regions = [(str(i), str(n), str(t)) for i, n, t in await cur.fetchall()]
    context.setdefault("values", {"locale": principal.locale})
    context.setdefault("errors", {})
    return render(request, "admin_staff.html", principal, clock(), status, rows=rows,
                  regions=regions, **context)  # fmt: skip


@router.get("/staff")
async def staff_page(request: Request, principal: PageUser, clock: Clock, conn: Db) -> Response:
    """The staff accounts of the region and the form that adds one."""
    if principal.role not in ("district_staff", "town_staff"):
        return not_found(request, principal, clock())
    return await _staff_page(request, principal, conn, clock)


@router.post("/staff")
async def staff_form(
    request: Request, principal: PageUser, clock: Clock, conn: Db, ctx: Ctx, same_site: SameSite
) -> Response:
    """Add a staff account (its password link is shown once), or close one."""
    if principal.role not in ("district_staff", "town_staff") or not same_site:
        return not_found(request, principal, clock())
    form = await _form(request)
    actor = Actor.of(principal)
    try:
        if form.get("action", "").startswith("close:"):
            await people.close_account(conn, actor, form["action"].split(":", 1)[1])
            return await _staff_page(request, principal, conn, clock, saved=True)
        values = {k: form.get(k, "") for k in ("username", "display_name", "role", "region_id",
                                               "phone", "email", "locale")}  # fmt: skip
        values["region_id"] = values["region_id"] or None  # type: ignore[assignment]
        body = people.StaffCreate.model_validate({k: v for k, v in values.items() if v != ""})
        created = await people.create_staff(conn, links(ctx), actor, body)
    except (ValidationError, AdminError) as exc:
        return await _staff_page(request, principal, conn, clock, 422, values=form,
                                 errors=errors_of(exc))  # fmt: skip
    return await _staff_page(request, principal, conn, clock, created=created)


# --------------------------------------------------------------------------- invitations


@router.get("/invite")
async def invite_page(
    request: Request, principal: PageUser, clock: Clock, conn: Db, elder: str = ""
) -> Response:
    """The form that invites a family member of one elder."""
    if not _staff_only(principal):
        return not_found(request, principal, clock())
    rows = await elders.list_elders(conn, Actor.of(principal), None, False)
    return render(request, "admin_invite.html", principal, clock(), rows=rows,
                  values={"elder_id": elder, "locale": "zh", "expires_hours": "72",
                          "first_contact": True}, errors={})  # fmt: skip


@router.post("/invite")
async def invite_form(
    request: Request, principal: PageUser, clock: Clock, conn: Db, ctx: Ctx, same_site: SameSite
) -> Response:
    """Make the invitation link and show it once."""
    if not _staff_only(principal) or not same_site:
        return not_found(request, principal, clock())
    form = await _form(request)
    rows = await elders.list_elders(conn, Actor.of(principal), None, False)
    values: dict[str, Any] = {k: v for k, v in form.items() if v != ""}
    values["holds_key"] = form.get("holds_key") == "on"
    values["first_contact"] = form.get("first_contact") == "on"
    try:
        body = invitations.FamilyInvite.model_validate(values)
        made = await invitations.invite_family(conn, links(ctx), Actor.of(principal), body)
    except (ValidationError, AdminError) as exc:
        return render(request, "admin_invite.html", principal, clock(), 422, rows=rows,
                      values=values, errors=errors_of(exc))  # fmt: skip
    return render(request, "admin_invite.html", principal, clock(), rows=rows, made=made,
                  values={"locale": "zh", "expires_hours": "72", "first_contact": True},
                  errors={})  # fmt: skip


# --------------------------------------------------------------------------- import


@router.get("/import")
async def import_page(request: Request, principal: PageUser, clock: Clock, conn: Db) -> Response:
    """Upload a village's register for a dry run."""
    if principal.role not in ("district_staff", "town_staff"):
        return not_found(request, principal, clock())
    return render(request, "admin_import.html", principal, clock(),
                  villages=await _villages(conn, principal), columns=spreadsheet.COLUMNS,
                  report=None, village="", errors={})  # fmt: skip


@router.post("/import")
async def import_form(
    request: Request, principal: PageUser, clock: Clock, conn: Db, ctx: Ctx, same_site: SameSite
) -> Response:
    """A dry run of the uploaded file (its report), or, confirmed, the import of the same
    file (carried in the form, checked again before anything is written)."""
    if principal.role not in ("district_staff", "town_staff") or not same_site:
        return not_found(request, principal, clock())
    data = await request.form()
    village = str(data.get("village", ""))
    upload = data.get("file")
    confirm = str(data.get("content", ""))
    errors: dict[str, str] = {}
    content, name = b"", str(data.get("filename", ""))[:200]
    if confirm:
        try:
            content = base64.b64decode(confirm, validate=True)
        except (binascii.Error, ValueError):
            errors["file"] = "the file could not be carried over: upload it again"
    elif upload is not None and not isinstance(upload, str):
        content = await upload.read(spreadsheet.MAX_BYTES + 1)
        name = upload.filename or ""
    if not content and not errors:
        errors["file"] = "choose the register file (.xlsx or .csv)"
    report = None
    if not errors:
        try:
            report = await importing.import_village(
                conn, Actor.of(principal), village, content, name,
                dry_run=not confirm, default_tz=ctx.local_tz.key,
            )  # fmt: skip
        except AdminError as exc:
            errors = {"village": exc.message}
    return render(request, "admin_import.html", principal, clock(),
                  422 if errors or (report and report.problems) else 200,
                  villages=await _villages(conn, principal), columns=spreadsheet.COLUMNS,
                  report=report, village=village, errors=errors, filename=name,
                  content=base64.b64encode(content).decode() if report and report.dry_run
                  and not report.problems else "")  # fmt: skip
