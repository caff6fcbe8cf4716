-- Learned per-elder detection baselines (alerts.learned.Baseline), saved periodically by the
-- alerts service and restored at start so a restart does not forget an elder's routine.
CREATE TABLE detector_baselines (
    home_id     text PRIMARY KEY REFERENCES homes(id) ON DELETE CASCADE,
    version     int NOT NULL DEFAULT 1,
    state       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
