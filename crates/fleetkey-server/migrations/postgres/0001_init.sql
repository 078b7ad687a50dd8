-- fleetkey schema v1. Append-only: never edit a migration once released; add a new one.
-- The PostgreSQL twin of migrations/sqlite: the same tables, BLOB as BYTEA. Append-only too.

CREATE TABLE keyrings (
    name                 TEXT PRIMARY KEY,
    algorithm            TEXT NOT NULL,
    primary_version      BIGINT NOT NULL,
    min_decrypt_version  BIGINT NOT NULL,
    rotation_period_secs BIGINT NOT NULL,
    max_uses             BIGINT NOT NULL,
    overlap_secs         BIGINT NOT NULL,
    keep_last            BIGINT,
    created_at           BIGINT NOT NULL
);

CREATE TABLE key_versions (
    keyring     TEXT NOT NULL REFERENCES keyrings(name),
    version     BIGINT NOT NULL,
    wrapped_key BYTEA NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('active', 'decrypt_only', 'revoked', 'destroyed')),
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT,
    revoked_at  BIGINT,
    seal_count  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (keyring, version)
);

-- Highest nonce counter reserved (exclusive) per key version and instance id.
CREATE TABLE nonce_reservations (
    keyring     TEXT NOT NULL,
    version     BIGINT NOT NULL,
    instance_id BYTEA NOT NULL,
    high_water  BIGINT NOT NULL,
    PRIMARY KEY (keyring, version, instance_id)
);

-- Instance ids are never reused: rows are kept forever.
CREATE TABLE instance_leases (
    instance_id BYTEA PRIMARY KEY,
    holder      TEXT NOT NULL,
    leased_at   BIGINT NOT NULL,
    retired     BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE audit_log (
    seq       BIGINT PRIMARY KEY,
    time      BIGINT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    details   TEXT NOT NULL,
    prev_hash BYTEA NOT NULL,
    hash      BYTEA NOT NULL
);

CREATE TABLE audit_checkpoints (
    seq       BIGINT PRIMARY KEY,
    head_hash BYTEA NOT NULL,
    time      BIGINT NOT NULL,
    signature BYTEA NOT NULL
);
