-- Away / hospital mode has one source of truth: `home_modes` (0004), which the alert mute
-- (`alerts.mutes.AwayMode`) reads and `PUT /api/v1/elders/{id}/away` now writes. The elder's
-- `away_*` columns (0006), which the API used to write and the alerts never read, go.

-- A current or future away window moves to its home's mode (a window that already ended
-- mutes nothing and is dropped). A mode the home already has is kept unless it has ended.
INSERT INTO home_modes AS m (home_id, mode, since, until, reason)
SELECT e.home_id, 'away', e.away_from, e.away_until, e.away_reason
FROM elders e
WHERE e.away_from IS NOT NULL AND (e.away_until IS NULL OR e.away_until > now())
ON CONFLICT (home_id) DO UPDATE SET
    mode = EXCLUDED.mode, since = EXCLUDED.since, until = EXCLUDED.until,
    reason = EXCLUDED.reason, set_by = NULL
    WHERE m.until IS NOT NULL AND m.until <= now();

-- The range check moves with the data. A mode that ends before it starts could never mute
-- anything; it is removed so that the check can be added.
DELETE FROM home_modes WHERE until IS NOT NULL AND until <= since;
ALTER TABLE home_modes ADD CONSTRAINT home_modes_range CHECK (until IS NULL OR until > since);

ALTER TABLE elders
    DROP CONSTRAINT elders_away_range,
    DROP COLUMN away_from,
    DROP COLUMN away_until,
    DROP COLUMN away_reason;
