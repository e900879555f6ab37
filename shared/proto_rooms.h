/* proto_rooms.h — protocol v1.1 as a client reads it (shared/PROTOCOL.md,
 * "Protocol v1.1"): room names (public and direct), topics, and the
 * untrusted answers the client parses: the rooms list, a history page, a
 * presence list and the ephemeral items (presence, typing). Every parser
 * here has a fuzz target (tests/fuzz/fuzz_rooms_decode.c). */
#ifndef CHAT_PROTO_ROOMS_H
#define CHAT_PROTO_ROOMS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

/* A room name, public or direct (PROTO_TOPIC_MAX, PROTO_HISTORY_MAX and
 * proto_dm_name are in protocol.h). */
#define PROTO_ROOM_REF_MAX     PROTO_DM_NAME_MAX
#define PROTO_UNREAD_CAP       1000    /* "1000 or more" */
#define PROTO_ROOMS_LIST_MAX   10000   /* rooms a client takes from one list */
#define PROTO_ONLINE_LIST_MAX  100000  /* names in one presence answer */
#define PROTO_ANSWER_MAX       (8u * 1024 * 1024)  /* bytes of one answer parsed here */

/* A room as named in events and paths: a public name (proto_name_valid) or
 * a direct conversation "@a,b" with a < b, both valid user names. */
int proto_room_ref_valid(const char *s);
int proto_room_is_direct(const char *s);
/* The other party of direct room s for user self, copied into out
 * (PROTO_USER_MAX + 1 bytes); -1 if s is not a DM of self. */
int proto_dm_peer(const char *s, const char *self, char *out);
/* proto_topic_valid, and no C1 control either: a topic a client shows. */
int proto_topic_text_valid(const char *s);

struct proto_room_info {
    char name[PROTO_ROOM_REF_MAX + 1];
    char topic[PROTO_TOPIC_MAX + 1];
    int64_t members, online, unread, last_id;
    int joined;
};
/* GET /api/v1/rooms: {"rooms":[{"name","topic","members","online","unread",
 * "last_id","joined"}]}. Strict: every field of its type, counts >= 0
 * (unread capped at 1000), names valid and unique, topic null/absent or
 * valid, at most PROTO_ROOMS_LIST_MAX rooms. On success *out (free()) holds
 * *n rooms; -1 with err otherwise. */
int proto_parse_rooms_list(const char *buf, size_t len, struct proto_room_info **out,
                           size_t *n, const char **err);

/* GET /api/v1/rooms/NAME/messages: {"events":[...],"more":bool}. Every
 * event valid (proto_event_check), ids strictly increasing and below
 * `before` (0: no bound), of room `room`, at most PROTO_HISTORY_MAX. On
 * success *events is a new reference. */
int proto_parse_history_page(const char *buf, size_t len, const char *room, int64_t before,
                             json_t **events, int *more, const char **err);

/* GET /api/v1/rooms/NAME/presence: {"online":[names]}: a new array of
 * valid, unique names. */
int proto_parse_presence_list(const char *buf, size_t len, json_t **names, const char **err);

enum proto_eph_kind { PROTO_EPH_PRESENCE = 1, PROTO_EPH_TYPING, PROTO_EPH_READ };
struct proto_ephemeral {
    enum proto_eph_kind kind;
    const char *user;           /* borrowed from the item (not in read) */
    const char *room;           /* typing, read */
    int online;                 /* presence */
    int64_t read_id;            /* read: the user's marker of room */
};
/* One ephemeral item ({"type":"presence","user","online"},
 * {"type":"typing","room","user"} or {"type":"read","room","read_id"}: the
 * user's own read marker, moved by another of their clients; a WebSocket
 * frame has "op" for "type").
 * 0, or -1 if malformed or of an unknown type (ignored by the client). */
int proto_parse_ephemeral(const json_t *item, struct proto_ephemeral *out);

#endif
