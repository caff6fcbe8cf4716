-- Detection spread by home (issue 18; devices/shards.py, docs/architecture.md "Detection in
-- shards").
--
-- Each home belongs to one of `ingest.detection_shards` shards (a hash of its id). Ingest
-- writes a batch's readings as one feed row per shard; the holder of lease `detection-{k}`
-- reads the rows of shard k only. The device watch's state is saved per shard (id = shard +
-- 1, so that the single shard of a deployment without shards keeps row 1).
ALTER TABLE detection_feed ADD COLUMN shard smallint NOT NULL DEFAULT 0;
CREATE INDEX detection_feed_shard ON detection_feed (shard, id);

ALTER TABLE device_watch_state DROP CONSTRAINT device_watch_state_id_check;
ALTER TABLE device_watch_state ADD CONSTRAINT device_watch_state_id_check
    CHECK (id BETWEEN 1 AND 256);
