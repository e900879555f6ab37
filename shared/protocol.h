/* protocol.h — wire protocol v1 shared by chatd and chat: limits, input
 * validation (UTF-8 in utf8.c), event and error JSON, query-string parsing,
 * WebSocket op messages, the client's reading of event lists. The parsers
 * of untrusted bytes that both programs share live here (and amounts in
 * money.h), each with a fuzz target in tests/fuzz/. See shared/PROTOCOL.md
 * for the protocol itself. */
#ifndef CHAT_PROTOCOL_H
#define CHAT_PROTOCOL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_MAX_REQUEST_BYTES   (64 * 1024)  /* HTTP body and WS message cap */
#define PROTO_USER_MAX            32
#define PROTO_ROOM_MAX            32
#define PROTO_PASSWORD_MIN        8
#define PROTO_PASSWORD_MAX        128
#define PROTO_BODY_MAX            4096
#define PROTO_CLIENT_MSG_ID_MAX   64
#define PROTO_LIMIT_DEFAULT       100
#define PROTO_LIMIT_MAX           1000
#define PROTO_TOKEN_BYTES         32           /* 256-bit tokens */
#define PROTO_TOKEN_HEX_LEN       (PROTO_TOKEN_BYTES * 2)
#define PROTO_DEFAULT_ROOM        "general"
#define PROTO_WS_SUBPROTOCOL      "chat.v1"
#define PROTO_WS_PATH             "/api/v1/ws"
#define PROTO_TOPIC_MAX           256
#define PROTO_DM_NAME_MAX         (2 * PROTO_USER_MAX + 2)  /* "@a,b" */
#define PROTO_HISTORY_DEFAULT     50
#define PROTO_HISTORY_MAX         200
#define PROTO_AFTER_LATEST        (-1)         /* hello's "after":"latest" */

/* 1 if buf[0..len) is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF). */
int proto_utf8_valid(const char *buf, size_t len);

/* Name rules: 1..32 bytes of [a-z0-9_-]. Used for users and rooms. */
int proto_name_valid(const char *s);
int proto_password_valid(const char *s);
/* 1..4096 bytes of valid UTF-8. */
int proto_body_valid(const char *s);
/* 1..64 bytes of printable ASCII without spaces. */
int proto_client_msg_id_valid(const char *s);

/* Parses a JSON object from an untrusted buffer (need not be NUL-terminated).
 * Returns NULL with err (a short message for the client) on failure. */
json_t *proto_parse_object(const char *buf, size_t len, const char **err);

/* Field access on untrusted objects: *out stays NULL/unchanged if absent.
 * Return 0 if absent or of the right type, -1 if present with a wrong type. */
int proto_get_string(const json_t *obj, const char *key, const char **out);
int proto_get_int(const json_t *obj, const char *key, int64_t *out, int *present);

/* GET /api/v1/events query: after=ID&wait=S&limit=N. Missing fields take
 * defaults (after 0, wait 0, limit 100). Strict: digits only, no duplicates,
 * no unknown keys, limit 1..1000. Returns 0 or -1 with err set. */
struct proto_events_query {
    int64_t after;
    int     wait_s;
    int     limit;
    int     latest;             /* v1.1 after=latest: start at the newest event (after 0) */
};
int proto_parse_events_query(const char *query, struct proto_events_query *q, const char **err);

/* Error body {"error":{"code","message"}} as a new string (free()). */
char *proto_error_json(const char *code, const char *message);

/* An event as served: {"id","type","ts", ...payload fields}. payload_json is
 * the stored object of type-specific fields. Returns a new reference or NULL. */
json_t *proto_event_new(int64_t id, const char *type, int64_t ts_ms, const char *payload_json);
/* The same from a payload object still in memory (borrowed, unchanged):
 * what the storing instance uses, saving a parse of the text it stored. */
json_t *proto_event_of(int64_t id, const char *type, int64_t ts_ms, json_t *payload);
/* The WebSocket frame that delivers an event, {"op":"event","event":event},
 * as a new compact string (free()); NULL if out of memory. */
char *proto_ws_event_text(json_t *event);
/* A direct conversation's room name, "@a,b" (the two names sorted): 0, or
 * -1 if a name is bad, they are the same, or it does not fit out. */
int proto_dm_name(const char *a, const char *b, char *out, size_t len);
/* 1 if s is exactly such a name. */
int proto_dm_name_valid(const char *s);
/* 0..256 bytes of UTF-8 without control characters. */
int proto_topic_valid(const char *s);
/* Payloads (new strings, free()) of member {"room","user","action"} and
 * topic {"room","from","topic"} events. */
char *proto_member_payload(const char *room, const char *user, int join);
char *proto_topic_payload(const char *room, const char *from, const char *topic);
/* Chat payload {"room","from","body"} as a new object (json_decref()). */
json_t *proto_chat_payload_new(const char *room, const char *from, const char *body);

/* WS client frames. */
enum proto_op { PROTO_OP_UNKNOWN = 0, PROTO_OP_HELLO, PROTO_OP_SEND, PROTO_OP_TYPING };
struct proto_ws_frame {
    enum proto_op op;
    const char *token;          /* hello */
    int64_t     after;          /* hello */
    const char *room;           /* send (defaults to general), or a DM's "@a,b"; typing */
    const char *to;             /* send: a direct message to this user; typing in that DM */
    const char *body;           /* send */
    const char *client_msg_id;  /* send, optional */
};
/* Parses a client frame; pointers borrow from *root, which the caller frees
 * with json_decref. Returns 0, or -1 with *code and *err describing why
 * (codes: bad_json, bad_request, unknown_op). */
int proto_parse_ws_frame(const char *buf, size_t len, json_t **root,
                         struct proto_ws_frame *f, const char **code, const char **err);

/* Client side: decoded event. json is the whole event object (owned). */
struct proto_event {
    int64_t id;
    const char *type;
    json_t *json;
};
/* Parses {"events":[...],"next":ID}. On success *events is a JSON array of
 * event objects each validated to have an integer id > 0 and a string type,
 * ids strictly increasing; caller json_decref's it. */
int proto_parse_events_response(const char *buf, size_t len, json_t **events, int64_t *next, const char **err);
/* Validates one event object (id > 0 integer, type string). */
int proto_event_check(const json_t *ev, int64_t *id);

#endif
