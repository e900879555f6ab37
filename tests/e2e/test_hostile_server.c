/* test_hostile_server.c — the real bin/chat --headless against a hostile
 * server (hostile.h): impossible chunk sizes on the login and poll answers,
 * oversized and endless WebSocket messages, and a login that is never
 * answered (silence, a 204 without a length, a byte at a time). In every
 * case the client must not crash (no signal, no sanitizer report), must say
 * what happened as a JSON line, and must go on by the client's usual rules:
 * retry, close 1009 and reconnect, or give up with exit 3. A WebSocket
 * closed with 4401 before "ready" (chatd's answer to a hello that came too
 * late) is retried while the token is good, and ends the client with exit
 * 2 and "log in again" once the server refuses the token. */
#include "harness.h"
#include "hostile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define PW "hostile test password"

/* A server entry for h_client_spawn: only the URL is used. */
static struct h_server as_server(const struct hostile *h)
{
    struct h_server s;
    memset(&s, 0, sizeof s);
    snprintf(s.url, sizeof s.url, "%s", hostile_url(h));
    return s;
}

static void check_clean(struct h_proc *c);

/* Waits for a JSON line on c's stderr whose string member key contains
 * needle; returns 1/0 (fails at once if c crashed meanwhile). */
static int wait_json_line(struct h_proc *c, const char *key, const char *needle, int64_t deadline)
{
    for (;;) {
        const char *p = c->err.data, *end = p ? p + c->err.len : NULL;
        while (p && p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            if (!nl)
                break;
            json_t *o = json_loadb(p, (size_t)(nl - p), 0, NULL);
            const char *v = json_string_value(json_object_get(o, key));
            int hit = v && strstr(v, needle);
            json_decref(o);
            if (hit)
                return 1;
            p = nl + 1;
        }
        check_clean(c);
        if (h_now_ms() >= deadline || c->exited)
            return 0;
        h_pump(50);
    }
}

/* The client ran without a crash or a sanitizer report. */
static void check_clean(struct h_proc *c)
{
    CHECK(!c->exited || !WIFSIGNALED(c->status), "%s was killed by signal %d", c->name,
          WTERMSIG(c->status));
    CHECK(!c->err.data || (!strstr(c->err.data, "AddressSanitizer") &&
                           !strstr(c->err.data, "runtime error")),
          "%s: sanitizer report", c->name);
}

static void expect_exit(struct h_proc *c, int code, int64_t deadline)
{
    int status = 0;
    CHECK(h_proc_wait_exit(c, deadline, &status), "%s did not exit in time", c->name);
    check_clean(c);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == code, "%s: exit status %d, want %d",
          c->name, WIFEXITED(status) ? WEXITSTATUS(status) : -1, code);
}

/* ---- 9: chunk sizes ---- */

static void test_login_chunk_size_is_refused(void **state)
{
    (void)state;
    const char *sizes[] = { "ffffffff", "7fffffffffffffff" };
    struct hostile *h[2];
    struct h_proc *c[2];
    struct h_server s[2];
    for (int i = 0; i < 2; i++) {
        struct hostile_script sc = { .login = HOSTILE_HTTP_CHUNKED, .chunk_size = sizes[i] };
        h[i] = hostile_start(&sc);
        s[i] = as_server(h[i]);
        c[i] = h_client_spawn(&s[i], "websocket", "alice", PW, NULL);
    }
    for (int i = 0; i < 2; i++) {
        CHECK(wait_json_line(c[i], "error", "too large", h_deadline(10000)),
              "chunk size %s: no error line saying the answer is too large", sizes[i]);
        /* a broken answer counts like a 500: retried, then exit 3 */
        expect_exit(c[i], 3, h_deadline(30000));
        CHECK(wait_json_line(c[i], "error", "server unreachable", h_now_ms()),
              "chunk size %s: no 'server unreachable' line", sizes[i]);
        hostile_stop(h[i]);
    }
}

static void test_poll_chunk_size_is_refused(void **state)
{
    (void)state;
    const char *transports[] = { "long-poll", "short-poll" };
    for (int i = 0; i < 2; i++) {
        struct hostile_script sc = { .events = HOSTILE_HTTP_CHUNKED, .chunk_size = "ffffffff" };
        struct hostile *h = hostile_start(&sc);
        struct h_server s = as_server(h);
        struct h_proc *c = h_client_spawn(&s, transports[i], "alice", PW, NULL);
        CHECK(wait_json_line(c, "error", "polling failed: response too large", h_deadline(10000)),
              "%s: no error line for the broken poll answer", transports[i]);
        struct hostile_stats st;
        int64_t dl = h_deadline(10000);
        do {
            h_pump(50);
            hostile_get_stats(h, &st);
        } while (st.polls < 3 && h_now_ms() < dl && !c->exited);
        check_clean(c);
        CHECK(st.polls >= 3 && !c->exited, "%s: the client stopped polling (%d polls)",
              transports[i], st.polls);
        CHECK(wait_json_line(c, "state", "reconnecting", h_now_ms()),
              "%s: no reconnecting state shown", transports[i]);
        h_client_quit(c, h_deadline(10000));
        hostile_stop(h);
    }
}

/* ---- 10: oversized WebSocket messages ---- */

static void ws_oversized(enum hostile_ws how, uint64_t declared)
{
    struct hostile_script sc = { .ws = how, .ws_declared = declared };
    struct hostile *h = hostile_start(&sc);
    struct h_server s = as_server(h);
    struct h_proc *c = h_client_spawn(&s, "websocket", "alice", PW, NULL);
    CHECK(wait_json_line(c, "error", "over 65536 bytes", h_deadline(10000)),
          "declared %llu: no error line about the message size", (unsigned long long)declared);
    CHECK(hostile_wait_close_then_reconnect(h, h_deadline(15000)),
          "declared %llu: no close then reconnect", (unsigned long long)declared);
    struct hostile_stats st;
    hostile_get_stats(h, &st);
    CHECK(st.ws_close_code == 1009, "declared %llu: closed with %d, want 1009",
          (unsigned long long)declared, st.ws_close_code);
    CHECK(wait_json_line(c, "state", "connected", h_deadline(10000)), "not connected again");
    check_clean(c);
    h_client_quit(c, h_deadline(10000));
    check_clean(c);
    hostile_stop(h);
}

static void test_ws_message_of_200000_bytes(void **state)
{
    (void)state;
    ws_oversized(HOSTILE_WS_BIG, 200000);
}

static void test_ws_message_of_2_pow_32_bytes(void **state)
{
    (void)state;
    ws_oversized(HOSTILE_WS_BIG, (uint64_t)1 << 32);
}

static void test_ws_message_of_2_pow_62_bytes(void **state)
{
    (void)state;
    ws_oversized(HOSTILE_WS_BIG, (uint64_t)1 << 62);
}

static void test_ws_endless_continuations(void **state)
{
    (void)state;
    ws_oversized(HOSTILE_WS_ENDLESS, 0);
}

/* ---- close 4401: a late hello, or a token no longer good ---- */

static void test_ws_4401_with_a_good_token_reconnects(void **state)
{
    (void)state;
    struct hostile_script sc = { .ws = HOSTILE_WS_CLOSE_4401, .ws_4401s = 2 };
    struct hostile *h = hostile_start(&sc);
    struct h_server s = as_server(h);
    struct h_proc *c = h_client_spawn(&s, "websocket", "alice", PW, NULL);
    struct hostile_stats st;
    int64_t dl = h_deadline(20000);
    do {
        h_pump(50);
        hostile_get_stats(h, &st);
    } while (st.ws_handshakes < 3 && h_now_ms() < dl && !c->exited);
    check_clean(c);
    CHECK(!c->exited && st.ws_handshakes >= 3, "closed with 4401 twice: %s (%d handshakes)",
          c->exited ? "the client exited" : "no third handshake", st.ws_handshakes);
    CHECK(wait_json_line(c, "state", "connected", h_deadline(10000)), "not connected at last");
    h_client_quit(c, h_deadline(10000));
    check_clean(c);
    hostile_stop(h);
}

static void test_ws_4401_with_a_refused_token_exits_2(void **state)
{
    (void)state;
    struct hostile_script sc = { .ws = HOSTILE_WS_CLOSE_4401, .ws_4401s = 1000,
                                 .events = HOSTILE_HTTP_401 };
    struct hostile *h = hostile_start(&sc);
    struct h_server s = as_server(h);
    struct h_proc *c = h_client_spawn(&s, "websocket", "alice", PW, NULL);
    expect_exit(c, 2, h_deadline(15000));
    CHECK(wait_json_line(c, "error", "log in again", h_now_ms()), "no 'log in again' line");
    hostile_stop(h);
}

/* ---- 11: a login that is never answered ---- */

static void test_unanswered_login_ends_with_exit_3(void **state)
{
    (void)state;
    enum hostile_http hows[] = { HOSTILE_HTTP_SILENT, HOSTILE_HTTP_204_NO_LENGTH,
                                 HOSTILE_HTTP_DRIP };
    const char *names[] = { "silence", "204 without a length", "drip" };
    const char *extra[] = { "--timeout-s", "1", NULL };
    struct hostile *h[3];
    struct h_proc *c[3];
    struct h_server s[3];
    int64_t started = h_now_ms();
    for (int i = 0; i < 3; i++) {
        struct hostile_script sc = { .login = hows[i] };
        h[i] = hostile_start(&sc);
        s[i] = as_server(h[i]);
        c[i] = h_client_spawn(&s[i], "websocket", "alice", PW, extra);
    }
    for (int i = 0; i < 3; i++) {
        CHECK(wait_json_line(c[i], "state", "connecting", started + 3000),
              "%s: no connecting state shown", names[i]);
        CHECK(wait_json_line(c[i], "error", "no answer", started + 5000),
              "%s: the first time-out is not reported", names[i]);
        CHECK(wait_json_line(c[i], "state", "reconnecting", started + 5000),
              "%s: no reconnecting state shown", names[i]);
        /* five tries of 1 s with backoff between: the same rule as a 500 */
        expect_exit(c[i], 3, started + 30000);
        CHECK(wait_json_line(c[i], "error", "server unreachable", h_now_ms()),
              "%s: no 'server unreachable' line", names[i]);
        struct hostile_stats st;
        hostile_get_stats(h[i], &st);
        CHECK(st.logins == 5, "%s: %d login tries, want 5", names[i], st.logins);
        hostile_stop(h[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_login_chunk_size_is_refused, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_poll_chunk_size_is_refused, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_ws_message_of_200000_bytes, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_ws_message_of_2_pow_32_bytes, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_ws_message_of_2_pow_62_bytes, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_ws_endless_continuations, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_unanswered_login_ends_with_exit_3, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_ws_4401_with_a_good_token_reconnects, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_ws_4401_with_a_refused_token_exits_2, h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
