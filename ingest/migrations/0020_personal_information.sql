-- Personal information (issue #17; PIPL art. 28-29, 44-47): consent records per elder, the
-- audit of reads of lists and live streams that carry names, and erasure of an elder who
-- left the service (alerts kept for the KPIs without identity).

-- Who erased an elder, when, why (a reason code, never free text), and how many rows of each
-- kind went. No personal data: not the elder's id, name or home.
CREATE TABLE elder_erasures (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    erased_by   bigint REFERENCES users(id),
    via         text NOT NULL CHECK (via IN ('api', 'cli')),
    reason      text NOT NULL CHECK (reason IN
                  ('left_service', 'moved_away', 'deceased', 'consent_withdrawn', 'other')),
    village_id  text REFERENCES regions(id),
    counts      jsonb NOT NULL DEFAULT '{}'::jsonb
);

-- Consent per elder and purpose: given by the elder or a guardian (name, relation), how
-- (a scanned paper form's reference, in person...), when, recorded by whom; withdrawn when
-- and by whom. At most one current (not withdrawn) consent per elder and purpose. After an
-- erasure the row stays, without its personal fields, tied to the erasure.
CREATE TABLE elder_consents (
    id                bigserial PRIMARY KEY,
    elder_id          text REFERENCES elders(id),
    purpose           text NOT NULL CHECK (purpose IN ('monitoring', 'share_family')),
    given_by          text NOT NULL CHECK (given_by IN ('elder', 'guardian')),
    guardian_name     text NOT NULL DEFAULT '',
    guardian_relation text NOT NULL DEFAULT '',
    method            text NOT NULL CHECK (method IN
                        ('paper_form', 'in_person', 'phone_recorded', 'electronic')),
    reference         text NOT NULL DEFAULT '',
    given_at          timestamptz NOT NULL,
    recorded_at       timestamptz NOT NULL DEFAULT now(),
    recorded_by       bigint REFERENCES users(id),
    withdrawn_at      timestamptz,
    withdrawn_by      bigint REFERENCES users(id),
    withdrawal_note   text NOT NULL DEFAULT '',
    erasure_id        bigint REFERENCES elder_erasures(id),
    CHECK (given_by = 'elder' OR guardian_name <> '' OR erasure_id IS NOT NULL),
    CHECK (withdrawn_at IS NULL OR withdrawn_at >= given_at),
    CHECK ((elder_id IS NULL) = (erasure_id IS NOT NULL))
);
CREATE UNIQUE INDEX elder_consents_current ON elder_consents (elder_id, purpose)
    WHERE withdrawn_at IS NULL AND elder_id IS NOT NULL;

-- Reads of lists and live streams that carry names: one row per list request or stream
-- connection (never per event), with how many rows and which elders it showed.
CREATE TABLE list_reads (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    user_id     bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    what        text NOT NULL,
    rows        int NOT NULL,
    elder_ids   text[] NOT NULL DEFAULT '{}',
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX list_reads_user_at ON list_reads (user_id, at);
CREATE INDEX list_reads_at ON list_reads (at);
CREATE INDEX list_reads_elders ON list_reads USING gin (elder_ids);

-- An erased elder's alerts keep their village (for the KPIs per region) without a home.
ALTER TABLE alerts
    ADD COLUMN village_id text REFERENCES regions(id),
    ADD COLUMN erasure_id bigint REFERENCES elder_erasures(id);
