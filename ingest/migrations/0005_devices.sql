-- Devices (issue 3): per-device broker credentials, broker service accounts, and the ground
-- truth of simulated cohorts.

-- One MQTT credential per device. Only a mosquitto_passwd-compatible hash ($7$, PBKDF2-SHA512)
-- is kept; the password is shown once, when the device is provisioned.
CREATE TABLE device_credentials (
    device_id       text PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
    username        text NOT NULL UNIQUE,
    password_hash   text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz
);

-- Service accounts of the broker ACL (ingest, alerts, simulators): username and hash.
CREATE TABLE broker_users (
    username        text PRIMARY KEY,
    role            text NOT NULL CHECK (role IN ('service', 'simulator')),
    password_hash   text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Ground truth of simulated cohorts (`eldercare simulate`), for evaluating detection.
CREATE TABLE sim_incidents (
    id              bigserial PRIMARY KEY,
    run             text NOT NULL,
    home_id         text NOT NULL REFERENCES homes(id) ON DELETE CASCADE,
    kind            text NOT NULL,
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz,
    expected_alerts text[] NOT NULL,
    detail          jsonb NOT NULL DEFAULT '{}',
    UNIQUE (run, home_id, kind, starts_at)
);
CREATE INDEX sim_incidents_home_time ON sim_incidents (home_id, starts_at);
