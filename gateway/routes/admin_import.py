"""Bulk import of a village's register over the API: `POST /api/v1/admin/import` with the
file (multipart `file`), `village` and `dry_run`. A dry run answers the report (200); an
import with problems answers 422 with every problem and writes nothing."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.responses import JSONResponse

from gateway.admin import importing, spreadsheet
from gateway.admin.common import Actor
from gateway.deps import ApiUser, Ctx, Db
from gateway.errors import ApiError, error_response
from gateway.routes.admin import api_errors

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


async def read_upload(upload: UploadFile) -> bytes:
    """The uploaded file's bytes (413 past the import's size limit)."""
    data = await upload.read(spreadsheet.MAX_BYTES + 1)
    if len(data) > spreadsheet.MAX_BYTES:
        raise ApiError(413, "too_large", f"the file is over {spreadsheet.MAX_BYTES} bytes")
    return data


@router.post(
    "/import",
    response_model=importing.ImportReport,
    responses={422: {"description": "the file has problems; nothing was written"}},
)
async def import_village(
    principal: ApiUser,
    conn: Db,
    ctx: Ctx,
    file: Annotated[UploadFile, File(description="the register: .csv or .xlsx")],
    village: Annotated[str, Query(min_length=1, max_length=64)],
    dry_run: bool = True,
) -> importing.ImportReport | JSONResponse:
    """Check (`dry_run=true`, the default) or import a village's homes and elders from a
    CSV or .xlsx file (columns in docs/operations.md, English or Chinese headers). The
    import is all or nothing and matched by external id, so running it again is safe."""
    data = await read_upload(file)
    with api_errors():
        report = await importing.import_village(
            conn,
            Actor.of(principal),
            village,
            data,
            file.filename or "",
            dry_run=dry_run,
            default_tz=ctx.local_tz.key,
        )
    if report.problems and not dry_run:
        return refused(report)
    return report


def refused(report: importing.ImportReport) -> JSONResponse:
    """The 422 answer of a refused import: every problem, nothing written."""
    problems = [p.model_dump() for p in report.problems]
    return error_response(
        422,
        "invalid_import",
        f"the file has {len(problems)} problems; nothing was written: fix them and retry",
        problems=problems,
    )
