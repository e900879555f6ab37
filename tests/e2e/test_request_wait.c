/* test_request_wait.c — requests that wait for the database (issue 15):
 * chatd on PostgreSQL through a relay the test stalls, so that every store
 * call waits (store.h, asynchronous calls). Needs CHAT_TEST_PG
 * (scripts/with-pg.sh), else skipped.
 *
 *   - requests whose connections close while their store calls wait (a
 *     balance read, a login, a WebSocket hello) do no harm: once the
 *     database flows again chatd answers the next ones (under ASan: no use
 *     of a freed connection);
 *   - a request the store cannot run in time is answered 503
 *     store_unavailable with Retry-After: 1, and the same request succeeds
 *     once the database is back;
 *   - a WebSocket hello whose token must be looked up goes on when the
 *     lookup comes back within the hello deadline (ready). */
#include "harness.h"
#include "relay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PW "password1"
#define ANSWER_MS 12000       /* the store's 5 s bound, and slack for a loaded machine */

static struct relay *g_relay;

static int teardown(void **state)
{
    relay_stop(g_relay);
    g_relay = NULL;
    return h_teardown(state);
}

/* chatd on a fresh database reached through g_relay (skips the test
 * without PostgreSQL). */
static void start_via_relay(struct h_server *s, char *via, size_t len)
{
    h_need_pg("a database that stalls behind a relay");
    char db[512];
    int pg_port;
    h_pg_createdb(db, sizeof db);
    h_pg_url_with_port(db, 1, via, len, &pg_port);
    g_relay = relay_start(pg_port);
    h_pg_url_with_port(db, relay_port(g_relay), via, len, &pg_port);
    const char *extra[] = { "--db", via, NULL };
    h_server_start(s, NULL, extra);
}

/* Sends a raw request and returns once chatd has read it (a /healthz on
 * another connection, answered from memory, comes back after it). */
static int send_and_wait_read(int port, const char *req)
{
    int fd = h_http_send_request(port, req, strlen(req));
    assert_true(fd >= 0);
    struct h_http_resp r;
    h_http_call(port, "GET", "/healthz", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    h_http_resp_free(&r);
    return fd;
}

static int get_account(int port, const char *token, struct h_http_resp *r)
{
    h_http_call_timeout(port, "GET", "/api/v1/account", token, NULL, 0, r, ANSWER_MS);
    return r->status;
}

/* GET /account until 200 (the database back, reconnected), within ms. */
static void account_ok_within(int port, const char *token, int ms)
{
    int64_t dl = h_deadline(ms);
    for (;;) {
        struct h_http_resp r;
        int st = get_account(port, token, &r);
        h_http_resp_free(&r);
        if (st == 200)
            return;
        if (h_now_ms() >= dl)
            fail_msg("GET /account still %d %d ms after the database came back", st, ms);
        h_pump(200);
    }
}

static void test_closed_while_waiting(void **state)
{
    (void)state;
    struct h_server s;
    char via[600], token[80], req[512];
    start_via_relay(&s, via, sizeof via);
    assert_int_equal(h_http_register(s.port, "alice", PW), 201);
    assert_int_equal(h_http_login(s.port, "alice", PW, token), 200);
    relay_stall(g_relay, RELAY_STALL);
    snprintf(req, sizeof req, "GET /api/v1/account HTTP/1.1\r\nHost: x\r\n"
             "Authorization: Bearer %s\r\n\r\n", token);
    int fd1 = send_and_wait_read(s.port, req);
    const char *body = "{\"user\":\"alice\",\"password\":\"" PW "\"}";
    snprintf(req, sizeof req, "POST /api/v1/login HTTP/1.1\r\nHost: x\r\n"
             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s", strlen(body), body);
    int fd2 = send_and_wait_read(s.port, req);
    struct h_ws *w = h_ws_connect(s.port);
    char hello[200];
    snprintf(hello, sizeof hello, "{\"op\":\"hello\",\"token\":\"%s\",\"after\":0}", token);
    assert_int_equal(h_ws_send_text(w, hello), 0);
    close(fd1);
    close(fd2);
    h_ws_free(w);
    h_pump(300);
    relay_stall(g_relay, RELAY_FLOW);
    account_ok_within(s.port, token, ANSWER_MS);
    assert_int_equal(h_http_login(s.port, "alice", PW, token), 200);
    h_server_stop(&s);
}

static void test_unavailable_is_503(void **state)
{
    (void)state;
    struct h_server s;
    char via[600], token[80];
    start_via_relay(&s, via, sizeof via);
    assert_int_equal(h_http_register(s.port, "alice", PW), 201);
    assert_int_equal(h_http_login(s.port, "alice", PW, token), 200);
    relay_stall(g_relay, RELAY_STALL);
    struct h_http_resp r;
    get_account(s.port, token, &r);
    h_assert_error("balance while the database stalls", &r, 503, "store_unavailable");
    char *retry = h_http_header(&r, "Retry-After");
    assert_non_null(retry);
    assert_string_equal(retry, "1");
    free(retry);
    h_http_resp_free(&r);
    relay_stall(g_relay, RELAY_FLOW);
    account_ok_within(s.port, token, ANSWER_MS);
    h_server_stop(&s);
}

static void test_hello_waits_for_lookup(void **state)
{
    (void)state;
    struct h_server s;
    char via[600], token[80];
    start_via_relay(&s, via, sizeof via);
    assert_int_equal(h_http_register(s.port, "alice", PW), 201);
    assert_int_equal(h_http_login(s.port, "alice", PW, token), 200);
    h_server_restart(&s);              /* a chatd that has not seen the token */
    relay_stall(g_relay, RELAY_STALL);
    struct h_ws *w = h_ws_connect(s.port);
    char hello[200];
    snprintf(hello, sizeof hello, "{\"op\":\"hello\",\"token\":\"%s\",\"after\":0}", token);
    assert_int_equal(h_ws_send_text(w, hello), 0);
    h_pump(1000);
    relay_stall(g_relay, RELAY_FLOW);
    json_t *ready = h_ws_recv_op(w, "ready", h_deadline(ANSWER_MS));
    assert_non_null(ready);
    json_decref(ready);
    h_ws_free(w);
    h_server_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_closed_while_waiting, h_setup, teardown),
        cmocka_unit_test_setup_teardown(test_unavailable_is_503, h_setup, teardown),
        cmocka_unit_test_setup_teardown(test_hello_waits_for_lookup, h_setup, teardown),
    };
    return cmocka_run_group_tests_name("request_wait", tests, NULL, NULL);
}
