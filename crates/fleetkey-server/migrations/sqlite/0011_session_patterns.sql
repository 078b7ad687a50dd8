-- Which device-session patterns the listener accepts (docs/operations.md,
-- "Session patterns"): scope '*' for the whole service, or a fleet's name; the
-- patterns comma-separated from ik, ik-hybrid, xx. No row: every pattern.
CREATE TABLE session_patterns (
    scope      TEXT PRIMARY KEY,
    patterns   TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
