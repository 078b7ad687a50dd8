-- The downlink to constrained devices (docs/protocol.md, "Downlink"): the last
-- server→device frame counter used for the device (one counter across boots,
-- taken with an atomic increment by whichever instance sends, so no counter
-- repeats under a boot's key); and `rekey`, the command that asks a constrained
-- device for a new boot (fresh session keys).
ALTER TABLE device_secrets ADD COLUMN down_counter BIGINT NOT NULL DEFAULT 0;
ALTER TABLE device_commands DROP CONSTRAINT device_commands_kind_check;
ALTER TABLE device_commands ADD CONSTRAINT device_commands_kind_check
    CHECK (kind IN ('rotate_credential', 'update_config', 'wipe', 'rekey'));
