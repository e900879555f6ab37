/* test_presence.c — presence and typing (PROTOCOL.md v1.1, "Presence and
 * typing (ephemeral)"), with chatd on short presence times
 * (--presence-grace-ms GRACE, --presence-poll-ms POLL) and real bin/chat
 * --headless clients:
 *
 *   - on every transport, bob's client shows him online to alice when it
 *     connects, and offline after a clean quit and after a kill -9, each
 *     within the bound (the grace after his last connection ends, plus a
 *     second for a held HTTP connection's end to be noticed; the poll
 *     window for a short poller); GET
 *     /api/v1/rooms/general/presence agrees;
 *   - bob switching transport (WebSocket, then SSE, then a parked long
 *     poll) within the grace shows no offline/online flap;
 *   - a client gone while its long poll is parked or its SSE stream open
 *     costs chatd no CPU while it notices (no busy loop on the socket);
 *   - typing reaches the other users on every transport (WebSocket frame,
 *     SSE event without id, the long poll's "ephemeral", answered early),
 *     at most once per 3 s per user and room, never to the typer; an item
 *     answers one of its token's parked polls, the others stay parked; POST
 *     …/typing is 200 even when dropped; an unknown room is 404;
 *   - rooms: typing in a room reaches its members only, a DM's (by "to")
 *     only its other party; a non-member's typing or presence list is 403,
 *     an unknown room's (or another pair's DM's) 404; a room's presence
 *     list names its online members;
 *   - read markers: alice's POST …/read reaches each of her connections
 *     (WebSocket frame, SSE event without id, a parked long poll answered
 *     early) as a "read" item with the marker, and nobody else's, for a
 *     room and for her DM; on PostgreSQL a read on one instance reaches
 *     her WebSocket on the other, and so does bob's typing (once);
 *   - ephemeral items are never replayed: a WebSocket resumed from its
 *     cursor, an SSE stream resumed with Last-Event-ID and the next poll
 *     get none of those already delivered, and they move no cursor;
 *   - PostgreSQL, two instances (needs CHAT_TEST_PG, else skipped): bob on
 *     one is online to alice on the other; the kill -9 of bob's instance
 *     takes him offline on the survivor within the lease
 *     (--presence-lease-ms LEASE) plus its renewal period plus the grace;
 *     he is online again once he reconnects through the survivor.
 * Every wait has a deadline. */
#include "harness_sse.h"
#include "scenario.h"

#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GRACE 1000
#define POLL  1500
#define LEASE 3000
#define PROBE 1000                  /* presence.c's PRESENCE_PROBE_MS */
#define SLACK 1500                  /* a loaded machine's scheduling */
#define TYPING_MS 3000

static const char *const extra_short[] = { "--presence-grace-ms", "1000", "--presence-poll-ms", "1500",
                                           NULL };

/* alice (and carol) watch over a WebSocket that keeps ephemeral frames. */
static struct h_ws *watcher(int port, const char *tok)
{
    struct h_ws *w = h_ws_connect(port);
    json_decref(h_ws_hello(w, tok, 0));
    w->keep_ephemeral = 1;
    return w;
}

/* An SSE stream of tok's, its ready event in (who names it in failures). */
static struct h_sse *sse_ready(int port, const char *tok, const char *who)
{
    struct h_sse *e = h_sse_open(port, tok, NULL, NULL, NULL);
    CHECK(e->status == 200, "%s stream: %d", who, e->status);
    CHECK(h_sse_wait(e, "ready", 1, h_deadline(5000)) == 1, "%s stream: no ready", who);
    return e;
}

/* Waits for {"op":"presence","user":user,"online":online} on w; the ms it
 * took, or -1 if none came by deadline. Other frames are skipped. */
static int64_t wait_presence(struct h_ws *w, const char *user, int online, int64_t deadline)
{
    int64_t t0 = h_now_ms();
    for (;;) {
        json_t *j = h_ws_recv_op(w, "presence", deadline);
        if (!j)
            return -1;
        int match = !strcmp(ev_str(j, "user"), user) && json_is_true(json_object_get(j, "online")) == online;
        json_decref(j);
        if (match)
            return h_now_ms() - t0;
    }
}

/* The names GET /api/v1/rooms/general/presence lists include user. */
static int listed_online(int port, const char *tok, const char *user)
{
    struct h_http_resp r;
    h_http_call(port, "GET", "/api/v1/rooms/general/presence", tok, NULL, 0, &r);
    CHECK(r.status == 200 && r.json, "presence list: %d", r.status);
    json_t *a = json_object_get(r.json, "online");
    CHECK(json_is_array(a), "presence list without an online array");
    int found = 0;
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
        found |= !strcmp(json_string_value(v), user);
    h_http_resp_free(&r);
    return found;
}

/* A third user beside start_alice_bob's two, registered and logged in. */
static void add_user(const struct h_server *s, const char *name, char tok[65])
{
    const char *const one[] = { name, NULL };
    register_users(s, one);
    CHECK(h_http_login(s->port, name, PW, tok) == 200, "login %s", name);
}

static int setup(void **state)
{
    (void)state;
    harness_init();
    took_start();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    harness_cleanup();
    return 0;
}

/* ---- online and offline on every transport ---- */

static void online_offline(struct h_server *s, struct h_ws *alice, const char *alice_tok,
                           const char *transport)
{
    /* the grace after the connection ends; a held HTTP connection's end is
     * noticed within PROBE; a short poller's window runs from its last poll */
    int bound = !strcmp(transport, "websocket") ? GRACE + SLACK
              : !strcmp(transport, "short-poll") ? POLL + SLACK : GRACE + PROBE + SLACK;
    for (int kill = 0; kill < 2; kill++) {
        struct h_proc *bob = h_client_spawn(s, transport, "bob", PW_BOB, NULL);
        int64_t took_ms = wait_presence(alice, "bob", 1, h_deadline(10000));
        CHECK(took_ms >= 0, "%s: bob's client connected, alice never saw him online", transport);
        CHECK(listed_online(s->port, alice_tok, "bob"), "%s: bob online but not listed", transport);
        int64_t t0 = h_now_ms();
        if (kill)
            h_proc_kill(bob);
        else
            h_client_quit(bob, h_deadline(5000));
        took_ms = wait_presence(alice, "bob", 0, h_deadline(bound + 5000));
        CHECK(took_ms >= 0, "%s: bob's client %s, alice never saw him offline", transport,
              kill ? "was killed" : "quit");
        int64_t after = h_now_ms() - t0;
        fprintf(stderr, "    %s: offline %lld ms after the %s (bound %d ms)\n", transport,
                (long long)after, kill ? "kill -9" : "quit", bound);
        CHECK(after <= bound, "%s: offline %lld ms after the %s, over the bound %d ms", transport,
              (long long)after, kill ? "kill" : "quit", bound);
        CHECK(!listed_online(s->port, alice_tok, "bob"), "%s: bob offline but still listed", transport);
    }
}

static void test_online_offline_every_transport(void **state)
{
    (void)state;
    struct h_server s;
    char alice_tok[65];
    start_alice_bob(&s, extra_short, alice_tok, NULL);
    struct h_ws *alice = watcher(s.port, alice_tok);
    const char *transports[] = { "websocket", "sse", "long-poll", "short-poll" };
    for (size_t i = 0; i < 4; i++)
        online_offline(&s, alice, alice_tok, transports[i]);
    h_ws_free(alice);
    h_server_stop(&s);
    took("online and offline on every transport");
}

/* ---- no flap on a transport switch ---- */

/* Parks GET /events?after=AFTER&wait=20 for tok; returns the socket once
 * chatd has read it (a later request on another connection is answered
 * after it). */
static int park_poll(int port, const char *tok, int64_t after)
{
    int fd = h_long_poll_send(port, tok, after);
    struct h_http_resp r;
    h_http_call(port, "GET", "/healthz", NULL, NULL, 0, &r);
    h_http_resp_free(&r);
    return fd;
}

static void test_no_flap_on_switch(void **state)
{
    (void)state;
    struct h_server s;
    char alice_tok[65], bob_tok[65];
    start_alice_bob(&s, extra_short, alice_tok, bob_tok);
    struct h_ws *alice = watcher(s.port, alice_tok);
    struct h_ws *bob = watcher(s.port, bob_tok);
    CHECK(wait_presence(alice, "bob", 1, h_deadline(5000)) >= 0, "bob's WebSocket: not online");
    h_ws_free(bob);                              /* the WebSocket goes, an SSE stream comes */
    struct h_sse *sse = h_sse_open(s.port, bob_tok, NULL, NULL, NULL);
    CHECK(sse->status == 200, "bob's stream: %d", sse->status);
    CHECK(wait_presence(alice, "bob", 0, h_deadline(GRACE + SLACK)) < 0,
          "bob switched from WebSocket to SSE within the grace: alice saw him offline");
    int64_t next = 0;
    json_t *evs = h_http_get_events(s.port, bob_tok, 0);
    next = json_array_size(evs) ? ev_int(json_array_get(evs, json_array_size(evs) - 1), "id") : 0;
    json_decref(evs);
    int fd = park_poll(s.port, bob_tok, next);   /* a long poll parks, the stream goes */
    h_sse_close(sse);
    CHECK(wait_presence(alice, "bob", 0, h_deadline(GRACE + SLACK)) < 0,
          "bob switched from SSE to a long poll within the grace: alice saw him offline");
    CHECK(listed_online(s.port, alice_tok, "bob"), "bob not listed while his poll is parked");
    close(fd);
    CHECK(wait_presence(alice, "bob", 0, h_deadline(GRACE + POLL + SLACK)) >= 0,
          "bob's last connection ended: alice never saw him offline");
    h_ws_free(alice);
    h_server_stop(&s);
    took("no flap on a transport switch");
}

/* ---- a client gone while chatd holds its connection ---- */

/* CPU time (user + system) of process pid so far, ms. */
static int64_t cpu_ms(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    CHECK(f, "cannot read %s", path);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');     /* after the command name */
    unsigned long long ut = 0, st = 0;
    CHECK(p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2,
          "%s: unreadable", path);
    return (int64_t)((ut + st) * 1000 / (unsigned long long)sysconf(_SC_CLK_TCK));
}

/* chatd's CPU over the next 1.5 s, the time it takes to notice. */
static int64_t cpu_while_noticing(const struct h_server *s)
{
    int64_t c0 = cpu_ms(s->proc->pid), end = h_deadline(1500);
    for (int64_t now = h_now_ms(); now < end; now = h_now_ms())
        h_pump((int)(end - now));
    return cpu_ms(s->proc->pid) - c0;
}

/* A client that goes away while its long poll is parked, or while it holds
 * an SSE stream, costs chatd nothing until it notices (within a second,
 * the probe): its socket reads as ended, but chatd reads nothing from a
 * held HTTP/1 connection, so if it kept watching it for input its loop
 * would spin meanwhile (measured before the fix: ~1 s of CPU, 25,000
 * epoll_wait calls, and the next argon2id login twice as slow). */
static void test_gone_client_costs_no_cpu(void **state)
{
    (void)state;
    struct h_server s;
    char alice_tok[65], bob_tok[65];
    start_alice_bob(&s, extra_short, alice_tok, bob_tok);
    json_t *evs = h_http_get_events(s.port, alice_tok, 0);
    int64_t next = json_array_size(evs) ? ev_int(json_array_get(evs, json_array_size(evs) - 1), "id") : 0;
    json_decref(evs);
    int fd = park_poll(s.port, alice_tok, next);
    close(fd);
    int64_t spent = cpu_while_noticing(&s);
    fprintf(stderr, "    a parked long poll's client gone: chatd used %lld ms of CPU in 1.5 s\n", (long long)spent);
    CHECK(spent < 300, "a parked long poll's client went away: chatd used %lld ms of CPU in 1.5 s",
          (long long)spent);
    h_sse_close(sse_ready(s.port, bob_tok, "bob's"));
    spent = cpu_while_noticing(&s);
    fprintf(stderr, "    an SSE stream's client gone: chatd used %lld ms of CPU in 1.5 s\n", (long long)spent);
    CHECK(spent < 300, "an SSE stream's client went away: chatd used %lld ms of CPU in 1.5 s", (long long)spent);
    h_server_stop(&s);
    took("gone clients");
}

/* ---- typing ---- */

static void typing_ws(struct h_ws *w, const char *room)
{
    char f[128];
    snprintf(f, sizeof f, "{\"op\":\"typing\",\"room\":\"%s\"}", room);
    CHECK(h_ws_send_text(w, f) == 0, "typing frame: not sent");
}

static int count_typing(struct h_ws *w, const char *user, int64_t deadline)
{
    int n = 0;
    json_t *j;
    while ((j = h_ws_recv_op(w, "typing", deadline)) != NULL) {
        n += !strcmp(ev_str(j, "user"), user) && !strcmp(ev_str(j, "room"), "general");
        json_decref(j);
    }
    return n;
}

static void test_typing(void **state)
{
    (void)state;
    struct h_server s;
    char alice_tok[65], bob_tok[65], carol_tok[65], dave_tok[65];
    start_alice_bob(&s, extra_short, alice_tok, bob_tok);
    static const char *const more[] = { "carol", "dave", NULL };
    register_users(&s, more);
    CHECK(h_http_login(s.port, "carol", PW, carol_tok) == 200, "login carol");
    CHECK(h_http_login(s.port, "dave", PW, dave_tok) == 200, "login dave");
    struct h_ws *alice = watcher(s.port, alice_tok);
    struct h_ws *bob = watcher(s.port, bob_tok);
    struct h_sse *carol = sse_ready(s.port, carol_tok, "carol's");
    json_t *evs = h_http_get_events(s.port, dave_tok, 0);
    int64_t next = json_array_size(evs) ? ev_int(json_array_get(evs, json_array_size(evs) - 1), "id") : 0;
    json_decref(evs);
    h_sse_wait(carol, "presence", 2, h_deadline(3000));   /* alice's and bob's, settled */
    int fd = park_poll(s.port, dave_tok, next);
    for (int i = 0; i < 3; i++)
        typing_ws(alice, "general");
    int64_t t0 = h_now_ms();
    CHECK(count_typing(bob, "alice", h_deadline(TYPING_MS - 1000)) == 1,
          "three typing frames within 3 s: bob should see exactly one");
    CHECK(h_sse_wait(carol, "typing", 1, h_deadline(1000)) == 1, "carol's stream: no typing event");
    json_t *m = h_sse_msg(carol, "typing", 0);
    CHECK(!json_object_get(m, "id"), "a typing event carries an id: line");
    CHECK(!strcmp(ev_str(json_object_get(m, "data"), "user"), "alice"), "carol's typing event is not alice's");
    struct h_http_resp r;
    CHECK(h_http_read_response(fd, &r, 5000) == 0 && r.status == 200, "dave's parked poll: %d", r.status);
    CHECK(h_now_ms() - t0 < 5000, "dave's parked poll was not answered early for the typing item");
    json_t *eph = json_object_get(r.json, "ephemeral");
    int saw = 0;
    size_t i;
    json_t *v;
    json_array_foreach(eph, i, v)
        saw += !strcmp(ev_str(v, "type"), "typing") && !strcmp(ev_str(v, "user"), "alice");
    CHECK(saw == 1, "dave's poll: %d typing items of alice's, expected 1", saw);
    CHECK(ev_int(r.json, "next") == next, "an ephemeral item moved the poll's next");
    h_http_resp_free(&r);
    CHECK(count_typing(alice, "alice", h_deadline(500)) == 0, "alice got her own typing");
    /* POST …/typing: 200 each time, relayed once */
    for (int k = 0; k < 3; k++) {
        h_http_call(s.port, "POST", "/api/v1/rooms/general/typing", bob_tok, NULL, 0, &r);
        CHECK(r.status == 200, "POST typing %d: %d", k, r.status);
        h_http_resp_free(&r);
    }
    CHECK(count_typing(alice, "bob", h_deadline(1500)) == 1, "three POST typing: alice should see one");
    h_http_call(s.port, "POST", "/api/v1/rooms/nosuchroom/typing", bob_tok, NULL, 0, &r);
    h_assert_error("typing in an unknown room", &r, 404, "not_found");
    h_http_resp_free(&r);
    h_http_call(s.port, "POST", "/api/v1/rooms/general/typing", NULL, NULL, 0, &r);
    h_assert_error("typing without a token", &r, 401, NULL);
    h_http_resp_free(&r);
    h_sse_close(carol);
    h_ws_free(alice);
    h_ws_free(bob);
    h_server_stop(&s);
    took("typing");
}

/* ---- an item answers one poll of its token ---- */

/* The index of the first of fds[0..n) with something to read, or -1 at
 * deadline. */
static int first_readable(const int *fds, int n, int64_t deadline)
{
    struct pollfd p[8];
    for (int i = 0; i < n; i++)
        p[i] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
    int64_t left;
    while ((left = deadline - h_now_ms()) > 0) {
        if (poll(p, (nfds_t)n, (int)left) > 0)
            for (int i = 0; i < n; i++)
                if (p[i].revents)
                    return i;
    }
    return -1;
}

/* Ephemeral items are queued per session token and one poll takes them:
 * with three long polls of dave's token parked, alice's typing answers one
 * of them, with the item. The other two stay parked (answered with
 * nothing, they would come back at once: with many polls of one token, one
 * item answered them all at the same instant) and carry the next message. */
static void test_item_answers_one_poll(void **state)
{
    (void)state;
    struct h_server s;
    char alice_tok[65], bob_tok[65], dave_tok[65];
    start_alice_bob(&s, extra_short, alice_tok, bob_tok);
    add_user(&s, "dave", dave_tok);
    struct h_ws *alice = watcher(s.port, alice_tok);
    struct h_ws *bob = watcher(s.port, bob_tok);
    json_t *evs = h_http_get_events(s.port, dave_tok, 0);   /* dave comes online */
    int64_t next = json_array_size(evs) ? ev_int(json_array_get(evs, json_array_size(evs) - 1), "id") : 0;
    json_decref(evs);
    CHECK(wait_presence(bob, "dave", 1, h_deadline(5000)) >= 0, "dave's poll: not online to bob");
    json_decref(h_http_get_events(s.port, dave_tok, next));  /* takes the presence items queued so far */
    int fds[3];
    for (int i = 0; i < 3; i++)
        fds[i] = h_long_poll_send(s.port, dave_tok, next);
    h_wait_parked(s.port, 3, h_deadline(5000));
    typing_ws(alice, "general");
    int first = first_readable(fds, 3, h_deadline(5000));
    CHECK(first >= 0, "alice's typing answered none of dave's three parked polls");
    struct h_http_resp r;
    CHECK(h_http_read_response(fds[first], &r, 5000) == 0 && r.status == 200, "the answered poll: %d", r.status);
    json_t *eph = json_object_get(r.json, "ephemeral");
    CHECK(json_array_size(eph) == 1 && !strcmp(ev_str(json_array_get(eph, 0), "type"), "typing"),
          "the answered poll: %s", r.body);
    h_http_resp_free(&r);
    int64_t id = 0;
    CHECK(h_http_post_message(s.port, alice_tok, NULL, "after the typing", NULL, &id) == 201, "post");
    for (int i = 0; i < 3; i++) {
        if (i == first)
            continue;
        CHECK(h_http_read_response(fds[i], &r, 5000) == 0 && r.status == 200, "dave's poll %d: %d", i, r.status);
        evs = json_object_get(r.json, "events");
        CHECK(json_array_size(evs) == 1 && ev_int(json_array_get(evs, 0), "id") == id,
              "dave's other poll %d was answered without the message: %s", i, r.body);
        CHECK(json_array_size(json_object_get(r.json, "ephemeral")) == 0, "the item came twice: %s", r.body);
        h_http_resp_free(&r);
    }
    h_ws_free(alice);
    h_ws_free(bob);
    h_server_stop(&s);
    took("an item answers one poll of its token");
}

/* ---- read markers reach the user's own clients ---- */

/* The read_id of the next {"op":"read","room":room} frame on w, or -1 if
 * none came by deadline. */
static int64_t wait_read(struct h_ws *w, const char *room, int64_t deadline)
{
    json_t *j;
    while ((j = h_ws_recv_op(w, "read", deadline)) != NULL) {
        int64_t id = !strcmp(ev_str(j, "room"), room) ? ev_int(j, "read_id") : -1;
        json_decref(j);
        if (id >= 0)
            return id;
    }
    return -1;
}

/* user's chat message to room (a DM's "to" if to): its id. */
static int64_t send_chat(int port, const char *tok, const char *field, const char *where)
{
    char body[128];
    struct h_http_resp r;
    snprintf(body, sizeof body, "{\"%s\":\"%s\",\"body\":\"read me\"}", field, where);
    h_http_call(port, "POST", "/api/v1/messages", tok, body, -1, &r);
    CHECK(r.status == 201 || r.status == 200, "send to %s: %d", where, r.status);
    int64_t id = ev_int(r.json, "id");
    h_http_resp_free(&r);
    CHECK(id > 0, "send to %s: no id", where);
    return id;
}

static void read_to(int port, const char *tok, const char *room, int64_t id)
{
    char path[128], body[64];
    struct h_http_resp r;
    snprintf(path, sizeof path, "/api/v1/rooms/%s/read", room);
    snprintf(body, sizeof body, "{\"id\":%" PRId64 "}", id);
    h_http_call(port, "POST", path, tok, body, -1, &r);
    CHECK(r.status == 200 && ev_int(r.json, "read_id") == id, "POST %s: %d", path, r.status);
    h_http_resp_free(&r);
}

static void test_read_markers(void **state)
{
    (void)state;
    struct h_server s;
    char alice_tok[65], alice2_tok[65], bob_tok[65];
    start_alice_bob(&s, extra_short, alice_tok, bob_tok);
    CHECK(h_http_login(s.port, "alice", PW_ALICE, alice2_tok) == 200, "alice's second login");
    struct h_ws *alice = watcher(s.port, alice_tok);
    struct h_ws *bob = watcher(s.port, bob_tok);
    struct h_sse *alice_sse = sse_ready(s.port, alice2_tok, "alice's");
    int64_t id = send_chat(s.port, bob_tok, "room", "general");
    int fd = park_poll(s.port, alice2_tok, id);
    int64_t t0 = h_now_ms();
    read_to(s.port, alice2_tok, "general", id);
    CHECK(wait_read(alice, "general", h_deadline(5000)) == id, "alice's WebSocket: no read item for %" PRId64, id);
    CHECK(h_sse_wait(alice_sse, "read", 1, h_deadline(5000)) == 1, "alice's stream: no read event");
    json_t *m = h_sse_msg(alice_sse, "read", 0);
    CHECK(!json_object_get(m, "id"), "a read event carries an id: line");
    json_t *data = json_object_get(m, "data");
    CHECK(!strcmp(ev_str(data, "room"), "general") && ev_int(data, "read_id") == id, "alice's read event: wrong item");
    struct h_http_resp r;
    CHECK(h_http_read_response(fd, &r, 5000) == 0 && r.status == 200, "alice's parked poll: %d", r.status);
    CHECK(h_now_ms() - t0 < 5000, "alice's parked poll was not answered early for the read item");
    int saw = 0;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(r.json, "ephemeral"), i, v)
        saw += !strcmp(ev_str(v, "type"), "read") && ev_int(v, "read_id") == id;
    CHECK(saw == 1, "alice's poll: %d read items, expected 1", saw);
    h_http_resp_free(&r);
    /* her DM: hers only, with the DM's name */
    int64_t dm = send_chat(s.port, bob_tok, "to", "alice");
    read_to(s.port, alice2_tok, "@alice,bob", dm);
    CHECK(wait_read(alice, "@alice,bob", h_deadline(5000)) == dm, "alice's WebSocket: no read item for her DM");
    CHECK(wait_read(bob, "general", h_deadline(300)) < 0 && wait_read(bob, "@alice,bob", h_deadline(300)) < 0,
          "bob got alice's read marker");
    h_sse_close(alice_sse);
    h_ws_free(alice);
    h_ws_free(bob);
    h_server_stop(&s);
    took("read markers");
}

/* Two instances on one PostgreSQL (the test is skipped without one, or
 * fails if CHAT_TEST_PG_REQUIRED), alice and bob registered and logged in. */
static void two_instances(struct h_server s[2], const char *const *extra, char alice_tok[65],
                          char bob_tok[65])
{
    h_need_pg("two instances");
    h_servers_start_shared(s, 2, extra);
    alice_bob_on(s[0].port, alice_tok, bob_tok);
}

/* PostgreSQL: alice reads on one instance, her WebSocket on the other hears;
 * bob types on one, alice on the other sees it. */
static void test_read_marker_other_instance(void **state)
{
    (void)state;
    struct h_server s[2];
    char alice_tok[65], bob_tok[65];
    two_instances(s, extra_short, alice_tok, bob_tok);
    struct h_ws *alice = watcher(s[1].port, alice_tok);
    struct h_ws *bob = watcher(s[1].port, bob_tok);
    int64_t id = send_chat(s[0].port, bob_tok, "room", "general");
    read_to(s[0].port, alice_tok, "general", id);
    CHECK(wait_read(alice, "general", h_deadline(5000)) == id,
          "alice read on instance 1: her WebSocket on instance 2 got no read item");
    CHECK(wait_read(bob, "general", h_deadline(300)) < 0, "bob got alice's read marker");
    /* typing on one instance reaches the room's members on the other, once */
    struct h_http_resp r;
    for (int k = 0; k < 2; k++) {
        h_http_call(s[0].port, "POST", "/api/v1/rooms/general/typing", bob_tok, NULL, 0, &r);
        CHECK(r.status == 200, "POST typing on instance 1: %d", r.status);
        h_http_resp_free(&r);
    }
    CHECK(count_typing(alice, "bob", h_deadline(2000)) == 1,
          "bob typed twice on instance 1: alice on instance 2 should see it once");
    CHECK(count_typing(bob, "bob", h_deadline(300)) == 0, "bob got his own typing");
    h_ws_free(alice);
    h_ws_free(bob);
    h_server_stop(&s[0]);
    h_server_stop(&s[1]);
    took("a read marker and typing across instances");
}

/* ---- rooms: typing and presence reach members only ---- */

static void post_expect(int port, const char *tok, const char *path, const char *body, int status,
                        const char *code)
{
    struct h_http_resp r;
    h_http_call(port, "POST", path, tok, body, -1, &r);
    if (code)
        h_assert_error(path, &r, status, code);
    else
        CHECK(r.status == status, "POST %s: %d, expected %d", path, r.status, status);
    h_http_resp_free(&r);
}

static char *presence_list(int port, const char *tok, const char *room, int *status)
{
    char path[128];
    struct h_http_resp r;
    snprintf(path, sizeof path, "/api/v1/rooms/%s/presence", room);
    h_http_call(port, "GET", path, tok, NULL, 0, &r);
    *status = r.status;
    char *text = r.status == 200 ? h_json_str(json_object_get(r.json, "online")) : NULL;
    h_http_resp_free(&r);
    return text;
}

static void test_rooms(void **state)
{
    (void)state;
    struct h_server s;
    char alice_tok[65], bob_tok[65], carol_tok[65];
    start_alice_bob(&s, extra_short, alice_tok, bob_tok);
    add_user(&s, "carol", carol_tok);
    post_expect(s.port, alice_tok, "/api/v1/rooms", "{\"name\":\"rust\"}", 201, NULL);
    post_expect(s.port, bob_tok, "/api/v1/rooms/rust/join", "", 200, NULL);
    struct h_ws *alice = watcher(s.port, alice_tok);
    struct h_ws *bob = watcher(s.port, bob_tok);
    struct h_ws *carol = watcher(s.port, carol_tok);
    typing_ws(alice, "rust");
    json_t *j = h_ws_recv_op(bob, "typing", h_deadline(3000));
    CHECK(j && !strcmp(ev_str(j, "room"), "rust") && !strcmp(ev_str(j, "user"), "alice"),
          "bob, a member of rust, did not get alice's typing there");
    json_decref(j);
    CHECK(!(j = h_ws_recv_op(carol, "typing", h_deadline(1000))), "carol, no member of rust, got its typing");
    /* a non-member may neither type nor look; an unknown room is 404 */
    post_expect(s.port, carol_tok, "/api/v1/rooms/rust/typing", "", 403, "not_member");
    post_expect(s.port, carol_tok, "/api/v1/rooms/nosuch/typing", "", 404, "not_found");
    int st;
    char *list = presence_list(s.port, carol_tok, "rust", &st);
    CHECK(st == 403 && !list, "carol's GET rust/presence: %d, expected 403", st);
    list = presence_list(s.port, bob_tok, "rust", &st);
    CHECK(st == 200 && list && !strcmp(list, "[\"alice\",\"bob\"]"), "rust's presence: %d %s", st, list);
    free(list);
    struct h_http_resp r;                           /* the rooms list's online counts */
    h_http_call(s.port, "GET", "/api/v1/rooms", bob_tok, NULL, 0, &r);
    CHECK(r.status == 200, "rooms list: %d", r.status);
    size_t i;
    json_t *room;
    int checked = 0;
    json_array_foreach(json_object_get(r.json, "rooms"), i, room) {
        json_int_t want = !strcmp(ev_str(room, "name"), "rust") ? 2 : !strcmp(ev_str(room, "name"), "general") ? 3 : -1;
        if (want >= 0) {
            CHECK(ev_int(room, "online") == want, "%s: online %" JSON_INTEGER_FORMAT ", expected %" JSON_INTEGER_FORMAT,
                  ev_str(room, "name"), ev_int(room, "online"), want);
            checked++;
        }
    }
    CHECK(checked == 2, "the rooms list lacks rust or general");
    h_http_resp_free(&r);
    list = presence_list(s.port, carol_tok, "general", &st);
    CHECK(st == 200 && list && !strcmp(list, "[\"alice\",\"bob\",\"carol\"]"), "general's presence: %d %s",
          st, list);
    free(list);
    /* a DM: typing by "to" once it exists; nobody else sees it or its list */
    CHECK(h_ws_send_text(alice, "{\"op\":\"typing\",\"to\":\"bob\"}") == 0, "typing to bob");
    j = h_ws_recv_op(alice, "error", h_deadline(3000));
    CHECK(j && !strcmp(ev_str(j, "code"), "not_found"), "typing to a DM not yet opened: expected not_found");
    json_decref(j);
    post_expect(s.port, alice_tok, "/api/v1/messages", "{\"to\":\"bob\",\"body\":\"hi\"}", 201, NULL);
    CHECK(h_ws_send_text(alice, "{\"op\":\"typing\",\"to\":\"bob\"}") == 0, "typing to bob");
    j = h_ws_recv_op(bob, "typing", h_deadline(3000));
    CHECK(j && !strcmp(ev_str(j, "room"), "@alice,bob"), "bob did not get alice's typing in their DM");
    json_decref(j);
    CHECK(!(j = h_ws_recv_op(carol, "typing", h_deadline(1000))), "carol got typing of a DM not hers");
    list = presence_list(s.port, carol_tok, "@alice,bob", &st);
    CHECK(st == 404 && !list, "carol's GET of the DM's presence: %d, expected 404", st);
    list = presence_list(s.port, bob_tok, "@alice,bob", &st);
    CHECK(st == 200 && list && !strcmp(list, "[\"alice\",\"bob\"]"), "the DM's presence: %d %s", st, list);
    free(list);
    h_ws_free(alice);
    h_ws_free(bob);
    h_ws_free(carol);
    h_server_stop(&s);
    took("rooms: typing and presence to members only");
}

/* ---- never replayed ---- */

static void test_not_replayed(void **state)
{
    (void)state;
    struct h_server s;
    char alice_tok[65], bob_tok[65];
    start_alice_bob(&s, extra_short, alice_tok, bob_tok);
    int64_t id;
    CHECK(h_http_post_message(s.port, alice_tok, NULL, "hello", NULL, &id) == 201, "post");
    struct h_ws *alice = watcher(s.port, alice_tok);
    struct h_sse *sse = h_sse_open(s.port, alice_tok, "after=0", NULL, NULL);
    CHECK(h_sse_wait(sse, NULL, 1, h_deadline(5000)) == 1, "alice's stream: no chat event");
    struct h_http_resp r;
    h_http_call(s.port, "GET", "/api/v1/events?after=0&wait=0", alice_tok, NULL, 0, &r);
    h_http_resp_free(&r);                         /* alice's poller, from now on */
    struct h_ws *bob = watcher(s.port, bob_tok);  /* bob online: an item for each */
    CHECK(wait_presence(alice, "bob", 1, h_deadline(5000)) >= 0, "alice's WebSocket: bob not online");
    CHECK(h_sse_wait(sse, "presence", 1, h_deadline(5000)) >= 1, "alice's stream: no presence event");
    CHECK(!strcmp(sse->last_id, "1"), "a presence event moved Last-Event-ID from 1 to %s", sse->last_id);
    typing_ws(bob, "general");
    CHECK(count_typing(alice, "bob", h_deadline(1000)) == 1, "alice's WebSocket: no typing");
    h_http_call(s.port, "GET", "/api/v1/events?after=0&wait=0", alice_tok, NULL, 0, &r);
    CHECK(r.status == 200 && json_array_size(json_object_get(r.json, "ephemeral")) >= 2,
          "alice's poll: expected bob's presence and typing items");
    CHECK(ev_int(r.json, "next") == id, "ephemeral items moved next");
    h_http_resp_free(&r);
    /* resumed: nothing ephemeral comes again */
    h_http_call(s.port, "GET", "/api/v1/events?after=0&wait=0", alice_tok, NULL, 0, &r);
    CHECK(!json_object_get(r.json, "ephemeral"), "the next poll got the items again");
    h_http_resp_free(&r);
    h_ws_free(alice);
    alice = watcher(s.port, alice_tok);
    json_t *j = h_ws_recv_json(alice, h_deadline(1000));
    while (j && !strcmp(ev_str(j, "op"), "event")) {
        json_decref(j);
        j = h_ws_recv_json(alice, h_deadline(1000));
    }
    CHECK(!j, "a resumed WebSocket got an ephemeral frame again: %s", ev_str(j, "op"));
    h_sse_close(sse);
    sse = h_sse_open(s.port, alice_tok, NULL, "1", NULL);
    CHECK(h_sse_wait(sse, "presence", 1, h_deadline(1000)) == 0 && h_sse_count(sse, "typing") == 0,
          "a resumed stream got ephemeral events again");
    h_sse_close(sse);
    h_ws_free(alice);
    h_ws_free(bob);
    h_server_stop(&s);
    took("ephemeral items are not replayed");
}

/* ---- two instances (PostgreSQL): leases ---- */

static void test_instance_killed(void **state)
{
    (void)state;
    static const char *const extra[] = { "--presence-grace-ms", "1000", "--presence-poll-ms", "1500",
                                         "--presence-lease-ms", "3000", NULL };
    struct h_server s[2];
    char alice_tok[65], bob_tok[65];
    two_instances(s, extra, alice_tok, bob_tok);
    struct h_ws *alice = watcher(s[1].port, alice_tok);
    struct h_ws *bob = watcher(s[0].port, bob_tok);
    CHECK(wait_presence(alice, "bob", 1, h_deadline(5000)) >= 0,
          "bob on instance 1: alice on instance 2 never saw him online");
    CHECK(listed_online(s[1].port, alice_tok, "bob"), "instance 2 does not list bob");
    int bound = LEASE + LEASE / 6 + SLACK;
    int64_t t0 = h_now_ms();
    h_server_kill(&s[0]);
    CHECK(wait_presence(alice, "bob", 0, h_deadline(bound + 5000)) >= 0,
          "bob's instance was killed: the survivor never showed him offline");
    int64_t after = h_now_ms() - t0;
    fprintf(stderr, "    offline on the survivor %lld ms after the kill (bound %d ms)\n", (long long)after, bound);
    CHECK(after <= bound, "offline %lld ms after the kill, over the bound %d ms", (long long)after, bound);
    h_ws_free(bob);
    bob = watcher(s[1].port, bob_tok);
    CHECK(wait_presence(alice, "bob", 1, h_deadline(5000)) >= 0, "bob reconnected: not online again");
    h_ws_free(bob);
    CHECK(wait_presence(alice, "bob", 0, h_deadline(GRACE + SLACK + 2000)) >= 0,
          "bob left the survivor: not offline");
    h_ws_free(alice);
    h_server_stop(&s[1]);
    took("an instance killed");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_online_offline_every_transport, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_flap_on_switch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gone_client_costs_no_cpu, setup, teardown),
        cmocka_unit_test_setup_teardown(test_typing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_item_answers_one_poll, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_markers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_marker_other_instance, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_replayed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rooms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_instance_killed, setup, teardown),
    };
    int rc = cmocka_run_group_tests_name("presence", tests, NULL, NULL);
    harness_cleanup();
    return rc;
}
