/* fuzz_rooms_decode.c — the client's reading of protocol v1.1 answers
 * (shared/proto_rooms.c) and the room model fed from them (client/roomlist.c),
 * as client/sync.c and client/app.c use them:
 *   mode 0: a GET /api/v1/rooms answer, loaded into the model;
 *   mode 1: a history page of room "rust" below id 1000, then its events
 *           through the model (roomlist_on_page, roomlist_on_event);
 *   mode 2: a presence list of "general", then the model's online marks;
 *   mode 3: a sequence of ephemeral items or events (fields split at
 *           0xFF), each through proto_parse_ephemeral / roomlist_on_event.
 * Checks: what is accepted has the shape the parser promises (names valid,
 * counts >= 0, unread <= 1000, topics without control characters, history
 * ids increasing, below `before`, all of the room asked); the model never
 * keeps a room that is not a valid name, the room bar fits its width and
 * stays valid UTF-8; no crash or leak anywhere. */
#include "fuzz.h"
#include "proto_rooms.h"
#include "roomlist.h"

#include <jansson.h>
#include <stdlib.h>

static void check_model(struct roomlist *r)
{
    char bar[256];
    const struct room *rm;
    for (size_t i = 0; (rm = roomlist_at(r, i)); i++) {
        FUZZ_CHECK(proto_room_ref_valid(rm->name), "model kept room %s", rm->name);
        FUZZ_CHECK(proto_topic_text_valid(rm->topic), "model kept a bad topic");
        FUZZ_CHECK(rm->unread >= 0 && rm->unread <= PROTO_UNREAD_CAP, "unread %lld", (long long)rm->unread);
    }
    FUZZ_CHECK(roomlist_current(r) != NULL, "no current room");
    for (size_t w = 10; w <= 120; w += 55) {
        roomlist_bar_text(r, w, bar, sizeof bar);
        FUZZ_CHECK(strlen(bar) <= w, "bar of %zu bytes at width %zu", strlen(bar), w);
        FUZZ_CHECK(proto_utf8_valid(bar, strlen(bar)), "bar not UTF-8");
    }
}

static void roomlist_list(struct roomlist *r, const char *s, size_t n)
{
    struct proto_room_info *v = NULL;
    size_t count = 0;
    const char *err = NULL;
    if (proto_parse_rooms_list(s, n, &v, &count, &err) < 0) {
        FUZZ_CHECK(err && *err && !v && count == 0, "refused without a reason");
        return;
    }
    for (size_t i = 0; i < count; i++) {
        FUZZ_CHECK(proto_room_ref_valid(v[i].name), "accepted room name %s", v[i].name);
        FUZZ_CHECK(proto_topic_text_valid(v[i].topic), "accepted a bad topic");
        FUZZ_CHECK(v[i].members >= 0 && v[i].online >= 0 && v[i].last_id >= 0 &&
                   v[i].unread >= 0 && v[i].unread <= PROTO_UNREAD_CAP, "bad counts accepted");
    }
    roomlist_load_list(r, v, count);
    free(v);
}

static void history(struct roomlist *r, const char *s, size_t n)
{
    json_t *events = NULL, *ev;
    int more = -1;
    const char *err = NULL;
    size_t i;
    int64_t prev = 0;
    roomlist_add(r, "rust");
    if (proto_parse_history_page(s, n, "rust", 1000, &events, &more, &err) < 0) {
        FUZZ_CHECK(err && *err && !events, "refused without a reason");
        return;
    }
    FUZZ_CHECK(more == 0 || more == 1, "more is %d", more);
    json_array_foreach(events, i, ev) {
        int64_t id = 0;
        FUZZ_CHECK(proto_event_check(ev, &id) == 0 && id > prev && id < 1000, "bad id accepted");
        FUZZ_CHECK(strcmp(json_string_value(json_object_get(ev, "room")), "rust") == 0,
                   "another room's event accepted");
        prev = id;
    }
    roomlist_on_page(r, "rust", events, more);
    json_array_foreach(events, i, ev)
        roomlist_on_event(r, ev, 1);
    int64_t due = roomlist_page_due(r, "rust");
    FUZZ_CHECK(due == 0 || due < 1000, "page due before %lld", (long long)due);
    FUZZ_CHECK(roomlist_page_due(r, "rust") == 0, "a page asked twice");
    json_decref(events);
}

static void presence(struct roomlist *r, const char *s, size_t n)
{
    json_t *names = NULL, *name;
    const char *err = NULL;
    size_t i;
    if (proto_parse_presence_list(s, n, &names, &err) < 0)
        return;
    json_array_foreach(names, i, name)
        FUZZ_CHECK(proto_name_valid(json_string_value(name)), "bad name accepted");
    roomlist_set_online(r, PROTO_DEFAULT_ROOM, names);
    json_decref(names);
}

static void items(struct roomlist *r, const uint8_t *d, size_t n)
{
    struct fuzz_fields ff;
    fuzz_split(d, n, &ff);
    for (int i = 0; i < ff.count; i++) {
        char *s = fuzz_cstr(ff.f[i], ff.n[i]);
        json_t *item = json_loadb(s, ff.n[i], 0, NULL);
        struct proto_ephemeral e;
        char text[128];
        if (item && proto_parse_ephemeral(item, &e) == 0) {
            FUZZ_CHECK(proto_name_valid(e.user), "bad user accepted");
            if (e.kind == PROTO_EPH_PRESENCE)
                roomlist_on_presence(r, e.user, e.online);
            else {
                FUZZ_CHECK(proto_room_ref_valid(e.room), "bad room accepted");
                roomlist_on_typing(r, e.room, e.user, 1000 * i);
                roomlist_typing_text(r, e.room, 1000 * i, text, sizeof text);
            }
        } else if (item) {
            roomlist_on_event(r, item, i & 1);
        }
        json_decref(item);
        free(s);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_input(data, size);
    if (size == 0)
        return 0;
    struct roomlist *r = roomlist_new("alice");
    FUZZ_CHECK(r, "roomlist_new failed");
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    char *s = fuzz_cstr(d, n);
    switch (data[0] & 3) {
    case 0: roomlist_list(r, s, n); break;
    case 1: history(r, s, n); break;
    case 2: presence(r, s, n); break;
    default: items(r, d, n); break;
    }
    free(s);
    check_model(r);
    roomlist_free(r);
    return 0;
}
