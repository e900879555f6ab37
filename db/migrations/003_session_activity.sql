-- 003_session_activity.sql — sessions also expire when idle: remember when
-- each was last used (updated at most once a minute per session).
ALTER TABLE sessions ADD COLUMN last_used_ms INTEGER NOT NULL DEFAULT 0;
UPDATE sessions SET last_used_ms = created_ms;
