"""Operations: liveness and readiness (`/healthz`) and the Prometheus metrics (`/metrics`).

`/metrics` asks for ``Authorization: Bearer <ELDERCARE_GATEWAY__METRICS_TOKEN>`` when a token
is set (production requires one): the metrics name regions' load, alert counts and the
service's internals. `/healthz` stays open: a load balancer or an orchestrator's probe
checks it without a secret, and it tells only "ok" or which of the service's own checks
fail, nothing about elders.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import FileResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.context import AppContext
from gateway.deps import Ctx
from gateway.errors import ApiError
from gateway.queries.base import ping
from gateway.schemas.operations import Health

log = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])
ICON = Path(__file__).resolve().parent.parent / "static" / "favicon.svg"

DB_CHECK_TIMEOUT_S = 2.0


@router.get(
    "/healthz",
    response_model=None,
    responses={200: {"model": Health}, 503: {"model": Health}},
)
async def healthz(ctx: Ctx) -> JSONResponse:
    """Liveness and readiness: the database and the service's own checks."""
    checks = {"database": await _database_ok(ctx)}
    try:
        checks.update(ctx.health())
    except Exception:
        log.exception("health: a check raised")
        checks["health_checks"] = False
    if all(checks.values()):
        return JSONResponse({"status": "ok", "checks": checks})
    failing = sorted(name for name, ok in checks.items() if not ok)
    return JSONResponse({"status": "unavailable", "checks": checks, "failing": failing}, 503)


async def _database_ok(ctx: AppContext) -> bool:
    try:
        async with asyncio.timeout(DB_CHECK_TIMEOUT_S):
            async with ctx.pool.connection(timeout=DB_CHECK_TIMEOUT_S) as conn:
                await ping(conn)
    except Exception as exc:
        log.warning("health: database check failed: %s", exc)
        return False
    return True


@router.get(
    "/metrics",
    responses={401: {"description": "the metrics token is set and the request lacks it"}},
)
async def prometheus_metrics(
    ctx: Ctx, authorization: Annotated[str | None, Header()] = None
) -> Response:
    """Prometheus text exposition of every metric in the service's registry; with
    ``ELDERCARE_GATEWAY__METRICS_TOKEN`` set, only for ``Authorization: Bearer <token>``."""
    token = ctx.settings.metrics_token
    if token is not None and not bearer_matches(authorization, token.get_secret_value()):
        raise ApiError(
            401,
            "metrics_token_required",
            "/metrics needs Authorization: Bearer <ELDERCARE_GATEWAY__METRICS_TOKEN>",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    return Response(generate_latest(ctx.metrics), media_type=CONTENT_TYPE_LATEST)


def bearer_matches(authorization: str | None, token: str) -> bool:
    """True when `authorization` is ``Bearer <token>``; the token compared in constant time
    (its bytes, so a non-ASCII header cannot raise)."""
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> FileResponse:
    """The service's icon (an SVG: browsers that ask for /favicon.ico accept one)."""
    return FileResponse(
        ICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"}
    )
