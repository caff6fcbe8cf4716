-- Retention without TimescaleDB: raw readings are kept for `ingest.retention_days`, their
-- rollups for `ingest.rollup_retention_days`. Ingest's maintenance task (ingest.retention)
-- fills the rollup tables per closed hour and day, and drops a daily partition older than
-- the retention only in the transaction that wrote its final rollups. Same tables and
-- columns as the TimescaleDB variant, where the two hourly rollups are continuous aggregates.

-- Every metric of every device per hour (the API's rolled-up readings past the raw window).
CREATE TABLE readings_hourly (
    hour      timestamptz NOT NULL,
    home_id   text NOT NULL,
    device_id text NOT NULL,
    metric    text NOT NULL,
    n         bigint NOT NULL,            -- readings
    n_on      bigint NOT NULL,            -- of them with value >= 1 (a motion seen, a door open)
    vmin      double precision NOT NULL,
    vmax      double precision NOT NULL,
    vsum      double precision NOT NULL,  -- avg = vsum / n
    first_ts  timestamptz NOT NULL,
    last_ts   timestamptz NOT NULL,
    PRIMARY KEY (home_id, hour, device_id, metric)
);
CREATE INDEX readings_hourly_hour ON readings_hourly (hour);

-- A home's activity per hour and room (the room the device was in when it was rolled up).
CREATE TABLE activity_hourly (
    hour           timestamptz NOT NULL,
    home_id        text NOT NULL,
    room           text NOT NULL,
    events         bigint NOT NULL,       -- signs of life (alerts.detect.layout.is_activity)
    motion_events  bigint NOT NULL,       -- pir_motion seen (value >= 1)
    door_openings  bigint NOT NULL,       -- door_contact opened (value >= 1)
    bed_events     bigint NOT NULL,       -- bed_mat occupied readings (value >= 1)
    first_event    timestamptz,           -- first / last sign of life in the hour
    last_event     timestamptz,
    PRIMARY KEY (home_id, hour, room)
);
CREATE INDEX activity_hourly_hour ON activity_hourly (hour);

-- One row per home and local day (the home's time zone): gateway.family.summarise's numbers.
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

-- Where the raw readings begin (NULL: nothing dropped yet) and the settings last applied.
CREATE TABLE readings_retention (
    id             int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    raw_days       int,
    rollup_days    int,
    raw_since      timestamptz,
    hourly_through timestamptz,           -- hourly rollups written for hours before this
    updated_at     timestamptz NOT NULL DEFAULT now()
);
INSERT INTO readings_retention (id) VALUES (1);
