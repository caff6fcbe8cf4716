-- Alerting around the clock: lifecycle columns, escalation policies (snapshotted per alert),
-- more channel kinds and fallback, mutes, device commands (outbox), rota tiers.

-- Lifecycle: who resolved, with which outcome and note; why the data cleared it; the policy
-- snapshot taken when the alert opened.
ALTER TABLE alerts
    ADD COLUMN acknowledged_how text,
    ADD COLUMN resolved_by      bigint REFERENCES users(id),
    ADD COLUMN resolution_note  text,
    ADD COLUMN policy           jsonb;
ALTER TABLE alerts ADD CONSTRAINT alerts_outcome_known CHECK (outcome IS NULL OR outcome IN
    ('false_alarm', 'visited_fine', 'needed_help', 'ambulance', 'hospital', 'other',
     'cleared_by_data', 'cancelled_by_elder'));
CREATE INDEX alerts_opened_at ON alerts (opened_at);

-- Escalation policies: one row per (region or everywhere) x severity (x category or any).
-- `steps` is a JSON list of {"after_s": 300, "tiers": ["town"]}; `repeat_s` repeats every
-- round until someone acknowledges. The most specific row wins (nearest region, then category).
CREATE TABLE escalation_policies (
    id          bigserial PRIMARY KEY,
    region_id   text REFERENCES regions(id) ON DELETE CASCADE,
    severity    text NOT NULL CHECK (severity IN ('critical', 'warning', 'info')),
    category    text CHECK (category IS NULL OR category IN
                  ('emergency', 'wellbeing', 'environment', 'health', 'technical', 'care')),
    steps       jsonb NOT NULL,
    repeat_s    double precision NOT NULL CHECK (repeat_s > 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX escalation_policies_key ON escalation_policies
    (coalesce(region_id, ''), severity, coalesce(category, ''));

-- More channel kinds (apprise URLs for SMS/chat, the console stream).
ALTER TABLE contact_channels DROP CONSTRAINT contact_channels_channel_check;
ALTER TABLE contact_channels ADD CONSTRAINT contact_channels_channel_check
    CHECK (channel IN ('webhook', 'email', 'apprise', 'console'));

-- Notifications: what the message says (alert, acknowledged-by, cancelled...), the channel's
-- preference position (for fallback), whether the fallback was already queued.
ALTER TABLE notifications
    ADD COLUMN notice   text NOT NULL DEFAULT 'alert',
    ADD COLUMN position int NOT NULL DEFAULT 0,
    ADD COLUMN fallback_queued boolean NOT NULL DEFAULT false;
ALTER TABLE notifications DROP CONSTRAINT notifications_alert_id_round_user_id_channel_target_key;
ALTER TABLE notifications ADD CONSTRAINT notifications_once
    UNIQUE (alert_id, round, notice, user_id, channel, target);
CREATE INDEX notifications_alert ON notifications (alert_id);

-- Every delivery attempt's result (notifications keeps only the latest state).
CREATE TABLE notification_attempts (
    id              bigserial PRIMARY KEY,
    notification_id bigint NOT NULL REFERENCES notifications(id) ON DELETE CASCADE,
    at              timestamptz NOT NULL DEFAULT now(),
    ok              boolean NOT NULL,
    error           text
);
CREATE INDEX notification_attempts_note ON notification_attempts (notification_id);

-- Mutes: away/hospital mode per home, silences with an end time and a reason.
CREATE TABLE home_modes (
    home_id     text PRIMARY KEY REFERENCES homes(id) ON DELETE CASCADE,
    mode        text NOT NULL CHECK (mode IN ('away', 'hospital')),
    since       timestamptz NOT NULL DEFAULT now(),
    until       timestamptz,
    reason      text NOT NULL DEFAULT '',
    set_by      bigint REFERENCES users(id)
);

CREATE TABLE silences (
    id          bigserial PRIMARY KEY,
    home_id     text REFERENCES homes(id) ON DELETE CASCADE,
    region_id   text REFERENCES regions(id) ON DELETE CASCADE,
    kinds       text[],
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    reason      text NOT NULL CHECK (length(reason) > 0),
    created_by  bigint REFERENCES users(id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at)
);
CREATE INDEX silences_active ON silences (ends_at);

-- Signals a mute held back: kept for audit, never lost.
CREATE TABLE suppressed_signals (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    home_id     text NOT NULL,
    kind        text NOT NULL,
    severity    text NOT NULL,
    event_at    timestamptz NOT NULL,
    muted_by    text NOT NULL,
    reason      text NOT NULL
);
CREATE INDEX suppressed_signals_home ON suppressed_signals (home_id, at);

-- Commands to devices ("help is on the way"), published QoS 1 by the dispatcher (an outbox:
-- written in the acknowledging transaction, sent after commit, retried until the broker took it).
CREATE TABLE device_commands (
    id          bigserial PRIMARY KEY,
    alert_id    bigint REFERENCES alerts(id) ON DELETE CASCADE,
    home_id     text NOT NULL,
    device_id   text NOT NULL,
    command     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    due_at      timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz,
    attempts    int NOT NULL DEFAULT 0,
    last_error  text
);
CREATE INDEX device_commands_pending ON device_commands (due_at) WHERE sent_at IS NULL;

-- Operators' duty (technical alerts) is a shift at a region too; the tier of a shift is the
-- region's tier, or 'operator' for a user whose role is operator.
CREATE INDEX duty_shifts_time ON duty_shifts (starts_at, ends_at);
