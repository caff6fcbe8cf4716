-- The detector's whole per-home state (alerts.state): silences in progress, occupancy, open
-- stays, pending deadlines and the learned values (`learned`, msgpack of
-- LearnedDetector.export_state), with the last reading the alerts stage handled per device of
-- the home (`marks`). Saved every few seconds for the homes that changed and at shutdown;
-- restored at start, then the readings stored since `saved_at` are replayed, so a restart
-- (even kill -9) neither forgets a silence nor counts a reading twice.
CREATE TABLE detector_state (
    home_id   text PRIMARY KEY REFERENCES homes(id) ON DELETE CASCADE,
    version   int NOT NULL,
    saved_at  timestamptz NOT NULL,
    learned   bytea NOT NULL,
    marks     bytea NOT NULL
);

-- The device watch (alerts.technical.DeviceWatch.export_state): one row for the deployment.
CREATE TABLE device_watch_state (
    id        int PRIMARY KEY CHECK (id = 1),
    version   int NOT NULL,
    saved_at  timestamptz NOT NULL,
    state     bytea NOT NULL
);
