"""Personal information of an elder: consent records (record, list, withdraw), the export
of everything held about them (audited) and their erasure when they leave the service."""

from __future__ import annotations

import os
import tempfile

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from alerts.consent import Purpose
from gateway import access
from gateway.access import Area
from gateway.auth import Principal
from gateway.deps import ApiUser, Clock, Db
from gateway.errors import ApiError
from gateway.lookup import elder_or_404
from gateway.privacy import consents, erase, export
from gateway.queries import elders
from gateway.schemas.privacy import (
    Consent,
    ConsentBody,
    ConsentList,
    EraseBody,
    ErasureResult,
    WithdrawBody,
)

router = APIRouter(prefix="/api/v1/elders", tags=["personal information"])

EXPORT_ROLES = frozenset({"district_staff", "town_staff"})
ERASE_ROLES = frozenset({"district_staff"})


async def _consent_list(conn: Db, elder_id: str, clock: Clock) -> ConsentList:
    rows = await consents.consents(conn, elder_id, clock())
    current = {Purpose(c.purpose) for c in rows if c.current}
    return ConsentList(
        items=[Consent.model_validate(c) for c in rows],
        missing=sorted(p.value for p in Purpose if p not in current),
    )


@router.get("/{elder_id}/consents")
async def list_consents(elder_id: str, principal: ApiUser, conn: Db, clock: Clock) -> ConsentList:
    """The elder's consent records, current first, and the purposes with no current
    consent (`missing`) (staff in scope)."""
    access.need(principal, Area.EDIT_ELDER)
    await elder_or_404(conn, principal, elder_id)
    return await _consent_list(conn, elder_id, clock)


@router.post("/{elder_id}/consents", status_code=201)
async def record_consent(
    elder_id: str, body: ConsentBody, principal: ApiUser, conn: Db, clock: Clock
) -> Consent:
    """Record a consent given by the elder or a guardian (staff in scope). 409
    `consent_exists` while one for the purpose is current."""
    access.need(principal, Area.EDIT_ELDER)
    await elder_or_404(conn, principal, elder_id)
    now = clock()
    try:
        cid = await consents.record(
            conn,
            elder_id,
            purpose=body.purpose,
            given_by=body.given_by,
            method=body.method,
            given_at=body.given_at or now,
            recorded_by=principal.user_id,
            now=now,
            guardian_name=body.guardian_name,
            guardian_relation=body.guardian_relation,
            reference=body.reference,
        )
    except consents.ConsentError as exc:
        raise ApiError(409 if exc.code == "consent_exists" else 422, exc.code, str(exc)) from None
    found = await consents.consent(conn, elder_id, cid, now)
    assert found is not None
    return Consent.model_validate(found)


@router.post("/{elder_id}/consents/{consent_id}/withdraw")
async def withdraw_consent(
    elder_id: str,
    consent_id: int,
    body: WithdrawBody,
    principal: ApiUser,
    conn: Db,
    clock: Clock,
) -> Consent:
    """Withdraw a current consent from now on (staff in scope): its purpose is refused
    from then (health data 403 `consent_missing`, no wellbeing alerts; SOS still alerts)."""
    access.need(principal, Area.EDIT_ELDER)
    await elder_or_404(conn, principal, elder_id)
    now = clock()
    try:
        await consents.withdraw(
            conn, elder_id, consent_id, by=principal.user_id, now=now, note=body.note
        )
    except consents.ConsentError as exc:
        status = {"not_found": 404, "already_withdrawn": 409}.get(exc.code, 422)
        raise ApiError(status, exc.code, str(exc)) from None
    found = await consents.consent(conn, elder_id, consent_id, now)
    assert found is not None
    return Consent.model_validate(found)


def _need_role(principal: Principal, roles: frozenset[str], what: str) -> None:
    if principal.role not in roles:
        allowed = " or ".join(sorted(roles))
        raise ApiError(403, "forbidden", f"only {allowed} may {what}")


class ZipResponse(FileResponse):
    """A zip archive."""

    media_type = "application/zip"


@router.get(
    "/{elder_id}/export",
    response_class=ZipResponse,
    responses={
        200: {
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
            "description": "the archive",
        }
    },
)
async def export_elder(elder_id: str, principal: ApiUser, conn: Db, clock: Clock) -> ZipResponse:
    """Everything held about the elder as one zip (per table JSON and CSV, and
    `manifest.json`) (district and town staff in scope). Audited."""
    _need_role(principal, EXPORT_ROLES, "export an elder's data")
    await elder_or_404(conn, principal, elder_id)
    now = clock()
    fd, path = tempfile.mkstemp(prefix="elder-export-", suffix=".zip")
    try:
        with os.fdopen(fd, "wb") as out:
            done = await export.export_elder(
                conn, elder_id, out, generated_by=principal.username, now=now
            )
        await elders.audit_health_read(
            conn, principal.user_id, elder_id, "export", {"rows": done.rows}
        )
    except BaseException:
        os.unlink(path)
        raise
    return ZipResponse(
        path,
        media_type="application/zip",
        filename=f"elder-{elder_id}-{now:%Y%m%d}.zip",
        background=BackgroundTask(os.unlink, path),
    )


@router.post("/{elder_id}/erase")
async def erase_elder(
    elder_id: str, body: EraseBody, principal: ApiUser, conn: Db, clock: Clock
) -> ErasureResult:
    """Erase the elder who left the service (district staff in scope; `confirm` repeats the
    elder's id). Deletes their personal data, anonymises their alerts (the KPIs still count
    them), keeps one erasure record without personal data. 409 `alerts_unresolved` while an
    alert of theirs is not resolved."""
    _need_role(principal, ERASE_ROLES, "erase an elder's data")
    await elder_or_404(conn, principal, elder_id)
    if body.confirm != elder_id:
        raise ApiError(422, "invalid_request", "confirm: repeat the elder's id to erase them")
    try:
        done = await erase.erase_elder(
            conn, elder_id, by=principal.user_id, via="api", reason=body.reason, now=clock()
        )
    except erase.ErasureRefused as exc:
        raise ApiError(
            409 if exc.code == "alerts_unresolved" else 404, exc.code, str(exc)
        ) from None
    return ErasureResult(id=done.id, at=done.at, counts=done.counts)
