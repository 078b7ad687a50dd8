-- A subject's audit entries, newest first (a device's history:
-- GET /v1/fleets/{fleet}/devices/{id}/history).
CREATE INDEX audit_log_subject ON audit_log (subject, seq);
