-- Devices installed, replaced, rotated and retired while the service runs (issue 17), and
-- per-elder limits that the detectors follow.

-- A device's install (reset when the same id is given to a new unit), when it was first
-- heard after that (set by the install check once found), and when it was retired (its
-- row and its readings are kept; it is out of the registry, the broker files and the
-- device watch). `replaced_by` names the device that took its place.
ALTER TABLE devices
    ADD COLUMN installed_at   timestamptz,
    ADD COLUMN first_heard_at timestamptz,
    ADD COLUMN retired_at     timestamptz,
    ADD COLUMN replaced_by    text REFERENCES devices(id);
UPDATE devices SET installed_at = created_at;
ALTER TABLE devices ALTER COLUMN installed_at SET NOT NULL;

-- A device registered without an install time was installed when it was registered.
CREATE FUNCTION eldercare_device_installed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.installed_at := coalesce(NEW.installed_at, NEW.created_at, now());
    RETURN NEW;
END
$$;
CREATE TRIGGER devices_installed BEFORE INSERT ON devices
    FOR EACH ROW EXECUTE FUNCTION eldercare_device_installed();
CREATE INDEX devices_active ON devices (home_id) WHERE retired_at IS NULL;
-- Devices not heard yet since their install: few, looked up by every batch ingest writes.
CREATE INDEX devices_unheard ON devices (id) WHERE first_heard_at IS NULL;

-- A home taken out of service: no device is installed in it any more. (Enrolment may add
-- this column too; either way it exists once.)
ALTER TABLE homes ADD COLUMN IF NOT EXISTS closed_at timestamptz;

-- Every change to a device: who did what, when (install, replace, rotate, retire).
CREATE TABLE device_events (
    id          bigserial PRIMARY KEY,
    device_id   text NOT NULL REFERENCES devices(id),
    action      text NOT NULL CHECK (action IN ('install', 'replace', 'rotate', 'retire')),
    user_id     bigint REFERENCES users(id) ON DELETE SET NULL,
    actor       text NOT NULL DEFAULT '',
    at          timestamptz NOT NULL DEFAULT now(),
    detail      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX device_events_device ON device_events (device_id, at);

-- The detectors reload their per-elder limits when the registry version moves: a change of
-- an elder's limits moves it too (the limits are read with the device layout).
CREATE TRIGGER elders_limits_changed AFTER INSERT OR DELETE OR UPDATE OF thresholds, home_id
    ON elders FOR EACH STATEMENT EXECUTE FUNCTION eldercare_registry_changed();

-- What the registry copies hold (id, home, kind; room for the layout; install and
-- retirement for the device watch) moves the registry version; a label or the time a
-- device was first heard does not (no process reloads for it).
DROP TRIGGER devices_changed ON devices;
CREATE TRIGGER devices_changed
    AFTER INSERT OR DELETE OR UPDATE OF id, home_id, kind, room, installed_at, retired_at
    ON devices FOR EACH STATEMENT EXECUTE FUNCTION eldercare_registry_changed();

-- Devices already reporting were heard; when exactly is not kept, their install time says.
UPDATE devices d SET first_heard_at = d.installed_at
    WHERE EXISTS (SELECT 1 FROM readings r WHERE r.device_id = d.id);
