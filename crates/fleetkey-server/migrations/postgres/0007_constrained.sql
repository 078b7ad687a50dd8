-- Constrained-profile devices (crates/fleetkey-device): the factory secret (the
-- per-device PSK of the X25519 mode, or the lab static key), wrapped by custody,
-- and the highest boot counter verified (old boots stay refused across restarts).
CREATE TABLE device_secrets (
    device_id  TEXT PRIMARY KEY REFERENCES devices(id),
    profile    TEXT NOT NULL CHECK (profile IN ('constrained', 'constrained_static')),
    wrapped    BYTEA NOT NULL,
    last_boot  BIGINT NOT NULL DEFAULT 0
);

-- Fleets that accept static-key (lab) devices; absent means refused.
CREATE TABLE fleet_static_key (
    fleet      TEXT PRIMARY KEY REFERENCES fleets(name),
    allowed_at BIGINT NOT NULL
);

-- Every device's profile, for the registry: `full` (Noise sessions),
-- `constrained` or `constrained_static` (fleetkey-device frames).
ALTER TABLE devices ADD COLUMN profile TEXT NOT NULL DEFAULT 'full'
    CHECK (profile IN ('full', 'constrained', 'constrained_static'));
