/* sync.c — see sync.h. Every request is a heap call on a list the sync
 * owns, so sync_free can cancel what is still open. */
#include "sync.h"
#include "core.h"
#include "http.h"
#include "roomlist.h"
#include "servers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SYNC_TIMEOUT_S 15

enum call_kind {
    CALL_LATEST, CALL_LIST_START, CALL_HISTORY_START, CALL_PRESENCE_START,
    CALL_JOIN, CALL_CREATE, CALL_VIEW, CALL_PART, CALL_LIST, CALL_WHO,
    CALL_TOPIC, CALL_PAGE, CALL_READ, CALL_TYPING,
};

struct call {
    struct sync *s;
    struct call *next;
    struct http_req *req;
    enum call_kind kind;
    char room[PROTO_ROOM_REF_MAX + 1];
    int64_t before;
};

struct sync {
    struct sync_env env;
    struct call *calls;
    int64_t cursor;             /* the start's cursor C */
    int v11;                    /* the server has rooms (after=latest answered) */
};

struct sync *sync_new(const struct sync_env *env)
{
    struct sync *s = calloc(1, sizeof *s);
    if (s)
        s->env = *env;
    return s;
}

void sync_free(struct sync *s)
{
    if (!s)
        return;
    while (s->calls) {
        struct call *c = s->calls;
        s->calls = c->next;
        http_cancel(c->req);
        free(c);
    }
    free(s);
}

void sync_path_name(const char *name, char *out, size_t size)
{
    size_t o = 0;
    for (; *name && o + 4 < size; name++) {
        if (*name == '@' || *name == ',')
            o += (size_t)snprintf(out + o, size - o, "%%%02X", (unsigned char)*name);
        else
            out[o++] = *name;
    }
    out[o] = '\0';
}

static void call_done(struct call *c)
{
    struct call **p = &c->s->calls;
    while (*p && *p != c)
        p = &(*p)->next;
    if (*p)
        *p = c->next;
    free(c);
}

static void answer(void *arg, const struct http_result *r);

/* Issues method on /api/v1/<what> (what already encoded). */
static struct call *issue(struct sync *s, enum call_kind kind, const char *method,
                          const char *what, const char *body, const char *room)
{
    char path[512];
    struct call *c = calloc(1, sizeof *c);
    if (!c) {
        core_error(s->env.core, "out of memory");
        return NULL;
    }
    c->s = s;
    c->kind = kind;
    snprintf(c->room, sizeof c->room, "%s", room ? room : "");
    snprintf(path, sizeof path, "%s/api/v1/%s", servers_prefix(s->env.servers, ""), what);
    struct http_call hc = {
        .method = method, .path = path, .body = body, .token = s->env.token,
        .timeout_s = s->env.timeout_s > 0 ? s->env.timeout_s : SYNC_TIMEOUT_S,
        .servers = s->env.servers,
    };
    c->next = s->calls;
    s->calls = c;
    if (!(c->req = http_request(s->env.http, &hc, answer, c))) {
        call_done(c);
        core_error(s->env.core, "out of memory");
        return NULL;
    }
    return c;
}

static struct call *room_call(struct sync *s, enum call_kind kind, const char *method,
                              const char *room, const char *tail, const char *body)
{
    char what[400], enc[PROTO_ROOM_REF_MAX * 3 + 1];
    sync_path_name(room, enc, sizeof enc);
    snprintf(what, sizeof what, "rooms/%s%s", enc, tail);
    return issue(s, kind, method, what, body, room);
}

static struct call *history_call(struct sync *s, enum call_kind kind, const char *room,
                                 int64_t before)
{
    char tail[96];
    snprintf(tail, sizeof tail, "/messages?before=%lld&limit=%d", (long long)before, SYNC_HISTORY);
    struct call *c = room_call(s, kind, "GET", room, tail, NULL);
    if (c)
        c->before = before;
    return c;
}

static int ok_status(const struct http_result *r)
{
    return !r->error && r->status >= 200 && r->status < 300;
}

static void report(struct sync *s, const struct http_result *r, const char *what)
{
    char why[200];
    core_error(s->env.core, "%s: %s", what, r->error ? r->error : http_error_text(r, why, sizeof why));
}

static void changed(struct sync *s)
{
    if (s->env.changed)
        s->env.changed(s->env.arg);
}

/* ---- the start ---- */

void sync_start(struct sync *s)
{
    issue(s, CALL_LATEST, "GET", "events?after=latest&wait=0", NULL, NULL);
}

/* The room on screen's newest history is in (or could not be had): it
 * goes through the core like the feed, then the feed goes on after C. */
static void start_finish(struct sync *s, const json_t *events)
{
    if (s->env.history && events)
        s->env.history(s->env.arg, NULL, events, 0, 1);
    sync_presence(s, PROTO_DEFAULT_ROOM);
    s->env.started(s->env.arg, s->cursor);
}

static void on_latest(struct sync *s, const struct http_result *r)
{
    json_t *events = NULL;
    int64_t next = 0;
    const char *err;
    if (!ok_status(r) || proto_parse_events_response(r->body, r->len, &events, &next, &err) < 0 ||
        next < 0) {
        json_decref(events);
        s->env.started(s->env.arg, 0);      /* a v1 server: the feed from 0 */
        return;
    }
    json_decref(events);
    s->cursor = next;
    s->v11 = 1;
    issue(s, CALL_LIST_START, "GET", "rooms", NULL, NULL);
}

static void on_list(struct sync *s, const struct http_result *r, int start)
{
    struct proto_room_info *v = NULL;
    size_t n = 0;
    const char *err = "malformed rooms list";
    if (!ok_status(r) || proto_parse_rooms_list(r->body, r->len, &v, &n, &err) < 0) {
        if (ok_status(r))
            core_error(s->env.core, "rooms: %s", err);
        else
            report(s, r, "rooms");
    } else {
        roomlist_load_list(s->env.rooms, v, n);
        if (!start) {
            json_t *rows = json_array();
            for (size_t i = 0; i < n; i++)
                json_array_append_new(rows, json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:b}",
                    "name", v[i].name, "topic", v[i].topic, "members", (json_int_t)v[i].members,
                    "online", (json_int_t)v[i].online, "unread", (json_int_t)v[i].unread,
                    "last_id", (json_int_t)v[i].last_id, "joined", v[i].joined));
            json_t *data = json_pack("{s:o}", "rooms", rows);
            core_notice(s->env.core, data, "%zu room(s):", n);
            json_decref(data);
            for (size_t i = 0; i < n; i++)
                core_notice(s->env.core, NULL, "%s%s  %lld member(s), %lld online%s%s%s",
                            v[i].joined ? "* " : "  ", v[i].name, (long long)v[i].members,
                            (long long)v[i].online, v[i].unread ? ", unread" : "",
                            v[i].topic[0] ? " - " : "", v[i].topic);
        }
        changed(s);
    }
    free(v);
    if (!start)
        return;
    /* Only the room on screen: the others' unread counts and newest ids
     * are in the list, their pages come when first shown (sync_view). */
    const struct room *rm = roomlist_current(s->env.rooms);
    if (!rm || !history_call(s, CALL_HISTORY_START, rm->name, s->cursor + 1))
        start_finish(s, NULL);
}

/* A history answer: kept in the model; NULL if refused (said why). */
static json_t *history_answer(struct call *c, const struct http_result *r, int *more)
{
    json_t *events = NULL;
    const char *err = "";
    if (!ok_status(r)) {
        report(c->s, r, c->room);
        return NULL;
    }
    if (proto_parse_history_page(r->body, r->len, c->room, c->before, &events, more, &err) < 0) {
        core_error(c->s->env.core, "history of %s: %s", c->room, err);
        return NULL;
    }
    roomlist_on_page(c->s->env.rooms, c->room, events, *more);
    return events;
}

static void on_history_start(struct call *c, const struct http_result *r)
{
    int more = 0;
    json_t *events = history_answer(c, r, &more);
    if (!events)
        roomlist_page_failed(c->s->env.rooms, c->room);   /* asked again when shown */
    start_finish(c->s, events);
    json_decref(events);
}

void sync_view(struct sync *s)
{
    const struct room *rm = s->v11 ? roomlist_current(s->env.rooms) : NULL;
    int64_t before = rm ? roomlist_view_due(s->env.rooms, rm->name, core_cursor(s->env.core)) : 0;
    if (before > 0 && !history_call(s, CALL_VIEW, rm->name, before))
        roomlist_page_failed(s->env.rooms, rm->name);
}

/* ---- joining and leaving ---- */

void sync_join(struct sync *s, const char *name)
{
    if (roomlist_find(s->env.rooms, name)) {     /* already in: just shown */
        roomlist_switch_name(s->env.rooms, name);
        changed(s);
        return;
    }
    room_call(s, CALL_JOIN, "POST", name, "/join", "{}");
}

/* Joined: the room is shown, with its newest history up to the cursor
 * (the live feed brings what follows; sync_view). */
static void joined(struct sync *s, const char *name)
{
    if (!roomlist_add(s->env.rooms, name)) {
        core_error(s->env.core, "cannot keep room %s (too many rooms)", name);
        return;
    }
    roomlist_switch_name(s->env.rooms, name);
    core_notice(s->env.core, NULL, "joined %s", name);
    sync_view(s);
    changed(s);
}

static void on_join(struct call *c, const struct http_result *r)
{
    if (!r->error && r->status == 404 && c->kind == CALL_JOIN && !proto_room_is_direct(c->room)) {
        json_t *o = json_pack("{s:s}", "name", c->room);
        char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (body)
            issue(c->s, CALL_CREATE, "POST", "rooms", body, c->room);
        free(body);
        return;
    }
    if (!ok_status(r) && !(c->kind == CALL_CREATE && r->status == 409 && !r->error &&
                           strstr(r->body, "\"exists\""))) {
        report(c->s, r, c->room);
        return;
    }
    if (c->kind == CALL_CREATE && r->status == 409)
        room_call(c->s, CALL_JOIN, "POST", c->room, "/join", "{}");    /* made meanwhile */
    else
        joined(c->s, c->room);
}

void sync_part(struct sync *s, const char *name)
{
    room_call(s, CALL_PART, "POST", name, "/leave", "{}");
}

static void on_part(struct call *c, const struct http_result *r)
{
    if (!ok_status(r)) {
        report(c->s, r, c->room);
        return;
    }
    roomlist_remove(c->s->env.rooms, c->room);
    core_notice(c->s->env.core, NULL, "left %s", c->room);
    changed(c->s);
}

/* ---- lists, presence, topic ---- */

void sync_list(struct sync *s)
{
    issue(s, CALL_LIST, "GET", "rooms", NULL, NULL);
}

void sync_who(struct sync *s, const char *name)
{
    room_call(s, CALL_WHO, "GET", name, "/presence", NULL);
}

void sync_presence(struct sync *s, const char *name)
{
    room_call(s, CALL_PRESENCE_START, "GET", name, "/presence", NULL);
}

static void on_who(struct call *c, const struct http_result *r, int quiet)
{
    json_t *names = NULL;
    const char *err = "";
    if (!ok_status(r) || proto_parse_presence_list(r->body, r->len, &names, &err) < 0) {
        if (!quiet)
            ok_status(r) ? core_error(c->s->env.core, "%s: %s", c->room, err)
                         : report(c->s, r, c->room);
        return;
    }
    roomlist_set_online(c->s->env.rooms, c->room, names);
    if (!quiet) {
        char line[400] = "";
        size_t i, o = 0;
        json_t *n;
        json_array_foreach(names, i, n)
            if (o + PROTO_USER_MAX + 8 < sizeof line)
                o += (size_t)snprintf(line + o, sizeof line - o, "%s%s", i ? ", " : "",
                                      json_string_value(n));
        json_t *data = json_pack("{s:s,s:O}", "room", c->room, "online", names);
        core_notice(c->s->env.core, data, "online in %s (%zu): %s%s", c->room,
                    json_array_size(names), line, o + PROTO_USER_MAX + 8 >= sizeof line ? ", ..." : "");
        json_decref(data);
    }
    json_decref(names);
    changed(c->s);
}

void sync_topic(struct sync *s, const char *name, const char *topic)
{
    json_t *o = json_pack("{s:s}", "topic", topic);
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (body)
        room_call(s, CALL_TOPIC, "POST", name, "/topic", body);
    free(body);
}

/* ---- paging, read markers, typing ---- */

void sync_page(struct sync *s, const char *name)
{
    int64_t before = roomlist_page_due(s->env.rooms, name);
    if (before > 0)
        history_call(s, CALL_PAGE, name, before);
}

static void on_page(struct call *c, const struct http_result *r, int start)
{
    int more = 0;
    json_t *events;
    if (c->kind == CALL_VIEW && !r->error && r->status == 404 && proto_room_is_direct(c->room)) {
        json_t *none = json_array();           /* a DM its first message will make */
        roomlist_on_page(c->s->env.rooms, c->room, none, 0);
        json_decref(none);
        return;
    }
    events = history_answer(c, r, &more);
    if (!events) {
        roomlist_page_failed(c->s->env.rooms, c->room);
        return;
    }
    if (c->s->env.history)
        c->s->env.history(c->s->env.arg, c->room, events, more, start);
    json_decref(events);
    changed(c->s);
}

void sync_read(struct sync *s)
{
    const struct room *rm = roomlist_current(s->env.rooms);
    int64_t id = rm ? roomlist_read_due(s->env.rooms) : 0;
    char body[48];
    if (id <= 0)
        return;
    snprintf(body, sizeof body, "{\"id\":%lld}", (long long)id);
    room_call(s, CALL_READ, "POST", rm->name, "/read", body);
}

void sync_typing(struct sync *s, int64_t now_ms)
{
    const struct room *rm = roomlist_current(s->env.rooms);
    if (rm && roomlist_typing_due(s->env.rooms, now_ms))
        room_call(s, CALL_TYPING, "POST", rm->name, "/typing", "{}");
}

/* ---- answers ---- */

static void answer(void *arg, const struct http_result *r)
{
    struct call *c = arg;
    struct sync *s = c->s;
    c->req = NULL;
    switch (c->kind) {
    case CALL_LATEST: on_latest(s, r); break;
    case CALL_LIST_START: on_list(s, r, 1); break;
    case CALL_LIST: on_list(s, r, 0); break;
    case CALL_HISTORY_START: on_history_start(c, r); break;
    case CALL_PRESENCE_START: on_who(c, r, 1); break;
    case CALL_JOIN:
    case CALL_CREATE: on_join(c, r); break;
    case CALL_VIEW: on_page(c, r, 1); break;
    case CALL_PAGE: on_page(c, r, 0); break;
    case CALL_PART: on_part(c, r); break;
    case CALL_WHO: on_who(c, r, 0); break;
    case CALL_TOPIC:
        if (!ok_status(r))
            report(s, r, c->room);
        break;
    case CALL_READ:
    case CALL_TYPING:
        break;                  /* best effort: the next one catches up */
    }
    call_done(c);
}
