-- 001_init.sql — initial schema: accounts, login sessions and the event log.
-- Applied inside one transaction by store_sqlite.c, which then sets
-- PRAGMA user_version = 1.

CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    pwhash      TEXT    NOT NULL,
    created_ms  INTEGER NOT NULL
) STRICT;

-- token_hash is the hex SHA-256 of the bearer token; raw tokens are never stored.
CREATE TABLE sessions (
    token_hash  TEXT    PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    created_ms  INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL
) STRICT;

-- The event log. AUTOINCREMENT: ids are never reused, even after the newest
-- rows are deleted, so a client's cursor (last seen id) stays meaningful.
-- recipient_id NULL = visible to every user; sender_id NULL = from the system.
CREATE TABLE events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms         INTEGER NOT NULL,
    type          TEXT    NOT NULL,
    recipient_id  INTEGER,
    sender_id     INTEGER,
    client_msg_id TEXT,
    payload       TEXT    NOT NULL
) STRICT;

-- Idempotent sends: a retried (sender, client_msg_id) maps to the first event.
CREATE UNIQUE INDEX events_dedupe
    ON events(sender_id, client_msg_id) WHERE client_msg_id IS NOT NULL;

-- Feed reads: "recipient_id IS NULL AND id > X" and "recipient_id = U AND
-- id > X" are each an ordered range of this index; the store merges the two.
CREATE INDEX events_feed ON events(recipient_id, id);
