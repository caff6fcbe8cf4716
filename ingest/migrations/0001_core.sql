-- Core registry: the region tree, homes, elders, devices, people.
CREATE TABLE regions (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    tier        text NOT NULL CHECK (tier IN ('district', 'town', 'village')),
    parent_id   text REFERENCES regions(id),
    CHECK ((tier = 'district') = (parent_id IS NULL))
);

CREATE TABLE homes (
    id          text PRIMARY KEY,
    village_id  text NOT NULL REFERENCES regions(id),
    address     text NOT NULL DEFAULT '',
    timezone    text NOT NULL DEFAULT 'UTC',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE elders (
    id          text PRIMARY KEY,
    home_id     text NOT NULL UNIQUE REFERENCES homes(id),
    full_name   text NOT NULL,
    born        date,
    notes       text NOT NULL DEFAULT ''
);

CREATE TABLE devices (
    id          text PRIMARY KEY,
    home_id     text NOT NULL REFERENCES homes(id),
    kind        text NOT NULL,
    room        text NOT NULL DEFAULT '',
    label       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_home ON devices (home_id);

CREATE TABLE users (
    id              bigserial PRIMARY KEY,
    username        text NOT NULL UNIQUE,
    password_hash   text NOT NULL,
    display_name    text NOT NULL,
    role            text NOT NULL CHECK (role IN
                      ('district_staff', 'town_staff', 'village_worker', 'family', 'operator')),
    region_id       text REFERENCES regions(id),
    locale          text NOT NULL DEFAULT 'en',
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((role IN ('family', 'operator')) OR region_id IS NOT NULL)
);

-- Where a person can be reached. One row per channel; order gives preference.
CREATE TABLE contact_channels (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    channel     text NOT NULL CHECK (channel IN ('webhook', 'email')),
    target      text NOT NULL,
    position    int NOT NULL DEFAULT 0,
    UNIQUE (user_id, channel, target)
);

-- Family members (and paid carers) linked to an elder; first_contact is notified at once.
CREATE TABLE family_links (
    user_id         bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    elder_id        text NOT NULL REFERENCES elders(id) ON DELETE CASCADE,
    relation        text NOT NULL DEFAULT '',
    first_contact   boolean NOT NULL DEFAULT false,
    PRIMARY KEY (user_id, elder_id)
);

-- On-duty rota: who is on duty for a region, when.
CREATE TABLE duty_shifts (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    region_id   text NOT NULL REFERENCES regions(id),
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    CHECK (ends_at > starts_at)
);
CREATE INDEX duty_shifts_region_time ON duty_shifts (region_id, starts_at, ends_at);

-- Sign-in sessions and API tokens: only a hash of the token is stored.
CREATE TABLE sessions (
    token_hash  bytea PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);

-- Rejected messages, kept for inspection; trimmed to a bounded size by ingest.
CREATE TABLE dead_letters (
    id          bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    source      text NOT NULL,
    topic       text NOT NULL,
    payload     bytea NOT NULL,
    reason      text NOT NULL,
    detail      text NOT NULL
);

-- Running totals of rejects per reason (never trimmed).
CREATE TABLE reject_counts (
    source      text NOT NULL,
    reason      text NOT NULL,
    count       bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (source, reason)
);

-- Gaps in a device's seq within one boot, as ingest saw them.
CREATE TABLE seq_gaps (
    device_id   text NOT NULL,
    boot        int NOT NULL,
    after_seq   bigint NOT NULL,
    before_seq  bigint NOT NULL,
    detected_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, boot, after_seq)
);
