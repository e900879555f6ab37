/* test_reliability.c — nothing lost, nothing shown twice, whatever happens
 * to the server or the network (issue 5), with real bin/chatd and
 * bin/chat --headless processes:
 *
 *   - kill -9 of the server while clients on all three transports send
 *     continuously, twice, restarting it on the same port and database:
 *     every acknowledged message is in the server's feed, every typed line
 *     is stored exactly once and in order, and each client ends with exactly
 *     the server's event sequence;
 *   - SIGTERM restart under a connected client of each transport: chatd
 *     answers a parked long poll and closes a WebSocket with 1001; each
 *     client reconnects by itself, sees what another user posted over HTTP
 *     while it was away (through a second chatd on the same database, so
 *     certainly while away), and sends what was typed while it was offline,
 *     once;
 *   - a TCP relay (relay.c) between clients and server cuts every connection
 *     (FIN and RST), cuts them in the middle of responses after N bytes, and
 *     stalls them: no loss, no duplicate, recovery after each;
 *   - the relay holds every answer past the clients' request time-outs while
 *     requests still reach chatd: retried sends are stored once;
 *   - three instances of one user, one per transport, get identical feeds.
 *
 * Every wait is a deadline; the server runs on a free port (the restarts
 * reuse the port the first run got) with a temporary database.
 * RELIABILITY_DUMP=1 prints every process's stderr at the end of a test;
 * RELIABILITY_ONLY=PATTERN runs only the tests whose names match. */
#include "relay.h"
#include "scenario.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define SEND_EVERY_MS 25
#define CONVERGE_MS 20000

static const char *const TRANSPORTS[3] = { "websocket", "long-poll", "short-poll" };
static struct relay *g_relay;

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
    relay_stop(g_relay);
    g_relay = NULL;
    harness_cleanup();
    return 0;
}

/* ---- helpers ---------------------------------------------------------------- */

/* Posts "start" as the token's user and waits until every client shows it:
 * they are all connected and live. (A long-poll client reports "connected"
 * only once its first poll is answered, which on a quiet feed takes the
 * whole hold, so the state line is no readiness signal.) */
static void start_line(const struct h_server *s, const char *token, struct h_proc **cs, int n)
{
    CHECK(h_http_post_message(s->port, token, NULL, "start", NULL, NULL) == 201, "post start");
    int64_t dl = h_deadline(10000);
    for (int i = 0; i < n; i++)
        CHECK(h_client_wait_events(cs[i], 1, dl) == 1, "%s did not show the first message within 10 s%s",
              cs[i]->name, cs[i]->exited ? " (it exited)" : "");
    /* A v1.1 client shows a room's newest messages before its feed is up:
     * "connected" may come after the first message, and a test that marks
     * stderr to look for reconnections must start from a connected client. */
    for (int i = 0; i < n; i++)
        wait_err_from(cs[i], 0, "{\"state\":\"connected\"", dl, "the first connection");
}

/* The server's view: the whole feed of the user whose token this is. */
static json_t *server_feed(const struct h_server *s, const char *token)
{
    json_t *feed = h_http_get_events(s->port, token, 0);
    CHECK(json_array_size(feed) < 1000, "feed too long for one page");
    return feed;
}

/* Every acknowledged message of c is in feed, from user, under its id. */
static void check_acks_in_feed(const struct h_proc *c, const char *user, const json_t *feed)
{
    json_t *acks = acks_of(c), *id;
    const char *cmid;
    json_object_foreach(acks, cmid, id) {
        json_t *found = NULL, *ev;
        size_t i;
        json_array_foreach(feed, i, ev)
            if (ev_int(ev, "id") == json_integer_value(id))
                found = ev;
        if (!found) {
            print_events("server feed", feed);
            CHECK(0, "%s: message %s was acknowledged as event %" JSON_INTEGER_FORMAT
                  " but the server's feed does not have it", c->name, cmid, json_integer_value(id));
        }
        CHECK(strcmp(ev_str(found, "from"), user) == 0,
              "%s: message %s acknowledged as event %" JSON_INTEGER_FORMAT " which is from %s",
              c->name, cmid, json_integer_value(id), ev_str(found, "from"));
    }
    json_decref(acks);
}

/* No client of the list may have exited. */
static void check_alive(struct h_proc **cs, int n)
{
    for (int i = 0; i < n; i++) {
        h_pump(0);
        CHECK(!cs[i]->exited, "%s exited (status %d) in the middle of the test", cs[i]->name,
              cs[i]->status);
    }
}

/* ---- kill -9 while sending ---------------------------------------------------- */

static void test_kill9_while_sending(void **state)
{
    (void)state;
    struct h_server s;
    h_server_start(&s, NULL, NULL);
    static const char *const users[] = { "alice", "bob", "carol", NULL };
    register_users(&s, users);
    char tok[65];
    CHECK(h_http_login(s.port, "alice", PW, tok) == 200, "login alice");

    struct sender ss[3];
    struct h_proc *cs[3];
    for (int i = 0; i < 3; i++) {
        ss[i] = (struct sender){ .user = users[i] };
        snprintf(ss[i].tag, sizeof ss[i].tag, "%s over %s", users[i], TRANSPORTS[i]);
        ss[i].c = cs[i] = h_client_spawn(&s, TRANSPORTS[i], users[i], PW, NULL);
    }
    start_line(&s, tok, cs, 3);

    send_for(ss, 3, 500, SEND_EVERY_MS);
    h_server_kill(&s);                       /* mid-stream: writes and answers in flight */
    send_for(ss, 3, 300, SEND_EVERY_MS);   /* typed while the server is down */
    h_server_start_same_port(&s);
    send_for(ss, 3, 500, SEND_EVERY_MS);
    h_server_kill(&s);
    h_server_start_same_port(&s);            /* at once, this time */
    send_for(ss, 3, 300, SEND_EVERY_MS);
    check_alive(cs, 3);

    int64_t dl = h_deadline(CONVERGE_MS);
    for (int i = 0; i < 3; i++)
        wait_acks(cs[i], (size_t)ss[i].sent, dl);
    json_t *feed = server_feed(&s, tok);
    for (int i = 0; i < 3; i++) {
        check_acks_in_feed(cs[i], users[i], feed);
        check_sent_once(feed, users[i], ss[i].tag, ss[i].sent);
    }
    CHECK(json_array_size(feed) == (size_t)(1 + ss[0].sent + ss[1].sent + ss[2].sent),
          "the feed has %zu events, expected \"start\" and the %d lines typed", json_array_size(feed),
          ss[0].sent + ss[1].sent + ss[2].sent);
    for (int i = 0; i < 3; i++)
        check_same_as_feed(cs[i], feed, dl);
    fprintf(stderr, "    %d + %d + %d messages across two kills\n", ss[0].sent, ss[1].sent, ss[2].sent);
    json_decref(feed);
    for (int i = 0; i < 3; i++)
        h_client_quit(cs[i], h_deadline(8000));
    h_server_stop(&s);
    if (getenv("RELIABILITY_DUMP")) h_dump_logs();
    took("kill -9 while sending");
}

/* ---- SIGTERM restart under connected clients ------------------------------------ */

/* bob posts three messages while the clients' server is down: through a
 * second chatd on the same database and another port, which the clients
 * do not know, so they are away for certain. */
static void post_while_away(const struct h_server *s, const char *bob)
{
    struct h_server other;
    do {
        h_server_start(&other, s->dbdir, NULL);
        if (other.port == s->port)     /* the kernel gave it the old port again */
            h_server_stop(&other);
    } while (other.port == s->port);
    char line[64];
    for (int k = 1; k <= 3; k++) {
        snprintf(line, sizeof line, "while you were away %d", k);
        CHECK(h_http_post_message(other.port, bob, NULL, line, NULL, NULL) == 201, "post %d", k);
    }
    h_server_stop(&other);
}

static void test_restart_reconnects(void **state)
{
    (void)state;
    struct h_server s;
    char bob[65];
    start_with_bob(&s, bob);

    struct h_proc *cs[3];
    for (int i = 0; i < 3; i++)
        cs[i] = h_client_spawn(&s, TRANSPORTS[i], "alice", PW, NULL);
    start_line(&s, bob, cs, 3);

    /* Also on the wire, across the SIGTERM: a parked long poll and a
     * WebSocket of bob's (PROTOCOL.md / README: parked polls are answered,
     * WebSockets closed with 1001). */
    json_t *feed0 = server_feed(&s, bob);
    json_int_t last = ev_int(json_array_get(feed0, json_array_size(feed0) - 1), "id");
    json_decref(feed0);
    int poll_fd = h_long_poll_send(s.port, bob, last);
    struct h_ws *ws = h_ws_connect(s.port);
    json_decref(h_ws_hello(ws, bob, last));
    /* Parked: this poll and the long-poll client's (the short-poll client
     * never parks, and nothing is posted that would answer either). */
    h_wait_parked(s.port, 2, h_deadline(5000));

    size_t mark[3];
    for (int i = 0; i < 3; i++)
        mark[i] = cs[i]->err.len;
    h_server_stop(&s);                       /* SIGTERM: exit 0 with clients attached */
    struct h_http_resp pr;
    int prc = h_http_read_response(poll_fd, &pr, 2000);
    char *pbody = prc == 0 ? h_json_str(pr.json) : strdup("(nothing)");
    int pstatus = prc == 0 ? pr.status : 0;
    int poll_ok = prc == 0 && pr.status == 200 && json_is_array(json_object_get(pr.json, "events")) &&
                  json_array_size(json_object_get(pr.json, "events")) == 0;
    h_http_resp_free(&pr);
    int close_code = h_ws_wait_close(ws, h_deadline(2000));
    h_ws_free(ws);
    CHECK(poll_ok, "a long poll parked at SIGTERM: expected 200 {\"events\":[],...}, got %d %s",
          pstatus, pbody);
    free(pbody);
    CHECK(close_code == 1001, "a WebSocket open at SIGTERM: expected close 1001, got %d", close_code);
    for (int i = 0; i < 3; i++)
        wait_err_from(cs[i], mark[i], "{\"state\":\"reconnecting\"", h_deadline(5000),
                      "after the server stopped");
    char line[64];
    for (int i = 0; i < 3; i++) {
        snprintf(line, sizeof line, "typed offline on %s", TRANSPORTS[i]);
        h_client_send_line(cs[i], line);
    }
    for (int i = 0; i < 3; i++)
        wait_stdin_read(cs[i], h_deadline(5000));
    post_while_away(&s, bob);
    for (int i = 0; i < 3; i++)
        CHECK(!err_has_from(cs[i], mark[i], "{\"state\":\"connected\""),
              "%s reconnected while nothing listened on its server's port", cs[i]->name);
    h_server_start_same_port(&s);
    int64_t dl = h_deadline(CONVERGE_MS);
    for (int i = 0; i < 3; i++)
        wait_err_from(cs[i], mark[i], "{\"state\":\"connected\"", dl, "reconnection");
    for (int i = 0; i < 3; i++)
        wait_acks(cs[i], 1, dl);
    CHECK(h_http_post_message(s.port, bob, NULL, "after the restart", NULL, NULL) == 201, "post");

    json_t *feed = server_feed(&s, bob);
    CHECK(json_array_size(feed) == 8, "the server's feed has %zu events, expected 8", json_array_size(feed));
    for (int i = 0; i < 3; i++) {
        char tag[64];
        snprintf(tag, sizeof tag, "typed offline on %s", TRANSPORTS[i]);
        size_t n = 0, k;
        json_t *ev;
        json_array_foreach(feed, k, ev)
            n += strcmp(ev_str(ev, "body"), tag) == 0;
        CHECK(n == 1, "\"%s\" is %zu times in the server's feed, expected once", tag, n);
        check_acks_in_feed(cs[i], "alice", feed);
    }
    for (int i = 0; i < 3; i++)
        check_same_as_feed(cs[i], feed, dl);
    json_decref(feed);
    for (int i = 0; i < 3; i++)
        h_client_quit(cs[i], h_deadline(8000));
    h_server_stop(&s);
    if (getenv("RELIABILITY_DUMP")) h_dump_logs();
    took("SIGTERM restart");
}

/* ---- a misbehaving network -------------------------------------------------------- */

struct relay_run {
    struct h_server *s;
    struct sender ss[3];
    struct h_proc *cs[3];
    char poster[65];                       /* alice's token, posting straight to chatd */
    int posted;
};

static void post_direct(struct relay_run *r)
{
    char body[64];
    snprintf(body, sizeof body, "direct #%d", ++r->posted);
    CHECK(h_http_post_message(r->s->port, r->poster, NULL, body, NULL, NULL) == 201, "post %s", body);
}

static size_t expected_events(const struct relay_run *r)
{
    return (size_t)(r->posted + r->ss[0].sent + r->ss[1].sent + r->ss[2].sent);
}

/* Every client has every event so far: the network recovered. */
static void converge(struct relay_run *r, const char *after, int ms)
{
    int64_t dl = h_deadline(ms);
    size_t want = expected_events(r);
    for (int i = 0; i < 3; i++) {
        size_t got = h_client_wait_events(r->cs[i], want, dl);
        if (got < want) {
            struct relay_stats st;
            relay_get_stats(g_relay, &st);
            fprintf(stderr, "relay: %ld accepted, %ld open, %ld cut, %lld bytes up, %lld down\n",
                    st.accepted, st.open, st.cuts, st.up, st.down);
            print_events(r->cs[i]->name, r->cs[i]->events);
            json_t *feed = server_feed(r->s, r->poster);
            print_events("server feed", feed);
            json_decref(feed);
            CHECK(0, "%s: %zu of %zu events %d ms after %s — it did not recover", r->cs[i]->name, got,
                  want, ms, after);
        }
    }
    check_alive(r->cs, 3);
}

static void everyone_talks(struct relay_run *r)
{
    post_direct(r);
    for (int i = 0; i < 3; i++)
        send_next(&r->ss[i]);
    post_direct(r);
}

/* chatd, alice, bob and carol, the relay, and one client per transport
 * connected through it. */
static void relay_setup(struct relay_run *r, struct h_server *s)
{
    static const char *const users[] = { "alice", "bob", "carol", NULL };
    h_server_start(s, NULL, NULL);
    register_users(s, users);
    r->s = s;
    CHECK(h_http_login(s->port, "alice", PW, r->poster) == 200, "login alice");
    g_relay = relay_start(s->port);
    struct h_server via = *s;              /* the clients only know the relay */
    snprintf(via.url, sizeof via.url, "%s", relay_url(g_relay));
    for (int i = 0; i < 3; i++) {
        r->ss[i] = (struct sender){ .user = users[i] };
        snprintf(r->ss[i].tag, sizeof r->ss[i].tag, "%s over %s", users[i], TRANSPORTS[i]);
        r->ss[i].c = r->cs[i] = h_client_spawn(&via, TRANSPORTS[i], users[i], PW, NULL);
    }
    everyone_talks(r);
    converge(r, "start", 10000);
}

/* Nothing lost, nothing twice, anywhere; then everyone leaves. */
static void relay_finish(struct relay_run *r)
{
    int64_t dl = h_deadline(CONVERGE_MS);
    for (int i = 0; i < 3; i++)
        wait_acks(r->cs[i], (size_t)r->ss[i].sent, dl);
    json_t *feed = server_feed(r->s, r->poster);
    CHECK(json_array_size(feed) == expected_events(r), "the server's feed has %zu events, expected %zu",
          json_array_size(feed), expected_events(r));
    check_sent_once(feed, "alice", "direct", r->posted);
    for (int i = 0; i < 3; i++) {
        check_acks_in_feed(r->cs[i], r->ss[i].user, feed);
        check_sent_once(feed, r->ss[i].user, r->ss[i].tag, r->ss[i].sent);
        check_same_as_feed(r->cs[i], feed, dl);
    }
    struct relay_stats st;
    relay_get_stats(g_relay, &st);
    fprintf(stderr, "    relay: %ld connections, %ld cut on purpose\n", st.accepted, st.cuts);
    json_decref(feed);
    if (getenv("RELIABILITY_DUMP"))
        h_dump_logs();
    for (int i = 0; i < 3; i++)
        h_client_quit(r->cs[i], h_deadline(8000));
    h_server_stop(r->s);
}

static void test_relay_cuts_and_stalls(void **state)
{
    (void)state;
    struct h_server s;
    struct relay_run r = { 0 };
    relay_setup(&r, &s);

    /* 1. every connection cut, orderly (FIN), then with a reset */
    for (int rst = 0; rst <= 1; rst++) {
        relay_cut_all(g_relay, rst);
        everyone_talks(&r);
        relay_cut_all(g_relay, rst);       /* again, while they reconnect and resend */
        everyone_talks(&r);
        converge(&r, rst ? "cutting every connection with RST" : "cutting every connection", 10000);
    }

    /* 2. cut in the middle of responses: inside the status line, the headers,
     *    the body / a WebSocket frame */
    static const long cut_at[] = { 5, 60, 140, 200, 300 };
    for (size_t k = 0; k < sizeof cut_at / sizeof cut_at[0]; k++) {
        struct relay_stats before, now;
        relay_get_stats(g_relay, &before);
        relay_cut_after(g_relay, cut_at[k], 4);
        everyone_talks(&r);
        int64_t dl = h_deadline(3000);
        do {
            h_pump(20);
            relay_get_stats(g_relay, &now);
        } while (now.cuts < before.cuts + 4 && h_now_ms() < dl);
        relay_disarm(g_relay);
        char what[64];
        snprintf(what, sizeof what, "cuts after %ld bytes (%ld made)", cut_at[k], now.cuts - before.cuts);
        if (getenv("RELIABILITY_DUMP"))
            fprintf(stderr, "    %s\n", what);
        converge(&r, what, 10000);
    }

    /* 3. stalls: nothing moves while stalled, everything arrives after */
    for (int round = 0; round < 2; round++) {
        size_t seen[3];
        for (int i = 0; i < 3; i++)
            seen[i] = h_client_nevents(r.cs[i]);
        relay_stall(g_relay, RELAY_STALL);
        everyone_talks(&r);
        pump_until(h_now_ms() + 1500);
        for (int i = 0; i < 3; i++)
            CHECK(h_client_nevents(r.cs[i]) == seen[i], "%s got events through a stalled relay",
                  r.cs[i]->name);
        if (round == 1)
            relay_cut_all(g_relay, 0);     /* the stalled connections die */
        relay_stall(g_relay, RELAY_FLOW);
        converge(&r, round ? "a stall ended by cutting" : "a stall of 1.5 s", 10000);
    }

    relay_finish(&r);
    took("relay cuts and stalls");
}

/* The gateway takes requests but holds every answer for longer than the
 * clients' request time-outs (10 s for a short poll and for a send): the
 * server stores messages whose acknowledgements never arrive, the clients
 * give up, retry with the same client_msg_id, and must end with each
 * message stored once and every event shown once. */
static void test_relay_holds_answers(void **state)
{
    (void)state;
    struct h_server s;
    struct relay_run r = { 0 };
    relay_setup(&r, &s);
    size_t seen[3];
    for (int i = 0; i < 3; i++)
        seen[i] = h_client_nevents(r.cs[i]);
    relay_stall(g_relay, RELAY_STALL_DOWN);
    everyone_talks(&r);
    int64_t t = h_now_ms();
    /* the messages reach the server at once ... */
    size_t stored;
    do {
        h_pump(20);
        json_t *feed = server_feed(&s, r.poster);
        stored = json_array_size(feed);
        json_decref(feed);
    } while (stored < expected_events(&r) && h_now_ms() < t + 5000);
    CHECK(stored == expected_events(&r), "%zu of %zu messages reached the server through the relay",
          stored, expected_events(&r));
    /* ... but no answer gets back until past the clients' time-outs */
    pump_until(t + 11500);
    for (int i = 0; i < 3; i++)
        CHECK(h_client_nevents(r.cs[i]) == seen[i], "%s got events while the relay held every answer",
              r.cs[i]->name);
    relay_stall(g_relay, RELAY_FLOW);
    converge(&r, "11.5 s of held answers", 10000);
    everyone_talks(&r);
    converge(&r, "the next messages", 10000);
    relay_finish(&r);
    took("relay holds answers");
}

/* A WebSocket peer that goes silent (a dead gateway, a laptop lid) is
 * noticed: chatd pings a quiet connection every --heartbeat-s and hangs up
 * after twice that without an answer. Checked on a raw WebSocket that
 * stops reading, and on a client behind a stalled relay, which then
 * reconnects and catches up. (The client's own ping/hang-up is 30/70 s,
 * too long for this test.) */
static void test_silent_peer_dropped(void **state)
{
    (void)state;
    struct h_server s;
    static const char *const extra[] = { "--heartbeat-s", "2", NULL };
    h_server_start(&s, NULL, extra);
    static const char *const users[] = { "alice", "bob", NULL };
    register_users(&s, users);
    char alice[65];
    CHECK(h_http_login(s.port, "alice", PW, alice) == 200, "login alice");
    g_relay = relay_start(s.port);
    struct h_server via = s;
    snprintf(via.url, sizeof via.url, "%s", relay_url(g_relay));
    struct h_proc *c = h_client_spawn(&via, "websocket", "bob", PW, NULL);
    start_line(&s, alice, &c, 1);
    /* The first message may come with the start's history (protocol v1.1)
     * before the WebSocket is up: stall only a WebSocket that is. */
    wait_err_from(c, 0, "{\"state\":\"connected\"", h_deadline(10000), "the WebSocket up");

    struct h_ws *raw = h_ws_connect(s.port);
    json_t *ready = h_ws_hello(raw, alice, 0);
    json_int_t hb = json_integer_value(json_object_get(ready, "heartbeat_s"));
    json_decref(ready);
    CHECK(hb == 2, "ready announces heartbeat_s %" JSON_INTEGER_FORMAT ", started with 2", hb);

    size_t mark = c->err.len;
    relay_stall(g_relay, RELAY_STALL);
    CHECK(h_http_post_message(s.port, alice, NULL, "while bob was silent", NULL, NULL) == 201, "post");
    pump_until(h_now_ms() + 2 * hb * 1000 + 1500);   /* hang-up due after 2 x heartbeat */
    int code = h_ws_wait_close(raw, h_deadline(1000));
    h_ws_free(raw);
    CHECK(code != -2, "chatd kept a WebSocket that answered no ping for %.1f s",
          2.0 * (double)hb + 1.5);
    if (getenv("RELIABILITY_DUMP"))
        fprintf(stderr, "    the silent raw WebSocket ended with %d\n", code);
    relay_stall(g_relay, RELAY_FLOW);
    wait_err_from(c, mark, "{\"state\":\"reconnecting\"", h_deadline(5000),
                  "chatd should have hung up on it while the relay was stalled");
    json_t *feed = server_feed(&s, alice);
    check_same_as_feed(c, feed, h_deadline(10000));
    json_decref(feed);
    h_client_quit(c, h_deadline(8000));
    h_server_stop(&s);
    took("silent WebSocket peer");
}

/* ---- one user, three transports ------------------------------------------------------ */

static void test_same_user_three_transports(void **state)
{
    (void)state;
    struct h_server s;
    char bob[65];
    start_with_bob(&s, bob);
    struct sender ss[3];
    struct h_proc *cs[3];
    for (int i = 0; i < 3; i++) {
        ss[i] = (struct sender){ .user = "alice" };
        snprintf(ss[i].tag, sizeof ss[i].tag, "alice's %s instance", TRANSPORTS[i]);
        ss[i].c = cs[i] = h_client_spawn(&s, TRANSPORTS[i], "alice", PW, NULL);
    }
    start_line(&s, bob, cs, 3);
    char body[32];
    for (int k = 1; k <= 4; k++) {
        for (int i = 0; i < 3; i++)
            send_next(&ss[i]);
        snprintf(body, sizeof body, "bob #%d", k);
        CHECK(h_http_post_message(s.port, bob, NULL, body, NULL, NULL) == 201, "post %s", body);
        pump_until(h_now_ms() + 30);
    }
    int64_t dl = h_deadline(CONVERGE_MS);
    for (int i = 0; i < 3; i++)
        wait_acks(cs[i], 4, dl);
    json_t *feed = server_feed(&s, bob);
    CHECK(json_array_size(feed) == 17, "the server's feed has %zu events, expected 17", json_array_size(feed));
    check_sent_once(feed, "bob", "bob", 4);
    for (int i = 0; i < 3; i++) {
        check_sent_once(feed, "alice", ss[i].tag, 4);
        check_acks_in_feed(cs[i], "alice", feed);
        check_same_as_feed(cs[i], feed, dl);   /* so all three are identical */
    }
    json_decref(feed);
    for (int i = 0; i < 3; i++)
        h_client_quit(cs[i], h_deadline(8000));
    h_server_stop(&s);
    took("one user on three transports");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kill9_while_sending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_reconnects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relay_cuts_and_stalls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relay_holds_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_silent_peer_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_user_three_transports, setup, teardown),
    };
    if (getenv("RELIABILITY_ONLY"))        /* e.g. RELIABILITY_ONLY='test_relay*' */
        cmocka_set_test_filter(getenv("RELIABILITY_ONLY"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
