-- The family's daily summary (alerts.digest): the hour each family member chose (on their
-- elder's home clock; NULL: none) and the channels it goes over, and one row per member and
-- local day once it is due, so a summary is sent once a day across restarts and instances.
ALTER TABLE users ADD COLUMN summary_hour smallint
    CHECK (summary_hour IS NULL OR summary_hour BETWEEN 0 AND 23);
ALTER TABLE users ADD COLUMN summary_channels text[] NOT NULL DEFAULT '{email,webpush}'
    CHECK (summary_channels <@ ARRAY['email', 'webpush']::text[]);

CREATE TABLE daily_summaries (
    user_id      bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    day          date NOT NULL,            -- the member's local day it was due on
    due_at       timestamptz NOT NULL,
    status       text NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'sent', 'failed', 'no_channel')),
    attempts     int NOT NULL DEFAULT 0,
    next_try_at  timestamptz NOT NULL,
    delivered    text[] NOT NULL DEFAULT '{}',   -- channels (and targets) it reached
    sent_at      timestamptz,
    last_error   text,
    body         text NOT NULL DEFAULT '',
    PRIMARY KEY (user_id, day)
);
CREATE INDEX daily_summaries_pending ON daily_summaries (next_try_at) WHERE status = 'pending';
