/* test_session_end.c — an ended session ends every request it holds, on
 * every transport, and nothing private is delivered after it ends
 * (issue 13 item 2):
 *
 *   - a long poll parked before a logout is answered 401 at once, and bob's
 *     transfer that follows never reaches it;
 *   - a long poll parked before the session's absolute expiry
 *     (--session-ttl-s) is answered 401 at the expiry, not with a later
 *     chat message;
 *   - a long poll parked longer than --session-idle-s, with nothing else
 *     using the session, is answered 401 when the session idles out;
 *   - a logout ends the session's WebSocket (4401) and its parked poll
 *     together;
 *   - an open WebSocket keeps its session in use past --session-idle-s: its
 *     touches reach the store (a restarted chatd, which knows the token
 *     only from the store, still takes it);
 *   - PostgreSQL, two instances (needs CHAT_TEST_PG, else skipped): a logout
 *     on one instance, then a chat message: the poll parked on the other
 *     instance gets 401, not the message.
 *
 * (test_security.c checks the WebSocket's 4401 on logout and expiry.) */
#include "scenario.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOLD_S   20                 /* every parked poll asks for this */
#define PROMPT_MS 3000              /* "at once": well under the hold */

/* alice's newest event id, so that a poll after it waits. */
static int64_t newest(int port, const char *tok)
{
    json_t *evs = h_http_get_events(port, tok, 0);
    size_t n = json_array_size(evs);
    int64_t id = n ? json_integer_value(json_object_get(json_array_get(evs, n - 1), "id")) : 0;
    json_decref(evs);
    return id;
}

/* Sends GET /events?after=AFTER&wait=HOLD_S and returns once chatd holds it:
 * a later request on another connection is answered only after chatd has
 * read this one, which was on the wire first. */
static int park_poll(int port, const char *tok, int64_t after)
{
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET /api/v1/events?after=%" PRId64 "&wait=%d HTTP/1.1\r\nHost: x\r\n"
                     "Authorization: Bearer %s\r\nConnection: close\r\n\r\n", after, HOLD_S, tok);
    int fd = h_http_send_request(port, req, (size_t)n);
    CHECK(fd >= 0, "long poll: cannot connect");
    struct h_http_resp r;
    h_http_call(port, "GET", "/healthz", NULL, NULL, 0, &r);
    CHECK(r.status == 200, "healthz: %d", r.status);
    h_http_resp_free(&r);
    return fd;
}

/* The parked poll is answered within ms with 401 unauthorized, and what it
 * got holds none of the session's events. */
static void expect_poll_refused(int fd, int ms, const char *why)
{
    struct h_http_resp r;
    int64_t t0 = h_now_ms();
    int rc = h_http_read_response(fd, &r, ms);
    char *body = rc == 0 && r.body ? strdup(r.body) : strdup("(nothing)");
    CHECK(rc == 0 && r.status != 0, "%s: the parked poll was not answered within %d ms", why, ms);
    CHECK(r.status == 401, "%s: the parked poll got %d %s, expected 401 at once", why, r.status, body);
    h_assert_error(why, &r, 401, "unauthorized");
    CHECK(!strstr(body, "events"), "%s: events delivered: %s", why, body);
    fprintf(stderr, "    %s: 401 after %" PRId64 " ms\n", why, h_now_ms() - t0);
    free(body);
    h_http_resp_free(&r);
}

static void logout(int port, const char *tok)
{
    struct h_http_resp r;
    h_http_call(port, "POST", "/api/v1/logout", tok, NULL, 0, &r);
    CHECK(r.status == 200, "logout: %d %s", r.status, r.body);
    h_http_resp_free(&r);
}

static void test_logout_ends_parked_poll(void **state)
{
    (void)state;
    struct h_server s;
    char alice[65], bob[65];
    const char *extra[] = { "--transfer-delay-ms", "0", NULL };
    start_alice_bob(&s, extra, alice, bob);
    int fd = park_poll(s.port, alice, newest(s.port, alice));
    logout(s.port, alice);
    /* bob's transfer raises alice's transfer.received alert right away */
    struct h_http_resp r;
    h_http_call(s.port, "POST", "/api/v1/transfers", bob,
                "{\"to\":\"alice\",\"amount_cents\":125,\"idempotency_key\":\"k1\"}", -1, &r);
    CHECK(r.status == 202, "bob's transfer: %d %s", r.status, r.body);
    h_http_resp_free(&r);
    expect_poll_refused(fd, PROMPT_MS, "parked across a logout");
    h_server_stop(&s);
}

static void test_logout_ends_ws_and_poll(void **state)
{
    (void)state;
    struct h_server s;
    char alice[65], bob[65];
    start_alice_bob(&s, NULL, alice, bob);
    int64_t after = newest(s.port, alice);
    struct h_ws *w = h_ws_connect(s.port);
    json_decref(h_ws_hello(w, alice, after));
    int fd = park_poll(s.port, alice, after);
    logout(s.port, alice);
    int64_t id;
    CHECK(h_http_post_message(s.port, bob, NULL, "after alice left", NULL, &id) == 201, "bob posts");
    expect_poll_refused(fd, PROMPT_MS, "poll beside a WebSocket, across a logout");
    int code = h_ws_wait_close(w, h_deadline(PROMPT_MS));
    CHECK(code == 4401, "the WebSocket of a logged-out session closed with %d", code);
    h_ws_free(w);
    h_server_stop(&s);
}

static void test_expiry_ends_parked_poll(void **state)
{
    (void)state;
    struct h_server s;
    char alice[65], bob[65];
    const char *extra[] = { "--session-ttl-s", "3", NULL };
    start_alice_bob(&s, extra, alice, bob);
    int fd = park_poll(s.port, alice, newest(s.port, alice));
    /* wait for the expiry as a client sees it: a short poll refused */
    int64_t deadline = h_deadline(6000);
    for (;;) {
        struct h_http_resp r;
        h_http_call(s.port, "GET", "/api/v1/account", alice, NULL, 0, &r);
        int status = r.status;
        h_http_resp_free(&r);
        if (status == 401)
            break;
        CHECK(h_now_ms() < deadline, "alice's session never expired");
        h_pump(100);
    }
    /* bob's first session ends about when alice's does: a fresh one */
    CHECK(h_http_login(s.port, "bob", PW_BOB, bob) == 200, "login bob again");
    int64_t id;
    CHECK(h_http_post_message(s.port, bob, NULL, "after alice's expiry", NULL, &id) == 201, "bob posts");
    expect_poll_refused(fd, PROMPT_MS, "parked across the expiry");
    h_server_stop(&s);
}

static void test_idle_ends_parked_poll(void **state)
{
    (void)state;
    struct h_server s;
    char alice[65], bob[65];
    const char *extra[] = { "--session-idle-s", "2", NULL };
    start_alice_bob(&s, extra, alice, bob);
    int fd = park_poll(s.port, alice, newest(s.port, alice));
    /* nothing else uses alice's session: it idles out 2 s after this poll */
    expect_poll_refused(fd, 2000 + PROMPT_MS, "parked past the idle limit");
    h_server_stop(&s);
}

static void test_ws_keeps_session_in_use(void **state)
{
    (void)state;
    struct h_server s;
    char alice[65], bob[65];
    const char *extra[] = { "--session-idle-s", "6", NULL };
    start_alice_bob(&s, extra, alice, bob);
    struct h_ws *w = h_ws_connect(s.port);
    json_decref(h_ws_hello(w, alice, newest(s.port, alice)));
    int code = h_ws_wait_close(w, h_deadline(8000));    /* longer than the idle limit */
    CHECK(code == -2, "the WebSocket in use was closed (%d)", code);
    h_ws_free(w);
    h_server_restart(&s);
    struct h_http_resp r;
    h_http_call(s.port, "GET", "/api/v1/account", alice, NULL, 0, &r);
    CHECK(r.status == 200, "alice's session after 8 s of an open WebSocket: %d %s", r.status, r.body);
    h_http_resp_free(&r);
    h_server_stop(&s);
}

static void test_logout_on_other_instance(void **state)
{
    (void)state;
    h_need_pg("a logout seen by another instance");
    harness_init();
    struct h_server s[2];
    char alice[65], bob[65];
    h_servers_start_shared(s, 2, NULL);
    alice_bob_on(s[0].port, alice, bob);
    int fd = park_poll(s[1].port, alice, newest(s[1].port, alice));
    logout(s[0].port, alice);
    int64_t id;
    CHECK(h_http_post_message(s[0].port, bob, NULL, "for whoever listens", NULL, &id) == 201, "bob posts");
    expect_poll_refused(fd, PROMPT_MS, "parked on the other instance across a logout");
    h_server_stop(&s[0]);
    h_server_stop(&s[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logout_ends_parked_poll),
        cmocka_unit_test(test_logout_ends_ws_and_poll),
        cmocka_unit_test(test_expiry_ends_parked_poll),
        cmocka_unit_test(test_idle_ends_parked_poll),
        cmocka_unit_test(test_ws_keeps_session_in_use),
        cmocka_unit_test(test_logout_on_other_instance),
    };
    int rc = cmocka_run_group_tests_name("session_end", tests, h_setup, h_teardown);
    harness_cleanup();
    return rc;
}
