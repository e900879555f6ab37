/* test_failover.c — the client's way around a refusing proxy and a dead
 * server (scale-out issue), with real bin/chatd and bin/chat --headless:
 *
 *   - --transport auto through a relay that refuses WebSocket upgrades with
 *     403, as a proxy without WebSocket support does: the client falls back
 *     to long polling, says so ("transport":"long-poll","auto":true), keeps
 *     delivering while it tries the WebSocket again every --ws-retry-s and
 *     is refused again (with a 403, then by the relay closing the
 *     connection during the handshake), and switches to the WebSocket once
 *     the relay lets upgrades through; every message is shown once;
 *   - --transport auto straight to chatd uses the WebSocket;
 *   - --server with two URLs, the first a port nobody listens on: login and
 *     the transports (WebSocket and long poll) end up on the second;
 *   - failover: clients on server A with --server A,B; A is killed
 *     (SIGKILL); the clients go round the list (B, A, ...) while nothing
 *     answers; then B is started on the same database file on another port
 *     (SQLite: one instance at a time); the clients move to B by themselves
 *     and end with the full sequence, lines typed while no server was up
 *     included, nothing twice.
 *
 * Every wait is a deadline on something the processes print; servers get
 * free ports and temporary databases; the harness kills what is left.
 * FAILOVER_DUMP=1 prints every process's stderr after each test;
 * FAILOVER_ONLY=PATTERN runs only the tests whose names match. */
#include "relay.h"
#include "scenario.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONVERGE_MS 25000
#define WS_RETRY_S "2"           /* --ws-retry-s for the tests that wait for a retry */

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
    if (getenv("FAILOVER_DUMP"))
        h_dump_logs();
    relay_stop(g_relay);
    g_relay = NULL;
    harness_cleanup();
    return 0;
}

/* ---- helpers ---------------------------------------------------------------- */

/* A 127.0.0.1 port nobody listens on: bound to find it, then closed. */
static int unused_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
    socklen_t al = sizeof a;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) < 0)
        fail_msg("cannot find a free port");
    close(fd);
    return ntohs(a.sin_port);
}

/* Two URLs for --server, in s->url (what h_client_spawn passes). */
static void set_url_list(struct h_server *s, const char *first, const char *second)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf, "%s,%s", first, second);
    CHECK(n > 0 && (size_t)n < sizeof s->url, "URL list too long for h_server.url: %s", buf);
    memcpy(s->url, buf, (size_t)n + 1);
}

/* A state line to look for; NULL / -1 fields match anything. */
struct want_state {
    const char *state, *transport, *server;
    int is_auto;
};

static int state_matches(json_t *j, void *arg)
{
    const struct want_state *w = arg;
    const char *st = json_string_value(json_object_get(j, "state"));
    const char *tr = json_string_value(json_object_get(j, "transport"));
    const char *sv = json_string_value(json_object_get(j, "server"));
    int is_auto = json_is_true(json_object_get(j, "auto"));
    return st && strcmp(st, w->state) == 0 && (!w->transport || (tr && strcmp(tr, w->transport) == 0)) &&
           (!w->server || (sv && strcmp(sv, w->server) == 0)) && (w->is_auto < 0 || w->is_auto == is_auto);
}

static void wait_state(struct h_proc *c, size_t off, struct want_state w, int ms, const char *why)
{
    int64_t dl = h_deadline(ms);
    while (!each_err_line(c, off, state_matches, &w) && h_now_ms() < dl && !(c->exited && c->err_fd < 0))
        h_pump((int)(dl - h_now_ms()));
    CHECK(each_err_line(c, off, state_matches, &w),
          "%s: no {\"state\":\"%s\"} line with transport %s, server %s, auto %d within %d ms (%s)%s",
          c->name, w.state, w.transport ? w.transport : "any", w.server ? w.server : "any", w.is_auto, ms,
          why, c->exited ? " — the client exited" : "");
}

struct needle {
    const char *key, *text;
    int count;
};

static int count_matching(json_t *j, void *arg)
{
    struct needle *n = arg;
    const char *v = json_string_value(json_object_get(j, n->key));
    if (v && strstr(v, n->text))
        n->count++;
    return 0;
}

/* Lines {"<key>":"...<text>..."} on c's stderr from off on. */
static int count_lines(const struct h_proc *c, size_t off, const char *key, const char *text)
{
    struct needle n = { key, text, 0 };
    each_err_line(c, off, count_matching, &n);
    return n.count;
}

static void wait_lines(struct h_proc *c, size_t off, const char *key, const char *text, int n, int ms)
{
    int64_t dl = h_deadline(ms);
    while (count_lines(c, off, key, text) < n && h_now_ms() < dl && !(c->exited && c->err_fd < 0))
        h_pump((int)(dl - h_now_ms()));
    CHECK(count_lines(c, off, key, text) >= n, "%s: fewer than %d {\"%s\":\"...%s...\"} lines within %d ms",
          c->name, n, key, text, ms);
}

static void post(const struct h_server *s, const char *token, const char *body)
{
    CHECK(h_http_post_message(s->port, token, NULL, body, NULL, NULL) == 201, "post \"%s\"", body);
}

/* Every sender's lines acknowledged and stored once, and each client shows
 * exactly the server's feed (whose length is given). */
static void check_converged(const struct h_server *s, const char *token, struct sender *ss, int n,
                            size_t feed_len)
{
    int64_t dl = h_deadline(CONVERGE_MS);
    for (int i = 0; i < n; i++)
        wait_acks(ss[i].c, (size_t)ss[i].sent, dl);
    json_t *feed = h_http_get_events(s->port, token, 0);
    if (json_array_size(feed) != feed_len)
        print_events("server feed", feed);
    CHECK(json_array_size(feed) == feed_len, "the server's feed has %zu events, expected %zu",
          json_array_size(feed), feed_len);
    for (int i = 0; i < n; i++) {
        check_sent_once(feed, ss[i].user, ss[i].tag, ss[i].sent);
        check_same_as_feed(ss[i].c, feed, dl);
    }
    json_decref(feed);
}

/* ---- (a) auto through a proxy that refuses upgrades ---------------------------- */

static void test_auto_falls_back_to_long_poll(void **state)
{
    (void)state;
    struct h_server s;
    char bob[65];
    start_with_bob(&s, bob);
    g_relay = relay_start(s.port);
    relay_refuse_upgrades(g_relay, RELAY_UPGRADES_403);
    struct h_server via = s;
    snprintf(via.url, sizeof via.url, "%s", relay_url(g_relay));
    static const char *const extra[] = { "--ws-retry-s", WS_RETRY_S, NULL };
    struct sender a = { .user = "alice", .tag = "alice through the proxy" };
    a.c = h_client_spawn(&via, "auto", "alice", PW, extra);

    wait_state(a.c, 0, (struct want_state){ "connected", "long-poll", via.url, 1 }, 10000,
               "auto behind a proxy refusing upgrades");
    CHECK(count_lines(a.c, 0, "notice", "websocket refused") >= 1, "no notice about the refusal");
    /* A conversation across several WebSocket retries, each refused again. */
    int posted = 0;
    char body[64];
    for (int round = 1; round <= 3; round++) {
        snprintf(body, sizeof body, "bob #%d", ++posted);
        post(&s, bob, body);
        send_next(&a);
        send_next(&a);
        size_t want = (size_t)(posted + a.sent);
        CHECK(h_client_wait_events(a.c, want, h_deadline(10000)) >= want, "round %d: %zu of %zu events",
              round, h_client_nevents(a.c), want);
        wait_lines(a.c, 0, "notice", "trying websocket again", round, 10000);
    }
    wait_lines(a.c, 0, "notice", "websocket refused", 3, 10000);
    check_converged(&s, bob, &a, 1, (size_t)(posted + a.sent));

    /* A proxy that hangs up on the upgrade instead of answering. */
    size_t mark = a.c->err.len;
    relay_refuse_upgrades(g_relay, RELAY_UPGRADES_CLOSE);
    wait_lines(a.c, mark, "notice", "closed during the handshake", 1, 10000);
    wait_state(a.c, mark, (struct want_state){ "connected", "long-poll", via.url, 1 }, 10000,
               "the relay closed the upgrading connection");
    snprintf(body, sizeof body, "bob #%d", ++posted);
    post(&s, bob, body);
    send_next(&a);
    check_converged(&s, bob, &a, 1, (size_t)(posted + a.sent));
    struct relay_stats st;
    relay_get_stats(g_relay, &st);
    CHECK(st.refused >= 4, "the relay refused %ld upgrades, expected at least 4", st.refused);

    /* The proxy learns WebSockets: the next retry sticks. */
    mark = a.c->err.len;
    relay_refuse_upgrades(g_relay, RELAY_UPGRADES_PASS);
    wait_state(a.c, mark, (struct want_state){ "connected", "websocket", via.url, 1 }, 10000,
               "the relay lets upgrades through now");
    snprintf(body, sizeof body, "bob #%d", ++posted);
    post(&s, bob, body);
    send_next(&a);
    check_converged(&s, bob, &a, 1, (size_t)(posted + a.sent));
    fprintf(stderr, "    %ld upgrades refused, %d + %d messages\n", st.refused, posted, a.sent);
    h_client_quit(a.c, h_deadline(8000));
    CHECK(strstr(a.c->err.data, "{\"stats\":{\"transport\":\"websocket\""),
          "the stats line does not name the websocket transport");
    h_server_stop(&s);
    took("auto falls back to long-poll and back");
}

/* ---- (b) auto with nothing in the way ------------------------------------------- */

static void test_auto_direct_uses_websocket(void **state)
{
    (void)state;
    struct h_server s;
    char bob[65];
    start_with_bob(&s, bob);
    struct sender a = { .user = "alice", .tag = "alice direct" };
    a.c = h_client_spawn(&s, "auto", "alice", PW, NULL);
    wait_state(a.c, 0, (struct want_state){ "connected", "websocket", s.url, 1 }, 10000, "auto, no proxy");
    post(&s, bob, "bob #1");
    send_next(&a);
    check_converged(&s, bob, &a, 1, 2);
    CHECK(count_lines(a.c, 0, "notice", "refused") == 0, "a refusal was reported without a proxy");
    CHECK(!each_err_line(a.c, 0, state_matches, &(struct want_state){ "connected", "long-poll", NULL, -1 }),
          "auto used long-poll without a reason");
    h_client_quit(a.c, h_deadline(8000));
    h_server_stop(&s);
    took("auto uses websocket");
}

/* ---- (c) the first URL refuses connections ------------------------------------- */

static void test_first_url_unreachable(void **state)
{
    (void)state;
    struct h_server s;
    char bob[65];
    start_with_bob(&s, bob);
    struct h_server two = s;
    char dead[64];
    snprintf(dead, sizeof dead, "http://127.0.0.1:%d", unused_port());
    set_url_list(&two, dead, s.url);
    static const char *const transports[] = { "websocket", "long-poll" };
    static const char *const users[] = { "alice", "bob" };
    struct sender ss[2];
    for (int i = 0; i < 2; i++) {
        ss[i] = (struct sender){ .user = users[i] };
        snprintf(ss[i].tag, sizeof ss[i].tag, "%s over %s", users[i], transports[i]);
        ss[i].c = h_client_spawn(&two, transports[i], users[i], PW, NULL);
    }
    for (int i = 0; i < 2; i++)
        wait_state(ss[i].c, 0, (struct want_state){ "connected", transports[i], s.url, 0 }, 10000,
                   "the first URL refuses connections");
    for (int i = 0; i < 2; i++) {
        CHECK(count_lines(ss[i].c, 0, "notice", "failed; trying") >= 1, "%s: no notice of the move",
              ss[i].c->name);
        send_next(&ss[i]);
    }
    post(&s, bob, "bob #1");
    check_converged(&s, bob, ss, 2, 3);
    for (int i = 0; i < 2; i++)
        h_client_quit(ss[i].c, h_deadline(8000));
    h_server_stop(&s);
    took("first URL unreachable");
}

/* ---- (d) server A dies, B takes over its database --------------------------------- */

static void test_failover_to_second_server(void **state)
{
    (void)state;
    struct h_server a;
    h_server_start(&a, NULL, NULL);
    static const char *const users[] = { "alice", "bob", "carol", NULL };
    register_users(&a, users);
    char carol[65];
    CHECK(h_http_login(a.port, "carol", PW, carol) == 200, "login carol");
    int b_port = unused_port();
    struct h_server list = a;
    char b_url[64];
    snprintf(b_url, sizeof b_url, "http://127.0.0.1:%d", b_port);
    set_url_list(&list, a.url, b_url);
    static const char *const transports[] = { "websocket", "long-poll" };
    struct sender ss[2];
    for (int i = 0; i < 2; i++) {
        ss[i] = (struct sender){ .user = users[i] };
        snprintf(ss[i].tag, sizeof ss[i].tag, "%s over %s", users[i], transports[i]);
        ss[i].c = h_client_spawn(&list, transports[i], users[i], PW, NULL);
    }
    int posted = 0;
    post(&a, carol, "carol #1");
    posted++;
    for (int i = 0; i < 2; i++) {
        wait_state(ss[i].c, 0, (struct want_state){ "connected", transports[i], a.url, 0 }, 10000, "on A");
        send_next(&ss[i]);
        send_next(&ss[i]);
    }
    check_converged(&a, carol, ss, 2, (size_t)(posted + ss[0].sent + ss[1].sent));

    size_t mark[2];
    for (int i = 0; i < 2; i++)
        mark[i] = ss[i].c->err.len;
    h_server_kill(&a);                              /* SIGKILL */
    for (int i = 0; i < 2; i++) {
        send_next(&ss[i]);                        /* typed while no server is up */
        send_next(&ss[i]);
    }
    for (int i = 0; i < 2; i++) {
        wait_state(ss[i].c, mark[i], (struct want_state){ "reconnecting", NULL, NULL, -1 }, 10000,
                   "A was killed");
        /* A -> B, B (down too) -> A, A -> B: round robin over dead servers */
        wait_lines(ss[i].c, mark[i], "notice", "failed; trying", 3, 10000);
    }
    struct h_server b = a;                        /* same database file, B's port */
    b.proc = NULL;
    b.port = b_port;
    h_server_start_same_port(&b);
    CHECK(strcmp(b.url, b_url) == 0, "B listens on %s, not on %s", b.url, b_url);
    post(&b, carol, "carol #2 on B");             /* carol's session lives in the database */
    posted++;
    for (int i = 0; i < 2; i++)
        wait_state(ss[i].c, mark[i], (struct want_state){ "connected", transports[i], b.url, 0 }, 20000,
                   "B took over A's database");
    for (int i = 0; i < 2; i++)
        send_next(&ss[i]);
    check_converged(&b, carol, ss, 2, (size_t)(posted + ss[0].sent + ss[1].sent));
    fprintf(stderr, "    %d + %d lines typed, 2 of each while no server was up\n", ss[0].sent, ss[1].sent);
    for (int i = 0; i < 2; i++)
        h_client_quit(ss[i].c, h_deadline(8000));
    h_server_stop(&b);
    took("failover from A to B");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_auto_falls_back_to_long_poll, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auto_direct_uses_websocket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_url_unreachable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failover_to_second_server, setup, teardown),
    };
    if (getenv("FAILOVER_ONLY"))        /* e.g. FAILOVER_ONLY='test_auto*' */
        cmocka_set_test_filter(getenv("FAILOVER_ONLY"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
