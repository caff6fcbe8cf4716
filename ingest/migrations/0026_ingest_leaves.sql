-- A shared subscription's last member keeps it (issue 18; ingest/store.py `may_leave_group`).
--
-- An ingest worker that stops cleanly unsubscribes from its `$share` group only while
-- another worker of the group is alive: with no subscribed member left, Mosquitto drops what
-- the devices publish meanwhile (acknowledged readings, lost). `left_at` records the clean
-- stop, so that a worker deciding whether it may leave does not count one that has already
-- gone; the next heartbeat of that worker clears it.
ALTER TABLE ingest_heartbeats ADD COLUMN left_at timestamptz;
