-- Readings without TimescaleDB: native daily range partitions, created ahead of time by
-- eldercare_ensure_partitions (called by migrations and by ingest's maintenance task).
-- A default partition catches anything outside the created range, so no reading is refused.
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
) PARTITION BY RANGE (ts);

CREATE TABLE readings_default PARTITION OF readings DEFAULT;
CREATE INDEX readings_home_ts ON readings (home_id, ts);

CREATE FUNCTION eldercare_ensure_partitions(first_day date, last_day date)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    d date := first_day;
    made int := 0;
    name text;
BEGIN
    WHILE d <= last_day LOOP
        name := format('readings_%s', to_char(d, 'YYYYMMDD'));
        IF to_regclass(name) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF readings FOR VALUES FROM (%L) TO (%L)',
                name, d::timestamptz AT TIME ZONE 'UTC', (d + 1)::timestamptz AT TIME ZONE 'UTC');
            made := made + 1;
        END IF;
        d := d + 1;
    END LOOP;
    RETURN made;
END $$;

SELECT eldercare_ensure_partitions(
    (now() AT TIME ZONE 'UTC')::date - 1, (now() AT TIME ZONE 'UTC')::date + 7);
