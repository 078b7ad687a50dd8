-- The key directory: the newest signed key record of each identity. A record is
-- replaced only by one with a higher sequence number (in the same transaction as
-- the change that makes it: onboarding, rotation, decommissioning).
CREATE TABLE key_records (
    identity   TEXT PRIMARY KEY,
    sequence   BIGINT NOT NULL,
    record     BYTEA NOT NULL,
    revoked    BIGINT NOT NULL,
    issued_at  BIGINT NOT NULL
);
CREATE INDEX key_records_by_age ON key_records (revoked, issued_at);

-- The service's own long-lived keys (the Noise static key of the device listener),
-- wrapped by custody.
CREATE TABLE service_keys (
    name       TEXT PRIMARY KEY,
    wrapped    BYTEA NOT NULL,
    public     BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
