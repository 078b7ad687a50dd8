-- When the service last heard from each device (a verified session message or
-- frame), Unix seconds; written in batches, never once per message
-- (docs/operations.md, "Devices seen"). NULL: never heard from since this column
-- existed.
ALTER TABLE devices ADD COLUMN last_seen BIGINT;
CREATE INDEX devices_by_seen ON devices (last_seen);
