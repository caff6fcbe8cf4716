-- Between acknowledging and resolving: the worker who owns an alert says "on my way" and
-- "arrived" (console, API); the family page shows both. Each is set once, by a person.
ALTER TABLE alerts ADD COLUMN en_route_at timestamptz;
ALTER TABLE alerts ADD COLUMN en_route_by bigint REFERENCES users(id);
ALTER TABLE alerts ADD COLUMN arrived_at timestamptz;
ALTER TABLE alerts ADD COLUMN arrived_by bigint REFERENCES users(id);

-- A worker's phone: what the family sees once that worker owns their elder's alert.
ALTER TABLE users ADD COLUMN phone text NOT NULL DEFAULT '';
