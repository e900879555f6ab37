/* protocol.c — validation, JSON encode/decode and query parsing for protocol v1
 * (see protocol.h). What the parsers read is untrusted: every length is
 * checked before use. */
#include "protocol.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

int proto_name_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > PROTO_USER_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int proto_password_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n >= PROTO_PASSWORD_MIN && n <= PROTO_PASSWORD_MAX;
}

int proto_body_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n >= 1 && n <= PROTO_BODY_MAX && proto_utf8_valid(s, n);
}

int proto_client_msg_id_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > PROTO_CLIENT_MSG_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~')
            return 0;
    return 1;
}

json_t *proto_parse_object(const char *buf, size_t len, const char **err)
{
    json_error_t jerr;
    if (len == 0) {
        *err = "empty body, expected a JSON object";
        return NULL;
    }
    if (len > PROTO_MAX_REQUEST_BYTES) {
        *err = "body too large";
        return NULL;
    }
    /* jansson rejects invalid UTF-8 and escaped NULs (no JSON_ALLOW_NUL), but
     * skips a raw NUL after some tokens: refuse any NUL byte outright. */
    if (memchr(buf, '\0', len)) {
        *err = "NUL byte in the body";
        return NULL;
    }
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        *err = "malformed JSON or invalid UTF-8";
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        *err = "expected a JSON object";
        return NULL;
    }
    return root;
}

int proto_get_string(const json_t *obj, const char *key, const char **out)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return -1;
    *out = json_string_value(v);
    return 0;
}

int proto_get_int(const json_t *obj, const char *key, int64_t *out, int *present)
{
    json_t *v = json_object_get(obj, key);
    if (present)
        *present = 0;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v))
        return -1;
    *out = (int64_t)json_integer_value(v);
    if (present)
        *present = 1;
    return 0;
}

/* Parses a non-negative decimal up to INT64_MAX from [s, s+n). */
static int parse_uint(const char *s, size_t n, int64_t *out)
{
    if (n == 0 || n > 19)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (INT64_MAX - (s[i] - '0')) / 10)
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Stores one key=value of the events query; returns 0 or -1 with err. */
static int events_query_field(const char *key, size_t klen, const char *val, size_t vlen,
                              struct proto_events_query *q, unsigned *seen, const char **err)
{
    static const char *const keys[] = { "after", "wait", "limit" };
    int64_t v;
    for (unsigned k = 0; k < 3; k++) {
        if (klen != strlen(keys[k]) || memcmp(key, keys[k], klen) != 0)
            continue;
        if (*seen & (1u << k)) {
            *err = "repeated query parameter";
            return -1;
        }
        *seen |= 1u << k;
        if (k == 0 && vlen == 6 && !memcmp(val, "latest", 6)) {
            q->latest = 1;
            return 0;
        }
        if (parse_uint(val, vlen, &v) < 0) {
            *err = "query parameters must be non-negative integers";
            return -1;
        }
        if (k == 0) q->after = v;
        if (k == 0) q->latest = 0;
        if (k == 1) q->wait_s = v > 3600 ? 3600 : (int)v;
        if (k == 2) {
            if (v < 1 || v > PROTO_LIMIT_MAX) {
                *err = "limit must be between 1 and 1000";
                return -1;
            }
            q->limit = (int)v;
        }
        return 0;
    }
    *err = "unknown query parameter";
    return -1;
}

int proto_parse_events_query(const char *query, struct proto_events_query *q, const char **err)
{
    unsigned seen = 0;
    q->after = 0;
    q->latest = 0;
    q->wait_s = 0;
    q->limit = PROTO_LIMIT_DEFAULT;
    if (!query || !*query)
        return 0;
    if (strlen(query) > 256) {
        *err = "query string too long";
        return -1;
    }
    const char *p = query;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (!eq) {
            *err = "query parameters must be key=value";
            return -1;
        }
        if (events_query_field(p, (size_t)(eq - p), eq + 1, len - (size_t)(eq - p) - 1,
                               q, &seen, err) < 0)
            return -1;
        p += len;
        if (*p == '&' && !*++p) {
            *err = "empty query parameter";
            return -1;
        }
    }
    return 0;
}

char *proto_error_json(const char *code, const char *message)
{
    json_t *o = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

char *proto_ws_event_text(json_t *event)
{
    json_t *frame = json_pack("{s:s,s:O}", "op", "event", "event", event);
    char *s = frame ? json_dumps(frame, JSON_COMPACT) : NULL;
    json_decref(frame);
    return s;
}

json_t *proto_event_new(int64_t id, const char *type, int64_t ts_ms, const char *payload_json)
{
    json_t *payload = json_loads(payload_json, 0, NULL);
    json_t *ev = proto_event_of(id, type, ts_ms, payload);
    json_decref(payload);
    return ev;
}

json_t *proto_event_of(int64_t id, const char *type, int64_t ts_ms, json_t *payload)
{
    if (!json_is_object(payload))
        return NULL;
    json_t *ev = json_pack("{s:I,s:s,s:I}", "id", (json_int_t)id, "type", type,
                           "ts", (json_int_t)ts_ms);
    /* Stored payload fields never override the envelope. */
    if (ev && json_object_update_missing(ev, payload) < 0) {
        json_decref(ev);
        return NULL;
    }
    return ev;
}

int proto_dm_name(const char *a, const char *b, char *out, size_t len)
{
    if (!proto_name_valid(a) || !proto_name_valid(b) || !strcmp(a, b))
        return -1;
    if (strcmp(a, b) > 0) {
        const char *t = a;
        a = b;
        b = t;
    }
    int n = snprintf(out, len, "@%s,%s", a, b);
    return n > 0 && (size_t)n < len ? 0 : -1;
}

int proto_dm_name_valid(const char *s)
{
    char a[PROTO_USER_MAX + 2], again[PROTO_DM_NAME_MAX + 1];
    const char *comma = s && s[0] == '@' ? strchr(s, ',') : NULL;
    if (!comma || (size_t)(comma - s - 1) >= sizeof a)
        return 0;
    memcpy(a, s + 1, (size_t)(comma - s - 1));
    a[comma - s - 1] = '\0';
    return proto_dm_name(a, comma + 1, again, sizeof again) == 0 && !strcmp(again, s);
}

int proto_topic_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (!s || n > PROTO_TOPIC_MAX || !proto_utf8_valid(s, n))
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

char *proto_member_payload(const char *room, const char *user, int join)
{
    json_t *o = json_pack("{s:s,s:s,s:s}", "room", room, "user", user, "action", join ? "join" : "leave");
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

char *proto_topic_payload(const char *room, const char *from, const char *topic)
{
    json_t *o = json_pack("{s:s,s:s,s:s}", "room", room, "from", from, "topic", topic);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

json_t *proto_chat_payload_new(const char *room, const char *from, const char *body)
{
    return json_pack("{s:s,s:s,s:s}", "room", room, "from", from, "body", body);
}

static int ws_frame_fields(json_t *root, struct proto_ws_frame *f, const char **code, const char **err)
{
    const char *op = NULL;
    *code = "bad_request";
    if (proto_get_string(root, "op", &op) < 0 || !op) {
        *err = "frame needs a string \"op\"";
        return -1;
    }
    if (strcmp(op, "hello") == 0) {
        f->op = PROTO_OP_HELLO;
        int present;
        const char *latest = NULL;
        if (json_is_string(json_object_get(root, "after")) &&
            proto_get_string(root, "after", &latest) == 0 && !strcmp(latest, "latest")) {
            f->after = PROTO_AFTER_LATEST;
            return proto_get_string(root, "token", &f->token) < 0 || !f->token
                ? (*err = "hello needs a string token", -1) : 0;
        }
        if (proto_get_string(root, "token", &f->token) < 0 || !f->token ||
            proto_get_int(root, "after", &f->after, &present) < 0 || f->after < 0) {
            *err = "hello needs a string token and a non-negative integer after (or \"latest\")";
            return -1;
        }
        return 0;
    }
    if (strcmp(op, "send") == 0) {
        f->op = PROTO_OP_SEND;
        f->room = NULL;
        if (proto_get_string(root, "room", &f->room) < 0 ||
            (f->room && !proto_name_valid(f->room) && !proto_dm_name_valid(f->room))) {
            *err = "room must be 1-32 characters of a-z 0-9 _ -";
            return -1;
        }
        if (proto_get_string(root, "to", &f->to) < 0 || (f->to && !proto_name_valid(f->to))) {
            *err = "to must be a user name";
            return -1;
        }
        if (f->to && f->room) {
            *err = "send has room or to, not both";
            return -1;
        }
        if (!f->to && !f->room)
            f->room = PROTO_DEFAULT_ROOM;
        if (proto_get_string(root, "body", &f->body) < 0 || !proto_body_valid(f->body)) {
            *err = "body must be 1-4096 bytes of UTF-8";
            return -1;
        }
        if (proto_get_string(root, "client_msg_id", &f->client_msg_id) < 0 ||
            (f->client_msg_id && !proto_client_msg_id_valid(f->client_msg_id))) {
            *err = "client_msg_id must be 1-64 printable ASCII characters";
            return -1;
        }
        return 0;
    }
    if (strcmp(op, "typing") == 0) {
        f->op = PROTO_OP_TYPING;
        if (proto_get_string(root, "room", &f->room) < 0 || proto_get_string(root, "to", &f->to) < 0 ||
            !f->room == !f->to || (f->room && !proto_name_valid(f->room) && !proto_dm_name_valid(f->room)) ||
            (f->to && !proto_name_valid(f->to))) {
            *err = "typing needs either a room (a name, or a DM's \"@a,b\") or a user \"to\"";
            return -1;
        }
        return 0;
    }
    *code = "unknown_op";
    *err = "unknown op";
    return -1;
}

int proto_parse_ws_frame(const char *buf, size_t len, json_t **root,
                         struct proto_ws_frame *f, const char **code, const char **err)
{
    memset(f, 0, sizeof *f);
    *root = proto_parse_object(buf, len, err);
    if (!*root) {
        *code = "bad_json";
        return -1;
    }
    if (ws_frame_fields(*root, f, code, err) < 0) {
        json_decref(*root);
        *root = NULL;
        return -1;
    }
    return 0;
}

int proto_event_check(const json_t *ev, int64_t *id)
{
    json_t *jid = json_object_get(ev, "id");
    json_t *jtype = json_object_get(ev, "type");
    if (!json_is_object(ev) || !json_is_integer(jid) || !json_is_string(jtype))
        return -1;
    if (json_integer_value(jid) <= 0)
        return -1;
    *id = (int64_t)json_integer_value(jid);
    return 0;
}

int proto_parse_events_response(const char *buf, size_t len, json_t **events, int64_t *next, const char **err)
{
    json_error_t jerr;
    json_t *root = json_loadb(buf, len, 0, &jerr);
    json_t *arr = root ? json_object_get(root, "events") : NULL;
    json_t *jnext = root ? json_object_get(root, "next") : NULL;
    int64_t prev = 0, id;
    size_t i;
    json_t *ev;
    *err = "malformed events response";
    if (!json_is_array(arr) || !json_is_integer(jnext))
        goto fail;
    json_array_foreach(arr, i, ev) {
        if (proto_event_check(ev, &id) < 0 || id <= prev)
            goto fail;
        prev = id;
    }
    *next = (int64_t)json_integer_value(jnext);
    *events = json_incref(arr);
    json_decref(root);
    return 0;
fail:
    json_decref(root);
    return -1;
}
