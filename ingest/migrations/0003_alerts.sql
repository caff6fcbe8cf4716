-- Alerts, their evidence, their audit trail, and the notifications sent for them.
CREATE TABLE alerts (
    id              bigserial PRIMARY KEY,
    home_id         text NOT NULL REFERENCES homes(id),
    kind            text NOT NULL,
    category        text NOT NULL CHECK (category IN
                      ('emergency', 'wellbeing', 'environment', 'health', 'technical', 'care')),
    severity        text NOT NULL CHECK (severity IN ('critical', 'warning', 'info')),
    status          text NOT NULL DEFAULT 'open'
                      CHECK (status IN ('open', 'acknowledged', 'resolved')),
    event_at        timestamptz NOT NULL,
    opened_at       timestamptz NOT NULL DEFAULT now(),
    acknowledged_at timestamptz,
    acknowledged_by bigint REFERENCES users(id),
    resolved_at     timestamptz,
    outcome         text,
    summary         text NOT NULL,
    evidence_count  int NOT NULL DEFAULT 1,
    last_evidence_at timestamptz NOT NULL
);
-- One open (or acknowledged, not yet resolved) alert per home and kind.
CREATE UNIQUE INDEX alerts_one_open ON alerts (home_id, kind) WHERE status <> 'resolved';
CREATE INDEX alerts_status_opened ON alerts (status, opened_at DESC);

CREATE TABLE alert_evidence (
    id          bigserial PRIMARY KEY,
    alert_id    bigint NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
    at          timestamptz NOT NULL,
    device_id   text,
    boot        int,
    seq         bigint,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb,
    UNIQUE (alert_id, device_id, boot, seq)
);

-- Every step of an alert's life: opened, evidence, notified, escalated, acknowledged...
CREATE TABLE alert_events (
    id          bigserial PRIMARY KEY,
    alert_id    bigint NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
    at          timestamptz NOT NULL DEFAULT now(),
    actor_id    bigint REFERENCES users(id),
    action      text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX alert_events_alert ON alert_events (alert_id, at);

-- One row per delivery attempt (or planned attempt) to one person over one channel.
CREATE TABLE notifications (
    id              bigserial PRIMARY KEY,
    alert_id        bigint NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
    round           int NOT NULL,
    user_id         bigint REFERENCES users(id),
    channel         text NOT NULL,
    target          text NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'sent', 'failed', 'cancelled')),
    due_at          timestamptz NOT NULL,
    attempts        int NOT NULL DEFAULT 0,
    sent_at         timestamptz,
    last_error      text,
    UNIQUE (alert_id, round, user_id, channel, target)
);
CREATE INDEX notifications_due ON notifications (due_at) WHERE status = 'pending';

-- Next round of repeat notifications per unacknowledged alert (a persisted timer).
CREATE TABLE alert_timers (
    alert_id    bigint PRIMARY KEY REFERENCES alerts(id) ON DELETE CASCADE,
    next_round  int NOT NULL,
    due_at      timestamptz NOT NULL
);
