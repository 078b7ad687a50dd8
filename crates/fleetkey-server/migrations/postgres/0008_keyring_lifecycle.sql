-- Keyring life cycle (docs/operations.md, "Keyring life cycle"): enabled,
-- disabled, pending deletion (erased at deletion_at unless cancelled), deleted
-- (key material erased, the name stays taken); description and tags; aliases;
-- whether versions may be exported and whether sealing is convergent (both fixed
-- at creation), and where each version came from.
ALTER TABLE keyrings ADD COLUMN state TEXT NOT NULL DEFAULT 'enabled'
    CHECK (state IN ('enabled', 'disabled', 'pending_deletion', 'deleted'));
ALTER TABLE keyrings ADD COLUMN deletion_at BIGINT;
ALTER TABLE keyrings ADD COLUMN description TEXT NOT NULL DEFAULT '';
-- A JSON object of string labels.
ALTER TABLE keyrings ADD COLUMN tags TEXT NOT NULL DEFAULT '{}';
ALTER TABLE keyrings ADD COLUMN exportable BIGINT NOT NULL DEFAULT 0 CHECK (exportable IN (0, 1));
-- Deterministic AES-256-GCM-SIV (docs/formats.md, "Convergent keyrings").
ALTER TABLE keyrings ADD COLUMN convergent BIGINT NOT NULL DEFAULT 0 CHECK (convergent IN (0, 1));
ALTER TABLE key_versions ADD COLUMN origin TEXT NOT NULL DEFAULT 'generated'
    CHECK (origin IN ('generated', 'imported'));

-- `alias/NAME` -> keyring; re-pointable; removed when its keyring is erased.
CREATE TABLE keyring_aliases (
    alias      TEXT PRIMARY KEY,
    keyring    TEXT NOT NULL REFERENCES keyrings(name),
    updated_at BIGINT NOT NULL
);
CREATE INDEX keyring_aliases_by_keyring ON keyring_aliases (keyring);
