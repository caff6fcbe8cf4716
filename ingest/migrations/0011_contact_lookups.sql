-- Lookups on the emergency path, by the home's elder rather than by the user.
-- family_links's key is (user_id, elder_id): "the family first contacts of this elder" read
-- every family link of the deployment (a sequential scan of 10 020 rows, 0.7-2.6 ms of the
-- database's CPU per emergency with 10 000 homes, and growing with them). Found by sampling
-- pg_stat_activity during the benchmark's SOS presses: the family query was running for up
-- to 80 ms of a slow press on the loaded 2-core machine.
CREATE INDEX family_links_elder ON family_links (elder_id);
