-- Readings with TimescaleDB: a hypertable chunked by day, compressed after 7 days.
CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE readings (
    device_id   text NOT NULL,
    boot        int NOT NULL,
    seq         bigint NOT NULL,
    ts          timestamptz NOT NULL,
    home_id     text NOT NULL,
    metric      text NOT NULL,
    value       double precision NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, boot, seq, ts)
);
SELECT create_hypertable('readings', 'ts', chunk_time_interval => INTERVAL '1 day');
CREATE INDEX readings_home_ts ON readings (home_id, ts);
ALTER TABLE readings SET (timescaledb.compress, timescaledb.compress_segmentby = 'device_id');
SELECT add_compression_policy('readings', INTERVAL '7 days');

-- Same signature as the native path, so maintenance code does not need to know.
CREATE FUNCTION eldercare_ensure_partitions(first_day date, last_day date)
RETURNS int LANGUAGE sql AS $$ SELECT 0 $$;
