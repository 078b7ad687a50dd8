-- The downlink to constrained devices (docs/protocol.md, "Downlink"): the last
-- server→device frame counter used for the device (one counter across boots,
-- taken with an atomic increment by whichever instance sends, so no counter
-- repeats under a boot's key); and `rekey`, the command that asks a constrained
-- device for a new boot (fresh session keys).
ALTER TABLE device_secrets ADD COLUMN down_counter BIGINT NOT NULL DEFAULT 0;

-- SQLite cannot alter a CHECK constraint: the table is rebuilt, keeping each
-- row's rowid (the insertion order commands are listed in).
CREATE TABLE device_commands_next (
    id         TEXT PRIMARY KEY,
    device_id  TEXT NOT NULL REFERENCES devices(id),
    kind       TEXT NOT NULL CHECK (kind IN ('rotate_credential', 'update_config', 'wipe', 'rekey')),
    payload    TEXT NOT NULL,
    signature  BLOB NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('pending', 'in_progress', 'done', 'cancelled')),
    pending    TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
INSERT INTO device_commands_next (rowid, id, device_id, kind, payload, signature, state, pending, created_at, updated_at)
    SELECT rowid, id, device_id, kind, payload, signature, state, pending, created_at, updated_at FROM device_commands;
DROP TABLE device_commands;
ALTER TABLE device_commands_next RENAME TO device_commands;
CREATE INDEX device_commands_by_device ON device_commands (device_id, state);
