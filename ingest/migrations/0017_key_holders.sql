-- Who holds a key to the elder's home: what a worker needs at 3 a.m. at a locked door.
ALTER TABLE elder_contacts ADD COLUMN holds_key boolean NOT NULL DEFAULT false;
ALTER TABLE family_links ADD COLUMN holds_key boolean NOT NULL DEFAULT false;
