-- 006_event_ids.sql — PostgreSQL schema, part 6: event ids from a sequence,
-- made visible in id order by a watermark instead of a lock held to commit.
--
-- Why: until now every appending transaction took event_counter's row lock
-- (001_init.sql) and held it through its commit, so the commits of every
-- chatd instance went one after another, one WAL flush each, and a second
-- instance bought no appends (tests/bench/README.md).
--
-- The rule clients rely on is unchanged: a reader past id N never later
-- finds a new event below N. It is now kept on the read side:
--
-- 1. An appending transaction first ANNOUNCES itself: it reads the
--    sequence's last value v and takes a shared, transaction-scoped advisory
--    lock keyed on v in our namespace (chat_event_lock_key); only then does
--    it take its ids with nextval, so all of them are > v. The lock goes
--    when the transaction ends: PostgreSQL releases locks after the commit
--    is visible to new snapshots (or after the rollback).
-- 2. A reader first computes a WATERMARK (chat_event_watermark): FIRST the
--    sequence's last value L, THEN the smallest announced v among the held
--    locks of our namespace; W = min(L, that v). Every id <= W is then
--    committed and visible to any snapshot taken afterwards, or will never
--    be: take an id x <= W of a transaction T. x <= L, so T's nextval ran
--    before L was read (a later one returns more than L: the sequence has
--    no cache), so T announced before that, so T's lock was taken before the
--    locks were read. If T still held it, W <= v_T < x: not so. So T had
--    ended: committed (visible to a later snapshot) or rolled back (x is a
--    gap forever).
-- 3. The read itself then runs as a later statement (its own snapshot, READ
--    COMMITTED) and returns only ids <= W. The reading functions below are
--    plpgsql: each statement in them takes a new snapshot, so the row query
--    sees what the watermark promised. (A single SQL statement would not:
--    its snapshot is taken before any function in it runs.)
--
-- Nothing waits to commit: appenders hold only a shared lock nobody takes
-- exclusively. A transaction that appended and stays open holds the
-- watermark (not the appends of others) until it ends. NOTIFY leaves the
-- appending statements (chatd sends it after the commit): a transaction that
-- notifies holds PostgreSQL's notification lock through its commit, which
-- would serialize commits again.
--
-- The counter's value seeds the sequence; the table is dropped (under an
-- exclusive lock, so no append of an older chatd slips in between), so an
-- older chatd still running fails loudly instead of handing out ids that
-- the new ones also hand out.

LOCK TABLE event_counter IN ACCESS EXCLUSIVE MODE;
CREATE SEQUENCE event_ids AS BIGINT MINVALUE 0 START WITH 0 CACHE 1;
SELECT setval('event_ids', GREATEST(c.last_id, COALESCE((SELECT max(id) FROM events), 0)), true)
    FROM event_counter c;
DROP TABLE event_counter;

-- The advisory lock key of announcement v: v in the low 48 bits, 'CH' in
-- the top 16 (an id needs 48 bits long after this service is gone).
CREATE FUNCTION chat_event_lock_key(v BIGINT) RETURNS BIGINT
LANGUAGE sql IMMUTABLE AS $$ SELECT (17224::bigint << 48) | v $$;

-- The sequence's last handed-out value (is_called false: none yet).
CREATE FUNCTION chat_event_last() RETURNS BIGINT
LANGUAGE sql VOLATILE AS $$
    SELECT last_value - CASE WHEN is_called THEN 0 ELSE 1 END FROM event_ids
$$;

-- n new event ids, ascending, after announcing (1. above).
CREATE FUNCTION chat_event_ids(n INT) RETURNS BIGINT[]
LANGUAGE plpgsql VOLATILE AS $$
DECLARE v BIGINT;
BEGIN
    v := chat_event_last();
    PERFORM pg_advisory_xact_lock_shared(chat_event_lock_key(v));
    RETURN ARRAY(SELECT nextval('event_ids') FROM generate_series(1, n) ORDER BY 1);
END $$;

-- The watermark (2. above): every id <= it is final.
CREATE FUNCTION chat_event_watermark() RETURNS BIGINT
LANGUAGE plpgsql VOLATILE AS $$
DECLARE l BIGINT; m BIGINT;
BEGIN
    l := chat_event_last();
    SELECT min(((k.classid::bigint << 32) | k.objid::bigint) & ((1::bigint << 48) - 1)) INTO m
        FROM pg_locks k
        WHERE k.locktype = 'advisory' AND k.objsubid = 1
          AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND (k.classid::bigint >> 16) = 17224;
    RETURN LEAST(l, COALESCE(m, l));
END $$;

-- Every event after p_after up to the watermark, the first p_limit.
CREATE FUNCTION chat_events_all_after(p_after BIGINT, p_limit BIGINT)
RETURNS TABLE(id BIGINT, ts_ms BIGINT, recipient_id BIGINT, type TEXT, payload TEXT,
              room_id BIGINT, sender_id BIGINT)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE w BIGINT := chat_event_watermark();
BEGIN
    RETURN QUERY SELECT e.id, e.ts_ms, e.recipient_id, e.type, e.payload, e.room_id, e.sender_id
        FROM events e WHERE e.id > p_after AND e.id <= w ORDER BY e.id LIMIT p_limit;
END $$;

-- A user's feed (store_pg.c's former Q_EVENTS_AFTER) up to the watermark:
-- the private range of events_feed and, per membership, its room's range of
-- events_room from the join to the leave, each at most p_limit rows, merged.
CREATE FUNCTION chat_events_after(p_after BIGINT, p_user BIGINT, p_limit BIGINT)
RETURNS TABLE(id BIGINT, ts_ms BIGINT, recipient_id BIGINT, type TEXT, payload TEXT,
              room_id BIGINT, sender_id BIGINT)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE w BIGINT := chat_event_watermark();
BEGIN
    RETURN QUERY
    (SELECT e.id, e.ts_ms, e.recipient_id, e.type, e.payload, e.room_id, e.sender_id FROM events e
      WHERE e.recipient_id = p_user AND e.id > p_after AND e.id <= w ORDER BY e.id LIMIT p_limit)
    UNION ALL
    (SELECT x.* FROM room_members m CROSS JOIN LATERAL
       (SELECT e.id, e.ts_ms, e.recipient_id, e.type, e.payload, e.room_id, e.sender_id FROM events e
         WHERE e.room_id = m.room_id AND e.id > GREATEST(p_after, m.joined_id - 1) AND e.id <= w
           AND (m.left_id IS NULL OR e.id <= m.left_id) ORDER BY e.id LIMIT p_limit) x
      WHERE m.user_id = p_user AND (m.left_id IS NULL OR m.left_id > p_after))
    ORDER BY 1 LIMIT p_limit;
END $$;

-- The newest event id up to the watermark: where a new reader starts.
CREATE FUNCTION chat_last_event_id() RETURNS BIGINT
LANGUAGE plpgsql VOLATILE AS $$
DECLARE w BIGINT := chat_event_watermark();
BEGIN
    RETURN COALESCE((SELECT max(e.id) FROM events e WHERE e.id <= w), 0);
END $$;

-- A room event (003_rooms.sql's, now with an announced id and no NOTIFY).
CREATE OR REPLACE FUNCTION chat_room_event(p_room BIGINT, p_type TEXT, p_sender BIGINT,
                                           p_payload TEXT, p_now BIGINT) RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE v_id BIGINT;
BEGIN
    v_id := (chat_event_ids(1))[1];
    INSERT INTO events(id, ts_ms, type, recipient_id, sender_id, client_msg_id, payload, room_id)
        VALUES (v_id, p_now, p_type, NULL, p_sender, NULL, COALESCE(p_payload, '{}'), p_room);
    RETURN v_id;
END $$;

-- A room's history (003_rooms.sql's) up to the watermark, so that a page of
-- history never shows an event above one that may still appear.
CREATE OR REPLACE FUNCTION chat_room_messages(p_user BIGINT, p_name TEXT, p_before BIGINT, p_limit INT)
RETURNS TABLE(err INT, room BIGINT, num BIGINT, ev_id BIGINT, ev_ts BIGINT,
              ev_type TEXT, ev_payload TEXT, ev_sender BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    r rooms%ROWTYPE;
    m room_members%ROWTYPE;
    v_more BIGINT;
    w BIGINT := chat_event_watermark();
BEGIN
    SELECT * INTO r FROM rooms WHERE name = p_name;
    SELECT * INTO m FROM room_members WHERE room_id = r.id AND user_id = p_user;
    IF r.id IS NULL OR (r.dm AND m.user_id IS NULL) THEN
        RETURN QUERY SELECT 1, NULL::BIGINT, NULL::BIGINT, NULL::BIGINT, NULL::BIGINT, NULL, NULL, NULL::BIGINT; RETURN;
    END IF;
    IF m.user_id IS NULL OR m.left_id IS NOT NULL THEN
        RETURN QUERY SELECT 6, NULL::BIGINT, NULL::BIGINT, NULL::BIGINT, NULL::BIGINT, NULL, NULL, NULL::BIGINT; RETURN;
    END IF;
    p_before := LEAST(p_before, w + 1);
    SELECT count(*) INTO v_more FROM (SELECT 1 FROM events e WHERE e.room_id = r.id AND e.id < p_before
                                      ORDER BY e.id DESC LIMIT p_limit + 1) x;
    v_more := CASE WHEN v_more > p_limit THEN 1 ELSE 0 END;
    RETURN QUERY SELECT 0, r.id, v_more, x.id, x.ts_ms, x.type, x.payload, x.sender_id FROM
        (SELECT e.id, e.ts_ms, e.type, e.payload, e.sender_id FROM events e
         WHERE e.room_id = r.id AND e.id < p_before ORDER BY e.id DESC LIMIT p_limit) x
        ORDER BY x.id;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 0, r.id, v_more, NULL::BIGINT, NULL::BIGINT, NULL, NULL, NULL::BIGINT; RETURN;
    END IF;
END $$;
