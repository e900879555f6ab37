/* proto_rooms.c — see proto_rooms.h. Everything read here comes from a
 * server the client does not trust: types, ranges and names are checked
 * before anything is kept. */
#include "proto_rooms.h"

#include <stdlib.h>
#include <string.h>

int proto_room_is_direct(const char *s)
{
    return s && s[0] == '@';
}

/* Splits "@a,b" into a and b (each PROTO_USER_MAX + 1); -1 if not that shape. */
static int dm_split(const char *s, char *a, char *b)
{
    const char *comma;
    size_t na, nb;
    if (!proto_room_is_direct(s) || !(comma = strchr(s + 1, ',')))
        return -1;
    na = (size_t)(comma - (s + 1));
    nb = strlen(comma + 1);
    if (na < 1 || na > PROTO_USER_MAX || nb < 1 || nb > PROTO_USER_MAX)
        return -1;
    memcpy(a, s + 1, na);
    a[na] = '\0';
    memcpy(b, comma + 1, nb + 1);
    return proto_name_valid(a) && proto_name_valid(b) && strcmp(a, b) < 0 ? 0 : -1;
}

int proto_room_ref_valid(const char *s)
{
    char a[PROTO_USER_MAX + 1], b[PROTO_USER_MAX + 1];
    if (!s)
        return 0;
    return proto_room_is_direct(s) ? proto_dm_name_valid(s) && dm_split(s, a, b) == 0
                                   : proto_name_valid(s);
}

int proto_dm_peer(const char *s, const char *self, char *out)
{
    char a[PROTO_USER_MAX + 1], b[PROTO_USER_MAX + 1];
    if (dm_split(s, a, b) < 0 || !self)
        return -1;
    if (strcmp(a, self) == 0)
        memcpy(out, b, strlen(b) + 1);
    else if (strcmp(b, self) == 0)
        memcpy(out, a, strlen(a) + 1);
    else
        return -1;
    return 0;
}

int proto_topic_text_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (!proto_topic_valid(s))
        return 0;
    for (size_t i = 0; i + 1 < n; i++)     /* C1: U+0080..U+009F, 0xC2 0x80..0x9F */
        if ((unsigned char)s[i] == 0xc2 && (unsigned char)s[i + 1] <= 0x9f)
            return 0;
    return 1;
}

/* An answer from the server: one JSON object, no NUL, no duplicate keys,
 * at most PROTO_ANSWER_MAX bytes (a page of 200 full messages is ~1 MB,
 * above the 64 KiB proto_parse_object allows a request). */
static json_t *load_answer(const char *buf, size_t len, const char **err)
{
    json_t *root;
    *err = "malformed answer";
    if (len == 0 || len > PROTO_ANSWER_MAX || memchr(buf, '\0', len))
        return NULL;
    root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
    if (root && !json_is_object(root)) {
        json_decref(root);
        return NULL;
    }
    return root;
}

/* ---- the rooms list ---- */

static int count_field(const json_t *room, const char *key, int64_t *out)
{
    json_t *v = json_object_get(room, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = (int64_t)json_integer_value(v);
    return 0;
}

static int room_info_read(const json_t *room, struct proto_room_info *r)
{
    const char *name = json_string_value(json_object_get(room, "name"));
    json_t *topic = json_object_get(room, "topic");
    json_t *joined = json_object_get(room, "joined");
    memset(r, 0, sizeof *r);
    if (!json_is_object(room) || !name || !proto_room_ref_valid(name) || !json_is_boolean(joined))
        return -1;
    if (topic && !json_is_null(topic) &&
        (!json_is_string(topic) || !proto_topic_text_valid(json_string_value(topic))))
        return -1;
    if (count_field(room, "members", &r->members) < 0 || count_field(room, "online", &r->online) < 0 ||
        count_field(room, "unread", &r->unread) < 0 || count_field(room, "last_id", &r->last_id) < 0)
        return -1;
    if (r->unread > PROTO_UNREAD_CAP)
        r->unread = PROTO_UNREAD_CAP;
    memcpy(r->name, name, strlen(name) + 1);
    if (json_is_string(topic))
        memcpy(r->topic, json_string_value(topic), strlen(json_string_value(topic)) + 1);
    r->joined = json_is_true(joined);
    return 0;
}

static int name_seen(const struct proto_room_info *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0)
            return 1;
    return 0;
}

int proto_parse_rooms_list(const char *buf, size_t len, struct proto_room_info **out,
                           size_t *n, const char **err)
{
    json_t *root = load_answer(buf, len, err);
    json_t *arr = json_object_get(root, "rooms"), *room;
    struct proto_room_info *v = NULL;
    size_t i, count = json_array_size(arr);
    *out = NULL;
    *n = 0;
    if (!root)
        return -1;
    *err = "malformed rooms list";
    if (!json_is_array(arr) || count > PROTO_ROOMS_LIST_MAX)
        goto fail;
    if (count && !(v = calloc(count, sizeof *v)))
        goto fail;
    json_array_foreach(arr, i, room) {
        if (room_info_read(room, &v[i]) < 0 || name_seen(v, i, v[i].name))
            goto fail;
    }
    json_decref(root);
    *out = v;
    *n = count;
    return 0;
fail:
    free(v);
    json_decref(root);
    return -1;
}

/* ---- a history page ---- */

static int history_event_ok(const json_t *ev, const char *room, int64_t before, int64_t *prev)
{
    int64_t id;
    const char *evroom = json_string_value(json_object_get(ev, "room"));
    if (proto_event_check(ev, &id) < 0 || id <= *prev || (before > 0 && id >= before))
        return 0;
    if (!evroom || strcmp(evroom, room) != 0)
        return 0;
    *prev = id;
    return 1;
}

int proto_parse_history_page(const char *buf, size_t len, const char *room, int64_t before,
                             json_t **events, int *more, const char **err)
{
    json_t *root = load_answer(buf, len, err);
    json_t *arr = json_object_get(root, "events"), *jmore = json_object_get(root, "more"), *ev;
    int64_t prev = 0;
    size_t i;
    *events = NULL;
    if (!root)
        return -1;
    *err = "malformed history page";
    if (!json_is_array(arr) || !json_is_boolean(jmore) || json_array_size(arr) > PROTO_HISTORY_MAX)
        goto fail;
    json_array_foreach(arr, i, ev)
        if (!history_event_ok(ev, room, before, &prev))
            goto fail;
    *more = json_is_true(jmore);
    *events = json_incref(arr);
    json_decref(root);
    return 0;
fail:
    json_decref(root);
    return -1;
}

/* ---- presence ---- */

int proto_parse_presence_list(const char *buf, size_t len, json_t **names, const char **err)
{
    json_t *root = load_answer(buf, len, err);
    json_t *arr = json_object_get(root, "online"), *name, *seen = NULL;
    size_t i;
    *names = NULL;
    if (!root)
        return -1;
    *err = "malformed presence list";
    if (!json_is_array(arr) || json_array_size(arr) > PROTO_ONLINE_LIST_MAX || !(seen = json_object()))
        goto fail;
    json_array_foreach(arr, i, name) {
        const char *s = json_string_value(name);
        if (!s || !proto_name_valid(s) || json_object_get(seen, s))
            goto fail;
        json_object_set_new(seen, s, json_true());
    }
    json_decref(seen);
    *names = json_incref(arr);
    json_decref(root);
    return 0;
fail:
    json_decref(seen);
    json_decref(root);
    return -1;
}

/* ---- ephemeral items ---- */

int proto_parse_ephemeral(const json_t *item, struct proto_ephemeral *out)
{
    const char *type = json_string_value(json_object_get(item, "type"));
    json_t *online = json_object_get(item, "online");
    memset(out, 0, sizeof *out);
    if (!type)
        type = json_string_value(json_object_get(item, "op"));
    if (json_is_object(item) && type && strcmp(type, "read") == 0) {
        json_t *id = json_object_get(item, "read_id");
        out->room = json_string_value(json_object_get(item, "room"));
        out->read_id = json_is_integer(id) ? json_integer_value(id) : -1;
        out->kind = PROTO_EPH_READ;
        return out->room && proto_room_ref_valid(out->room) && out->read_id >= 0 ? 0 : -1;
    }
    out->user = json_string_value(json_object_get(item, "user"));
    if (!json_is_object(item) || !type || !out->user || !proto_name_valid(out->user))
        return -1;
    if (strcmp(type, "presence") == 0 && json_is_boolean(online)) {
        out->kind = PROTO_EPH_PRESENCE;
        out->online = json_is_true(online);
        return 0;
    }
    out->room = json_string_value(json_object_get(item, "room"));
    if (strcmp(type, "typing") == 0 && out->room && proto_room_ref_valid(out->room)) {
        out->kind = PROTO_EPH_TYPING;
        return 0;
    }
    return -1;
}
