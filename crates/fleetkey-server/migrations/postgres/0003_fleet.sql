-- Fleets, their issuing keys, and the device registry.
CREATE TABLE fleets (
    name           TEXT PRIMARY KEY,
    issuer_key_id  TEXT NOT NULL,
    -- The Ed25519 issuing key's seed, wrapped by custody (context fleet:<name>/issuer).
    issuer_wrapped BYTEA NOT NULL,
    issuer_public  BYTEA NOT NULL,
    credential_ttl_secs BIGINT NOT NULL,
    created_at     BIGINT NOT NULL
);

CREATE TABLE devices (
    id               TEXT PRIMARY KEY,
    fleet            TEXT NOT NULL REFERENCES fleets(name),
    hardware_id      TEXT NOT NULL UNIQUE,
    state            TEXT NOT NULL CHECK (state IN ('manufactured', 'onboarded', 'active', 'rotating',
                                                  'decommissioning', 'decommissioned', 'suspended')),
    model            TEXT NOT NULL,
    x25519           BYTEA NOT NULL,
    ed25519          BYTEA NOT NULL,
    ml_kem_768       BYTEA,
    ml_dsa_65        BYTEA,
    birth_credential BYTEA NOT NULL,
    -- The current operational credential's id (cti), once onboarded.
    operational_credential_id BYTEA,
    -- Account or site the device was claimed by.
    claimed_by       TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX devices_by_fleet ON devices (fleet, id);

CREATE TABLE manufacturing_records (
    device_id    TEXT PRIMARY KEY REFERENCES devices(id),
    batch        TEXT NOT NULL,
    station      TEXT NOT NULL,
    test_results TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);

-- No public key is registered to two devices (cloned key material is refused).
CREATE UNIQUE INDEX devices_x25519 ON devices (x25519);
CREATE UNIQUE INDEX devices_ed25519 ON devices (ed25519);

-- Single-use onboarding challenges.
CREATE TABLE onboarding_challenges (
    nonce      BYTEA PRIMARY KEY,
    device_id  TEXT NOT NULL REFERENCES devices(id),
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used       BIGINT NOT NULL DEFAULT 0
);

-- Credentials revoked before their expiry (by credential id, the CWT cti).
CREATE TABLE revoked_credentials (
    credential_id BYTEA PRIMARY KEY,
    device_id     TEXT NOT NULL,
    revoked_at    BIGINT NOT NULL
);

-- One-time claim codes, stored hashed (SHA-256 of the normalised code).
CREATE TABLE claim_codes (
    hash       BYTEA PRIMARY KEY,
    device_id  TEXT NOT NULL REFERENCES devices(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
