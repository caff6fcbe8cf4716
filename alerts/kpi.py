"""Alert KPIs for a month: per kind and per region, time to acknowledge and to resolve
(p50 / p90 / p99), the share acknowledged within 60 s and 180 s, the false-alarm share.

Alerts cancelled by the elder within the cancel window are counted but left out of the
acknowledgement shares (nobody had to answer them); an alert never acknowledged counts as
not acknowledged in time. The false-alarm share is over alerts a person resolved.
An erased elder's alerts count in their village (`alerts.village_id`) without a home.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

Conn = psycopg.AsyncConnection[Any]

_QUERY = """
WITH RECURSIVE subtree(id) AS (
    SELECT id FROM regions WHERE id = %(region)s OR %(region)s::text IS NULL
    UNION
    SELECT r.id FROM regions r JOIN subtree s ON r.parent_id = s.id
), base AS (
    SELECT a.kind, v.id AS village, t.id AS town, a.outcome,
           extract(epoch FROM a.acknowledged_at - a.opened_at) AS ack_s,
           extract(epoch FROM a.resolved_at - a.opened_at) AS resolve_s
    FROM alerts a
    LEFT JOIN homes h ON h.id = a.home_id
    -- An erased elder's alerts have no home but keep their village.
    JOIN regions v ON v.id = coalesce(h.village_id, a.village_id)
    JOIN regions t ON t.id = v.parent_id
    WHERE a.opened_at >= %(start)s AND a.opened_at < %(end)s
      AND v.id IN (SELECT id FROM subtree)
)
SELECT
    CASE WHEN GROUPING(village) = 0 THEN 'village'
         WHEN GROUPING(town) = 0 THEN 'town'
         WHEN GROUPING(kind) = 0 THEN 'kind' ELSE 'total' END AS grouping,
    coalesce(village, town, kind, 'all') AS key,
    count(*) AS alerts,
    count(*) FILTER (WHERE outcome = 'cancelled_by_elder') AS self_cancelled,
    count(ack_s) AS acknowledged,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY ack_s) AS ack_p50,
    percentile_cont(0.9) WITHIN GROUP (ORDER BY ack_s) AS ack_p90,
    percentile_cont(0.99) WITHIN GROUP (ORDER BY ack_s) AS ack_p99,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY resolve_s) AS resolve_p50,
    percentile_cont(0.9) WITHIN GROUP (ORDER BY resolve_s) AS resolve_p90,
    percentile_cont(0.99) WITHIN GROUP (ORDER BY resolve_s) AS resolve_p99,
    count(*) FILTER (WHERE ack_s <= 60) AS ack_60,
    count(*) FILTER (WHERE ack_s <= 180) AS ack_180,
    count(*) FILTER (WHERE outcome IS NOT NULL
        AND outcome NOT IN ('cancelled_by_elder', 'cleared_by_data')) AS human_resolved,
    count(*) FILTER (WHERE outcome = 'false_alarm') AS false_alarms
FROM base
GROUP BY GROUPING SETS ((), (kind), (town), (village))
ORDER BY 1 DESC, 2
"""


@dataclass(slots=True, frozen=True)
class KpiRow:
    """The KPIs of one group (the whole month, one kind, one town or one village)."""

    grouping: str
    key: str
    alerts: int
    self_cancelled: int
    acknowledged: int
    ack_p50_s: float | None
    ack_p90_s: float | None
    ack_p99_s: float | None
    resolve_p50_s: float | None
    resolve_p90_s: float | None
    resolve_p99_s: float | None
    acked_within_60s: float | None
    acked_within_180s: float | None
    false_alarm_share: float | None


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """`2026-11` -> [2026-11-01, 2026-12-01) in UTC; ValueError if malformed."""
    try:
        first = date.fromisoformat(f"{month}-01")
    except ValueError:
        raise ValueError(f"month must look like 2026-11, not {month!r}") from None
    nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return (
        datetime(first.year, first.month, 1, tzinfo=UTC),
        datetime(nxt.year, nxt.month, 1, tzinfo=UTC),
    )


def _share(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


async def report(conn: Conn, month: str, region_id: str | None = None) -> list[KpiRow]:
    """The KPI rows of a month (optionally one region's subtree): total first, then per
    kind, per town and per village."""
    start, end = month_bounds(month)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_QUERY, {"region": region_id, "start": start, "end": end})
        rows = await cur.fetchall()
    order = {"total": 0, "kind": 1, "town": 2, "village": 3}
    result = []
    for r in sorted(rows, key=lambda r: (order[r["grouping"]], r["key"])):
        answerable = int(r["alerts"]) - int(r["self_cancelled"])

        def f(v: Any) -> float | None:
            return None if v is None else float(v)

        result.append(
            KpiRow(
                grouping=r["grouping"],
                key=r["key"],
                alerts=int(r["alerts"]),
                self_cancelled=int(r["self_cancelled"]),
                acknowledged=int(r["acknowledged"]),
                ack_p50_s=f(r["ack_p50"]),
                ack_p90_s=f(r["ack_p90"]),
                ack_p99_s=f(r["ack_p99"]),
                resolve_p50_s=f(r["resolve_p50"]),
                resolve_p90_s=f(r["resolve_p90"]),
                resolve_p99_s=f(r["resolve_p99"]),
                acked_within_60s=_share(int(r["ack_60"]), answerable),
                acked_within_180s=_share(int(r["ack_180"]), answerable),
                false_alarm_share=_share(int(r["false_alarms"]), int(r["human_resolved"])),
            )
        )
    return result
