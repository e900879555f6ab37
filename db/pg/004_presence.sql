-- 004_presence.sql — PostgreSQL schema: presence leases (server/presence.c).
-- Each chatd instance (owner: its name and a random id per run) holds a
-- lease per user it has online, renewed every lease/6 by one statement
-- (Q_PRESENCE_RENEW); a lease not renewed by expires_at is over, so the
-- users of an instance that died go offline on the others. Nothing else
-- about presence is stored. UNLOGGED: leases are renewed every few seconds
-- and worth nothing after a database crash (which empties the table; the
-- instances fill it again at their next renewal), so they write no WAL.
-- (003 is the rooms migration.)
CREATE UNLOGGED TABLE presence_leases (
    owner       TEXT NOT NULL,
    user_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (owner, user_id)
);
CREATE INDEX presence_leases_expires ON presence_leases(expires_at);
