-- Alerts about the service itself (the pipeline stalled, no readings from anywhere): they
-- belong to no home. One open alert per kind among them, as per home and kind for the rest.
ALTER TABLE alerts ALTER COLUMN home_id DROP NOT NULL;
CREATE UNIQUE INDEX alerts_one_open_system ON alerts (kind)
    WHERE home_id IS NULL AND status <> 'resolved';

-- Each ingest worker's heartbeat: what it has received and committed, so a watchdog can
-- tell a worker that is gone or stuck from a quiet night.
CREATE TABLE ingest_heartbeats (
    worker      text PRIMARY KEY,
    at          timestamptz NOT NULL,
    received    bigint NOT NULL,
    committed   bigint NOT NULL,
    pending     int NOT NULL
);
