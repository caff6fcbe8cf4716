"""Operations: liveness and readiness (`/healthz`) and the Prometheus metrics (`/metrics`)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.context import AppContext
from gateway.deps import Ctx
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


@router.get("/metrics")
async def prometheus_metrics(ctx: Ctx) -> Response:
    """Prometheus text exposition of every metric in the service's registry."""
    return Response(generate_latest(ctx.metrics), media_type=CONTENT_TYPE_LATEST)


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> FileResponse:
    """The service's icon (an SVG: browsers that ask for /favicon.ico accept one)."""
    return FileResponse(
        ICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"}
    )
