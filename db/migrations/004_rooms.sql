-- 004_rooms.sql — rooms and direct conversations (protocol v1.1). A room
-- event carries room_id; a private event (an alert) recipient_id and no
-- room. A user's feed is their private events and the events of the rooms
-- they are a member of, from the event that made them one (joined_id) to
-- the one that ended it (left_id, NULL while a member).

CREATE TABLE rooms (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL UNIQUE,
    topic       TEXT    NOT NULL DEFAULT '',
    dm          INTEGER NOT NULL DEFAULT 0,
    created_ms  INTEGER NOT NULL
) STRICT;

-- read_id: the member's read marker (only moves forward).
CREATE TABLE room_members (
    room_id    INTEGER NOT NULL REFERENCES rooms(id),
    user_id    INTEGER NOT NULL REFERENCES users(id),
    joined_id  INTEGER NOT NULL DEFAULT 0,
    left_id    INTEGER,
    read_id    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, user_id)
) STRICT;
CREATE INDEX room_members_user ON room_members(user_id, room_id);

ALTER TABLE events ADD COLUMN room_id INTEGER;
CREATE INDEX events_room ON events(room_id, id) WHERE room_id IS NOT NULL;

-- general is room 1, and everyone is in it.
INSERT INTO rooms(id, name, created_ms) VALUES (1, 'general', 0);
-- v1 let anyone post to any room name and everyone saw it: each such room
-- becomes a public room with every user as a member.
INSERT INTO rooms(name, created_ms)
    SELECT DISTINCT json_extract(payload, '$.room'), 0 FROM events
    WHERE recipient_id IS NULL AND json_extract(payload, '$.room') IS NOT NULL
      AND json_extract(payload, '$.room') <> 'general';
UPDATE events SET room_id = COALESCE(
    (SELECT r.id FROM rooms r WHERE r.name = json_extract(events.payload, '$.room')), 1)
    WHERE recipient_id IS NULL;
INSERT INTO room_members(room_id, user_id) SELECT r.id, u.id FROM rooms r, users u;
