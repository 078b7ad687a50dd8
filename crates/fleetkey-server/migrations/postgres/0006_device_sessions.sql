-- Device sessions over the device listener: one row per completed handshake (the
-- id is the first 16 bytes of its handshake hash, in hex). `previous` links a
-- resumed session to the one it resumed; `telemetry_seq` is the highest telemetry
-- sequence number accepted when the session ended, so duplicates sent again after
-- a reconnect are recognised.
CREATE TABLE device_sessions (
    id            TEXT PRIMARY KEY,
    device_id     TEXT NOT NULL,
    previous      TEXT,
    pattern       TEXT NOT NULL,
    peer          TEXT NOT NULL,
    started_at    BIGINT NOT NULL,
    ended_at      BIGINT,
    telemetry_seq BIGINT NOT NULL,
    messages_in   BIGINT NOT NULL DEFAULT 0,
    messages_out  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX device_sessions_by_device ON device_sessions (device_id, telemetry_seq);

-- Each device's telemetry position (the highest sequence stored), kept when old
-- session rows are pruned.
CREATE TABLE device_telemetry_positions (
    device_id TEXT PRIMARY KEY,
    seq       BIGINT NOT NULL
);
CREATE INDEX device_sessions_by_end ON device_sessions (ended_at);
