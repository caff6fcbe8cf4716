-- Two instances of every service process (issue 18; alerts/lease.py, docs/reliability.md
-- "Two instances and leases").
--
-- A lease: what must run once (the full-stream detection with the self-check, the rota
-- coverage check, the care weekly check, the daily summaries) is done by the instance that
-- holds its row. A holder renews it every third of its TTL (expires_at moves on, by the
-- database's clock); an instance takes it only once it has expired (UPDATE ... WHERE
-- expires_at < now()), and each take moves `epoch` on: the fencing token that the writes
-- which must not come from a former holder (the detectors' state) check in their own
-- transaction.
CREATE TABLE leases (
    name         text PRIMARY KEY,
    holder       text NOT NULL,            -- the instance, for people: host:pid or instance id
    token        uuid NOT NULL,            -- the holding process (new at each start)
    epoch        bigint NOT NULL DEFAULT 1,
    acquired_at  timestamptz NOT NULL DEFAULT now(),
    renewed_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    previous     text,                     -- who held it before this take
    previous_expired_at timestamptz        -- when that holder's lease ran out (handover time)
);

-- The urgent path runs on every instance and each one receives every SOS press. The first
-- to insert a press's row here tells people of it (the fast path) and names the alert id
-- the press is stored under; the others store it under the same id (or nothing, once it is
-- stored) and tell nobody. Rows older than a day are deleted by the fast path's refresh.
CREATE TABLE emergency_claims (
    device_id   text NOT NULL,
    boot        bigint NOT NULL,
    seq         bigint NOT NULL,
    kind        text NOT NULL,
    home_id     text NOT NULL,
    alert_id    bigint NOT NULL,
    hold_s      double precision NOT NULL, -- the first round held this long (the fast path sends it)
    holder      text NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, boot, seq, kind)
);
CREATE INDEX emergency_claims_at ON emergency_claims (claimed_at);
