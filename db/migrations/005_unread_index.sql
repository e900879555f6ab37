-- 005_unread_index.sql — the rooms list's unread counts (Q_ROOM_UNREAD in
-- server/store_sqlite.c: a room's chat events after the read marker, not
-- the caller's, counted up to 1000) read this index alone, in id order:
-- with events_room they looked up every event's row for its type and
-- sender (1-7 ms a room on 1,000,000 events, 30 ms cold; now ~0.1 ms).
CREATE INDEX events_room_chat ON events(room_id, id, sender_id)
    WHERE type = 'chat' AND room_id IS NOT NULL;
