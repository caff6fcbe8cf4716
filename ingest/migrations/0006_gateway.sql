-- Gateway: the elder's file (profile, conditions, contacts, thresholds, away mode), care
-- visits and their weekly check, staff visit tags, and the audit of health-data reads.

ALTER TABLE elders
    ADD COLUMN sex          text NOT NULL DEFAULT '' CHECK (sex IN ('', 'female', 'male')),
    ADD COLUMN phone        text NOT NULL DEFAULT '',
    ADD COLUMN lives_alone  boolean NOT NULL DEFAULT true,
    ADD COLUMN conditions   text[] NOT NULL DEFAULT '{}',
    -- Per-elder limits that override the detectors' defaults, e.g.
    -- {"temperature_min_c": 16, "temperature_max_c": 30}.
    ADD COLUMN thresholds   jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Away / hospital mode: while now() is in [away_from, away_until), wellbeing alerts and
    -- care-visit targets do not apply.
    ADD COLUMN away_from    timestamptz,
    ADD COLUMN away_until   timestamptz,
    ADD COLUMN away_reason  text NOT NULL DEFAULT '',
    ADD CONSTRAINT elders_away_range CHECK (away_until IS NULL OR away_from IS NULL
                                            OR away_until > away_from);

-- People to call about an elder who are not users (neighbours, doctors, ...).
CREATE TABLE elder_contacts (
    id          bigserial PRIMARY KEY,
    elder_id    text NOT NULL REFERENCES elders(id) ON DELETE CASCADE,
    name        text NOT NULL,
    relation    text NOT NULL DEFAULT '',
    phone       text NOT NULL DEFAULT '',
    position    int NOT NULL DEFAULT 0
);
CREATE INDEX elder_contacts_elder ON elder_contacts (elder_id, position);

-- Staff tags: the number a visit reader reports when a staff member holds their tag to it.
CREATE TABLE staff_tags (
    tag         bigint PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE
);

-- Care visits by staff: recorded in the console or on a phone, or from a tag check-in.
CREATE TABLE care_visits (
    id          bigserial PRIMARY KEY,
    elder_id    text NOT NULL REFERENCES elders(id) ON DELETE CASCADE,
    user_id     bigint REFERENCES users(id),
    visited_at  timestamptz NOT NULL,
    source      text NOT NULL CHECK (source IN ('console', 'phone', 'tag')),
    device_id   text,
    note        text NOT NULL DEFAULT '',
    recorded_at timestamptz NOT NULL DEFAULT now(),
    recorded_by bigint REFERENCES users(id)
);
CREATE INDEX care_visits_elder_time ON care_visits (elder_id, visited_at);
-- A tag check-in is recorded once, however often the reader's reading is seen.
CREATE UNIQUE INDEX care_visits_tag_once ON care_visits (device_id, visited_at)
    WHERE source = 'tag';

-- Weeks already closed per elder (so a short week raises its care alert exactly once).
CREATE TABLE care_weeks (
    elder_id    text NOT NULL REFERENCES elders(id) ON DELETE CASCADE,
    week_start  date NOT NULL,
    visits      int NOT NULL,
    short       boolean NOT NULL,
    alert_id    bigint REFERENCES alerts(id),
    closed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (elder_id, week_start)
);

-- Every read of an elder's health data: who, which elder, what, when.
CREATE TABLE health_reads (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    user_id     bigint NOT NULL REFERENCES users(id),
    elder_id    text NOT NULL REFERENCES elders(id) ON DELETE CASCADE,
    what        text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX health_reads_elder_at ON health_reads (elder_id, at);
CREATE INDEX health_reads_user_at ON health_reads (user_id, at);
