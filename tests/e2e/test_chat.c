/* test_chat.c — end-to-end chat over each transport with real bin/chatd and
 * bin/chat --headless processes: two users exchange messages both ways, in
 * order, without loss or duplicates; a second instance of one user gets
 * everything too; events survive a server restart; the four transports
 * deliver the same event sequence; the server shuts down cleanly with
 * clients attached. */
#include "scenario.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define TEST_MS 60000

/* Waits until c has n events; fails with a listing if not by deadline. */
static void wait_n(struct h_proc *c, size_t n, int64_t deadline)
{
    size_t got = h_client_wait_events(c, n, deadline);
    if (got < n) {
        print_events(c->name, c->events);
        CHECK(0, "%s: expected %zu events, got %zu before the deadline%s", c->name, n, got,
              c->exited ? " (the client exited)" : "");
    }
}

/* Checks c's feed is well formed: n chat events, ids strictly increasing,
 * each sender's bodies exactly the given lists in order. */
static void check_feed(struct h_proc *c, size_t n,
                       const char *ua, const char *const *a, size_t na,
                       const char *ub, const char *const *b, size_t nb)
{
    size_t got = h_client_nevents(c);
    if (got != n) {
        for (size_t i = 0; i < got; i++) {
            char *d = h_json_str(h_client_event(c, i));
            fprintf(stderr, "  %s\n", d);
            free(d);
        }
        CHECK(0, "%s: expected exactly %zu events, got %zu (duplicates or extras?)", c->name, n, got);
    }
    CHECK(c->bad_lines == 0, "%s printed %d non-JSON lines on stdout, first: %s", c->name,
          c->bad_lines, c->first_bad);
    json_int_t last = 0;
    size_t ia = 0, ib = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *ev = h_client_event(c, i);
        char *d = h_json_str(ev);
        int ok_fields = strcmp(ev_str(ev, "type"), "chat") == 0 &&
                        json_is_integer(json_object_get(ev, "ts")) &&
                        strcmp(ev_str(ev, "room"), "general") == 0 &&
                        json_is_string(json_object_get(ev, "body"));
        CHECK(ok_fields, "%s: event %zu lacks type chat/ts/room general/body: %s", c->name, i, d);
        CHECK(ev_int(ev, "id") > last, "%s: event ids not strictly increasing at %zu (%lld after %lld): %s",
              c->name, i, (long long)ev_int(ev, "id"), (long long)last, d);
        last = ev_int(ev, "id");
        const char *from = ev_str(ev, "from"), *body = ev_str(ev, "body");
        if (strcmp(from, ua) == 0) {
            CHECK(ia < na && strcmp(body, a[ia]) == 0, "%s: event %zu from %s: expected body \"%s\", got %s",
                  c->name, i, ua, ia < na ? a[ia] : "(none: too many)", d);
            ia++;
        } else if (strcmp(from, ub) == 0) {
            CHECK(ib < nb && strcmp(body, b[ib]) == 0, "%s: event %zu from %s: expected body \"%s\", got %s",
                  c->name, i, ub, ib < nb ? b[ib] : "(none: too many)", d);
            ib++;
        } else {
            CHECK(0, "%s: event %zu from unexpected user: %s", c->name, i, d);
        }
        free(d);
    }
    CHECK(ia == na && ib == nb, "%s: missing messages (%zu/%zu from %s, %zu/%zu from %s)", c->name,
          ia, na, ua, ib, nb, ub);
}

/* Asserts two event lists (arrays of event objects) have the same ids,
 * senders and bodies. */
static void check_same(const char *what_a, const json_t *a, const char *what_b, const json_t *b)
{
    size_t na = json_array_size(a), nb = json_array_size(b);
    CHECK(na == nb, "%s has %zu events, %s has %zu", what_a, na, what_b, nb);
    for (size_t i = 0; i < na; i++) {
        json_t *x = json_array_get(a, i), *y = json_array_get(b, i);
        int same = ev_int(x, "id") == ev_int(y, "id") && strcmp(ev_str(x, "from"), ev_str(y, "from")) == 0 &&
                   strcmp(ev_str(x, "body"), ev_str(y, "body")) == 0 &&
                   strcmp(ev_str(x, "type"), ev_str(y, "type")) == 0 &&
                   json_equal(json_object_get(x, "ts"), json_object_get(y, "ts"));
        if (!same) {
            char *dx = h_json_str(x), *dy = h_json_str(y);
            fprintf(stderr, "%s[%zu] = %s\n%s[%zu] = %s\n", what_a, i, dx, what_b, i, dy);
            free(dx);
            free(dy);
            CHECK(0, "event %zu differs between %s and %s", i, what_a, what_b);
        }
    }
}

static const char *const REGISTER[] = { "--register", NULL };

static void run_transport(const char *t)
{
    int64_t dl = h_deadline(TEST_MS);
    struct h_server s;
    h_server_start(&s, NULL, NULL);

    CHECK(h_http_register(s.port, "bob", PW) == 201, "register bob over HTTP: expected 201");
    /* alice creates her account through the client. */
    struct h_proc *alice = h_client_spawn(&s, t, "alice", PW, REGISTER);
    struct h_proc *bob = h_client_spawn(&s, t, "bob", PW, NULL);
    struct h_proc *bob2 = h_client_spawn(&s, t, "bob", PW, NULL);
    struct h_proc *all[] = { alice, bob, bob2 };

    char a[6][64], b[5][64];
    const char *ap[6], *bp[5];
    for (int i = 0; i < 5; i++) {
        snprintf(a[i], sizeof a[i], "alice %d over %s: héllo ✓", i + 1, t);
        snprintf(b[i], sizeof b[i], "bob %d over %s \"quoted\" \\ back", i + 1, t);
        ap[i] = a[i];
        bp[i] = b[i];
    }
    snprintf(a[5], sizeof a[5], "alice: end of %s", t);
    ap[5] = a[5];

    /* One each way, waiting for delivery: proves all three are connected and
     * live delivery works in both directions. */
    h_client_send_line(alice, a[0]);
    for (int i = 0; i < 3; i++)
        wait_n(all[i], 1, dl);
    h_client_send_line(bob, b[0]);
    for (int i = 0; i < 3; i++)
        wait_n(all[i], 2, dl);
    /* The rest interleaved, without waiting: each sender's order must hold. */
    for (int i = 1; i < 5; i++) {
        h_client_send_line(alice, a[i]);
        h_client_send_line(bob, b[i]);
    }
    for (int i = 0; i < 3; i++)
        wait_n(all[i], 10, dl);
    /* A last message: once it is seen, anything duplicated would be there too. */
    h_client_send_line(alice, a[5]);
    for (int i = 0; i < 3; i++)
        wait_n(all[i], 11, dl);
    for (int i = 0; i < 3; i++)
        check_feed(all[i], 11, "alice", ap, 6, "bob", bp, 5);
    check_same(alice->name, alice->events, "bob", bob->events);
    check_same("bob", bob->events, "bob's second instance", bob2->events);

    /* The server's own view (alice's feed over HTTP) is the same sequence. */
    char tok[65];
    CHECK(h_http_login(s.port, "alice", PW, tok) == 200, "login alice over HTTP: expected 200");
    json_t *truth = h_http_get_events(s.port, tok, 0);
    check_same("GET /api/v1/events (alice)", truth, alice->name, alice->events);
    json_int_t max_id = ev_int(json_array_get(truth, json_array_size(truth) - 1), "id");

    for (int i = 0; i < 3; i++)
        h_client_quit(all[i], h_deadline(5000));

    /* Restart on the same database; a fresh client sees everything. */
    h_server_restart(&s);
    struct h_proc *fresh = h_client_spawn(&s, t, "bob", PW, NULL);
    wait_n(fresh, 11, dl);
    check_feed(fresh, 11, "alice", ap, 6, "bob", bp, 5);
    check_same("events before the restart", truth, "a fresh client after it", fresh->events);
    /* New messages after the restart get new, larger ids. */
    char after[64];
    snprintf(after, sizeof after, "bob after the restart over %s", t);
    h_client_send_line(fresh, after);
    wait_n(fresh, 12, dl);
    json_t *last = h_client_event(fresh, 11);
    CHECK(strcmp(ev_str(last, "body"), after) == 0 && ev_int(last, "id") > max_id,
          "after the restart: expected a new event with id > %lld and body \"%s\"", (long long)max_id, after);
    CHECK(h_client_nevents(fresh) == 12, "fresh client: expected 12 events, got %zu", h_client_nevents(fresh));
    h_client_quit(fresh, h_deadline(5000));
    json_decref(truth);
    h_server_stop(&s);
}

static void test_short_poll(void **state) { (void)state; run_transport("short-poll"); }
static void test_long_poll(void **state) { (void)state; run_transport("long-poll"); }
static void test_websocket(void **state) { (void)state; run_transport("websocket"); }
static void test_sse(void **state) { (void)state; run_transport("sse"); }

/* The four transports, run side by side for one user, print the same events
 * (history replayed at start, then live ones). */
static void test_transports_agree(void **state)
{
    (void)state;
    int64_t dl = h_deadline(TEST_MS);
    struct h_server s;
    h_server_start(&s, NULL, NULL);
    CHECK(h_http_register(s.port, "alice", PW) == 201, "register alice: expected 201");
    CHECK(h_http_register(s.port, "bob", PW) == 201, "register bob: expected 201");
    char tok[65];
    CHECK(h_http_login(s.port, "bob", PW, tok) == 200, "login bob: expected 200");

    const char *bodies[] = { "history 1", "history 2", "history 3", "live 1 from bob",
                             "live from alice over long-poll", "live 2 from bob", "the end" };
    for (int i = 0; i < 3; i++)
        CHECK(h_http_post_message(s.port, tok, NULL, bodies[i], NULL, NULL) == 201, "post %s: expected 201", bodies[i]);

    const char *ts[] = { "short-poll", "long-poll", "websocket", "sse" };
    enum { NT = sizeof ts / sizeof ts[0] };
    struct h_proc *c[NT];
    for (int i = 0; i < NT; i++)
        c[i] = h_client_spawn(&s, ts[i], "alice", PW, NULL);
    for (int i = 0; i < NT; i++)
        wait_n(c[i], 3, dl);
    CHECK(h_http_post_message(s.port, tok, "general", bodies[3], "live-1", NULL) == 201, "post live 1");
    for (int i = 0; i < NT; i++)
        wait_n(c[i], 4, dl);
    h_client_send_line(c[1], bodies[4]);
    for (int i = 0; i < NT; i++)
        wait_n(c[i], 5, dl);
    CHECK(h_http_post_message(s.port, tok, NULL, bodies[5], NULL, NULL) == 201, "post live 2");
    CHECK(h_http_post_message(s.port, tok, NULL, bodies[6], NULL, NULL) == 201, "post the end");
    for (int i = 0; i < NT; i++)
        wait_n(c[i], 7, dl);

    const char *bob_b[] = { bodies[0], bodies[1], bodies[2], bodies[3], bodies[5], bodies[6] };
    const char *alice_b[] = { bodies[4] };
    for (int i = 0; i < NT; i++)
        check_feed(c[i], 7, "alice", alice_b, 1, "bob", bob_b, 6);
    json_t *truth = h_http_get_events(s.port, tok, 0);
    for (int i = 0; i < NT; i++)
        check_same("GET /api/v1/events", truth, c[i]->name, c[i]->events);
    json_decref(truth);
    for (int i = 0; i < NT; i++)
        h_client_quit(c[i], h_deadline(5000));
    h_server_stop(&s);
}

/* SIGTERM with a WebSocket and a pending long poll attached: chatd exits 0
 * promptly (h_server_stop allows 10 s). */
static void test_shutdown_with_clients(void **state)
{
    (void)state;
    int64_t dl = h_deadline(TEST_MS);
    struct h_server s;
    const char *extra[] = { "--long-poll-max-s", "25", NULL };
    h_server_start(&s, NULL, extra);
    CHECK(h_http_register(s.port, "alice", PW) == 201, "register alice: expected 201");
    struct h_proc *lp = h_client_spawn(&s, "long-poll", "alice", PW, NULL);
    struct h_proc *ws = h_client_spawn(&s, "websocket", "alice", PW, NULL);
    h_client_send_line(ws, "hello before shutdown");
    wait_n(lp, 1, dl);
    wait_n(ws, 1, dl);
    int64_t t0 = h_now_ms();
    h_server_stop(&s);
    CHECK(h_now_ms() - t0 < 5000, "chatd took %lld ms to stop with clients attached",
          (long long)(h_now_ms() - t0));
}

/* A wrong password: the client reports it and exits non-zero. */
static void test_wrong_password(void **state)
{
    (void)state;
    struct h_server s;
    h_server_start(&s, NULL, NULL);
    CHECK(h_http_register(s.port, "alice", PW) == 201, "register alice: expected 201");
    struct h_proc *c = h_client_spawn(&s, "websocket", "alice", "not the password", NULL);
    int st = 0;
    CHECK(h_proc_wait_exit(c, h_deadline(10000), &st), "client with a wrong password did not exit");
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) != 0, "client with a wrong password: expected a non-zero exit, got status %d", st);
    CHECK(c->err.len > 0, "client with a wrong password said nothing on stderr");
    CHECK(h_client_nevents(c) == 0, "client with a wrong password printed events");
    h_server_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_short_poll, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_long_poll, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_websocket, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_sse, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_transports_agree, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_with_clients, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_wrong_password, h_setup, h_teardown),
    };
    return cmocka_run_group_tests_name("e2e chat", tests, NULL, NULL);
}
