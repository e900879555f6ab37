-- 005_unread_index.sql — the rooms list's unread counts (Q_ROOMS_LIST in
-- server/store_pg.c: a room's chat events after the read marker, not the
-- caller's, counted up to 1000, in id order) as an index scan of at most
-- 1000 entries of this index. With events_room alone the planner took a
-- bitmap scan of every event of the room after the marker (61,000 a room
-- for a user who never read, on 1,000,000 events: 7.5 ms a room), and the
-- plan's cost made PostgreSQL JIT-compile the query (another 16 ms).
CREATE INDEX events_room_chat ON events(room_id, id) INCLUDE (sender_id)
    WHERE type = 'chat' AND room_id IS NOT NULL;
