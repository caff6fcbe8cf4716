"""Finding an elder through the caller's scope, and auditing reads of their health data."""

from __future__ import annotations

from typing import Any

from gateway import access
from gateway.access import Area
from gateway.auth import Principal
from gateway.errors import ApiError
from gateway.queries import elders
from gateway.queries.base import Conn
from gateway.queries.elders import Elder


async def elder_or_404(conn: Conn, principal: Principal, elder_id: str) -> Elder:
    """The elder's file if the caller may read health data and the elder is theirs (403 /
    404 otherwise; a stranger's elder is not told apart from a missing one)."""
    access.need(principal, Area.HEALTH)
    found = await elders.elder(conn, access.home_filter(principal), elder_id)
    if found is None:
        raise ApiError(404, "not_found", f"no elder {elder_id}")
    return found


async def audited_elder(
    conn: Conn, principal: Principal, elder_id: str, what: str, **detail: Any
) -> Elder:
    """`elder_or_404`, and the audit row of this read of the elder's `what` (with the
    query's `detail`). A refused read writes nothing."""
    found = await elder_or_404(conn, principal, elder_id)
    await elders.audit_health_read(conn, principal.user_id, elder_id, what, detail)
    return found
