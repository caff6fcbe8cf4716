-- Retention with TimescaleDB: a retention policy drops raw chunks older than
-- `ingest.retention_days`; the two hourly rollups are continuous aggregates refreshed by
-- their policies and kept for `ingest.rollup_retention_days`. The daily summaries per home
-- (a day in the home's own time zone, hours in bed from the bed mat's changes) need window
-- functions and a per-home time zone, which a continuous aggregate cannot express: they are
-- a plain table written by ingest's maintenance task (ingest.retention), as on the native
-- path. Same names and columns as 0018_retention.native.sql.
--
-- A continuous aggregate refreshed over a range whose raw chunks were dropped loses what it
-- held there, so the refresh window (start_offset) stays shorter than the raw retention:
-- ingest.retention sets it to max_age_days + 2 (older readings are refused by ingest).

CREATE MATERIALIZED VIEW readings_hourly WITH (timescaledb.continuous) AS
SELECT time_bucket(INTERVAL '1 hour', ts) AS hour,
       home_id, device_id, metric,
       count(*) AS n,
       count(*) FILTER (WHERE value >= 1) AS n_on,
       min(value) AS vmin, max(value) AS vmax, sum(value) AS vsum,
       min(ts) AS first_ts, max(ts) AS last_ts
FROM readings
GROUP BY 1, 2, 3, 4
WITH NO DATA;

-- The activity kinds and non-activity metrics are ingest.rollups.ACTIVITY_KINDS and
-- EXCLUDED_METRICS (alerts.detect.layout.is_activity); tests compare both paths.
CREATE MATERIALIZED VIEW activity_hourly WITH (timescaledb.continuous) AS
SELECT time_bucket(INTERVAL '1 hour', r.ts) AS hour,
       r.home_id, d.room,
       count(*) FILTER (WHERE d.kind IN ('appliance', 'appliance_switch', 'bed', 'bed_mat',
           'chair', 'chair_mat', 'contact', 'cupboard_contact', 'door', 'door_contact',
           'entry_door', 'flush_sensor', 'motion', 'pir_motion', 'power', 'power_meter',
           'power_plug', 'radar', 'sos_button', 'sos_pendant', 'water', 'water_meter')
           AND r.metric NOT IN ('battery', 'breathing_rate', 'energy', 'flow', 'heartbeat',
           'power', 'rssi', 'status', 'watts', 'worn')) AS events,
       count(*) FILTER (WHERE d.kind = 'pir_motion' AND r.value >= 1) AS motion_events,
       count(*) FILTER (WHERE d.kind = 'door_contact' AND r.value >= 1) AS door_openings,
       count(*) FILTER (WHERE d.kind = 'bed_mat' AND r.value >= 1) AS bed_events,
       min(r.ts) FILTER (WHERE d.kind IN ('appliance', 'appliance_switch', 'bed', 'bed_mat',
           'chair', 'chair_mat', 'contact', 'cupboard_contact', 'door', 'door_contact',
           'entry_door', 'flush_sensor', 'motion', 'pir_motion', 'power', 'power_meter',
           'power_plug', 'radar', 'sos_button', 'sos_pendant', 'water', 'water_meter')
           AND r.metric NOT IN ('battery', 'breathing_rate', 'energy', 'flow', 'heartbeat',
           'power', 'rssi', 'status', 'watts', 'worn')) AS first_event,
       max(r.ts) FILTER (WHERE d.kind IN ('appliance', 'appliance_switch', 'bed', 'bed_mat',
           'chair', 'chair_mat', 'contact', 'cupboard_contact', 'door', 'door_contact',
           'entry_door', 'flush_sensor', 'motion', 'pir_motion', 'power', 'power_meter',
           'power_plug', 'radar', 'sos_button', 'sos_pendant', 'water', 'water_meter')
           AND r.metric NOT IN ('battery', 'breathing_rate', 'energy', 'flow', 'heartbeat',
           'power', 'rssi', 'status', 'watts', 'worn')) AS last_event
FROM readings r JOIN devices d ON d.id = r.device_id
WHERE r.metric NOT IN ('heartbeat', 'battery')
GROUP BY 1, 2, 3
WITH NO DATA;

CREATE TABLE home_days (
    home_id         text NOT NULL,
    day             date NOT NULL,
    timezone        text NOT NULL,
    first_activity  timestamptz,
    last_activity   timestamptz,
    events          bigint NOT NULL,
    motion_events   bigint NOT NULL,
    rooms_visited   int NOT NULL,
    rooms           text[] NOT NULL,
    door_openings   bigint NOT NULL,
    bed_seconds     double precision NOT NULL,
    temperature_min double precision,
    temperature_max double precision,
    computed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (home_id, day)
);
CREATE INDEX home_days_day ON home_days (day);

CREATE TABLE readings_retention (
    id             int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    raw_days       int,
    rollup_days    int,
    raw_since      timestamptz,
    hourly_through timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
INSERT INTO readings_retention (id) VALUES (1);

-- (Re)set the policies to the settings; a policy already as asked is left alone (so its
-- schedule is not reset every hour). NULL days: keep for ever. Returns how many changed.
CREATE FUNCTION eldercare_retention_policies(raw_days int, rollup_days int, refresh_days int)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    changed int := 0;
    target text;
    wanted interval;
    current interval;
BEGIN
    FOREACH target IN ARRAY ARRAY['readings', 'readings_hourly', 'activity_hourly'] LOOP
        wanted := CASE WHEN target = 'readings' THEN make_interval(days => raw_days)
                       ELSE make_interval(days => rollup_days) END;
        SELECT (config->>'drop_after')::interval INTO current
        FROM timescaledb_information.jobs
        WHERE proc_name = 'policy_retention' AND hypertable_name = target;
        IF current IS DISTINCT FROM wanted THEN
            PERFORM remove_retention_policy(target, if_exists => true);
            IF wanted IS NOT NULL THEN
                PERFORM add_retention_policy(target, wanted);
            END IF;
            changed := changed + 1;
        END IF;
        CONTINUE WHEN target = 'readings';
        SELECT (config->>'start_offset')::interval INTO current
        FROM timescaledb_information.jobs
        WHERE proc_name = 'policy_refresh_continuous_aggregate' AND hypertable_name = target;
        IF current IS DISTINCT FROM make_interval(days => refresh_days) THEN
            PERFORM remove_continuous_aggregate_policy(target, if_exists => true);
            PERFORM add_continuous_aggregate_policy(target,
                start_offset => make_interval(days => refresh_days),
                end_offset => INTERVAL '1 hour',
                schedule_interval => INTERVAL '1 hour');
            changed := changed + 1;
        END IF;
    END LOOP;
    RETURN changed;
END $$;

SELECT eldercare_retention_policies(180, 1825, 9);
