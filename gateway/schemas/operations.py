"""Health of the running service."""

from __future__ import annotations

from gateway.schemas.common import Schema


class Health(Schema):
    """`ok` with every check passing, or `unavailable` (HTTP 503) and the failing checks."""

    status: str
    checks: dict[str, bool]
    failing: list[str] | None = None
