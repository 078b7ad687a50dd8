-- Keyring life cycle (docs/operations.md, "Keyring life cycle"): enabled,
-- disabled, pending deletion (erased at deletion_at unless cancelled), deleted
-- (key material erased, the name stays taken); description and tags; aliases.
ALTER TABLE keyrings ADD COLUMN state TEXT NOT NULL DEFAULT 'enabled'
    CHECK (state IN ('enabled', 'disabled', 'pending_deletion', 'deleted'));
ALTER TABLE keyrings ADD COLUMN deletion_at BIGINT;
ALTER TABLE keyrings ADD COLUMN description TEXT NOT NULL DEFAULT '';
-- A JSON object of string labels.
ALTER TABLE keyrings ADD COLUMN tags TEXT NOT NULL DEFAULT '{}';

-- `alias/NAME` -> keyring; re-pointable; removed when its keyring is erased.
CREATE TABLE keyring_aliases (
    alias      TEXT PRIMARY KEY,
    keyring    TEXT NOT NULL REFERENCES keyrings(name),
    updated_at BIGINT NOT NULL
);
CREATE INDEX keyring_aliases_by_keyring ON keyring_aliases (keyring);
