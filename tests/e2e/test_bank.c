/* test_bank.c — end-to-end tests of the mock bank (issue 3) with real
 * bin/chatd and bin/chat --headless processes, on each transport where a
 * client is involved:
 *  - alice sends bob 25.00 with the client: alice sees transfer.pending,
 *    .processing, .completed in that order, bob sees transfer.received, the
 *    balances are 975.00 / 1025.00; carol, a third user, sees none of it and
 *    gets 404 for the transfer;
 *  - a retried request and sixteen concurrent requests with one idempotency
 *    key each make one transfer; the same key with other parameters is 422;
 *  - a transfer larger than the balance fails with an alert and moves nothing;
 *  - chatd killed (SIGKILL) while a transfer is under way finishes it after
 *    the restart exactly once;
 *  - the client refuses bad amounts itself and sends nothing;
 *  - with the balance known, a transfer over it is refused at once in
 *    words; a completed transfer brings both sides their new balance, and
 *    /transfers lists it once, completed;
 * and, over plain HTTP, every kind of invalid transfer request and a kill
 * with transfers both pending and processing.
 *
 * chatd runs with a short --transfer-delay-ms (FAST) except where a test
 * needs a window to kill it in. Every wait is against a deadline. */
#include "scenario.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST_MS 20000
#define FAST    "150"              /* --transfer-delay-ms for most tests */
#define START_CENTS 100000

/* ---- the server and its users ---------------------------------------- */

struct bank_fixture {
    struct h_server s;
    char alice[65], bob[65], carol[65];     /* tokens */
};

static void bank_start(struct bank_fixture *b, const char *delay_ms)
{
    const char *extra[] = { "--transfer-delay-ms", delay_ms, NULL };
    h_server_start(&b->s, NULL, extra);
    const char *users[] = { "alice", "bob", "carol" };
    char *toks[] = { b->alice, b->bob, b->carol };
    for (int i = 0; i < 3; i++) {
        CHECK(h_http_register(b->s.port, users[i], PW) == 201, "register %s: expected 201", users[i]);
        CHECK(h_http_login(b->s.port, users[i], PW, toks[i]) == 200, "login %s: expected 200", users[i]);
    }
}

/* Changes the --transfer-delay-ms used by the next (re)start. */
static void bank_set_delay(struct bank_fixture *b, const char *delay_ms)
{
    for (int i = 0; i + 1 < b->s.nextra; i++)
        if (strcmp(b->s.extra[i], "--transfer-delay-ms") == 0)
            snprintf(b->s.extra[i + 1], sizeof b->s.extra[0], "%s", delay_ms);
}

/* GET /api/v1/account: asserts 200 {"user":user,"balance_cents":N}, returns N. */
static json_int_t http_balance(int port, const char *tok, const char *user)
{
    struct h_http_resp r;
    h_http_call(port, "GET", "/api/v1/account", tok, NULL, 0, &r);
    json_int_t c = ev_int(r.json, "balance_cents");
    int ok = r.status == 200 && strcmp(ev_str(r.json, "user"), user) == 0 && json_is_integer(json_object_get(r.json, "balance_cents"));
    char body[300];
    snprintf(body, sizeof body, "%s", r.body ? r.body : "");
    int st = r.status;
    h_http_resp_free(&r);
    CHECK(ok, "GET /api/v1/account as %s: expected 200 {\"user\":\"%s\",\"balance_cents\":N}, got %d %s",
          user, user, st, body);
    return c;
}

static void expect_balance(int port, const char *tok, const char *user, json_int_t want, const char *when)
{
    json_int_t got = http_balance(port, tok, user);
    CHECK(got == want, "GET /api/v1/account as %s %s: expected balance_cents %lld, got %lld", user, when,
          (long long)want, (long long)got);
}

static char *transfer_body(const char *to, json_int_t cents, const char *key)
{
    json_t *o = json_pack("{s:s,s:I,s:s}", "to", to, "amount_cents", cents, "idempotency_key", key);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

/* POSTs body; asserts 202 {"transfer_id":N,"status":"pending"}; returns N. */
static json_int_t post_transfer_ok(int port, const char *tok, const char *body)
{
    struct h_http_resp r;
    h_http_call(port, "POST", "/api/v1/transfers", tok, body, -1, &r);
    json_int_t id = ev_int(r.json, "transfer_id");
    int ok = r.status == 202 && id > 0 && strcmp(ev_str(r.json, "status"), "pending") == 0;
    char got[300];
    snprintf(got, sizeof got, "%d %s", r.status, r.body ? r.body : "");
    h_http_resp_free(&r);
    CHECK(ok, "POST /api/v1/transfers %s: expected 202 {\"transfer_id\":N,\"status\":\"pending\"}, got %s",
          body, got);
    return id;
}

/* Long-polls tok's feed until an alert of kind for tid is in it; returns the
 * whole feed (new reference). */
static json_t *feed_wait_alert(int port, const char *tok, const char *who, const char *kind,
                               json_int_t tid, int64_t deadline)
{
    json_t *all = json_array();
    json_int_t after = 0;
    for (;;) {
        if (count_alerts(all, kind, tid))
            return all;
        if (h_now_ms() >= deadline) {
            print_events(who, all);
            CHECK(0, "%s's feed (GET /api/v1/events): no %s alert for transfer %lld before the deadline",
                  who, kind, (long long)tid);
        }
        char path[128];
        snprintf(path, sizeof path, "/api/v1/events?after=%lld&wait=1&limit=1000", (long long)after);
        struct h_http_resp r;
        h_http_call_timeout(port, "GET", path, tok, NULL, 0, &r, 10000);
        json_t *evs = json_object_get(r.json, "events");
        CHECK(r.status == 200 && json_is_array(evs) && json_is_integer(json_object_get(r.json, "next")),
              "GET %s as %s: expected 200 {\"events\":[...],\"next\":N}, got %d %s", path, who, r.status, r.body);
        json_array_extend(all, evs);
        after = ev_int(r.json, "next");
        h_http_resp_free(&r);
    }
}

/* GET /api/v1/transfers/ID; fills r (caller frees). */
static void get_transfer(int port, const char *tok, json_int_t id, struct h_http_resp *r)
{
    char path[64];
    snprintf(path, sizeof path, "/api/v1/transfers/%lld", (long long)id);
    h_http_call(port, "GET", path, tok, NULL, 0, r);
}

/* Asserts the transfer as seen by tok is {id, from, to, amount, status}. */
static void expect_transfer(int port, const char *tok, const char *who, json_int_t id, const char *from,
                            const char *to, json_int_t cents, const char *status, const char *reason)
{
    struct h_http_resp r;
    get_transfer(port, tok, id, &r);
    int ok = r.status == 200 && ev_int(r.json, "transfer_id") == id && strcmp(ev_str(r.json, "from"), from) == 0 &&
             strcmp(ev_str(r.json, "to"), to) == 0 && ev_int(r.json, "amount_cents") == cents &&
             strcmp(ev_str(r.json, "status"), status) == 0 &&
             (!reason || strcmp(ev_str(r.json, "reason"), reason) == 0);
    char got[400];
    snprintf(got, sizeof got, "%d %s", r.status, r.body ? r.body : "");
    h_http_resp_free(&r);
    CHECK(ok, "GET /api/v1/transfers/%lld as %s: expected 200 with from %s, to %s, amount_cents %lld, "
              "status %s%s%s, got %s", (long long)id, who, from, to, (long long)cents, status,
          reason ? ", reason " : "", reason ? reason : "", got);
}

/* ---- the headless client ------------------------------------------------ */

/* Starts a client and waits until it is logged in (its "logged in as"
 * notice; a long-poll client says "connected" only after its first poll is
 * answered, which with nothing to deliver takes the whole hold time). Bank
 * commands work from then on, and the feed is replayed from the start, so
 * no alert is missed. */
static struct h_proc *client_up(struct bank_fixture *b, const char *t, const char *user, int64_t dl)
{
    struct h_proc *c = h_client_spawn(&b->s, t, user, PW, NULL);
    CHECK(h_client_wait_stderr_match(c, "\"notice\":\"logged in as ", dl), "%s: never logged in",
          c->name);
    return c;
}

/* The next stderr JSON line of c at or after *off that has key (and, if sub
 * is set, an object data.sub); advances *off past it. Returns a new
 * reference, or fails at the deadline. */
static json_t *client_wait_line(struct h_proc *c, size_t *off, const char *key, const char *sub, int64_t dl)
{
    for (;;) {
        while (c->err.data && *off < c->err.len) {
            char *start = c->err.data + *off;
            char *nl = memchr(start, '\n', c->err.len - *off);
            if (!nl)
                break;
            *off += (size_t)(nl - start) + 1;
            json_t *j = json_loadb(start, (size_t)(nl - start), 0, NULL);
            if (json_is_object(j) && json_object_get(j, key) &&
                (!sub || json_is_object(json_object_get(json_object_get(j, "data"), sub))))
                return j;
            json_decref(j);
        }
        if (h_now_ms() >= dl || (c->exited && c->err_fd < 0)) {
            h_dump_logs();
            fail_msg("%s: no stderr line with \"%s\"%s%s before the deadline%s", c->name, key,
                     sub ? " and data." : "", sub ? sub : "", c->exited ? " (it exited)" : "");
        }
        pump_upto(dl);
    }
}

/* Sends /balance and returns data.balance_cents of the notice it gets. */
static json_int_t client_balance(struct h_proc *c, const char *user, int64_t dl)
{
    size_t off = c->err.len;
    h_client_send_line(c, "/balance");
    for (;;) {
        json_t *n = client_wait_line(c, &off, "notice", NULL, dl);
        json_t *d = json_object_get(n, "data");
        if (json_is_integer(json_object_get(d, "balance_cents"))) {
            json_int_t v = ev_int(d, "balance_cents");
            int ok = strcmp(ev_str(d, "user"), user) == 0;
            char *s = h_json_str(n);
            json_decref(n);
            CHECK(ok, "%s: /balance notice is not for %s: %s", c->name, user, s);
            free(s);
            return v;
        }
        json_decref(n);
    }
}

static void expect_client_balance(struct h_proc *c, const char *user, json_int_t want, int64_t dl)
{
    json_int_t got = client_balance(c, user, dl);
    CHECK(got == want, "%s: /balance: expected balance_cents %lld, got %lld", c->name, (long long)want,
          (long long)got);
}

/* Sends /transfer TO AMOUNT and returns the transfer_id from the notice
 * (asserting it reports to, cents and status pending). */
static json_int_t client_transfer(struct h_proc *c, const char *to, const char *amount, json_int_t cents,
                                  int64_t dl)
{
    size_t off = c->err.len;
    char line[128];
    snprintf(line, sizeof line, "/transfer %s %s", to, amount);
    h_client_send_line(c, line);
    json_t *n = client_wait_line(c, &off, "notice", "transfer", dl);
    json_t *t = json_object_get(json_object_get(n, "data"), "transfer");
    json_int_t id = ev_int(t, "transfer_id");
    int ok = id > 0 && strcmp(ev_str(t, "to"), to) == 0 && ev_int(t, "amount_cents") == cents &&
             strcmp(ev_str(t, "status"), "pending") == 0;
    char *s = h_json_str(n);
    json_decref(n);
    CHECK(ok, "%s: \"%s\": expected a notice with data.transfer {transfer_id, to %s, amount_cents %lld, "
              "status pending}, got %s", c->name, line, to, (long long)cents, s);
    free(s);
    return id;
}

/* Waits until c printed an alert of kind for tid; returns it (borrowed). */
static json_t *client_wait_alert(struct h_proc *c, const char *kind, json_int_t tid, int64_t dl)
{
    for (;;) {
        for (size_t i = 0; i < h_client_nevents(c); i++)
            if (is_alert(h_client_event(c, i), kind, tid))
                return h_client_event(c, i);
        if (h_now_ms() >= dl || (c->exited && c->out_fd < 0)) {
            print_events(c->name, c->events);
            CHECK(0, "%s: no %s alert for transfer %lld before the deadline%s", c->name, kind,
                  (long long)tid, c->exited ? " (the client exited)" : "");
        }
        pump_upto(dl);
    }
}

/* Alice posts a chat message and waits until every client in cs printed
 * it: once it is there, anything the server sent before it is there too. */
static void barrier(struct bank_fixture *b, struct h_proc **cs, int n, const char *text, int64_t dl)
{
    int64_t id = -1;
    CHECK(h_http_post_message(b->s.port, b->alice, NULL, text, NULL, &id) == 201,
          "POST /api/v1/messages \"%s\": expected 201", text);
    for (int k = 0; k < n; k++) {
        for (;;) {
            int seen = 0;
            for (size_t i = 0; i < h_client_nevents(cs[k]) && !seen; i++)
                seen = ev_int(h_client_event(cs[k], i), "id") == id;
            if (seen)
                break;
            if (h_now_ms() >= dl || (cs[k]->exited && cs[k]->out_fd < 0)) {
                print_events(cs[k]->name, cs[k]->events);
                CHECK(0, "%s: never printed the chat message %lld (\"%s\")", cs[k]->name, (long long)id, text);
            }
            pump_upto(dl);
        }
    }
}

/* Checks one alert's fields. */
static void check_alert(const char *who, const json_t *ev, const char *kind, json_int_t tid, json_int_t cents,
                        const char *counterparty)
{
    char *d = h_json_str(ev);
    int ok = is_alert(ev, kind, tid) && ev_int(ev, "id") > 0 && json_is_integer(json_object_get(ev, "ts")) &&
             ev_int(ev, "amount_cents") == cents && strcmp(ev_str(ev, "counterparty"), counterparty) == 0 &&
             json_is_string(json_object_get(ev, "body")) && *ev_str(ev, "body");
    if (!ok) {
        fprintf(stderr, "%s: bad alert %s\n", who, d);
        free(d);
        CHECK(0, "%s: expected a %s alert {id, ts, transfer_id %lld, amount_cents %lld, counterparty %s, "
                 "non-empty body}; see above", who, kind, (long long)tid, (long long)cents, counterparty);
    }
    free(d);
}

/* The alerts in events for tid are exactly the kinds listed, in order, with
 * the given amount and counterparty. */
static void check_alert_seq(const char *who, const json_t *events, json_int_t tid, const char *const *kinds,
                            size_t nk, json_int_t cents, const char *counterparty)
{
    size_t i, k = 0;
    json_t *ev;
    json_int_t last = 0;
    json_array_foreach(events, i, ev) {
        if (!is_alert(ev, NULL, tid))
            continue;
        if (k >= nk || strcmp(ev_str(ev, "kind"), kinds[k]) != 0) {
            print_events(who, events);
            CHECK(0, "%s: alerts for transfer %lld: expected %s as alert %zu, got %s", who, (long long)tid,
                  k < nk ? kinds[k] : "nothing more", k + 1, ev_str(ev, "kind"));
        }
        check_alert(who, ev, kinds[k], tid, cents, counterparty);
        CHECK(ev_int(ev, "id") > last, "%s: alert ids for transfer %lld not increasing", who, (long long)tid);
        last = ev_int(ev, "id");
        k++;
    }
    if (k != nk) {
        print_events(who, events);
        CHECK(0, "%s: expected %zu alerts for transfer %lld, got %zu", who, nk, (long long)tid, k);
    }
}

/* The client's events equal the server's feed for that user. */
static void check_same_feed(struct h_proc *c, int port, const char *tok)
{
    json_t *truth = h_http_get_events(port, tok, 0);
    int same = json_equal(truth, c->events);
    if (!same) {
        print_events("GET /api/v1/events", truth);
        print_events(c->name, c->events);
    }
    json_decref(truth);
    CHECK(same, "%s printed other events than GET /api/v1/events returns for that user", c->name);
}

static const char *const SENDER_OK[] = { "transfer.pending", "transfer.processing", "transfer.completed" };
static const char *const SENDER_FAIL[] = { "transfer.pending", "transfer.processing", "transfer.failed" };
static const char *const RECEIVED[] = { "transfer.received" };

/* ---- alice pays bob over a transport; carol sees nothing ----------------- */

static void run_transfer(const char *t)
{
    int64_t dl = h_deadline(TEST_MS);
    struct bank_fixture b;
    bank_start(&b, FAST);
    int port = b.s.port;
    struct h_proc *alice = client_up(&b, t, "alice", dl);
    struct h_proc *bob = client_up(&b, t, "bob", dl);
    struct h_proc *carol = client_up(&b, t, "carol", dl);

    json_int_t tid = client_transfer(alice, "bob", "25.00", 2500, dl);
    client_wait_alert(alice, "transfer.completed", tid, dl);
    json_t *rcv = client_wait_alert(bob, "transfer.received", tid, dl);
    check_alert(bob->name, rcv, "transfer.received", tid, 2500, "alice");
    check_alert_seq(alice->name, alice->events, tid, SENDER_OK, 3, 2500, "bob");

    struct h_proc *all[] = { alice, bob, carol };
    barrier(&b, all, 3, "after the transfer", dl);
    check_alert_seq(bob->name, bob->events, tid, RECEIVED, 1, 2500, "alice");
    CHECK(count_alerts(alice->events, NULL, -1) == 3, "%s: expected 3 alerts in all, got %zu", alice->name,
          count_alerts(alice->events, NULL, -1));
    CHECK(count_alerts(bob->events, NULL, -1) == 1, "%s: expected 1 alert in all, got %zu", bob->name,
          count_alerts(bob->events, NULL, -1));
    if (count_alerts(carol->events, NULL, -1) || h_client_nevents(carol) != 1) {
        print_events(carol->name, carol->events);
        CHECK(0, "%s: expected only the chat message, no alerts (got %zu events, %zu alerts)", carol->name,
              h_client_nevents(carol), count_alerts(carol->events, NULL, -1));
    }
    check_same_feed(alice, port, b.alice);
    check_same_feed(bob, port, b.bob);
    check_same_feed(carol, port, b.carol);

    expect_client_balance(alice, "alice", 97500, dl);
    expect_client_balance(bob, "bob", 102500, dl);
    expect_client_balance(carol, "carol", START_CENTS, dl);
    expect_balance(port, b.alice, "alice", 97500, "after sending 25.00");
    expect_balance(port, b.bob, "bob", 102500, "after receiving 25.00");
    expect_balance(port, b.carol, "carol", START_CENTS, "(a bystander)");

    expect_transfer(port, b.alice, "alice", tid, "alice", "bob", 2500, "completed", NULL);
    expect_transfer(port, b.bob, "bob", tid, "alice", "bob", 2500, "completed", NULL);
    struct h_http_resp r;
    get_transfer(port, b.carol, tid, &r);
    int ok = h_check_error("GET /api/v1/transfers/ID as carol (neither party)", &r, 404, "not_found");
    h_http_resp_free(&r);
    CHECK(ok, "carol could see alice's transfer to bob (see MISMATCH above)");

    for (int i = 0; i < 3; i++)
        h_client_quit(all[i], h_deadline(5000));
    h_server_stop(&b.s);
}

static void test_transfer_short_poll(void **state) { (void)state; run_transfer("short-poll"); }
static void test_transfer_long_poll(void **state) { (void)state; run_transfer("long-poll"); }
static void test_transfer_websocket(void **state) { (void)state; run_transfer("websocket"); }

/* ---- idempotency: a retry, sixteen at once, a reused key ------------------ */

static void run_idempotency(const char *t)
{
    int64_t dl = h_deadline(TEST_MS);
    struct bank_fixture b;
    bank_start(&b, FAST);
    int port = b.s.port;
    struct h_proc *alice = client_up(&b, t, "alice", dl);
    struct h_proc *bob = client_up(&b, t, "bob", dl);

    /* A retry: the same request twice. */
    char *body1 = transfer_body("bob", 2500, "retry-key-1");
    json_int_t t1 = post_transfer_ok(port, b.alice, body1);
    json_int_t t1b = post_transfer_ok(port, b.alice, body1);
    CHECK(t1 == t1b, "POST /api/v1/transfers twice with one key: expected the same transfer_id, got %lld then %lld",
          (long long)t1, (long long)t1b);

    /* Sixteen at once: all written before any answer is read. */
    enum { N = 16 };
    char *body2 = transfer_body("bob", 1000, "burst-key-16");
    struct h_http_resp rs[N];
    int got = h_http_call_parallel(port, "POST", "/api/v1/transfers", b.alice, body2, N, rs, 10000);
    json_int_t t2 = -1;
    int bad = 0;
    for (int i = 0; i < N; i++) {
        json_int_t id = ev_int(rs[i].json, "transfer_id");
        if (rs[i].status != 202 || id <= 0 || strcmp(ev_str(rs[i].json, "status"), "pending") != 0 ||
            (t2 > 0 && id != t2)) {
            fprintf(stderr, "concurrent request %d: %d %s\n", i, rs[i].status, rs[i].body ? rs[i].body : "");
            bad++;
        }
        if (t2 < 0 && id > 0)
            t2 = id;
    }
    for (int i = 0; i < N; i++)
        h_http_resp_free(&rs[i]);
    CHECK(got == N && bad == 0, "%d concurrent POST /api/v1/transfers with one key: expected %d x 202 with one "
          "transfer_id, got %d responses, %d not as expected (see above)", N, N, got, bad);
    CHECK(t2 != t1, "a new key got the transfer_id of another key (%lld)", (long long)t1);

    /* The same key with other parameters: 422, nothing new. */
    struct {
        const char *what;
        char *body;
    } reuse[] = {
        { "same key, other amount", transfer_body("bob", 3000, "retry-key-1") },
        { "same key, other recipient", transfer_body("carol", 2500, "retry-key-1") },
        { "burst key, other amount", transfer_body("bob", 1001, "burst-key-16") },
    };
    int mism = 0;
    for (size_t i = 0; i < sizeof reuse / sizeof reuse[0]; i++) {
        struct h_http_resp r;
        h_http_call(port, "POST", "/api/v1/transfers", b.alice, reuse[i].body, -1, &r);
        char what[200];
        snprintf(what, sizeof what, "POST /api/v1/transfers %s (%s)", reuse[i].body, reuse[i].what);
        mism += !h_check_error(what, &r, 422, NULL);
        h_http_resp_free(&r);
        free(reuse[i].body);
    }
    CHECK(mism == 0, "%d reused-key request(s) not answered 422 (see MISMATCH above)", mism);

    client_wait_alert(alice, "transfer.completed", t1, dl);
    client_wait_alert(alice, "transfer.completed", t2, dl);
    client_wait_alert(bob, "transfer.received", t1, dl);
    client_wait_alert(bob, "transfer.received", t2, dl);

    /* A retry after completion still answers the same, and moves nothing. */
    json_int_t t1c = post_transfer_ok(port, b.alice, body1);
    CHECK(t1c == t1, "retry after completion: expected transfer_id %lld, got %lld", (long long)t1, (long long)t1c);
    /* A last, fresh transfer: once it has completed, anything wrongly
     * started before it would have shown its alerts too. */
    char *body3 = transfer_body("bob", 1, "last-key");
    json_int_t t3 = post_transfer_ok(port, b.alice, body3);
    client_wait_alert(alice, "transfer.completed", t3, dl);
    client_wait_alert(bob, "transfer.received", t3, dl);
    struct h_proc *both[] = { alice, bob };
    barrier(&b, both, 2, "after the retries", dl);

    check_alert_seq(alice->name, alice->events, t1, SENDER_OK, 3, 2500, "bob");
    check_alert_seq(alice->name, alice->events, t2, SENDER_OK, 3, 1000, "bob");
    check_alert_seq(bob->name, bob->events, t1, RECEIVED, 1, 2500, "alice");
    check_alert_seq(bob->name, bob->events, t2, RECEIVED, 1, 1000, "alice");
    size_t np = count_alerts(alice->events, "transfer.pending", -1);
    size_t nr = count_alerts(bob->events, "transfer.received", -1);
    if (np != 3 || nr != 3) {
        print_events(alice->name, alice->events);
        print_events(bob->name, bob->events);
        CHECK(0, "expected 3 transfers in all (3 pending alerts for alice, 3 received for bob), got %zu and %zu",
              np, nr);
    }
    check_same_feed(alice, port, b.alice);
    check_same_feed(bob, port, b.bob);
    expect_balance(port, b.alice, "alice", START_CENTS - 2500 - 1000 - 1, "after 25.00 + 10.00 + 0.01, retried");
    expect_balance(port, b.bob, "bob", START_CENTS + 2500 + 1000 + 1, "after 25.00 + 10.00 + 0.01, retried");
    expect_client_balance(alice, "alice", START_CENTS - 3501, dl);
    expect_balance(port, b.carol, "carol", START_CENTS, "(422 for a transfer to carol)");

    free(body1);
    free(body2);
    free(body3);
    h_client_quit(alice, h_deadline(5000));
    h_client_quit(bob, h_deadline(5000));
    h_server_stop(&b.s);
}

static void test_idempotency_short_poll(void **state) { (void)state; run_idempotency("short-poll"); }
static void test_idempotency_long_poll(void **state) { (void)state; run_idempotency("long-poll"); }
static void test_idempotency_websocket(void **state) { (void)state; run_idempotency("websocket"); }

/* ---- insufficient funds ------------------------------------------------ */

static void run_insufficient(const char *t)
{
    int64_t dl = h_deadline(TEST_MS);
    struct bank_fixture b;
    bank_start(&b, FAST);
    int port = b.s.port;
    struct h_proc *alice = client_up(&b, t, "alice", dl);
    struct h_proc *bob = client_up(&b, t, "bob", dl);

    /* One cent more than alice has. */
    json_int_t tid = client_transfer(alice, "bob", "1000.01", START_CENTS + 1, dl);
    json_t *f = client_wait_alert(alice, "transfer.failed", tid, dl);
    char *d = h_json_str(f);
    int ok = strcmp(ev_str(f, "reason"), "insufficient_funds") == 0;
    CHECK(ok, "%s: transfer.failed alert without \"reason\":\"insufficient_funds\": %s", alice->name, d);
    free(d);
    struct h_proc *both[] = { alice, bob };
    barrier(&b, both, 2, "after the failed transfer", dl);
    check_alert_seq(alice->name, alice->events, tid, SENDER_FAIL, 3, START_CENTS + 1, "bob");
    CHECK(count_alerts(bob->events, NULL, -1) == 0, "%s: got an alert for a failed transfer", bob->name);
    expect_transfer(port, b.alice, "alice", tid, "alice", "bob", START_CENTS + 1, "failed", "insufficient_funds");
    expect_balance(port, b.alice, "alice", START_CENTS, "after a failed transfer");
    expect_balance(port, b.bob, "bob", START_CENTS, "after a failed transfer to him");
    expect_client_balance(alice, "alice", START_CENTS, dl);
    expect_client_balance(bob, "bob", START_CENTS, dl);
    check_same_feed(alice, port, b.alice);
    check_same_feed(bob, port, b.bob);

    h_client_quit(alice, h_deadline(5000));
    h_client_quit(bob, h_deadline(5000));
    h_server_stop(&b.s);
}

static void test_insufficient_short_poll(void **state) { (void)state; run_insufficient("short-poll"); }
static void test_insufficient_long_poll(void **state) { (void)state; run_insufficient("long-poll"); }
static void test_insufficient_websocket(void **state) { (void)state; run_insufficient("websocket"); }

/* Over HTTP: the whole balance can go (to exactly zero), then not a cent more. */
static void test_balance_to_zero(void **state)
{
    (void)state;
    int64_t dl = h_deadline(TEST_MS);
    struct bank_fixture b;
    bank_start(&b, "50");
    int port = b.s.port;
    char *b1 = transfer_body("bob", START_CENTS, "all-of-it");
    json_int_t t1 = post_transfer_ok(port, b.alice, b1);
    json_t *feed = feed_wait_alert(port, b.alice, "alice", "transfer.completed", t1, dl);
    json_decref(feed);
    expect_balance(port, b.alice, "alice", 0, "after sending all of it");
    char *b2 = transfer_body("carol", 1, "one-cent-more");
    json_int_t t2 = post_transfer_ok(port, b.alice, b2);
    feed = feed_wait_alert(port, b.alice, "alice", "transfer.failed", t2, dl);
    check_alert_seq("alice's feed", feed, t2, SENDER_FAIL, 3, 1, "carol");
    json_decref(feed);
    expect_balance(port, b.alice, "alice", 0, "after a failed transfer at zero");
    expect_balance(port, b.bob, "bob", 2 * START_CENTS, "after receiving alice's all");
    expect_balance(port, b.carol, "carol", START_CENTS, "after a failed transfer to her");
    free(b1);
    free(b2);
    h_server_stop(&b.s);
}

/* ---- the client knows the balance ------------------------------------------ */

/* Waits for a notice with data.balance_cents == want from *off on. */
static void wait_balance_notice(struct h_proc *c, size_t *off, json_int_t want, int64_t dl)
{
    for (;;) {
        json_t *n = client_wait_line(c, off, "notice", NULL, dl);
        json_t *v = json_object_get(json_object_get(n, "data"), "balance_cents");
        int done = json_is_integer(v) && json_integer_value(v) == want;
        json_decref(n);
        if (done)
            return;
    }
}

/* With the balance known (/balance), a transfer larger than it is refused
 * at once, in words, and nothing reaches the bank; a completed transfer
 * brings each side its new balance without asking. */
static void test_client_knows_balance(void **state)
{
    int64_t dl = h_deadline(TEST_MS);
    struct bank_fixture b;
    struct h_http_resp r;
    (void)state;
    bank_start(&b, FAST);
    struct h_proc *alice = client_up(&b, "websocket", "alice", dl);
    struct h_proc *bob = client_up(&b, "websocket", "bob", dl);
    expect_client_balance(alice, "alice", START_CENTS, dl);
    size_t off = alice->err.len;
    h_client_send_line(alice, "/transfer bob 1000.01");
    json_t *e = client_wait_line(alice, &off, "error", NULL, dl);
    char *es = h_json_str(e);
    int said = strstr(ev_str(e, "error"), "insufficient funds") != NULL;
    json_decref(e);
    CHECK(said, "%s: a transfer over the known balance: expected \"insufficient funds\", got %s",
          alice->name, es);
    free(es);
    get_transfer(b.s.port, b.alice, 1, &r);
    int none = r.status == 404;
    h_http_resp_free(&r);
    CHECK(none, "a transfer over the known balance reached the bank");

    off = alice->err.len;
    size_t boff = bob->err.len;
    json_int_t tid = client_transfer(alice, "bob", "25", 2500, dl);
    client_wait_alert(alice, "transfer.completed", tid, dl);
    wait_balance_notice(alice, &off, START_CENTS - 2500, dl);
    wait_balance_notice(bob, &boff, START_CENTS + 2500, dl);
    /* /transfers lists it, once, in its latest state */
    off = alice->err.len;
    h_client_send_line(alice, "/transfers");
    json_t *n = client_wait_line(alice, &off, "notice", NULL, dl);
    while (!json_is_array(json_object_get(json_object_get(n, "data"), "transfers"))) {
        json_decref(n);
        n = client_wait_line(alice, &off, "notice", NULL, dl);
    }
    json_t *rows = json_object_get(json_object_get(n, "data"), "transfers");
    json_t *row = json_array_get(rows, 0);
    char *ns = h_json_str(n);
    int listed = json_array_size(rows) == 1 && ev_int(row, "transfer_id") == tid &&
                 strcmp(ev_str(row, "state"), "completed") == 0 &&
                 strcmp(ev_str(row, "counterparty"), "bob") == 0;
    json_decref(n);
    CHECK(listed, "%s: /transfers: expected one row, transfer %lld to bob completed: %s", alice->name,
          (long long)tid, ns);
    free(ns);
    h_client_quit(alice, h_deadline(5000));
    h_client_quit(bob, h_deadline(5000));
    h_server_stop(&b.s);
}

/* ---- chatd killed while a transfer is under way -------------------------- */

static void run_kill_restart(const char *t)
{
    int64_t dl = h_deadline(TEST_MS);
    struct bank_fixture b;
    bank_start(&b, "1500");        /* a window to kill it in */
    int port = b.s.port;
    struct h_proc *alice = client_up(&b, t, "alice", dl);
    struct h_proc *bob = client_up(&b, t, "bob", dl);

    json_int_t tid = client_transfer(alice, "bob", "25.00", 2500, dl);
    client_wait_alert(alice, "transfer.pending", tid, dl);
    /* It must really be under way when killed. */
    expect_transfer(port, b.alice, "alice", tid, "alice", "bob", 2500, "pending", NULL);
    h_server_kill(&b.s);
    /* The same port, so the clients come back by themselves; and a short
     * delay from now on. */
    bank_set_delay(&b, FAST);
    h_server_start_same_port(&b.s);

    client_wait_alert(alice, "transfer.completed", tid, dl);
    client_wait_alert(bob, "transfer.received", tid, dl);
    struct h_proc *both[] = { alice, bob };
    barrier(&b, both, 2, "after the restart", dl);
    check_alert_seq(alice->name, alice->events, tid, SENDER_OK, 3, 2500, "bob");
    check_alert_seq(bob->name, bob->events, tid, RECEIVED, 1, 2500, "alice");
    json_t *fa = h_http_get_events(port, b.alice, 0), *fb = h_http_get_events(port, b.bob, 0);
    check_alert_seq("alice's feed", fa, tid, SENDER_OK, 3, 2500, "bob");
    check_alert_seq("bob's feed", fb, tid, RECEIVED, 1, 2500, "alice");
    json_decref(fa);
    json_decref(fb);
    check_same_feed(alice, port, b.alice);
    check_same_feed(bob, port, b.bob);
    expect_transfer(port, b.alice, "alice", tid, "alice", "bob", 2500, "completed", NULL);
    expect_balance(port, b.alice, "alice", 97500, "after the restart");
    expect_balance(port, b.bob, "bob", 102500, "after the restart");
    expect_client_balance(alice, "alice", 97500, dl);

    h_client_quit(alice, h_deadline(5000));
    h_client_quit(bob, h_deadline(5000));
    h_server_stop(&b.s);
}

static void test_kill_restart_short_poll(void **state) { (void)state; run_kill_restart("short-poll"); }
static void test_kill_restart_long_poll(void **state) { (void)state; run_kill_restart("long-poll"); }
static void test_kill_restart_websocket(void **state) { (void)state; run_kill_restart("websocket"); }

/* The state after test_kill_processing_and_pending's transfers t1 (alice
 * to bob, 25.00) and t2 (alice to carol, 7.00): each done exactly once. */
static void check_two_done(struct bank_fixture *b, json_int_t t1, json_int_t t2, const char *when)
{
    int port = b->s.port;
    json_t *fa = h_http_get_events(port, b->alice, 0);
    json_t *fb = h_http_get_events(port, b->bob, 0), *fc = h_http_get_events(port, b->carol, 0);
    check_alert_seq("alice's feed", fa, t1, SENDER_OK, 3, 2500, "bob");
    check_alert_seq("alice's feed", fa, t2, SENDER_OK, 3, 700, "carol");
    size_t na = count_alerts(fa, NULL, -1), nb = count_alerts(fb, NULL, -1), nc = count_alerts(fc, NULL, -1);
    check_alert_seq("bob's feed", fb, t1, RECEIVED, 1, 2500, "alice");
    check_alert_seq("carol's feed", fc, t2, RECEIVED, 1, 700, "alice");
    if (na != 6 || nb != 1 || nc != 1) {
        print_events("alice's feed", fa);
        print_events("bob's feed", fb);
        print_events("carol's feed", fc);
    }
    json_decref(fa);
    json_decref(fb);
    json_decref(fc);
    CHECK(na == 6 && nb == 1 && nc == 1, "%s: expected 6 / 1 / 1 alerts for alice / bob / carol, got %zu / %zu / %zu",
          when, na, nb, nc);
    expect_balance(port, b->alice, "alice", START_CENTS - 3200, when);
    expect_balance(port, b->bob, "bob", START_CENTS + 2500, when);
    expect_balance(port, b->carol, "carol", START_CENTS + 700, when);
    expect_transfer(port, b->bob, "bob", t1, "alice", "bob", 2500, "completed", NULL);
    expect_transfer(port, b->carol, "carol", t2, "alice", "carol", 700, "completed", NULL);
}

/* Over HTTP: killed with one transfer processing and one pending; after
 * the restart both finish once; a further clean restart changes nothing. */
static void test_kill_processing_and_pending(void **state)
{
    (void)state;
    int64_t dl = h_deadline(TEST_MS);
    struct bank_fixture b;
    bank_start(&b, "1000");        /* a window to kill it in */
    char *b1 = transfer_body("bob", 2500, "kill-1");
    char *b2 = transfer_body("carol", 700, "kill-2");
    json_int_t t1 = post_transfer_ok(b.s.port, b.alice, b1);
    json_t *feed = feed_wait_alert(b.s.port, b.alice, "alice", "transfer.processing", t1, dl);
    json_decref(feed);
    json_int_t t2 = post_transfer_ok(b.s.port, b.alice, b2);
    expect_transfer(b.s.port, b.alice, "alice", t1, "alice", "bob", 2500, "processing", NULL);
    expect_transfer(b.s.port, b.alice, "alice", t2, "alice", "carol", 700, "pending", NULL);
    h_server_kill(&b.s);
    bank_set_delay(&b, FAST);
    h_server_restart(&b.s);          /* after a kill: just a start, on a new port */

    feed = feed_wait_alert(b.s.port, b.alice, "alice", "transfer.completed", t1, dl);
    json_decref(feed);
    feed = feed_wait_alert(b.s.port, b.alice, "alice", "transfer.completed", t2, dl);
    json_decref(feed);
    check_two_done(&b, t1, t2, "after the restart");

    /* A clean restart, then a transfer between two new users: once it is
     * done, anything resumed again at this start would be done too. */
    h_server_restart(&b.s);
    int port = b.s.port;
    char dave[65], erin[65];
    CHECK(h_http_register(port, "dave", PW) == 201 && h_http_register(port, "erin", PW) == 201,
          "register dave and erin: expected 201");
    CHECK(h_http_login(port, "dave", PW, dave) == 200 && h_http_login(port, "erin", PW, erin) == 200,
          "login dave and erin: expected 200");
    char *b3 = transfer_body("erin", 1, "after-clean-restart");
    json_int_t t3 = post_transfer_ok(port, dave, b3);
    feed = feed_wait_alert(port, dave, "dave", "transfer.completed", t3, dl);
    json_decref(feed);
    check_two_done(&b, t1, t2, "after a second, clean restart");
    /* Retrying the interrupted requests still gives the same transfers. */
    CHECK(post_transfer_ok(port, b.alice, b1) == t1 && post_transfer_ok(port, b.alice, b2) == t2,
          "retrying the interrupted requests after the restarts gave other transfer_ids than %lld and %lld",
          (long long)t1, (long long)t2);
    expect_balance(port, b.alice, "alice", START_CENTS - 3200, "after retrying the interrupted requests");
    free(b1);
    free(b2);
    free(b3);
    h_server_stop(&b.s);
}

/* ---- the client refuses bad amounts itself -------------------------------- */

static void run_client_rejects(const char *t)
{
    int64_t dl = h_deadline(TEST_MS);
    struct bank_fixture b;
    bank_start(&b, FAST);
    int port = b.s.port;
    struct h_proc *alice = client_up(&b, t, "alice", dl);
    static const char *const bad[] = {
        "/transfer bob 25.555", "/transfer bob -5", "/transfer bob 1e3", "/transfer bob 0",
        "/transfer bob 0.00", "/transfer bob abc", "/transfer bob 25.5.5", "/transfer bob 0x10",
        "/transfer bob 1000000.01", "/transfer bob 25.", "/transfer bob .5", "/transfer bob 25,00",
        "/transfer bob nan", "/transfer bob inf", "/transfer bob 99999999999999999999",
    };
    size_t nb = sizeof bad / sizeof bad[0];
    size_t off = alice->err.len;
    for (size_t i = 0; i < nb; i++)
        h_client_send_line(alice, bad[i]);
    /* /balance after them: its notice comes after their errors. */
    json_int_t bal = client_balance(alice, "alice", dl);
    CHECK(bal == START_CENTS, "%s: /balance after refused transfers: expected %d, got %lld", alice->name,
          START_CENTS, (long long)bal);

    /* Exactly one readable error per bad line, and no transfer notice. */
    size_t nerr = 0, nsent = 0, i = off;
    int unreadable = 0;
    while (alice->err.data && i < alice->err.len) {
        char *start = alice->err.data + i, *nl = memchr(start, '\n', alice->err.len - i);
        if (!nl)
            break;
        i += (size_t)(nl - start) + 1;
        json_t *j = json_loadb(start, (size_t)(nl - start), 0, NULL);
        if (json_is_string(json_object_get(j, "error"))) {
            nerr++;
            const char *e = ev_str(j, "error");
            if (strlen(e) < 10 || !strstr(e, "amount")) {
                fprintf(stderr, "error line without a readable reason: %s\n", e);
                unreadable++;
            }
        }
        if (json_object_get(json_object_get(j, "data"), "transfer"))
            nsent++;
        json_decref(j);
    }
    if (nerr != nb || unreadable || nsent) {
        h_dump_logs();
        CHECK(0, "%s: %zu bad /transfer lines: expected %zu {\"error\":...} lines naming the amount and no "
              "transfer notice, got %zu errors (%d unreadable), %zu transfer notices", alice->name, nb, nb, nerr,
              unreadable, nsent);
    }
    /* Nothing reached the server: no transfer at all, no alert. */
    struct h_http_resp r;
    get_transfer(port, b.alice, 1, &r);
    int none = r.status == 404;
    char got[200];
    snprintf(got, sizeof got, "%d %s", r.status, r.body ? r.body : "");
    h_http_resp_free(&r);
    CHECK(none, "GET /api/v1/transfers/1 after only refused commands: expected 404, got %s", got);
    json_t *feed = h_http_get_events(port, b.alice, 0);
    size_t na = count_alerts(feed, NULL, -1);
    json_decref(feed);
    CHECK(na == 0, "alice's feed has %zu alerts after only refused commands", na);
    expect_balance(port, b.alice, "alice", START_CENTS, "after refused commands");
    expect_balance(port, b.bob, "bob", START_CENTS, "after refused commands");
    h_client_quit(alice, h_deadline(5000));
    h_server_stop(&b.s);
}

static void test_client_rejects_short_poll(void **state) { (void)state; run_client_rejects("short-poll"); }
static void test_client_rejects_long_poll(void **state) { (void)state; run_client_rejects("long-poll"); }
static void test_client_rejects_websocket(void **state) { (void)state; run_client_rejects("websocket"); }

/* ---- invalid requests over HTTP ------------------------------------------ */

static void test_invalid_requests(void **state)
{
    (void)state;
    int64_t dl = h_deadline(TEST_MS);
    struct bank_fixture b;
    bank_start(&b, "50");
    int port = b.s.port;
    static const struct {
        const char *what, *body;
        int status;
        const char *code;
    } cases[] = {
        { "amount as a string", "{\"to\":\"bob\",\"amount_cents\":\"25\",\"idempotency_key\":\"i1\"}", 400, "invalid" },
        { "fractional amount", "{\"to\":\"bob\",\"amount_cents\":25.5,\"idempotency_key\":\"i2\"}", 400, "invalid" },
        { "amount 2500.0", "{\"to\":\"bob\",\"amount_cents\":2500.0,\"idempotency_key\":\"i3\"}", 400, "invalid" },
        { "amount 1e3", "{\"to\":\"bob\",\"amount_cents\":1e3,\"idempotency_key\":\"i4\"}", 400, "invalid" },
        { "zero amount", "{\"to\":\"bob\",\"amount_cents\":0,\"idempotency_key\":\"i5\"}", 400, "invalid" },
        { "negative amount", "{\"to\":\"bob\",\"amount_cents\":-2500,\"idempotency_key\":\"i6\"}", 400, "invalid" },
        { "amount over the maximum", "{\"to\":\"bob\",\"amount_cents\":100000001,\"idempotency_key\":\"i7\"}", 400, "invalid" },
        { "huge amount", "{\"to\":\"bob\",\"amount_cents\":9223372036854775807,\"idempotency_key\":\"i8\"}", 400, "invalid" },
        { "amount null", "{\"to\":\"bob\",\"amount_cents\":null,\"idempotency_key\":\"i9\"}", 400, "invalid" },
        { "amount true", "{\"to\":\"bob\",\"amount_cents\":true,\"idempotency_key\":\"i10\"}", 400, "invalid" },
        { "amount missing", "{\"to\":\"bob\",\"idempotency_key\":\"i11\"}", 400, "invalid" },
        { "key missing", "{\"to\":\"bob\",\"amount_cents\":2500}", 400, "invalid" },
        { "key empty", "{\"to\":\"bob\",\"amount_cents\":2500,\"idempotency_key\":\"\"}", 400, "invalid" },
        { "key a number", "{\"to\":\"bob\",\"amount_cents\":2500,\"idempotency_key\":17}", 400, "invalid" },
        { "to oneself", "{\"to\":\"alice\",\"amount_cents\":2500,\"idempotency_key\":\"i12\"}", 400, "invalid" },
        { "to missing", "{\"amount_cents\":2500,\"idempotency_key\":\"i13\"}", 400, "invalid" },
        { "to not a user name", "{\"to\":\"Bob!\",\"amount_cents\":2500,\"idempotency_key\":\"i14\"}", 400, "invalid" },
        { "unknown recipient", "{\"to\":\"nobody\",\"amount_cents\":2500,\"idempotency_key\":\"i15\"}", 404, "not_found" },
        { "not JSON", "{\"to\":\"bob\",\"amount_cents\":2500,", 400, "invalid" },
        { "a JSON array", "[\"bob\",2500,\"i16\"]", 400, "invalid" },
        { "duplicate amount key", "{\"to\":\"bob\",\"amount_cents\":1,\"amount_cents\":2500,\"idempotency_key\":\"i17\"}", 400, "invalid" },
    };
    int mism = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct h_http_resp r;
        h_http_call(port, "POST", "/api/v1/transfers", b.alice, cases[i].body, -1, &r);
        char what[300];
        snprintf(what, sizeof what, "POST /api/v1/transfers (%s) %s", cases[i].what, cases[i].body);
        mism += !h_check_error(what, &r, cases[i].status, cases[i].code);
        h_http_resp_free(&r);
    }
    struct h_http_resp r;
    h_http_call(port, "POST", "/api/v1/transfers", NULL,
                "{\"to\":\"bob\",\"amount_cents\":2500,\"idempotency_key\":\"noauth\"}", -1, &r);
    mism += !h_check_error("POST /api/v1/transfers without a token", &r, 401, "unauthorized");
    h_http_resp_free(&r);
    h_http_call(port, "GET", "/api/v1/account", NULL, NULL, 0, &r);
    mism += !h_check_error("GET /api/v1/account without a token", &r, 401, "unauthorized");
    h_http_resp_free(&r);
    static const char *const bad_ids[] = { "/api/v1/transfers/999", "/api/v1/transfers/0",
                                           "/api/v1/transfers/abc", "/api/v1/transfers/-1",
                                           "/api/v1/transfers/" };
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        h_http_call(port, "GET", bad_ids[i], b.alice, NULL, 0, &r);
        char what[100];
        snprintf(what, sizeof what, "GET %s", bad_ids[i]);
        mism += !h_check_error(what, &r, 404, "not_found");
        h_http_resp_free(&r);
    }
    CHECK(mism == 0, "%d invalid request(s) not answered as expected (see MISMATCH lines above)", mism);

    /* The largest amount is accepted (and then fails: alice has less). */
    json_int_t tmax = post_transfer_ok(port, b.alice,
                                       "{\"to\":\"bob\",\"amount_cents\":100000000,\"idempotency_key\":\"max\"}");
    json_t *feed = feed_wait_alert(port, b.alice, "alice", "transfer.failed", tmax, dl);
    size_t na = count_alerts(feed, NULL, -1);
    if (na != 3)
        print_events("alice's feed", feed);
    json_decref(feed);
    CHECK(na == 3, "alice's feed: expected only the 3 alerts of the maximal transfer, got %zu alerts", na);
    json_t *fb = h_http_get_events(port, b.bob, 0);
    size_t nbob = count_alerts(fb, NULL, -1);
    json_decref(fb);
    CHECK(nbob == 0, "bob's feed: %zu alerts after only invalid or failed transfers", nbob);
    expect_balance(port, b.alice, "alice", START_CENTS, "after invalid requests");
    expect_balance(port, b.bob, "bob", START_CENTS, "after invalid requests");
    h_server_stop(&b.s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_transfer_short_poll, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_transfer_long_poll, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_transfer_websocket, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_short_poll, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_long_poll, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_websocket, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_insufficient_short_poll, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_insufficient_long_poll, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_insufficient_websocket, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_balance_to_zero, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_client_knows_balance, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_kill_restart_short_poll, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_kill_restart_long_poll, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_kill_restart_websocket, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_kill_processing_and_pending, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_client_rejects_short_poll, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_client_rejects_long_poll, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_client_rejects_websocket, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_invalid_requests, h_setup, h_teardown),
    };
    return cmocka_run_group_tests_name("e2e bank", tests, NULL, NULL);
}
