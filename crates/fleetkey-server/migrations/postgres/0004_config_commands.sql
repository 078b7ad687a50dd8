-- Configuration schemas, device configs, commands queued for devices, credential
-- rotation policy, and retiring a hardware identity by factory reset.

-- A fleet's configuration schema versions (JSON Schema text) and the declared
-- migration from the previous version (JSON array of operations).
CREATE TABLE config_schemas (
    fleet      TEXT NOT NULL REFERENCES fleets(name),
    version    BIGINT NOT NULL CHECK (version >= 1),
    schema     TEXT NOT NULL,
    migration  TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (fleet, version)
);

-- A device's configuration, stored apart from its identity. `revision` counts
-- changes; `schema_version` is the version it was last validated against.
CREATE TABLE device_configs (
    device_id      TEXT PRIMARY KEY REFERENCES devices(id),
    schema_version BIGINT NOT NULL,
    revision       BIGINT NOT NULL,
    config         TEXT NOT NULL,
    updated_at     BIGINT NOT NULL
);

-- Commands for a device, signed by the fleet's issuing key. `pending` holds the
-- state of a step in progress (a rotation's proposed keys) and is erased at the end.
CREATE TABLE device_commands (
    id         TEXT PRIMARY KEY,
    device_id  TEXT NOT NULL REFERENCES devices(id),
    kind       TEXT NOT NULL CHECK (kind IN ('rotate_credential', 'update_config', 'wipe')),
    payload    TEXT NOT NULL,
    signature  BYTEA NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('pending', 'in_progress', 'done', 'cancelled')),
    pending    TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    -- Insertion order (SQLite's rowid), the tie-break among commands of one second.
    ord        BIGSERIAL NOT NULL
);
CREATE INDEX device_commands_by_device ON device_commands (device_id, state);

-- When the current operational credential was issued (rotation policy).
ALTER TABLE devices ADD COLUMN credential_issued_at BIGINT;
-- The hardware id a decommissioned device had before a factory reset retired it.
ALTER TABLE devices ADD COLUMN retired_hardware_id TEXT;
-- Rotate operational credentials older than this (seconds); NULL: only on request.
ALTER TABLE fleets ADD COLUMN credential_rotation_secs BIGINT;
