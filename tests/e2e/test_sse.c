/* test_sse.c — the Server-Sent Events transport, GET /api/v1/stream
 * (server/sse_api.c), read with a raw client (harness_sse.c):
 *
 *   - the stream's head (text/event-stream, no caching), retry: and a
 *     ready event first, then every event of the user's feed exactly once,
 *     in id order, `id:` the event's id and `event:` its type (chat and a
 *     transfer's alerts), the same events GET /api/v1/events lists;
 *   - resume: a stream closed half way and opened again with the last
 *     id as Last-Event-ID (as a browser does) gets exactly the rest; after=
 *     starts a first connect; Last-Event-ID wins over after=;
 *   - refusals: no token or a bad one 401, a bad after= or Last-Event-ID
 *     400, POST 405; an address over --max-connections-per-ip 429;
 *   - a heartbeat comment after --heartbeat-s of silence;
 *   - a logout: an `end` event, then the stream closes, at once;
 *   - a graceful shutdown closes open streams, and chatd exits 0;
 *   - a restart: the stream opened again on the new server with
 *     Last-Event-ID misses nothing. */
#include "harness_sse.h"
#include "scenario.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROMPT_MS 3000

static void start(struct h_server *s, const char *const *extra, char *alice, char *bob)
{
    h_server_start_with_user(s, extra, "alice", PW, alice);
    CHECK(h_http_register(s->port, "bob", PW) == 201, "register bob");
    CHECK(h_http_login(s->port, "bob", PW, bob) == 200, "login bob");
}

static void post_n(int port, const char *tok, int from, int n)
{
    char body[64];
    int64_t id;
    for (int i = from; i < from + n; i++) {
        snprintf(body, sizeof body, "m%d", i);
        CHECK(h_http_post_message(port, tok, NULL, body, NULL, &id) == 201, "post %s", body);
    }
}

/* The stream's data messages are exactly evs (the feed from the server),
 * from index first on, in order: same ids, `id:` = the event's id, `event:`
 * = its type. */
static void expect_same(const struct h_sse *e, const json_t *evs, size_t first, const char *what)
{
    size_t n = h_sse_count(e, NULL);
    CHECK(n == json_array_size(evs) - first, "%s: %zu events on the stream, %zu in the feed",
          what, n, json_array_size(evs) - first);
    for (size_t i = 0; i < n; i++) {
        json_t *m = h_sse_msg(e, NULL, i), *ev = json_array_get(evs, first + i);
        json_t *data = json_object_get(m, "data");
        char id[32];
        snprintf(id, sizeof id, "%" PRId64, (int64_t)ev_int(ev, "id"));
        CHECK(json_equal(data, ev), "%s: message %zu differs from the feed's event %s", what, i, id);
        CHECK(!strcmp(ev_str(m, "id"), id), "%s: message %zu has id: %s, its event %s", what, i,
              ev_str(m, "id"), id);
        CHECK(!strcmp(ev_str(m, "event"), ev_str(ev, "type")), "%s: event: %s for a %s", what,
              ev_str(m, "event"), ev_str(ev, "type"));
    }
}

static void test_stream_in_order(void **state)
{
    (void)state;
    struct h_server s;
    char alice[65], bob[65];
    const char *extra[] = { "--transfer-delay-ms", "20", "--msg-rate", "1000", NULL };
    start(&s, extra, alice, bob);
    post_n(s.port, bob, 0, 5);
    struct h_sse *e = h_sse_open(s.port, alice, NULL, NULL, NULL);
    CHECK(e->status == 200, "stream: %d %s", e->status, e->head ? e->head : "");
    char *ct = h_http_header(&(struct h_http_resp){ .head = e->head }, "Content-Type");
    char *cc = h_http_header(&(struct h_http_resp){ .head = e->head }, "Cache-Control");
    CHECK(ct && !strcmp(ct, "text/event-stream"), "Content-Type: %s", ct ? ct : "none");
    CHECK(cc && strstr(cc, "no-store"), "Cache-Control: %s", cc ? cc : "none");
    free(ct);
    free(cc);
    CHECK(h_sse_wait(e, NULL, 5, h_deadline(PROMPT_MS)) == 5, "the 5 earlier messages");
    json_t *ready = json_array_get(e->msgs, 0);
    CHECK(!strcmp(ev_str(ready, "event"), "ready") && !json_object_get(ready, "id"),
          "the first message is ready, with no id");
    CHECK(!strcmp(ev_str(json_object_get(ready, "data"), "user"), "alice"), "ready names alice");
    CHECK(e->retry_ms > 0, "a retry: hint");
    /* live: chat from both, and a transfer's alerts (pending, processing,
     * completed for alice) */
    post_n(s.port, alice, 5, 100);
    struct h_http_resp r;
    h_http_call(s.port, "POST", "/api/v1/transfers", alice,
                "{\"to\":\"bob\",\"amount_cents\":250,\"idempotency_key\":\"k1\"}", -1, &r);
    CHECK(r.status == 202, "transfer: %d", r.status);
    h_http_resp_free(&r);
    post_n(s.port, bob, 105, 100);
    CHECK(h_sse_wait(e, "alert", 3, h_deadline(10000)) == 3, "3 alerts");
    h_sse_wait(e, NULL, 208, h_deadline(10000));
    json_t *evs = h_http_get_events(s.port, alice, 0);
    expect_same(e, evs, 0, "live");
    json_decref(evs);
    h_sse_close(e);
    h_server_stop(&s);
}

static void test_resume(void **state)
{
    (void)state;
    struct h_server s;
    char alice[65], bob[65];
    start(&s, NULL, alice, bob);
    post_n(s.port, bob, 0, 20);
    struct h_sse *e = h_sse_open(s.port, alice, NULL, NULL, NULL);
    CHECK(h_sse_wait(e, NULL, 20, h_deadline(PROMPT_MS)) == 20, "20 messages");
    char last[32];
    snprintf(last, sizeof last, "%s", ev_str(h_sse_msg(e, NULL, 9), "id"));
    h_sse_close(e);
    post_n(s.port, bob, 20, 10);
    json_t *evs = h_http_get_events(s.port, alice, 0);
    /* the browser's reconnect: Last-Event-ID, here the 10th id (it wins
     * over after=) */
    e = h_sse_open(s.port, alice, "after=1", last, NULL);
    CHECK(h_sse_wait(e, NULL, 20, h_deadline(PROMPT_MS)) == 20, "the 20 after the 10th");
    expect_same(e, evs, 10, "Last-Event-ID");
    h_pump(200);             /* nothing more comes */
    expect_same(e, evs, 10, "Last-Event-ID, a moment later");
    h_sse_close(e);
    /* a first connect with after= */
    e = h_sse_open(s.port, alice, "after=25", NULL, NULL);
    CHECK(h_sse_wait(e, NULL, 5, h_deadline(PROMPT_MS)) == 5, "the 5 after id 25");
    expect_same(e, evs, 25, "after=25");
    h_sse_close(e);
    /* a restart: resumed on the new server, nothing missed */
    h_server_restart(&s);
    post_n(s.port, bob, 30, 5);
    e = h_sse_open(s.port, alice, NULL, "30", NULL);
    json_decref(evs);
    evs = h_http_get_events(s.port, alice, 0);
    CHECK(h_sse_wait(e, NULL, 5, h_deadline(PROMPT_MS)) == 5, "the 5 after the restart");
    expect_same(e, evs, 30, "after a restart");
    json_decref(evs);
    h_sse_close(e);
    h_server_stop(&s);
}

static void expect_refused(int port, const char *tok, const char *query, const char *last_id,
                           int status, const char *code)
{
    struct h_sse *e = h_sse_open(port, tok, query, last_id, NULL);
    CHECK(e->status == status, "stream %s %s: %d, expected %d", query ? query : "",
          last_id ? last_id : "", e->status, status);
    h_sse_wait_closed(e, h_deadline(PROMPT_MS));
    struct h_http_resp r = { .status = e->status, .head = e->head };
    r.body = e->in.data ? strndup(e->in.data, e->in.len) : strdup("");
    r.json = json_loads(r.body, 0, NULL);
    h_assert_error("stream refused", &r, status, code);
    free(r.body);
    json_decref(r.json);
    h_sse_close(e);
}

static void test_refused(void **state)
{
    (void)state;
    struct h_server s;
    char alice[65], bob[65];
    const char *extra[] = { "--max-connections-per-ip", "3", NULL };
    start(&s, extra, alice, bob);
    expect_refused(s.port, NULL, NULL, NULL, 401, "unauthorized");
    expect_refused(s.port, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                   NULL, NULL, 401, "unauthorized");
    expect_refused(s.port, alice, "after=-1", NULL, 400, "bad_query");
    expect_refused(s.port, alice, "wait=5", NULL, 400, "bad_query");
    expect_refused(s.port, alice, NULL, "12x", 400, "bad_query");
    struct h_http_resp r;
    h_http_call(s.port, "POST", "/api/v1/stream", alice, "{}", -1, &r);
    h_assert_error("POST stream", &r, 405, "method_not_allowed");
    h_http_resp_free(&r);
    /* streams count as connections of their address */
    struct h_sse *open[3];
    for (int i = 0; i < 3; i++) {
        open[i] = h_sse_open(s.port, alice, NULL, NULL, NULL);
        CHECK(open[i]->status == 200, "stream %d: %d", i, open[i]->status);
    }
    expect_refused(s.port, alice, NULL, NULL, 429, "too_many_connections");
    for (int i = 0; i < 3; i++)
        h_sse_close(open[i]);
    h_server_stop(&s);
}

static void test_heartbeat_and_end(void **state)
{
    (void)state;
    struct h_server s;
    char alice[65], bob[65];
    const char *extra[] = { "--heartbeat-s", "2", NULL };
    start(&s, extra, alice, bob);
    struct h_sse *e = h_sse_open(s.port, alice, NULL, NULL, NULL);
    CHECK(h_sse_wait(e, "ready", 1, h_deadline(PROMPT_MS)) == 1, "ready");
    CHECK(json_integer_value(json_object_get(json_object_get(h_sse_msg(e, "ready", 0), "data"),
                                             "heartbeat_s")) == 2, "ready says heartbeat_s 2");
    int64_t t0 = h_now_ms();
    CHECK(h_sse_wait_comments(e, 1, h_deadline(4000)) >= 1, "a heartbeat within 4 s");
    int64_t waited = h_now_ms() - t0;
    CHECK(waited >= 1500, "the heartbeat came after %" PRId64 " ms of a 2 s silence", waited);
    /* logout on another connection: end, then the close, at once */
    struct h_http_resp r;
    h_http_call(s.port, "POST", "/api/v1/logout", alice, NULL, 0, &r);
    CHECK(r.status == 200, "logout: %d", r.status);
    h_http_resp_free(&r);
    CHECK(h_sse_wait(e, "end", 1, h_deadline(PROMPT_MS)) == 1, "an end event after the logout");
    CHECK(h_sse_wait_closed(e, h_deadline(PROMPT_MS)), "the stream closed after the end");
    int64_t id;
    CHECK(h_http_post_message(s.port, bob, NULL, "after the end", NULL, &id) == 201, "bob posts");
    CHECK(h_sse_count(e, NULL) == 0, "nothing delivered after the end");
    h_sse_close(e);
    expect_refused(s.port, alice, NULL, NULL, 401, "unauthorized");
    h_server_stop(&s);
}

static void test_shutdown_closes(void **state)
{
    (void)state;
    struct h_server s;
    char alice[65], bob[65];
    start(&s, NULL, alice, bob);
    struct h_sse *e[4];
    for (int i = 0; i < 4; i++) {
        e[i] = h_sse_open(s.port, i % 2 ? bob : alice, NULL, NULL, NULL);
        CHECK(h_sse_wait(e[i], "ready", 1, h_deadline(PROMPT_MS)) == 1, "stream %d ready", i);
    }
    int64_t t0 = h_now_ms();
    h_server_stop(&s);                  /* asserts a clean exit 0 */
    for (int i = 0; i < 4; i++) {
        CHECK(h_sse_wait_closed(e[i], h_deadline(PROMPT_MS)), "stream %d closed by the shutdown", i);
        h_sse_close(e[i]);
    }
    fprintf(stderr, "    shutdown with 4 streams: %" PRId64 " ms\n", h_now_ms() - t0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_in_order),
        cmocka_unit_test(test_resume),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_heartbeat_and_end),
        cmocka_unit_test(test_shutdown_closes),
    };
    int rc = cmocka_run_group_tests_name("sse", tests, h_setup, h_teardown);
    harness_cleanup();
    return rc;
}
