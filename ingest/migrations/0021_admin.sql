-- Enrolment and administration (issue #17): the audit of every administrative change, the
-- invitation links that let a family member (or new staff) set a password, and the columns
-- an office needs to enrol a village: external ids (re-running an import changes nothing),
-- a home's location, an elder's language, closing an elder, a region or an account.

-- Every administrative change: who, when, which entity, what, before and after (no secrets:
-- never a password hash or a token).
CREATE TABLE admin_audit (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor_id    bigint REFERENCES users(id),
    actor       text NOT NULL,
    actor_role  text NOT NULL,
    entity      text NOT NULL,
    entity_id   text NOT NULL,
    action      text NOT NULL,
    before      jsonb,
    after       jsonb
);
CREATE INDEX admin_audit_entity ON admin_audit (entity, entity_id, at);
CREATE INDEX admin_audit_at ON admin_audit (at);

-- Invitation links: signed, expiring, single use. A family invitation names one elder and
-- the relation; a staff invitation sets the password of an account created for it. Only a
-- SHA-256 of the token is kept.
CREATE TABLE invitations (
    id              bigserial PRIMARY KEY,
    token_hash      bytea NOT NULL UNIQUE,
    kind            text NOT NULL CHECK (kind IN ('family', 'staff')),
    elder_id        text REFERENCES elders(id) ON DELETE CASCADE,
    user_id         bigint REFERENCES users(id) ON DELETE CASCADE,
    display_name    text NOT NULL DEFAULT '',
    relation        text NOT NULL DEFAULT '',
    phone           text NOT NULL DEFAULT '',
    email           text NOT NULL DEFAULT '',
    locale          text NOT NULL DEFAULT 'zh',
    first_contact   boolean NOT NULL DEFAULT true,
    holds_key       boolean NOT NULL DEFAULT false,
    created_by      bigint REFERENCES users(id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz,
    used_by         bigint REFERENCES users(id),
    CHECK ((kind = 'family') = (elder_id IS NOT NULL)),
    CHECK ((kind = 'staff') = (user_id IS NOT NULL)),
    CHECK (expires_at > created_at)
);

ALTER TABLE homes
    ADD COLUMN external_id text,
    ADD COLUMN lat double precision CHECK (lat IS NULL OR lat BETWEEN -90 AND 90),
    ADD COLUMN lon double precision CHECK (lon IS NULL OR lon BETWEEN -180 AND 180);
-- A home taken out of service (its elder left); 0022 (device lifecycle) adds it too.
ALTER TABLE homes ADD COLUMN IF NOT EXISTS closed_at timestamptz;
CREATE UNIQUE INDEX homes_external_id ON homes (external_id) WHERE external_id IS NOT NULL;

ALTER TABLE elders
    ADD COLUMN external_id text,
    ADD COLUMN language text NOT NULL DEFAULT 'zh',
    -- Left the service: monitoring ended (devices retired, the home away), data kept.
    ADD COLUMN closed_at timestamptz,
    ADD COLUMN closed_reason text NOT NULL DEFAULT '';
CREATE UNIQUE INDEX elders_external_id ON elders (external_id) WHERE external_id IS NOT NULL;

-- A closed account cannot sign in (its sessions are ended, its password unusable); the row
-- stays for the alerts and audit rows that name it.
ALTER TABLE users ADD COLUMN closed_at timestamptz;
