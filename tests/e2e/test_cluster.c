/* test_cluster.c — several chatd instances on one PostgreSQL database behind
 * HAProxy (deploy/haproxy.cfg.in), with real bin/chatd and bin/chat
 * --headless processes. Needs CHAT_TEST_PG (scripts/with-pg.sh sets it;
 * `make test-cluster`); without it every test is skipped (fails with
 * CHAT_TEST_PG_REQUIRED set).
 *
 *   - failover, on each transport: alice and bob, connected through the
 *     balancer, type lines continuously; the instance holding most of their
 *     sessions is SIGKILLed, then brought back, then the other one is
 *     killed, so every client loses the instance serving it once. Each
 *     client reconnects through the balancer to the survivor and ends with
 *     exactly the server's event sequence: every typed line stored once and
 *     in order, including the lines typed while reconnecting;
 *   - the concurrency gap: bursts of concurrent POST /messages on both
 *     instances at once (ids are taken by concurrent transactions that
 *     commit in any order) while readers long-poll and hold WebSockets on
 *     each instance: each reader's id sequence equals the committed feed —
 *     no gap, no reordering, no duplicate;
 *   - a transfer storm over both instances (idempotency keys, some requests
 *     retried on the other instance), with one instance SIGKILLed in the
 *     middle: the survivor finishes the orphans; money is conserved, no
 *     balance is negative, every transfer is processed once (one pending,
 *     one processing, one completed-or-failed alert for the sender, one
 *     received alert for the recipient of a completed one), and a retried
 *     key always names the same transfer;
 *   - presence across instances: bob's client (through the balancer) and
 *     carol's WebSocket (to that instance only) are online to alice on the
 *     other instance; their instance is SIGKILLed: the survivor shows
 *     carol offline within the lease plus its renewal period
 *     (--presence-lease-ms), while bob, whose client fails over through
 *     the balancer within the grace, is never shown offline; carol is
 *     online again once she reconnects through the balancer;
 *   - the login throttle behind the balancer: a guesser (from 127.0.0.2,
 *     which HAProxy names in X-Forwarded-For) is delayed on every
 *     instance, and the owner's login through the same balancer (from
 *     127.0.0.3) is not: chatd trusts HAProxy (--trusted-proxy 127.0.0.1)
 *     and keys on the client it names, not on HAProxy's own address;
 *   - rooms across instances: a room made on one instance and joined on the
 *     other; its message sent on the first reaches the member on the
 *     second and not a non-member there.
 *
 * Every wait is a deadline; every port is a free one; harness_cleanup kills
 * whatever is left. CLUSTER_DUMP=1 prints every process's stderr at the end
 * of a test; CLUSTER_ONLY=PATTERN runs only the tests whose names match. */
#include "scenario.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEND_EVERY_MS 40
#define CONVERGE_MS 20000
#define START_CENTS 100000

static int setup(void **state)
{
    (void)state;
    harness_init();
    took_start();
    return 0;
}

/* Every test starts with this: without PostgreSQL there is no cluster. */
static void need_pg(void)
{
    h_need_pg("a cluster");
}

static int teardown(void **state)
{
    (void)state;
    if (getenv("CLUSTER_DUMP"))
        h_dump_logs();
    harness_cleanup();
    return 0;
}

/* ---- helpers ---------------------------------------------------------------- */


static void register_login(int port, const char *user, char *token)
{
    CHECK(h_http_register(port, user, PW) == 201, "register %s: expected 201", user);
    CHECK(h_http_login(port, user, PW, token) == 200, "login %s: expected 200", user);
}

/* A feed's ids must increase strictly (PROTOCOL.md): says where not. */
static void check_feed_order(const json_t *feed, const char *what)
{
    json_int_t prev = 0;
    size_t i, bad = 0;
    json_t *ev;
    json_array_foreach(feed, i, ev) {
        json_int_t id = ev_int(ev, "id");
        if (id <= prev && bad++ < 5)
            fprintf(stderr, "%s: event #%zu has id %" JSON_INTEGER_FORMAT " after id %" JSON_INTEGER_FORMAT
                    " (%s)\n", what, i, id, prev, id == prev ? "a duplicate" : "out of order");
        prev = id > prev ? id : prev;
    }
    CHECK(!bad, "%s: %zu events of %zu break the strictly increasing id order (see above)", what, bad,
          json_array_size(feed));
}

/* Compares a reader's id sequence with the feed's and says where and how
 * they first differ (NULL if equal). */
static const char *id_mismatch(const struct h_proc *c, const json_t *feed, size_t *at, char *why, size_t len)
{
    size_t got = h_client_nevents(c), want = json_array_size(feed);
    for (size_t i = 0; i < got || i < want; i++) {
        json_int_t a = i < got ? ev_int(h_client_event(c, i), "id") : -1;
        json_int_t b = i < want ? ev_int(json_array_get(feed, i), "id") : -1;
        if (a == b)
            continue;
        *at = i;
        if (a < 0)
            snprintf(why, len, "ends after %zu events; the feed goes on with id %" JSON_INTEGER_FORMAT, got, b);
        else if (b < 0)
            snprintf(why, len, "has %zu events, more than the feed's %zu (extra id %" JSON_INTEGER_FORMAT ")",
                     got, want, a);
        else
            snprintf(why, len, "event #%zu is id %" JSON_INTEGER_FORMAT ", the feed has id %" JSON_INTEGER_FORMAT
                     " there (%s)", i, a, b, a > b ? "a gap: it skipped an id" : "reordered or repeated");
        return why;
    }
    return NULL;
}

/* ---- failover, per transport --------------------------------------------------- */

static size_t total_sent(const struct sender *ss, int n)
{
    size_t t = 0;
    for (int i = 0; i < n; i++)
        t += (size_t)ss[i].sent;
    return t;
}

/* Waits until every client shows want events; fails naming who lags,
 * after printing what it has and the server's raw answer from its cursor. */
static void catch_up(struct sender *ss, int n, size_t want, int64_t dl, const char *after, int port,
                     const char *tok)
{
    for (int i = 0; i < n; i++) {
        size_t got = h_client_wait_events(ss[i].c, want, dl);
        if (got < want) {
            print_events(ss[i].c->name, ss[i].c->events);
            char path[96];
            snprintf(path, sizeof path, "/api/v1/events?after=%lld&wait=0&limit=100",
                     got ? (long long)ev_int(h_client_event(ss[i].c, got - 1), "id") : 0LL);
            struct h_http_resp r;
            h_http_call(port, "GET", path, tok, NULL, 0, &r);
            fprintf(stderr, "GET %s through the balancer: %d %s\n", path, r.status, r.body);
            h_http_resp_free(&r);
        }
        CHECK(got >= want, "%s: %zu of %zu events %s%s", ss[i].c->name, got, want, after,
              ss[i].c->exited ? " (it exited)" : "");
    }
}

static void failover(const char *transport)
{
    need_pg();
    static const char *const extra[] = { "--login-rate", "1000", "--trusted-proxy", "127.0.0.1", NULL };
    struct h_cluster c;
    h_cluster_start(&c, 2, extra);
    char alice[65], bob[65];
    register_login(c.front.port, "alice", alice);
    register_login(c.front.port, "bob", bob);

    struct sender ss[2] = { { .user = "alice" }, { .user = "bob" } };
    for (int i = 0; i < 2; i++) {
        snprintf(ss[i].tag, sizeof ss[i].tag, "%s over %s", ss[i].user, transport);
        ss[i].c = h_client_spawn(&c.front, transport, ss[i].user, PW, NULL);
    }
    CHECK(h_http_post_message(c.front.port, alice, NULL, "start", NULL, NULL) == 201, "post start");
    catch_up(ss, 2, 1, h_deadline(10000), "within 10 s of the start (both instances up)", c.front.port, alice);
    send_for(ss, 2, 400, SEND_EVERY_MS);
    catch_up(ss, 2, 1 + total_sent(ss, 2), h_deadline(10000), "before any kill", c.front.port, alice);

    int first = -1;
    for (int round = 0; round < 2; round++) {
        int victim = round == 0 ? h_cluster_busiest(&c) : 1 - first;
        if (victim < 0)
            victim = 0;
        if (round == 0)
            first = victim;
        int sess[2] = { 0, 0 };
        for (int i = 0; i < 2; i++)
            h_haproxy_backend(&c.lb, i, &sess[i]);
        size_t mark[2] = { ss[0].c->err.len, ss[1].c->err.len };
        h_cluster_kill(&c, victim);
        int64_t t_kill = h_now_ms();
        send_for(ss, 2, 600, SEND_EVERY_MS);              /* typed while they reconnect */
        catch_up(ss, 2, 1 + total_sent(ss, 2), h_deadline(CONVERGE_MS), "after the kill", c.front.port, alice);
        int64_t t_back = h_now_ms();
        fprintf(stderr, "    %s: killed instance %d (balancer sessions %d/%d); all caught up %lld ms later;"
                " reconnected: alice %s, bob %s\n", transport, victim, sess[0], sess[1],
                (long long)(t_back - t_kill), err_has_from(ss[0].c, mark[0], "\"reconnecting\"") ? "yes" : "no",
                err_has_from(ss[1].c, mark[1], "\"reconnecting\"") ? "yes" : "no");
        if (round == 0) {
            h_cluster_revive(&c, victim);
            send_for(ss, 2, 300, SEND_EVERY_MS);
            catch_up(ss, 2, 1 + total_sent(ss, 2), h_deadline(CONVERGE_MS), "after the restart", c.front.port, alice);
        }
    }

    int64_t dl = h_deadline(CONVERGE_MS);
    for (int i = 0; i < 2; i++)
        wait_acks(ss[i].c, (size_t)ss[i].sent, dl);
    json_t *feed = feed_all(c.front.port, alice);
    check_feed_order(feed, "the survivor's feed");
    CHECK(json_array_size(feed) == 1 + total_sent(ss, 2), "the feed has %zu events, expected \"start\" and "
          "the %zu lines typed", json_array_size(feed), total_sent(ss, 2));
    for (int i = 0; i < 2; i++)
        check_sent_once(feed, ss[i].user, ss[i].tag, ss[i].sent);
    for (int i = 0; i < 2; i++)
        check_same_as_feed(ss[i].c, feed, dl);
    fprintf(stderr, "    %s: %d + %d lines across two kills\n", transport, ss[0].sent, ss[1].sent);
    json_decref(feed);
    for (int i = 0; i < 2; i++)
        h_client_quit(ss[i].c, h_deadline(8000));
    h_cluster_stop(&c);
}

static void test_failover_short_poll(void **state)
{
    (void)state;
    failover("short-poll");
    took("failover, short-poll");
}

static void test_failover_long_poll(void **state)
{
    (void)state;
    failover("long-poll");
    took("failover, long-poll");
}

static void test_failover_websocket(void **state)
{
    (void)state;
    failover("websocket");
    took("failover, websocket");
}

/* The event stream through HAProxy: an HTTP answer that never ends, kept
 * by the heartbeat comments within the balancer's 60 s timeouts. */
static void test_failover_sse(void **state)
{
    (void)state;
    failover("sse");
    took("failover, sse");
}

/* ---- concurrent writers on both instances: no gap -------------------------------- */

#define GAP_WRITERS 4
#define GAP_ROUNDS 20
#define GAP_BURST 32                       /* requests per round, half per instance */
#define GAP_READERS 5

static void test_no_gap_concurrent_writers(void **state)
{
    (void)state;
    need_pg();
    static const char *const extra[] = { "--msg-rate", "100000", "--login-rate", "1000",
                                         "--max-connections-per-ip", "100000",
                                         "--trusted-proxy", "127.0.0.1", NULL };
    struct h_cluster c;
    h_cluster_start(&c, 2, extra);
    char reader[65], wtok[GAP_WRITERS][65];
    register_login(c.inst[0].port, "reader", reader);
    for (int w = 0; w < GAP_WRITERS; w++) {
        char u[24];
        snprintf(u, sizeof u, "writer%d", w);
        register_login(c.inst[w % 2].port, u, wtok[w]);
    }

    /* Readers on each instance directly, on both pushing transports, and
     * one through the balancer. */
    struct { const struct h_server *s; const char *t; } rd[GAP_READERS] = {
        { &c.inst[0], "long-poll" }, { &c.inst[1], "long-poll" },
        { &c.inst[0], "websocket" }, { &c.inst[1], "websocket" },
        { &c.front, "long-poll" },
    };
    struct h_proc *r[GAP_READERS];
    for (int i = 0; i < GAP_READERS; i++)
        r[i] = h_client_spawn(rd[i].s, rd[i].t, "reader", PW, NULL);
    CHECK(h_http_post_message(c.inst[0].port, reader, NULL, "ready on 0", NULL, NULL) == 201, "post");
    CHECK(h_http_post_message(c.inst[1].port, reader, NULL, "ready on 1", NULL, NULL) == 201, "post");
    int64_t dl = h_deadline(10000);
    for (int i = 0; i < GAP_READERS; i++)
        CHECK(h_client_wait_events(r[i], 2, dl) == 2, "reader %d (%s on %s) did not show both instances' first "
              "message within 10 s", i, rd[i].t, rd[i].s->url);

    static struct h_req reqs[GAP_BURST];
    static struct h_http_resp resp[GAP_BURST];
    static char bodies[GAP_BURST][96];
    int posted = 0;
    int64_t t0 = h_now_ms();
    for (int round = 0; round < GAP_ROUNDS; round++) {
        for (int k = 0; k < GAP_BURST; k++) {
            snprintf(bodies[k], sizeof bodies[k], "{\"body\":\"r%d m%d\",\"client_msg_id\":\"g-%d-%d\"}", round, k,
                     round, k);
            reqs[k] = (struct h_req){ c.inst[k % 2].port, "POST", "/api/v1/messages", wtok[k % GAP_WRITERS],
                                      bodies[k] };
        }
        int got = h_http_call_many(reqs, GAP_BURST, resp, 20000);
        for (int k = 0; k < GAP_BURST; k++) {
            int st = resp[k].status;
            char b[200];
            snprintf(b, sizeof b, "%s", resp[k].body ? resp[k].body : "");
            h_http_resp_free(&resp[k]);
            CHECK(st == 201, "round %d, message %d to instance %d: expected 201, got %d %s (%d answers)", round,
                  k, k % 2, st, b, got);
        }
        posted += GAP_BURST;
        h_pump(0);
    }
    int64_t t1 = h_now_ms();
    size_t total = 2 + (size_t)posted;

    dl = h_deadline(CONVERGE_MS);
    for (int i = 0; i < GAP_READERS; i++)
        h_client_wait_events(r[i], total, dl);
    h_pump(100);                           /* anything extra would show up now */
    json_t *f0 = feed_all(c.inst[0].port, reader), *f1 = feed_all(c.inst[1].port, reader);
    check_feed_order(f0, "instance 0's feed");
    check_feed_order(f1, "instance 1's feed");
    CHECK(json_equal(f0, f1), "the two instances list different feeds (%zu and %zu events)", json_array_size(f0),
          json_array_size(f1));
    CHECK(json_array_size(f0) == total, "the feed has %zu events, %zu were posted", json_array_size(f0), total);
    int bad = 0;
    for (int i = 0; i < GAP_READERS; i++) {
        char why[256];
        size_t at = 0;
        if (id_mismatch(r[i], f0, &at, why, sizeof why)) {
            fprintf(stderr, "reader %d (%s on %s): %s\n", i, rd[i].t, rd[i].s->url, why);
            bad++;
        }
    }
    if (bad) {
        print_events("committed feed", f0);
        for (int i = 0; i < GAP_READERS; i++)
            print_events(r[i]->name, r[i]->events);
    }
    CHECK(!bad, "%d of %d readers did not get exactly the committed sequence (see above)", bad, GAP_READERS);
    for (int i = 0; i < GAP_READERS; i++)
        check_same_as_feed(r[i], f0, dl);
    fprintf(stderr, "    %d messages in %d bursts of %d over two instances in %lld ms; %d readers exact\n",
            posted, GAP_ROUNDS, GAP_BURST, (long long)(t1 - t0), GAP_READERS);
    json_decref(f0);
    json_decref(f1);
    for (int i = 0; i < GAP_READERS; i++)
        h_client_quit(r[i], h_deadline(8000));
    h_cluster_stop(&c);
    took("no gap under concurrent writers");
}

/* ---- a transfer storm with a kill ------------------------------------------------ */

#define NU 6                               /* users */
#define NT 48                              /* transfers */

struct xfer {
    int from, to;
    json_int_t cents;
    char key[32];
    json_int_t id;                         /* 0 until an answer named it */
    char status[16];
};

static char *xfer_body(const struct xfer *x, const char *const *users)
{
    json_t *o = json_pack("{s:s,s:I,s:s}", "to", users[x->to], "amount_cents", x->cents, "idempotency_key", x->key);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

/* Posts transfers idx[0..n) to ports[0..n) at once; records or checks the
 * transfer ids. Answers that did not come (a dead instance) are allowed
 * when allow_lost. */
static void post_xfers(struct xfer *xs, const int *idx, const int *ports, int n, char tok[][65],
                       const char *const *users, int allow_lost, const char *what)
{
    struct h_req *reqs = calloc((size_t)n, sizeof *reqs);
    struct h_http_resp *resp = calloc((size_t)n, sizeof *resp);
    char **bodies = calloc((size_t)n, sizeof *bodies);
    for (int k = 0; k < n; k++) {
        struct xfer *x = &xs[idx[k]];
        bodies[k] = xfer_body(x, users);
        reqs[k] = (struct h_req){ ports[k], "POST", "/api/v1/transfers", tok[x->from], bodies[k] };
    }
    h_http_call_many(reqs, n, resp, 20000);
    for (int k = 0; k < n; k++) {
        struct xfer *x = &xs[idx[k]];
        int st = resp[k].status;
        json_int_t id = ev_int(resp[k].json, "transfer_id");
        char b[200];
        snprintf(b, sizeof b, "%s", resp[k].body ? resp[k].body : "");
        h_http_resp_free(&resp[k]);
        free(bodies[k]);
        if (st == 0 && allow_lost)
            continue;
        CHECK((st == 202 || st == 200) && id > 0, "%s: transfer %s to port %d: expected 202 with a transfer_id, "
              "got %d %s", what, x->key, ports[k], st, b);
        CHECK(!x->id || x->id == id, "%s: idempotency key %s named transfer %" JSON_INTEGER_FORMAT " before, now "
              "%" JSON_INTEGER_FORMAT, what, x->key, x->id, id);
        x->id = id;
    }
    free(reqs);
    free(resp);
    free(bodies);
}

static void test_transfer_storm_with_kill(void **state)
{
    (void)state;
    need_pg();
    static const char *const extra[] = { "--transfer-delay-ms", "300", "--login-rate", "1000",
                                         "--max-connections-per-ip", "100000",
                                         "--trusted-proxy", "127.0.0.1", NULL };
    static const char *const users[NU] = { "u0", "u1", "u2", "u3", "u4", "u5" };
    struct h_cluster c;
    h_cluster_start(&c, 2, extra);
    char tok[NU][65];
    for (int u = 0; u < NU; u++)
        register_login(c.inst[u % 2].port, users[u], tok[u]);

    /* The plan: fixed pseudo-random parties and amounts (5.00-700.00), so
     * that some transfers find too little money and fail. */
    struct xfer xs[NT];
    unsigned seed = 12345;
    for (int i = 0; i < NT; i++) {
        memset(&xs[i], 0, sizeof xs[i]);
        xs[i].from = (int)(rand_r(&seed) % NU);
        xs[i].to = (xs[i].from + 1 + (int)(rand_r(&seed) % (NU - 1))) % NU;
        xs[i].cents = 500 + (json_int_t)(rand_r(&seed) % 70000);
        snprintf(xs[i].key, sizeof xs[i].key, "storm-%d", i);
    }
    int idx[NT], ports[NT], n;

    /* 1. the first half, spread over both instances */
    for (n = 0; n < NT / 2; n++) {
        idx[n] = n;
        ports[n] = c.inst[n % 2].port;
    }
    post_xfers(xs, idx, ports, n, tok, users, 0, "first half");
    /* 2. every third of them again, on the other instance, while they run */
    int m = 0;
    for (int i = 0; i < NT / 2; i += 3) {
        idx[m] = i;
        ports[m++] = c.inst[1 - i % 2].port;
    }
    post_xfers(xs, idx, ports, m, tok, users, 0, "retried on the other instance");
    /* 3. instance 1 dies with its transfers pending or processing */
    h_cluster_kill(&c, 1);
    int64_t t_kill = h_now_ms();
    /* 4. the second half through the balancer and straight to the survivor,
     *    and every transfer instance 1 took retried through the balancer */
    n = 0;
    for (int i = NT / 2; i < NT; i++) {
        idx[n] = i;
        ports[n++] = i % 2 ? c.front.port : c.inst[0].port;
    }
    for (int i = 1; i < NT / 2; i += 2) {
        idx[n] = i;
        ports[n++] = c.front.port;
    }
    post_xfers(xs, idx, ports, n, tok, users, 0, "after the kill");
    /* 5. the second half once more through the balancer */
    n = 0;
    for (int i = NT / 2; i < NT; i += 2) {
        idx[n] = i;
        ports[n++] = c.front.port;
    }
    post_xfers(xs, idx, ports, n, tok, users, 0, "second half retried");

    for (int i = 0; i < NT; i++)
        for (int j = 0; j < i; j++)
            CHECK(xs[i].id != xs[j].id, "keys %s and %s name the same transfer %" JSON_INTEGER_FORMAT, xs[i].key,
                  xs[j].key, xs[i].id);

    /* Every transfer ends, including those instance 1 left behind. */
    int64_t dl = h_deadline(40000);
    int done = 0;
    while (done < NT) {
        done = 0;
        for (int i = 0; i < NT; i++) {
            if (strcmp(xs[i].status, "completed") == 0 || strcmp(xs[i].status, "failed") == 0) {
                done++;
                continue;
            }
            char path[64];
            snprintf(path, sizeof path, "/api/v1/transfers/%" JSON_INTEGER_FORMAT, xs[i].id);
            struct h_http_resp r;
            h_http_call(c.front.port, "GET", path, tok[xs[i].from], NULL, 0, &r);
            CHECK(r.status == 200, "GET %s: expected 200, got %d %s", path, r.status, r.body);
            snprintf(xs[i].status, sizeof xs[i].status, "%s", ev_str(r.json, "status"));
            h_http_resp_free(&r);
        }
        if (done < NT) {
            if (h_now_ms() >= dl) {
                for (int i = 0; i < NT; i++)
                    fprintf(stderr, "  %s: transfer %" JSON_INTEGER_FORMAT " %s\n", xs[i].key, xs[i].id,
                            xs[i].status);
                CHECK(0, "%d of %d transfers finished within 40 s of the kill: the survivor did not finish the "
                      "orphans", done, NT);
            }
            h_pump(200);
        }
    }
    int64_t t_done = h_now_ms();

    /* Money: conserved, never negative, and what the outcomes say. */
    json_int_t want[NU], sum = 0;
    int completed = 0;
    for (int u = 0; u < NU; u++)
        want[u] = START_CENTS;
    for (int i = 0; i < NT; i++)
        if (strcmp(xs[i].status, "completed") == 0) {
            want[xs[i].from] -= xs[i].cents;
            want[xs[i].to] += xs[i].cents;
            completed++;
        }
    for (int u = 0; u < NU; u++) {
        struct h_http_resp r;
        h_http_call(c.front.port, "GET", "/api/v1/account", tok[u], NULL, 0, &r);
        json_int_t bal = ev_int(r.json, "balance_cents");
        int st = r.status;
        h_http_resp_free(&r);
        CHECK(st == 200, "GET /api/v1/account as %s: %d", users[u], st);
        CHECK(bal >= 0, "%s has a negative balance: %" JSON_INTEGER_FORMAT, users[u], bal);
        CHECK(bal == want[u], "%s has %" JSON_INTEGER_FORMAT " cents; the completed transfers say %"
              JSON_INTEGER_FORMAT, users[u], bal, want[u]);
        sum += bal;
    }
    CHECK(sum == NU * START_CENTS, "money not conserved: %" JSON_INTEGER_FORMAT " cents in all, expected %d", sum,
          NU * START_CENTS);

    /* Each transfer processed once: one alert per step. */
    json_t *feeds[NU];
    for (int u = 0; u < NU; u++)
        feeds[u] = feed_all(c.front.port, tok[u]);
    int bad = 0;
    for (int i = 0; i < NT; i++) {
        const struct xfer *x = &xs[i];
        int ok_ = strcmp(x->status, "completed") == 0;
        size_t pend = count_alerts(feeds[x->from], "transfer.pending", x->id);
        size_t proc = count_alerts(feeds[x->from], "transfer.processing", x->id);
        size_t comp = count_alerts(feeds[x->from], "transfer.completed", x->id);
        size_t fail = count_alerts(feeds[x->from], "transfer.failed", x->id);
        size_t recv = count_alerts(feeds[x->to], "transfer.received", x->id);
        if (pend != 1 || proc != 1 || comp != (size_t)ok_ || fail != (size_t)!ok_ || recv != (size_t)ok_) {
            fprintf(stderr, "transfer %s (%" JSON_INTEGER_FORMAT ", %s -> %s, %" JSON_INTEGER_FORMAT " cents, %s): "
                    "pending %zu, processing %zu, completed %zu, failed %zu, received %zu alerts\n", x->key, x->id,
                    users[x->from], users[x->to], x->cents, x->status, pend, proc, comp, fail, recv);
            bad++;
        }
    }
    CHECK(!bad, "%d of %d transfers do not have exactly one alert per step (see above)", bad, NT);
    for (int u = 0; u < NU; u++)
        json_decref(feeds[u]);
    fprintf(stderr, "    %d transfers (%d completed, %d failed), instance 1 killed mid-storm; all finished %lld ms "
            "after the kill\n", NT, completed, NT - completed, (long long)(t_done - t_kill));
    h_cluster_stop(&c);
    took("transfer storm with a kill");
}

/* Waits for {"op":"presence","user":user,"online":online} on w: 1 if it
 * came by deadline. */
static int saw_presence(struct h_ws *w, const char *user, int online, int64_t deadline)
{
    json_t *j;
    while ((j = h_ws_recv_op(w, "presence", deadline)) != NULL) {
        int match = !strcmp(ev_str(j, "user"), user) && json_is_true(json_object_get(j, "online")) == online;
        json_decref(j);
        if (match)
            return 1;
    }
    return 0;
}

#define P_GRACE 5000
#define P_LEASE 3000

static struct h_ws *presence_ws(int port, const char *tok)
{
    struct h_ws *w = h_ws_connect(port);
    json_decref(h_ws_hello(w, tok, 0));
    w->keep_ephemeral = 1;
    return w;
}

static void test_presence_instance_killed(void **state)
{
    (void)state;
    need_pg();
    static const char *const extra[] = { "--presence-grace-ms", "5000", "--presence-lease-ms", "3000", NULL };
    struct h_cluster c;
    h_cluster_start(&c, 2, extra);
    char alice[65], bob[65], carol[65];
    register_login(c.front.port, "alice", alice);
    register_login(c.front.port, "bob", bob);
    register_login(c.front.port, "carol", carol);
    /* bob's client first: the instance it lands on is the victim */
    struct h_proc *b = h_client_spawn(&c.front, "websocket", "bob", PW, NULL);
    wait_err_from(b, 0, "\"state\":\"connected\"", h_deadline(10000), "bob's client connects");
    int victim = h_cluster_busiest(&c), other = 1 - victim;
    struct h_ws *a = presence_ws(c.inst[other].port, alice);
    struct h_ws *cw = presence_ws(c.inst[victim].port, carol);
    CHECK(saw_presence(a, "carol", 1, h_deadline(5000)), "carol on one instance: not online to alice on the other");
    struct h_http_resp r;
    h_http_call(c.inst[other].port, "GET", "/api/v1/rooms/general/presence", alice, NULL, 0, &r);
    char *online = h_json_str(r.json);
    CHECK(r.status == 200 && strstr(online, "\"bob\"") && strstr(online, "\"carol\""),
          "the survivor-to-be lists %s, expected bob and carol", online);
    free(online);
    h_http_resp_free(&r);
    size_t err_off = b->err.len;
    int64_t t0 = h_now_ms();
    h_cluster_kill(&c, victim);
    int bound = P_LEASE + P_LEASE / 6 + 1500;
    json_t *j;
    int carol_off = 0, bob_off = 0;
    int64_t dl = h_deadline(bound + 5000);
    while (!carol_off && (j = h_ws_recv_op(a, "presence", dl)) != NULL) {
        int off = !json_is_true(json_object_get(j, "online"));
        carol_off |= off && !strcmp(ev_str(j, "user"), "carol");
        bob_off |= off && !strcmp(ev_str(j, "user"), "bob");
        json_decref(j);
    }
    int64_t after = h_now_ms() - t0;
    CHECK(carol_off, "carol's instance was killed: the survivor never showed her offline");
    fprintf(stderr, "    carol offline on the survivor %lld ms after the kill (bound %d ms)\n",
            (long long)after, bound);
    CHECK(after <= bound, "carol offline %lld ms after the kill, over the bound %d ms", (long long)after, bound);
    wait_err_from(b, err_off, "\"state\":\"connected\"", h_deadline(10000), "bob's client fails over");
    CHECK(!bob_off && !saw_presence(a, "bob", 0, h_deadline(P_GRACE)),
          "bob's client failed over within the grace, yet alice saw him offline");
    h_ws_free(cw);
    cw = presence_ws(c.front.port, carol);      /* through the balancer: the survivor */
    CHECK(saw_presence(a, "carol", 1, h_deadline(5000)), "carol reconnected through the survivor: not online");
    h_client_quit(b, h_deadline(5000));
    h_ws_free(cw);
    h_ws_free(a);
    h_cluster_stop(&c);
    took("presence with an instance killed");
}

/* Failures from one client through the balancer must not delay another
 * client's right password through it. Each instance throttles on its own
 * (in memory), so the guesser goes on until both delay it (round robin:
 * two 429s in a row); then the owner logs in through each. */
static void test_login_throttle_per_client(void **state)
{
    (void)state;
    need_pg();
    static const char *const extra[] = { "--login-rate", "2", "--trusted-proxy", "127.0.0.1", NULL };
    struct h_cluster c;
    h_cluster_start(&c, 2, extra);
    char tok[65];
    CHECK(h_http_register(c.front.port, "alice", PW) == 201, "register alice");
    h_set_source_addr("127.0.0.2");
    int in_a_row = 0, tries = 0;
    while (in_a_row < 2) {
        CHECK(++tries <= 20, "the guesser was never delayed on both instances (%d tries)", tries - 1);
        int st = h_http_login(c.front.port, "alice", "wrong password", tok);
        CHECK(st == 401 || st == 429, "a wrong guess got %d", st);
        in_a_row = st == 429 ? in_a_row + 1 : 0;
    }
    h_set_source_addr("127.0.0.3");
    for (int i = 0; i < 2; i++) {
        int st = h_http_login(c.front.port, "alice", PW, tok);
        CHECK(st == 200, "the owner's login %d through the balancer got %d: keyed on HAProxy", i, st);
    }
    h_set_source_addr(NULL);
    int seen = 0;
    for (int i = 0; i < 2; i++)
        seen += h_client_wait_stderr_match(c.inst[i].proc, "login.failed user=alice addr=127.0.0.2",
                                         h_deadline(5000));
    CHECK(seen == 2, "the guesser's failures were audited under its own address on %d of 2 instances", seen);
    h_cluster_stop(&c);
}

/* The next chat event a WebSocket gets: its room and body. */
static json_t *ws_next_chat(struct h_ws *w)
{
    json_t *m = h_ws_recv_op(w, "event", h_deadline(10000));
    CHECK(m, "no event came");
    json_t *ev = json_incref(json_object_get(m, "event"));
    json_decref(m);
    return ev;
}

/* Rooms across instances (issue 18): a room made on instance A and joined
 * on B; a message sent to it on A reaches its member on B and not a
 * non-member there (whose next event is general's that follows). */
static void test_room_event_across_instances(void **state)
{
    (void)state;
    need_pg();
    static const char *const extra[] = { "--msg-rate", "1000", NULL };
    struct h_cluster c;
    h_cluster_start(&c, 2, extra);
    int a = c.inst[0].port, b = c.inst[1].port;
    char ta[65], tb[65], tc[65];
    const char *names[] = { "alice", "bob", "carol" };
    char *toks[] = { ta, tb, tc };
    for (int i = 0; i < 3; i++) {
        CHECK(h_http_register(a, names[i], PW) == 201, "register %s", names[i]);
        CHECK(h_http_login(b, names[i], PW, toks[i]) == 200, "login %s", names[i]);
    }
    struct h_http_resp r;
    h_http_call(a, "POST", "/api/v1/rooms", ta, "{\"name\":\"rust\"}", -1, &r);
    CHECK(r.status == 201, "create rust on A: %d %s", r.status, r.body);
    h_http_resp_free(&r);
    h_http_call(b, "POST", "/api/v1/rooms/rust/join", tb, NULL, -1, &r);
    CHECK(r.status == 200, "join rust on B: %d %s", r.status, r.body);
    h_http_resp_free(&r);
    struct h_ws *wb = h_ws_connect(b), *wc = h_ws_connect(b);
    CHECK(wb && wc, "WebSockets on B");
    char hello[160];
    snprintf(hello, sizeof hello, "{\"op\":\"hello\",\"token\":\"%s\",\"after\":\"latest\"}", tb);
    CHECK(h_ws_send_text(wb, hello) == 0, "hello bob");
    snprintf(hello, sizeof hello, "{\"op\":\"hello\",\"token\":\"%s\",\"after\":\"latest\"}", tc);
    CHECK(h_ws_send_text(wc, hello) == 0, "hello carol");
    json_decref(h_ws_recv_op(wb, "ready", h_deadline(10000)));
    json_decref(h_ws_recv_op(wc, "ready", h_deadline(10000)));
    int64_t in_rust = 0, in_general = 0;
    CHECK(h_http_post_message(a, ta, "rust", "to rust", NULL, &in_rust) == 201, "post to rust on A");
    CHECK(h_http_post_message(a, ta, NULL, "to everyone", NULL, &in_general) == 201, "post to general on A");
    json_t *e1 = ws_next_chat(wb), *e2 = ws_next_chat(wb), *f1 = ws_next_chat(wc);
    CHECK(ev_int(e1, "id") == in_rust && !strcmp(ev_str(e1, "room"), "rust"), "bob on B: rust's message first");
    CHECK(ev_int(e2, "id") == in_general, "bob on B: then general's");
    CHECK(ev_int(f1, "id") == in_general, "carol on B: general's only (got %s %s)", ev_str(f1, "room"),
          ev_str(f1, "body"));
    json_decref(e1);
    json_decref(e2);
    json_decref(f1);
    h_ws_free(wb);
    h_ws_free(wc);
    h_cluster_stop(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_failover_short_poll, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failover_long_poll, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failover_websocket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failover_sse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_gap_concurrent_writers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer_storm_with_kill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_login_throttle_per_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_room_event_across_instances, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presence_instance_killed, setup, teardown),
    };
    if (getenv("CLUSTER_ONLY"))            /* e.g. CLUSTER_ONLY='test_failover*' */
        cmocka_set_test_filter(getenv("CLUSTER_ONLY"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
