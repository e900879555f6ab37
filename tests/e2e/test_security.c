/* test_security.c — sessions that end, and nobody where they do not belong:
 * logout revokes a token on every transport and closes its open WebSocket
 * (4401); an expired token is refused and its WebSocket closed; forged and
 * other users' tokens see nothing; a foreign browser Origin cannot open a
 * WebSocket; and the server's log never holds a password, token or body. */
#include "scenario.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BODY     "the body must never reach the log"

/* The token is refused on all three transports, with no data. */
static void expect_token_refused(int port, const char *tok, const char *why)
{
    const char *paths[] = { "/api/v1/events?after=0&wait=0", "/api/v1/events?after=0&wait=1",
                            "/api/v1/account" };
    for (size_t i = 0; i < 3; i++) {
        struct h_http_resp r;
        h_http_call(port, "GET", paths[i], tok, NULL, 0, &r);
        char what[160];
        snprintf(what, sizeof what, "%s: GET %s", why, paths[i]);
        h_assert_error(what, &r, 401, "unauthorized");
        CHECK(!strstr(r.body, "general"), "%s leaked data: %s", what, r.body);
        h_http_resp_free(&r);
    }
    struct h_ws *w = h_ws_connect(port);
    char hello[160];
    snprintf(hello, sizeof hello, "{\"op\":\"hello\",\"token\":\"%s\",\"after\":0}", tok);
    CHECK(h_ws_send_text(w, hello) == 0, "send hello");
    int code = h_ws_wait_close(w, h_deadline(5000));
    CHECK(code == 4401, "%s: WebSocket hello closed with %d, expected 4401", why, code);
    h_ws_free(w);
}

static void test_logout(void **state)
{
    (void)state;
    struct h_server s;
    char alice[65];
    start_alice_bob(&s, NULL, alice, NULL);
    int64_t id;
    CHECK(h_http_post_message(s.port, alice, NULL, BODY, NULL, &id) == 201, "post");
    struct h_ws *w = h_ws_connect(s.port);
    json_decref(h_ws_hello(w, alice, 0));
    struct h_http_resp r;
    h_http_call(s.port, "POST", "/api/v1/logout", alice, NULL, 0, &r);
    CHECK(r.status == 200, "logout: %d %s", r.status, r.body);
    h_http_resp_free(&r);
    int code = h_ws_wait_close(w, h_deadline(3000));
    CHECK(code == 4401, "the open WebSocket of a logged-out session closed with %d", code);
    h_ws_free(w);
    expect_token_refused(s.port, alice, "revoked token");
    h_http_call(s.port, "POST", "/api/v1/logout", alice, NULL, 0, &r);
    h_assert_error("a second logout", &r, 401, "unauthorized");
    h_http_resp_free(&r);
    h_server_stop(&s);
}

static void test_expired(void **state)
{
    (void)state;
    struct h_server s;
    char alice[65];
    const char *extra[] = { "--session-ttl-s", "2", NULL };
    start_alice_bob(&s, extra, alice, NULL);
    struct h_ws *w = h_ws_connect(s.port);
    json_decref(h_ws_hello(w, alice, 0));
    /* the sweep closes it within a few seconds of the expiry */
    int code = h_ws_wait_close(w, h_deadline(6000));
    CHECK(code == 4401, "the WebSocket of an expired session closed with %d", code);
    h_ws_free(w);
    expect_token_refused(s.port, alice, "expired token");
    h_server_stop(&s);
}

static void test_forged_and_foreign(void **state)
{
    (void)state;
    struct h_server s;
    char alice[65], bob[65], forged[65];
    start_alice_bob(&s, NULL, alice, bob);
    memcpy(forged, alice, sizeof forged);
    forged[0] = forged[0] == 'a' ? 'b' : 'a';
    expect_token_refused(s.port, forged, "forged token");
    expect_token_refused(s.port, "not-even-hex", "malformed token");
    /* bob's token works, but shows bob's account only, never alice's */
    struct h_http_resp r;
    h_http_call(s.port, "GET", "/api/v1/account", bob, NULL, 0, &r);
    CHECK(r.status == 200 && !strcmp(json_string_value(json_object_get(r.json, "user")), "bob"),
          "bob's token: %s", r.body);
    h_http_resp_free(&r);
    h_server_stop(&s);
}

static void test_origin(void **state)
{
    (void)state;
    struct h_server s;
    char alice[65];
    const char *extra[] = { "--allow-origin", "https://chat.example", NULL };
    start_alice_bob(&s, extra, alice, NULL);
    struct h_http_resp r;
    struct h_ws *w = h_ws_connect_raw(s.port, "Sec-WebSocket-Protocol: chat.v1\r\nOrigin: https://evil.example\r\n", &r);
    CHECK(!w, "a WebSocket from a foreign Origin was accepted");
    h_http_resp_free(&r);
    w = h_ws_connect_raw(s.port, "Sec-WebSocket-Protocol: chat.v1\r\nOrigin: https://chat.example\r\n", &r);
    CHECK(w, "a WebSocket from the allowed Origin was refused (%d)", r.status);
    json_decref(h_ws_hello(w, alice, 0));
    h_ws_free(w);
    h_http_resp_free(&r);
    w = h_ws_connect(s.port);         /* no Origin: a terminal client */
    h_ws_free(w);
    h_server_stop(&s);
}

static void test_log_has_no_secrets(void **state)
{
    (void)state;
    struct h_server s;
    char alice[65], bob[65];
    start_alice_bob(&s, NULL, alice, bob);
    int64_t id;
    CHECK(h_http_post_message(s.port, alice, NULL, BODY, NULL, &id) == 201, "post");
    struct h_http_resp r;
    h_http_call(s.port, "POST", "/api/v1/login", NULL, "{\"user\":\"alice\",\"password\":\"wrong-password-9\"}", -1, &r);
    h_http_resp_free(&r);
    h_http_call(s.port, "POST", "/api/v1/transfers", alice,
                "{\"to\":\"bob\",\"amount_cents\":100,\"idempotency_key\":\"k1\"}", -1, &r);
    CHECK(r.status == 202, "transfer: %d", r.status);
    h_http_resp_free(&r);
    /* the audit line of the transfer is the last: wait for it to arrive */
    int64_t deadline = h_deadline(5000);
    while (!(s.proc->err.data && memmem(s.proc->err.data, s.proc->err.len, "transfer.accepted", 17))) {
        CHECK(h_now_ms() < deadline, "no audit line for a transfer");
        h_pump(100);
    }
    char *log = strndup(s.proc->err.data, s.proc->err.len);
    h_server_stop(&s);
    CHECK(strstr(log, "audit login user=alice"), "no audit line for a login:\n%s", log);
    CHECK(strstr(log, "audit login.failed user=alice"), "no audit line for a failed login");
    CHECK(strstr(log, "audit transfer.accepted"), "no audit line for a transfer");
    const char *secrets[] = { PW_ALICE, PW_BOB, "wrong-password-9", alice, bob, BODY };
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
        CHECK(!strstr(log, secrets[i]), "the log contains a secret (#%zu)", i);
    free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logout),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_forged_and_foreign),
        cmocka_unit_test(test_origin),
        cmocka_unit_test(test_log_has_no_secrets),
    };
    int rc = cmocka_run_group_tests_name("security", tests, NULL, NULL);
    harness_cleanup();
    return rc;
}
