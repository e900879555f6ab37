-- 001_init.sql — PostgreSQL schema, part 1: users, login sessions and the
-- event log (the same semantics as db/migrations/001 and 003 for SQLite).
-- Applied by server/store_pg.c, embedded in chatd, inside one transaction
-- together with a row in schema_version (which store_pg.c creates), while
-- holding a pg_advisory_lock so instances starting at once do not race.
-- Ids are BIGINT, times are BIGINT milliseconds since the epoch.

CREATE TABLE users (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        TEXT   NOT NULL UNIQUE,
    pwhash      TEXT   NOT NULL,
    created_ms  BIGINT NOT NULL
);

-- token_hash is the hex SHA-256 of the bearer token; raw tokens are never
-- stored. last_used_ms drives the idle expiry.
CREATE TABLE sessions (
    token_hash    TEXT   PRIMARY KEY,
    user_id       BIGINT NOT NULL REFERENCES users(id),
    created_ms    BIGINT NOT NULL,
    expires_ms    BIGINT NOT NULL,
    last_used_ms  BIGINT NOT NULL
);

-- The event log. recipient_id NULL = visible to every user; sender_id NULL =
-- from the system. Ids come from event_counter below, not from a sequence.
CREATE TABLE events (
    id            BIGINT PRIMARY KEY,
    ts_ms         BIGINT NOT NULL,
    type          TEXT   NOT NULL,
    recipient_id  BIGINT,
    sender_id     BIGINT,
    client_msg_id TEXT,
    payload       TEXT   NOT NULL
);

-- Idempotent sends: a retried (sender, client_msg_id) maps to the first event.
CREATE UNIQUE INDEX events_dedupe
    ON events(sender_id, client_msg_id) WHERE client_msg_id IS NOT NULL;

-- Feed reads: "recipient_id IS NULL AND id > X" is an ordered range of
-- events_broadcast and "recipient_id = U AND id > X" one of events_feed; the
-- query merges the two (a single "IS NULL OR =" would sort every match).
CREATE INDEX events_broadcast ON events(id) WHERE recipient_id IS NULL;
CREATE INDEX events_feed ON events(recipient_id, id) WHERE recipient_id IS NOT NULL;

-- Where event ids come from. Clients read the log with a cursor (the last id
-- they saw), so ids must become visible in id order: a reader past id N must
-- never later find a new event below N. A sequence does not give that: with
-- two writers, the one holding N+1 can commit before the one holding N, a
-- reader sees N+1 and moves its cursor past N, and N, committed a moment
-- later, is skipped for good. So the appending statement takes the next id
-- with UPDATE ... SET last_id = last_id + 1 RETURNING last_id: the row lock
-- is held until its transaction ends, so the next writer gets N+1 only once
-- the holder of N has committed (N is then visible) or rolled back (the
-- increment is undone with it, and N, which nobody saw, is handed out
-- again). Ids therefore become visible in order, across any number of
-- connections and chatd instances. Gaps are possible (a deduplicated retry
-- uses up an id); reordering is not. The cost:
-- appends are serialized, and a transaction that appends holds the lock
-- until it commits, so such transactions should be short.
CREATE TABLE event_counter (
    only_row  BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    last_id   BIGINT  NOT NULL
);
INSERT INTO event_counter(only_row, last_id) VALUES (TRUE, 0);
