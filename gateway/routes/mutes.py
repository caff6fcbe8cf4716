"""Silences: muting the non-emergency alerts of a home or a region for a while."""

from __future__ import annotations

import psycopg
from fastapi import APIRouter

from alerts import mutes
from gateway.deps import ApiUser, Clock, Db
from gateway.errors import ApiError
from gateway.queries import places
from gateway.schemas.alerts import SilenceBody
from gateway.schemas.common import Created

router = APIRouter(prefix="/api/v1", tags=["mutes"])


@router.post("/silences", status_code=201)
async def add_silence(body: SilenceBody, principal: ApiUser, conn: Db, clock: Clock) -> Created:
    """Silence non-emergency alerts of a home or region (in the caller's own part of the
    region tree) until `ends_at`, with a reason."""
    if not (principal.is_staff or principal.role == "operator"):
        raise ApiError(403, "forbidden", "only staff and operators may silence")
    if (body.home_id is None) == (body.region_id is None):
        raise ApiError(422, "invalid_request", "give exactly one of home_id and region_id")
    now = clock()
    if body.ends_at.tzinfo is None or body.ends_at <= now:
        raise ApiError(422, "invalid_request", "ends_at must be a future time with a time zone")
    if principal.role != "operator" and not await places.in_subtree(
        conn, principal.region_id, region_id=body.region_id, home_id=body.home_id
    ):
        target = body.home_id or body.region_id
        raise ApiError(404, "not_found", f"no home or region {target!r} in your area")
    try:
        silence_id = await mutes.add_silence(
            conn,
            starts_at=now,
            ends_at=body.ends_at,
            reason=body.reason,
            home_id=body.home_id,
            region_id=body.region_id,
            kinds=body.kinds,
            user_id=principal.user_id,
        )
    except ValueError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None
    except psycopg.errors.IntegrityError:
        target = body.home_id or body.region_id
        raise ApiError(404, "not_found", f"no home or region {target!r}") from None
    return Created(id=silence_id)
