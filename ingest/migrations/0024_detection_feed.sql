-- One receive per reading (issue 18; ingest/feed.py, docs/architecture.md "Detection fed by
-- ingest").
--
-- Ingest receives and decodes each reading once: in the transaction that stores a batch it
-- also writes the batch's readings here (msgpack), and NOTIFY detection_feed. The holder of
-- the `detection` lease reads the rows, runs them through the detectors, stores what they
-- raised, and deletes each row once that is committed. A row is the durable hand-off between
-- the two stages: the broker's message is acknowledged when its batch (readings and this row)
-- is committed, and a detection that dies before deleting a row judges it again after the
-- restart (the marks of its saved state drop what it had judged already).
CREATE TABLE detection_feed (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    written_at  timestamptz NOT NULL DEFAULT now(),
    readings    bytea NOT NULL,
    n           integer NOT NULL
);
