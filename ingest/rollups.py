"""SQL of the rollups kept past the raw readings' retention: every metric per hour
(`readings_hourly`), a home's activity per hour and room (`activity_hourly`), and a home's
day in its own time zone (`home_days`, the family page's day summary,
`gateway.family.summarise`). Every write is an upsert that leaves an equal row alone, so
writing a range twice changes nothing; hours are UTC hours.

The activity definition is `alerts.detect.layout.is_activity` restated as data (ingest sits
below alerts); tests/unit/test_retention.py checks that the two agree.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import psycopg
from psycopg import sql

from devices.catalogue import BATTERY, HEARTBEAT

Conn = psycopg.AsyncConnection[Any]

ACTIVITY_KINDS = (
    "appliance",
    "appliance_switch",
    "bed",
    "bed_mat",
    "chair",
    "chair_mat",
    "contact",
    "cupboard_contact",
    "door",
    "door_contact",
    "entry_door",
    "flush_sensor",
    "motion",
    "pir_motion",
    "power",
    "power_meter",
    "power_plug",
    "radar",
    "sos_button",
    "sos_pendant",
    "water",
    "water_meter",
)
"""Device kinds whose readings can be a sign of life (every role but passive)."""
EXCLUDED_METRICS = (
    "battery",
    "breathing_rate",
    "energy",
    "flow",
    "heartbeat",
    "power",
    "rssi",
    "status",
    "watts",
    "worn",
)
"""Metrics that are no sign of life (housekeeping, breathing, meters)."""
HOUSEKEEPING = (HEARTBEAT, BATTERY)
"""A device's own upkeep: left out of the day summary like the family page leaves it out."""

_READINGS_HOURLY = """
INSERT INTO readings_hourly AS t
    (hour, home_id, device_id, metric, n, n_on, vmin, vmax, vsum, first_ts, last_ts)
SELECT date_bin('1 hour', r.ts, '2000-01-01 00:00+00'), r.home_id, r.device_id, r.metric, count(*),
       count(*) FILTER (WHERE r.value >= 1), min(r.value), max(r.value), sum(r.value),
       min(r.ts), max(r.ts)
FROM readings r WHERE r.ts >= %(since)s AND r.ts < %(until)s
GROUP BY 1, 2, 3, 4
ON CONFLICT (home_id, hour, device_id, metric) DO UPDATE SET
    n = EXCLUDED.n, n_on = EXCLUDED.n_on, vmin = EXCLUDED.vmin, vmax = EXCLUDED.vmax,
    vsum = EXCLUDED.vsum, first_ts = EXCLUDED.first_ts, last_ts = EXCLUDED.last_ts
WHERE (t.n, t.n_on, t.vmin, t.vmax, t.vsum, t.first_ts, t.last_ts)
    IS DISTINCT FROM (EXCLUDED.n, EXCLUDED.n_on, EXCLUDED.vmin, EXCLUDED.vmax,
                      EXCLUDED.vsum, EXCLUDED.first_ts, EXCLUDED.last_ts)
"""

_ACTIVITY_HOURLY = """
INSERT INTO activity_hourly AS t
    (hour, home_id, room, events, motion_events, door_openings, bed_events,
     first_event, last_event)
SELECT date_bin('1 hour', r.ts, '2000-01-01 00:00+00'), r.home_id, d.room,
       count(*) FILTER (WHERE a.active),
       count(*) FILTER (WHERE d.kind = 'pir_motion' AND r.value >= 1),
       count(*) FILTER (WHERE d.kind = 'door_contact' AND r.value >= 1),
       count(*) FILTER (WHERE d.kind = 'bed_mat' AND r.value >= 1),
       min(r.ts) FILTER (WHERE a.active), max(r.ts) FILTER (WHERE a.active)
FROM readings r JOIN devices d ON d.id = r.device_id
CROSS JOIN LATERAL (
    SELECT d.kind = ANY(%(activity)s) AND r.metric <> ALL(%(excluded)s) AS active) a
WHERE r.ts >= %(since)s AND r.ts < %(until)s AND r.metric <> ALL(%(housekeeping)s)
GROUP BY 1, 2, 3
ON CONFLICT (home_id, hour, room) DO UPDATE SET
    events = EXCLUDED.events, motion_events = EXCLUDED.motion_events,
    door_openings = EXCLUDED.door_openings, bed_events = EXCLUDED.bed_events,
    first_event = EXCLUDED.first_event, last_event = EXCLUDED.last_event
WHERE (t.events, t.motion_events, t.door_openings, t.bed_events, t.first_event, t.last_event)
    IS DISTINCT FROM (EXCLUDED.events, EXCLUDED.motion_events, EXCLUDED.door_openings,
                      EXCLUDED.bed_events, EXCLUDED.first_event, EXCLUDED.last_event)
"""

SUMMARY_CHUNK = 500
"""(home, day) pairs per statement of `summarise_days`."""

# A home's time zone (`z.tz`) is UTC when the free-text column holds no zone PostgreSQL
# knows. A join, so that pg_timezone_names (a scan of the zone files) is read once per
# statement, not once per use of the zone (both statements below).
_DAY_PAIRS = """
SELECT h.id, d::date
FROM homes h
LEFT JOIN pg_timezone_names n ON n.name = h.timezone
CROSS JOIN LATERAL (SELECT CASE WHEN n.name IS NULL THEN 'UTC' ELSE h.timezone END AS tz) z
CROSS JOIN LATERAL generate_series(
    (%(since)s AT TIME ZONE z.tz)::date, (%(until)s AT TIME ZONE z.tz)::date, '1 day') d
WHERE d::date::timestamp AT TIME ZONE z.tz < %(until)s
  AND (d::date + 1)::timestamp AT TIME ZONE z.tz > %(since)s
  AND (d::date + 1)::timestamp AT TIME ZONE z.tz <= %(now)s
  AND (%(raw_since)s::timestamptz IS NULL OR d::date::timestamp AT TIME ZONE z.tz >= %(raw_since)s)
  AND (NOT %(missing_only)s OR NOT EXISTS (
        SELECT 1 FROM home_days x WHERE x.home_id = h.id AND x.day = d::date))
ORDER BY 2, 1
"""

_HOME_DAYS = """
WITH want AS (
    SELECT w.home_id, w.day, z.tz,
           w.day::timestamp AT TIME ZONE z.tz AS day_start,
           (w.day + 1)::timestamp AT TIME ZONE z.tz AS day_end
    FROM unnest(%(homes)s::text[], %(days)s::date[]) AS w(home_id, day)
    JOIN homes h ON h.id = w.home_id
    LEFT JOIN pg_timezone_names n ON n.name = h.timezone
    CROSS JOIN LATERAL (SELECT CASE WHEN n.name IS NULL THEN 'UTC' ELSE h.timezone END AS tz) z
), ev AS (
    SELECT w.home_id, w.day, w.day_end, r.ts, r.device_id, d.kind, d.room, r.value,
           (d.kind = ANY(%(activity)s) AND r.metric <> ALL(%(excluded)s)) AS active
    FROM want w
    CROSS JOIN LATERAL (  -- per (home, day): its index range, in the partitions of that day
        SELECT x.ts, x.device_id, x.metric, x.value FROM readings x
        WHERE x.home_id = w.home_id AND x.ts >= w.day_start AND x.ts < w.day_end
          AND x.metric <> ALL(%(housekeeping)s)
        OFFSET 0
    ) r
    JOIN devices d ON d.id = r.device_id
), agg AS (
    SELECT home_id, day,
           min(ts) FILTER (WHERE active) AS first_activity,
           max(ts) FILTER (WHERE active) AS last_activity,
           count(*) FILTER (WHERE active) AS events,
           count(*) FILTER (WHERE kind = 'pir_motion' AND value >= 1) AS motion_events,
           array_agg(DISTINCT room ORDER BY room)
               FILTER (WHERE kind = 'pir_motion' AND value >= 1) AS rooms,
           count(*) FILTER (WHERE kind = 'door_contact' AND value >= 1) AS door_openings,
           min(value) FILTER (WHERE kind = 'temperature') AS temperature_min,
           max(value) FILTER (WHERE kind = 'temperature') AS temperature_max
    FROM ev GROUP BY home_id, day
), bed AS (  -- the bed's changes: a run of 'occupied' starts a span, the next run ends it
    SELECT home_id, day, day_end, ts, device_id, value >= 1 AS occupied,
           lag(value >= 1) OVER (PARTITION BY home_id, day ORDER BY ts, device_id) AS before
    FROM ev WHERE kind = 'bed_mat'
), runs AS (
    SELECT home_id, day, day_end, ts, occupied,
           lead(ts) OVER (PARTITION BY home_id, day ORDER BY ts, device_id) AS next_ts
    FROM bed WHERE before IS DISTINCT FROM occupied
), slept AS (
    SELECT home_id, day,
           sum(extract(epoch FROM coalesce(next_ts, day_end) - ts))::float8 AS seconds
    FROM runs WHERE occupied GROUP BY home_id, day
)
INSERT INTO home_days AS t
    (home_id, day, timezone, first_activity, last_activity, events, motion_events,
     rooms_visited, rooms, door_openings, bed_seconds, temperature_min, temperature_max)
SELECT w.home_id, w.day, w.tz, a.first_activity, a.last_activity, coalesce(a.events, 0),
       coalesce(a.motion_events, 0), cardinality(coalesce(a.rooms, '{}')),
       coalesce(a.rooms, '{}'), coalesce(a.door_openings, 0), coalesce(s.seconds, 0),
       a.temperature_min, a.temperature_max
FROM want w LEFT JOIN agg a USING (home_id, day) LEFT JOIN slept s USING (home_id, day)
ON CONFLICT (home_id, day) DO UPDATE SET
    timezone = EXCLUDED.timezone, first_activity = EXCLUDED.first_activity,
    last_activity = EXCLUDED.last_activity, events = EXCLUDED.events,
    motion_events = EXCLUDED.motion_events, rooms_visited = EXCLUDED.rooms_visited,
    rooms = EXCLUDED.rooms, door_openings = EXCLUDED.door_openings,
    bed_seconds = EXCLUDED.bed_seconds, temperature_min = EXCLUDED.temperature_min,
    temperature_max = EXCLUDED.temperature_max, computed_at = now()
WHERE (t.timezone, t.first_activity, t.last_activity, t.events, t.motion_events, t.rooms,
       t.door_openings, t.bed_seconds, t.temperature_min, t.temperature_max)
    IS DISTINCT FROM (EXCLUDED.timezone, EXCLUDED.first_activity, EXCLUDED.last_activity,
       EXCLUDED.events, EXCLUDED.motion_events, EXCLUDED.rooms, EXCLUDED.door_openings,
       EXCLUDED.bed_seconds, EXCLUDED.temperature_min, EXCLUDED.temperature_max)
"""


def _params() -> dict[str, Any]:
    return {
        "activity": list(ACTIVITY_KINDS),
        "excluded": list(EXCLUDED_METRICS),
        "housekeeping": list(HOUSEKEEPING),
    }


async def roll_up_hours(conn: Conn, since: datetime, until: datetime) -> int:
    """Write the hourly rollups of the readings in [since, until) (hour-aligned, native
    path only: on TimescaleDB they are continuous aggregates); returns rows changed."""
    window = {"since": since, "until": until}
    cur = await conn.execute(_READINGS_HOURLY, window)
    changed = max(cur.rowcount, 0)
    cur = await conn.execute(_ACTIVITY_HOURLY, window | _params())
    return changed + max(cur.rowcount, 0)


async def day_pairs(
    conn: Conn,
    since: datetime,
    until: datetime,
    now: datetime,
    raw_since: datetime | None,
    *,
    missing_only: bool = False,
) -> list[tuple[str, date]]:
    """Every home's local days that overlap [since, until), are over by `now` and whose raw
    readings are all still there (start at or after `raw_since`); `missing_only`: only
    those without a `home_days` row yet."""
    cur = await conn.execute(
        _DAY_PAIRS,
        {
            "since": since,
            "until": until,
            "now": now,
            "raw_since": raw_since,
            "missing_only": missing_only,
        },
    )
    return [(str(h), d) for h, d in await cur.fetchall()]


async def summarise_days(
    conn: Conn, pairs: list[tuple[str, date]], chunk: int = SUMMARY_CHUNK
) -> int:
    """Write the `home_days` rows of these (home, local day) pairs from the raw readings;
    returns rows changed."""
    changed = 0
    for i in range(0, len(pairs), chunk):
        part = pairs[i : i + chunk]
        cur = await conn.execute(
            _HOME_DAYS,
            {"homes": [h for h, _ in part], "days": [d for _, d in part]} | _params(),
        )
        changed += max(cur.rowcount, 0)
    return changed


async def purge(conn: Conn, before: datetime, *, tables: bool) -> int:
    """Delete rollups older than `before`: the day summaries, and with `tables` the hourly
    rollup tables too (on TimescaleDB the aggregates' own retention policy does that)."""
    cur = await conn.execute(
        "DELETE FROM home_days WHERE day < (%s AT TIME ZONE timezone)::date", (before,)
    )
    purged = max(cur.rowcount, 0)
    if tables:
        for table in ("readings_hourly", "activity_hourly"):
            cur = await conn.execute(
                sql.SQL("DELETE FROM {} WHERE hour < %s").format(sql.Identifier(table)),
                (before,),
            )
            purged += max(cur.rowcount, 0)
    return purged
