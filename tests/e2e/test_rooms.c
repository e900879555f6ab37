/* test_rooms.c — rooms and direct messages (protocol v1.1, issue 18) end
 * to end, on every transport (short poll, long poll, WebSocket, SSE):
 *
 *   - three users, two rooms and a DM: alice and bob in "rust", bob and
 *     carol in "ops", alice and bob's DM, everyone in general; each user
 *     gets exactly the events they may see, in order, once, on each
 *     transport, starting from after=latest;
 *   - carol probing the DM gets 404 on every endpoint and none of its
 *     events anywhere; a non-member's send is 403; a parked long poll is
 *     woken by its own room's event, not another's;
 *   - joining: the history up to the live feed's cursor by messages?before
 *     meets the live feed with no gap and no duplicate; leaving stops the
 *     delivery after the leave event;
 *   - bad names, unknown rooms, an oversized topic and bad page
 *     parameters get their documented error and change nothing. */
#include "harness_sse.h"
#include "scenario.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DL_MS 10000

struct users {
    struct h_server s;
    char a[65], b[65], c[65];
};

static void start(struct users *u)
{
    const char *extra[] = { "--msg-rate", "1000", NULL };
    h_server_start_with_user(&u->s, extra, "alice", PW, u->a);
    CHECK(h_http_register(u->s.port, "bob", PW) == 201, "register bob");
    CHECK(h_http_login(u->s.port, "bob", PW, u->b) == 200, "login bob");
    CHECK(h_http_register(u->s.port, "carol", PW) == 201, "register carol");
    CHECK(h_http_login(u->s.port, "carol", PW, u->c) == 200, "login carol");
}

/* A call that must answer status (and code, for an error). */
static json_t *call(int port, const char *method, const char *path, const char *tok,
                    const char *body, int status, const char *code)
{
    struct h_http_resp r;
    h_http_call(port, method, path, tok, body, -1, &r);
    if (code)
        h_assert_error(path, &r, status, code);
    CHECK(r.status == status, "%s %s: %d, expected %d: %s", method, path, r.status, status,
          r.body ? r.body : "");
    json_t *j = json_incref(r.json);
    h_http_resp_free(&r);
    return j;
}

static int64_t latest(int port, const char *tok)
{
    json_t *j = call(port, "GET", "/api/v1/events?after=latest&wait=0", tok, NULL, 200, NULL);
    CHECK(json_array_size(json_object_get(j, "events")) == 0, "after=latest replays nothing");
    int64_t next = ev_int(j, "next");
    json_decref(j);
    return next;
}

/* Posts body to room (or, with to, to that user); returns the id. */
static int64_t post(int port, const char *tok, const char *room, const char *to, const char *body)
{
    char req[256];
    snprintf(req, sizeof req, to ? "{\"to\":\"%s\",\"body\":\"%s\"}" : "{\"room\":\"%s\",\"body\":\"%s\"}",
             to ? to : room, body);
    json_t *j = call(port, "POST", "/api/v1/messages", tok, req, 201, NULL);
    int64_t id = ev_int(j, "id");
    json_decref(j);
    return id;
}

static void json_ids_push(json_t *ids, int64_t id)
{
    json_array_append_new(ids, json_integer(id));
}

/* The ids of evs, as a JSON array. */
static json_t *ids_of(const json_t *evs)
{
    json_t *ids = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(evs, i, e)
        json_ids_push(ids, ev_int(e, "id"));
    return ids;
}

static void expect_ids(const char *what, const json_t *got, const json_t *want)
{
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_COMPACT), *w = json_dumps(want, JSON_COMPACT);
        CHECK(0, "%s: got %s, expected %s", what, g, w);
    }
}

/* The feed by polling from after (wait 0: short poll; else long polls)
 * until it holds n events or the deadline. */
static json_t *poll_feed(int port, const char *tok, int64_t after, size_t n, int wait)
{
    json_t *all = json_array();
    int64_t dl = h_deadline(DL_MS);
    while (json_array_size(all) < n && h_now_ms() < dl) {
        char path[128];
        snprintf(path, sizeof path, "/api/v1/events?after=%" PRId64 "&wait=%d", after, wait);
        struct h_http_resp r;
        h_http_call_timeout(port, "GET", path, tok, NULL, -1, &r, DL_MS);
        CHECK(r.status == 200, "poll: %d", r.status);
        json_array_extend(all, json_object_get(r.json, "events"));
        after = ev_int(r.json, "next");
        h_http_resp_free(&r);
    }
    /* nothing more may follow */
    char path[128];
    snprintf(path, sizeof path, "/api/v1/events?after=%" PRId64 "&wait=0", after);
    json_t *j = call(port, "GET", path, tok, NULL, 200, NULL);
    json_array_extend(all, json_object_get(j, "events"));
    json_decref(j);
    json_t *ids = ids_of(all);
    json_decref(all);
    return ids;
}

/* A WebSocket from "after":"latest": its ready's cursor. */
static struct h_ws *ws_open(int port, const char *tok, int64_t *cursor)
{
    struct h_ws *w = h_ws_connect(port);
    CHECK(w, "ws connect");
    char hello[160];
    snprintf(hello, sizeof hello, "{\"op\":\"hello\",\"token\":\"%s\",\"after\":\"latest\"}", tok);
    CHECK(h_ws_send_text(w, hello) == 0, "hello");
    json_t *ready = h_ws_recv_op(w, "ready", h_deadline(DL_MS));
    CHECK(ready && ev_int(ready, "after") >= 0, "ready with after");
    *cursor = ev_int(ready, "after");
    json_decref(ready);
    return w;
}

/* n event ids from the socket, then nothing more for a moment. */
static json_t *ws_feed(struct h_ws *w, size_t n)
{
    json_t *ids = json_array();
    int64_t dl = h_deadline(DL_MS);
    while (json_array_size(ids) < n) {
        json_t *m = h_ws_recv_op(w, "event", dl);
        CHECK(m, "ws: %zu of %zu events", json_array_size(ids), n);
        json_ids_push(ids, ev_int(json_object_get(m, "event"), "id"));
        json_decref(m);
    }
    json_t *more = h_ws_recv_op(w, "event", h_deadline(300));
    CHECK(!more, "ws: an event beyond the expected ones");
    return ids;
}

static json_t *sse_feed(struct h_sse *e, size_t n)
{
    int64_t dl = h_deadline(DL_MS);
    while (json_array_size(e->msgs) < n && h_now_ms() < dl)
        h_sse_wait(e, "nothing", 1, h_now_ms() + 100 < dl ? h_now_ms() + 100 : dl);
    h_sse_wait(e, "nothing", 1, h_deadline(300));
    json_t *ids = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(e->msgs, i, m) {
        const char *ev = ev_str(m, "event");
        if (!strcmp(ev, "ready") || !strcmp(ev, "presence") || !strcmp(ev, "typing") || !strcmp(ev, "read"))
            continue;
        json_ids_push(ids, ev_int(json_object_get(m, "data"), "id"));
    }
    return ids;
}

/* The rooms: rust (alice, bob, topic), ops (carol, bob), the DM. */
static void make_rooms(struct users *u)
{
    int p = u->s.port;
    json_decref(call(p, "POST", "/api/v1/rooms", u->a, "{\"name\":\"rust\",\"topic\":\"Ownership\"}", 201, NULL));
    json_decref(call(p, "POST", "/api/v1/rooms/rust/join", u->b, NULL, 200, NULL));
    json_decref(call(p, "POST", "/api/v1/rooms", u->c, "{\"name\":\"ops\"}", 201, NULL));
    json_decref(call(p, "POST", "/api/v1/rooms/ops/join", u->b, NULL, 200, NULL));
    json_t *j = call(p, "POST", "/api/v1/messages", u->a, "{\"to\":\"bob\",\"body\":\"first\"}", 201, NULL);
    CHECK(!strcmp(ev_str(j, "room"), "@alice,bob"), "the DM's room: %s", ev_str(j, "room"));
    json_decref(j);
}

/* Carol, not a party: 404 for the DM everywhere, 403 sending to rust. */
static void probe(struct users *u)
{
    int p = u->s.port;
    const char *tok = u->c;
    json_decref(call(p, "GET", "/api/v1/rooms/@alice,bob/messages", tok, NULL, 404, "not_found"));
    json_decref(call(p, "GET", "/api/v1/rooms/%40alice%2Cbob/messages", tok, NULL, 404, "not_found"));
    json_decref(call(p, "POST", "/api/v1/rooms/@alice,bob/join", tok, NULL, 404, "not_found"));
    json_decref(call(p, "POST", "/api/v1/rooms/@alice,bob/leave", tok, NULL, 404, "not_found"));
    json_decref(call(p, "POST", "/api/v1/rooms/@alice,bob/read", tok, "{\"id\":1}", 404, "not_found"));
    json_decref(call(p, "POST", "/api/v1/rooms/@alice,bob/topic", tok, "{\"topic\":\"x\"}", 404, "not_found"));
    json_decref(call(p, "POST", "/api/v1/messages", tok, "{\"room\":\"@alice,bob\",\"body\":\"x\"}", 404, "not_found"));
    json_decref(call(p, "POST", "/api/v1/messages", tok, "{\"room\":\"rust\",\"body\":\"x\"}", 403, "not_member"));
    json_decref(call(p, "GET", "/api/v1/rooms/rust/messages", tok, NULL, 403, "not_member"));
    json_t *l = call(p, "GET", "/api/v1/rooms", tok, NULL, 200, NULL);
    char *text = json_dumps(l, JSON_COMPACT);
    CHECK(!strstr(text, "@alice,bob"), "carol's room list names the DM: %s", text);
    CHECK(strstr(text, "\"rust\"") && strstr(text, "\"ops\""), "public rooms listed: %s", text);
    free(text);
    json_decref(l);
}

/* Every transport of every user from after=latest, then the traffic:
 * each sees exactly their rooms' events, in order, once. */
static void test_who_sees_what(void **state)
{
    (void)state;
    struct users u;
    start(&u);
    int p = u.s.port;
    make_rooms(&u);
    const char *tok[3] = { u.a, u.b, u.c };
    int64_t from[3], wsc[3];
    struct h_ws *ws[3];
    struct h_sse *sse[3];
    for (int i = 0; i < 3; i++) {
        from[i] = latest(p, tok[i]);
        ws[i] = ws_open(p, tok[i], &wsc[i]);
        sse[i] = h_sse_open(p, tok[i], "after=latest", NULL, NULL);
        CHECK(sse[i]->status == 200, "sse %d", sse[i]->status);
    }
    probe(&u);
    json_t *want[3] = { json_array(), json_array(), json_array() };
    int64_t id;
    /* general: everyone; rust: alice, bob; ops: bob, carol; the DM: alice, bob */
    id = post(p, u.c, "general", NULL, "g1");
    for (int i = 0; i < 3; i++) json_ids_push(want[i], id);
    id = post(p, u.a, "rust", NULL, "r1");
    json_ids_push(want[0], id); json_ids_push(want[1], id);
    id = post(p, u.c, "ops", NULL, "o1");
    json_ids_push(want[1], id); json_ids_push(want[2], id);
    id = post(p, u.b, "@alice,bob", NULL, "d1");
    json_ids_push(want[0], id); json_ids_push(want[1], id);
    /* a DM over the WebSocket, by "to"; carol's send to the DM: not_found */
    int64_t unused;
    struct h_ws *wa = ws_open(p, u.a, &unused), *wc = ws_open(p, u.c, &unused);
    CHECK(h_ws_send_text(wa, "{\"op\":\"send\",\"to\":\"bob\",\"body\":\"d2\",\"client_msg_id\":\"w1\"}") == 0, "send");
    json_t *ack = h_ws_recv_op(wa, "ack", h_deadline(DL_MS));
    CHECK(ack, "ack of the DM over the WebSocket");
    id = ev_int(ack, "id");
    json_decref(ack);
    json_ids_push(want[0], id); json_ids_push(want[1], id);
    CHECK(h_ws_send_text(wc, "{\"op\":\"send\",\"room\":\"@alice,bob\",\"body\":\"x\",\"client_msg_id\":\"w2\"}") == 0, "send");
    json_t *err = h_ws_recv_op(wc, "error", h_deadline(DL_MS));
    CHECK(err && !strcmp(ev_str(err, "code"), "not_found"), "carol's DM send: %s", err ? ev_str(err, "code") : "none");
    json_decref(err);
    CHECK(h_ws_send_text(wc, "{\"op\":\"send\",\"room\":\"rust\",\"body\":\"x\",\"client_msg_id\":\"w3\"}") == 0, "send");
    err = h_ws_recv_op(wc, "error", h_deadline(DL_MS));
    CHECK(err && !strcmp(ev_str(err, "code"), "not_member"), "carol's rust send: %s", err ? ev_str(err, "code") : "none");
    json_decref(err);
    h_ws_free(wa);
    h_ws_free(wc);
    json_decref(call(p, "POST", "/api/v1/rooms/rust/topic", u.a, "{\"topic\":\"Borrowing\"}", 200, NULL));
    json_t *page = call(p, "GET", "/api/v1/rooms/rust/messages?limit=1", u.a, NULL, 200, NULL);
    id = ev_int(json_array_get(json_object_get(page, "events"), 0), "id");
    CHECK(!strcmp(ev_str(json_array_get(json_object_get(page, "events"), 0), "type"), "topic"), "topic event");
    json_decref(page);
    json_ids_push(want[0], id); json_ids_push(want[1], id);
    id = post(p, u.a, "general", NULL, "g2");
    for (int i = 0; i < 3; i++) json_ids_push(want[i], id);
    const char *who[3] = { "alice", "bob", "carol" };
    for (int i = 0; i < 3; i++) {
        size_t n = json_array_size(want[i]);
        char what[64];
        json_t *got = poll_feed(p, tok[i], from[i], n, 0);
        snprintf(what, sizeof what, "%s, short poll", who[i]);
        expect_ids(what, got, want[i]);
        json_decref(got);
        got = poll_feed(p, tok[i], from[i], n, 2);
        snprintf(what, sizeof what, "%s, long poll", who[i]);
        expect_ids(what, got, want[i]);
        json_decref(got);
        got = ws_feed(ws[i], n);
        snprintf(what, sizeof what, "%s, WebSocket", who[i]);
        expect_ids(what, got, want[i]);
        json_decref(got);
        got = sse_feed(sse[i], n);
        snprintf(what, sizeof what, "%s, SSE", who[i]);
        expect_ids(what, got, want[i]);
        json_decref(got);
        CHECK(wsc[i] == from[i], "the WebSocket's latest (%" PRId64 ") is the poll's (%" PRId64 ")", wsc[i], from[i]);
        h_ws_free(ws[i]);
        h_sse_close(sse[i]);
        json_decref(want[i]);
    }
    h_server_stop(&u.s);
}

/* A parked long poll wakes for its own room's event only. */
static void test_long_poll_wakes_by_room(void **state)
{
    (void)state;
    struct users u;
    start(&u);
    int p = u.s.port;
    make_rooms(&u);
    int64_t c = latest(p, u.c);
    char req[512];
    snprintf(req, sizeof req, "GET /api/v1/events?after=%" PRId64 "&wait=10 HTTP/1.1\r\nHost: x\r\n"
             "Authorization: Bearer %s\r\nConnection: close\r\n\r\n", c, u.c);
    int fd = h_http_send_request(p, req, strlen(req));
    CHECK(fd >= 0, "long poll");
    pump_until(h_deadline(300));              /* parked */
    post(p, u.a, "rust", NULL, "not for carol");
    int64_t id = post(p, u.b, "ops", NULL, "for carol");
    struct h_http_resp r;
    CHECK(h_http_read_response(fd, &r, DL_MS) == 0 && r.status == 200, "long poll answered");
    json_t *evs = json_object_get(r.json, "events");
    CHECK(json_array_size(evs) == 1 && ev_int(json_array_get(evs, 0), "id") == id,
          "carol's long poll: %s", r.body);
    h_http_resp_free(&r);
    h_server_stop(&u.s);
}

/* Joining: history up to the cursor, the live feed after it: no gap, no
 * duplicate. Leaving: the leave event, then nothing more of the room. */
static void test_join_history_and_leave(void **state)
{
    (void)state;
    struct users u;
    start(&u);
    int p = u.s.port;
    make_rooms(&u);
    json_t *sent = json_array();
    for (int i = 0; i < 5; i++)
        json_ids_push(sent, post(p, u.a, "rust", NULL, "old"));
    json_t *j = call(p, "POST", "/api/v1/rooms/rust/join", u.c, NULL, 200, NULL);
    CHECK(json_is_true(json_object_get(j, "joined")), "joined");
    json_decref(j);
    int64_t cur = latest(p, u.c);
    char path[128];
    snprintf(path, sizeof path, "/api/v1/rooms/rust/messages?before=%" PRId64 "&limit=200", cur + 1);
    json_t *hist = call(p, "GET", path, u.c, NULL, 200, NULL);
    json_t *hids = ids_of(json_object_get(hist, "events"));
    CHECK(json_is_false(json_object_get(hist, "more")), "the whole history in one page");
    size_t i;
    json_t *v;
    json_array_foreach(sent, i, v) {
        int found = 0;
        size_t k;
        json_t *h;
        json_array_foreach(hids, k, h) found |= json_integer_value(h) == json_integer_value(v);
        CHECK(found, "the history has message %" PRId64, (int64_t)json_integer_value(v));
    }
    int64_t last_hist = json_integer_value(json_array_get(hids, json_array_size(hids) - 1));
    CHECK(last_hist <= cur, "history ends at the cursor");
    int64_t live = post(p, u.a, "rust", NULL, "new");
    json_t *got = poll_feed(p, u.c, cur, 1, 0);
    json_t *want = json_array();
    json_ids_push(want, live);
    expect_ids("carol's live feed after joining", got, want);
    json_decref(got);
    json_decref(want);
    /* an older page: before the history's first */
    snprintf(path, sizeof path, "/api/v1/rooms/rust/messages?before=%" PRId64 "&limit=2",
             (int64_t)json_integer_value(json_array_get(hids, 2)));
    json_t *older = call(p, "GET", path, u.c, NULL, 200, NULL);
    json_t *oids = ids_of(json_object_get(older, "events"));
    CHECK(json_array_size(oids) == 2 && json_integer_value(json_array_get(oids, 1)) ==
          json_integer_value(json_array_get(hids, 1)), "the older page");
    json_decref(oids);
    json_decref(older);
    /* leaving */
    int64_t before_leave = latest(p, u.b);
    j = call(p, "POST", "/api/v1/rooms/ops/leave", u.b, NULL, 200, NULL);
    CHECK(json_is_false(json_object_get(j, "joined")), "left");
    json_decref(j);
    json_decref(call(p, "POST", "/api/v1/rooms/ops/leave", u.b, NULL, 200, NULL));  /* again: the same */
    post(p, u.c, "ops", NULL, "bob is gone");
    json_decref(call(p, "POST", "/api/v1/messages", u.b, "{\"room\":\"ops\",\"body\":\"x\"}", 403, "not_member"));
    int64_t g = post(p, u.a, "general", NULL, "still here");
    got = poll_feed(p, u.b, before_leave, 2, 0);
    CHECK(json_array_size(got) == 2 && json_integer_value(json_array_get(got, 1)) == g,
          "bob: his leave event, then general only");
    json_t *evs = h_http_get_events(p, u.b, before_leave);
    CHECK(!strcmp(ev_str(json_array_get(evs, 0), "type"), "member") &&
          !strcmp(ev_str(json_array_get(evs, 0), "action"), "leave"), "the leave event");
    json_decref(evs);
    json_decref(got);
    json_decref(call(p, "POST", "/api/v1/rooms/general/leave", u.b, NULL, 409, "cannot_leave"));
    json_decref(call(p, "POST", "/api/v1/rooms/@alice,bob/leave", u.b, NULL, 409, "not_allowed"));
    json_decref(hids);
    json_decref(hist);
    json_decref(sent);
    h_server_stop(&u.s);
}

/* Bad input: its error, and nothing stored. */
static void test_bad_input(void **state)
{
    (void)state;
    struct users u;
    start(&u);
    int p = u.s.port;
    make_rooms(&u);
    int64_t before = latest(p, u.a);
    char big[400] = "{\"topic\":\"";
    memset(big + strlen(big), 'x', 300);
    strcpy(big + strlen(big), "\"}");
    char bigc[420] = "{\"name\":\"newroom\",\"topic\":\"";
    memset(bigc + strlen(bigc), 'x', 300);
    strcpy(bigc + strlen(bigc), "\"}");
    json_decref(call(p, "POST", "/api/v1/rooms", u.a, "{\"name\":\"Bad!\"}", 400, "invalid"));
    json_decref(call(p, "POST", "/api/v1/rooms", u.a, "{\"name\":\"@alice,bob\"}", 400, "invalid"));
    json_decref(call(p, "POST", "/api/v1/rooms", u.a, "{}", 400, "invalid"));
    json_decref(call(p, "POST", "/api/v1/rooms", u.a, bigc, 400, "invalid"));
    json_decref(call(p, "POST", "/api/v1/rooms", u.a, "{\"name\":\"x\",\"topic\":\"a\\nb\"}", 400, "invalid"));
    json_decref(call(p, "POST", "/api/v1/rooms", u.b, "{\"name\":\"rust\"}", 409, "exists"));
    json_decref(call(p, "POST", "/api/v1/rooms/nope/join", u.a, NULL, 404, "not_found"));
    json_decref(call(p, "POST", "/api/v1/rooms/Bad!/join", u.a, NULL, 404, "not_found"));
    json_decref(call(p, "POST", "/api/v1/rooms/rust/topic", u.a, big, 400, "invalid"));
    json_decref(call(p, "POST", "/api/v1/rooms/rust/read", u.a, "{\"id\":-1}", 400, "invalid"));
    json_decref(call(p, "POST", "/api/v1/rooms/rust/bogus", u.a, NULL, 404, "not_found"));
    json_decref(call(p, "GET", "/api/v1/rooms/rust/messages?limit=0", u.a, NULL, 400, "bad_query"));
    json_decref(call(p, "GET", "/api/v1/rooms/rust/messages?limit=201", u.a, NULL, 400, "bad_query"));
    json_decref(call(p, "GET", "/api/v1/rooms/rust/messages?before=x", u.a, NULL, 400, "bad_query"));
    json_decref(call(p, "GET", "/api/v1/rooms/rust/messages?after=1", u.a, NULL, 400, "bad_query"));
    json_decref(call(p, "GET", "/api/v1/rooms/rust/messages?limit=1&limit=2", u.a, NULL, 400, "bad_query"));
    json_decref(call(p, "GET", "/api/v1/rooms/nope/messages", u.a, NULL, 404, "not_found"));
    json_decref(call(p, "POST", "/api/v1/messages", u.a, "{\"room\":\"nope\",\"body\":\"x\"}", 404, "not_found"));
    json_decref(call(p, "POST", "/api/v1/messages", u.a, "{\"to\":\"nobody\",\"body\":\"x\"}", 404, "not_found"));
    json_decref(call(p, "POST", "/api/v1/messages", u.a, "{\"to\":\"alice\",\"body\":\"x\"}", 400, "invalid"));
    json_decref(call(p, "POST", "/api/v1/messages", u.a, "{\"to\":\"bob\",\"room\":\"rust\",\"body\":\"x\"}", 400, "invalid"));
    json_decref(call(p, "DELETE", "/api/v1/rooms", u.a, NULL, 405, "method_not_allowed"));
    CHECK(latest(p, u.a) == before, "nothing was stored");
    json_t *l = call(p, "GET", "/api/v1/rooms", u.a, NULL, 200, NULL);
    size_t i;
    json_t *r;
    int found = 0;
    json_array_foreach(json_object_get(l, "rooms"), i, r)
        if (!strcmp(ev_str(r, "name"), "rust"))
            found = !strcmp(ev_str(r, "topic"), "Ownership") && ev_int(r, "members") == 2;
    CHECK(found, "rust's topic and members are unchanged");
    CHECK(json_array_size(json_object_get(l, "rooms")) == 4, "no room was made");
    json_decref(l);
    h_server_stop(&u.s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_who_sees_what),
        cmocka_unit_test(test_long_poll_wakes_by_room),
        cmocka_unit_test(test_join_history_and_leave),
        cmocka_unit_test(test_bad_input),
    };
    int rc = cmocka_run_group_tests_name("rooms", tests, h_setup, h_teardown);
    harness_cleanup();
    return rc;
}
