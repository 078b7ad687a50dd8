-- HSM-resident keyrings (docs/custody.md, "Resident keyrings"): each version's
-- key is generated in custody's token and never leaves it; the version's
-- wrapped_key holds a reference to that key instead. Fixed at creation.
ALTER TABLE keyrings ADD COLUMN resident BIGINT NOT NULL DEFAULT 0 CHECK (resident IN (0, 1));
