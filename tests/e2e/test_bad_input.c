/* test_bad_input.c — bad input against one running chatd: malformed JSON,
 * invalid UTF-8, empty and oversized bodies, missing and forged tokens,
 * unknown paths and methods, bad query strings, account rule violations,
 * and garbage WebSocket traffic. Every HTTP error must carry
 * {"error":{"code","message"}}; afterwards the server still serves. */
#include "harness.h"
#include "scenario.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PW "correct horse battery"

static struct h_server srv;
static char tok[65];                /* alice's token */
static const char FORGED[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static int group_setup(void **state)
{
    (void)state;
    harness_init();
    const char *extra[] = { "--long-poll-max-s", "1", NULL };
    h_server_start(&srv, NULL, extra);
    if (h_http_register(srv.port, "alice", PW) != 201 || h_http_login(srv.port, "alice", PW, tok) != 200) {
        h_dump_logs();
        fprintf(stderr, "group setup: could not register and log in alice\n");
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (srv.proc)
        h_server_stop(&srv);
    harness_cleanup();
    return 0;
}

/* One request expected to fail with status/code; what describes it. */
static void expect(const char *what, const char *method, const char *path, const char *token,
                   const char *body, long body_len, int status, const char *code)
{
    struct h_http_resp r;
    h_http_call(srv.port, method, path, token, body, body_len, &r);
    char desc[300];
    snprintf(desc, sizeof desc, "%s %s (%s)", method, path, what);
    if (!h_check_error(desc, &r, status, code))
        scenario_mismatches++;
    h_http_resp_free(&r);
}

static int expect_status(const char *method, const char *path, const char *token, const char *body)
{
    struct h_http_resp r;
    h_http_call(srv.port, method, path, token, body, -1, &r);
    int st = r.status;
    h_http_resp_free(&r);
    return st;
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* ------------------------------------------------------------------------ */
static void test_healthz(void **state)
{
    (void)state;
    struct h_http_resp r;
    h_http_call(srv.port, "GET", "/healthz", NULL, NULL, 0, &r);
    CHECK(r.status == 200, "GET /healthz: expected 200, got %d", r.status);
    CHECK(json_is_true(json_object_get(r.json, "ok")), "GET /healthz: expected {\"ok\":true}, got %s", r.body);
    h_http_resp_free(&r);
}

static void test_register_rules(void **state)
{
    (void)state;
    char *u33 = repeat('a', 33), *p7 = repeat('p', 7), *p129 = repeat('p', 129);
    char b[512];
    struct { const char *what; const char *body; } cases[] = {
        { "empty user", "{\"user\":\"\",\"password\":\"password1\"}" },
        { "upper case", "{\"user\":\"Alice\",\"password\":\"password1\"}" },
        { "space", "{\"user\":\"a b\",\"password\":\"password1\"}" },
        { "slash", "{\"user\":\"a/b\",\"password\":\"password1\"}" },
        { "non-ASCII", "{\"user\":\"\xc3\xa9l\xc3\xa9na\",\"password\":\"password1\"}" },
        { "missing user", "{\"password\":\"password1\"}" },
        { "missing password", "{\"user\":\"carol\"}" },
        { "number user", "{\"user\":42,\"password\":\"password1\"}" },
        { "number password", "{\"user\":\"carol\",\"password\":12345678}" },
        { "empty object", "{}" },
        { "array", "[\"carol\",\"password1\"]" },
        { "string", "\"carol\"" },
        { "null", "null" },
        { "malformed JSON", "{\"user\":\"carol\",\"password\":" },
        { "trailing garbage", "{\"user\":\"carol\",\"password\":\"password1\"} x" },
        { "invalid UTF-8", "{\"user\":\"carol\",\"password\":\"pass\xff\xfeword\"}" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect(cases[i].what, "POST", "/api/v1/register", NULL, cases[i].body, -1, 400, "invalid");
    snprintf(b, sizeof b, "{\"user\":\"%s\",\"password\":\"password1\"}", u33);
    expect("user of 33 characters", "POST", "/api/v1/register", NULL, b, -1, 400, "invalid");
    snprintf(b, sizeof b, "{\"user\":\"carol\",\"password\":\"%s\"}", p7);
    expect("password of 7 bytes", "POST", "/api/v1/register", NULL, b, -1, 400, "invalid");
    snprintf(b, sizeof b, "{\"user\":\"carol\",\"password\":\"%s\"}", p129);
    expect("password of 129 bytes", "POST", "/api/v1/register", NULL, b, -1, 400, "invalid");
    expect("empty body", "POST", "/api/v1/register", NULL, "", 0, 400, "invalid");
    free(u33);
    free(p7);
    free(p129);
    END_CHECKS();
}

static void test_register_limits_and_duplicate(void **state)
{
    (void)state;
    /* The longest legal name with the longest legal password is accepted. */
    char *p128 = repeat('P', 128);
    const char *u32 = "abcdefghijklmnopqrstuvwxyz_-0123";
    CHECK(h_http_register(srv.port, u32, p128) == 201, "register a 32-character user with a 128-byte password: expected 201");
    free(p128);
    char b[256];
    snprintf(b, sizeof b, "{\"user\":\"alice\",\"password\":\"another password\"}");
    expect("duplicate user", "POST", "/api/v1/register", NULL, b, -1, 409, "taken");
    END_CHECKS();
}

static void test_login_errors(void **state)
{
    (void)state;
    expect("wrong password", "POST", "/api/v1/login", NULL,
           "{\"user\":\"alice\",\"password\":\"wrong password\"}", -1, 401, "unauthorized");
    expect("unknown user", "POST", "/api/v1/login", NULL,
           "{\"user\":\"nobody\",\"password\":\"wrong password\"}", -1, 401, "unauthorized");
    expect("malformed JSON", "POST", "/api/v1/login", NULL, "{\"user\":", -1, 400, "invalid");
    expect("missing password", "POST", "/api/v1/login", NULL, "{\"user\":\"alice\"}", -1, 400, "invalid");
    expect("empty body", "POST", "/api/v1/login", NULL, "", 0, 400, "invalid");
    END_CHECKS();
}

static void test_tokens(void **state)
{
    (void)state;
    const char *body = "{\"body\":\"hi\"}";
    expect("no token", "GET", "/api/v1/events", NULL, NULL, 0, 401, "unauthorized");
    expect("forged token", "GET", "/api/v1/events", FORGED, NULL, 0, 401, "unauthorized");
    expect("short token", "GET", "/api/v1/events", "abc", NULL, 0, 401, "unauthorized");
    expect("no token", "POST", "/api/v1/messages", NULL, body, -1, 401, "unauthorized");
    expect("forged token", "POST", "/api/v1/messages", FORGED, body, -1, 401, "unauthorized");
    /* Real token with the wrong scheme, and a token with a byte changed. */
    char raw[512];
    int n = snprintf(raw, sizeof raw,
                     "GET /api/v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     "Authorization: Basic %s\r\n\r\n", tok);
    struct h_http_resp r;
    CHECK(h_http_request(srv.port, raw, (size_t)n, &r, 10000) == 0, "no response to Basic auth");
    h_assert_error("GET /api/v1/events with Authorization: Basic", &r, 401, "unauthorized");
    h_http_resp_free(&r);
    char bad[65];
    memcpy(bad, tok, 65);
    bad[10] = bad[10] == 'a' ? 'b' : 'a';
    expect("token with one character changed", "GET", "/api/v1/events", bad, NULL, 0, 401, "unauthorized");
    /* The real token works. */
    CHECK(expect_status("GET", "/api/v1/events", tok, NULL) == 200, "GET /api/v1/events with the real token: expected 200");
    END_CHECKS();
}

static void test_message_bodies(void **state)
{
    (void)state;
    char *b4097 = repeat('x', 4097), *b4096 = repeat('y', 4096);
    char *big = malloc(5000);
    struct { const char *what; const char *body; } cases[] = {
        { "malformed JSON", "{\"body\":" },
        { "not an object", "[\"hi\"]" },
        { "body a number", "{\"body\":1}" },
        { "body missing", "{\"room\":\"general\"}" },
        { "body empty", "{\"body\":\"\"}" },
        { "invalid UTF-8 (lone continuation)", "{\"body\":\"a\x80z\"}" },
        { "invalid UTF-8 (truncated)", "{\"body\":\"\xc3\x28\"}" },
        { "invalid UTF-8 (overlong /)", "{\"body\":\"\xc0\xaf\"}" },
        { "invalid UTF-8 (surrogate)", "{\"body\":\"\xed\xa0\x80\"}" },
        { "escaped lone surrogate", "{\"body\":\"\\ud800\"}" },
        { "escaped NUL", "{\"body\":\"a\\u0000b\"}" },
        { "bad room", "{\"room\":\"Not A Room\",\"body\":\"hi\"}" },
        { "room a number", "{\"room\":7,\"body\":\"hi\"}" },
        { "client_msg_id with a space", "{\"body\":\"hi\",\"client_msg_id\":\"a b\"}" },
        { "client_msg_id empty", "{\"body\":\"hi\",\"client_msg_id\":\"\"}" },
        { "duplicate keys", "{\"body\":\"hi\",\"body\":\"ho\"}" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect(cases[i].what, "POST", "/api/v1/messages", tok, cases[i].body, -1, 400, "invalid");
    expect("empty request body", "POST", "/api/v1/messages", tok, "", 0, 400, "invalid");
    snprintf(big, 5000, "{\"body\":\"%s\"}", b4097);
    expect("body of 4097 bytes", "POST", "/api/v1/messages", tok, big, -1, 400, "invalid");
    char *cm65 = repeat('c', 65);
    snprintf(big, 5000, "{\"body\":\"hi\",\"client_msg_id\":\"%s\"}", cm65);
    expect("client_msg_id of 65 characters", "POST", "/api/v1/messages", tok, big, -1, 400, "invalid");
    free(cm65);
    /* 4096 bytes is the limit and is accepted; so are 4096 bytes of multibyte UTF-8. */
    int64_t id = 0;
    CHECK(h_http_post_message(srv.port, tok, NULL, b4096, NULL, &id) == 201, "body of 4096 bytes: expected 201");
    char utf[4097];
    for (int i = 0; i < 1024; i++)
        memcpy(utf + 4 * i, "\xf0\x9f\x98\x80", 4);   /* U+1F600, 4 bytes */
    utf[4096] = '\0';
    CHECK(h_http_post_message(srv.port, tok, NULL, utf, NULL, &id) == 201, "body of 1024 four-byte characters: expected 201");
    free(b4097);
    free(b4096);
    free(big);
    END_CHECKS();
}

static void test_too_large(void **state)
{
    (void)state;
    size_t n = 64 * 1024 + 1;
    char *body = malloc(n + 1);
    /* Valid JSON padded with spaces to 64 KiB + 1. */
    memset(body, ' ', n);
    memcpy(body, "{\"body\":\"big\"}", 14);
    body[n] = '\0';
    expect("body of 64 KiB + 1", "POST", "/api/v1/messages", tok, body, (long)n, 413, "too_large");
    expect("body of 64 KiB + 1", "POST", "/api/v1/register", NULL, body, (long)n, 413, "too_large");
    /* Much larger: 1 MiB. */
    size_t m = 1024 * 1024;
    char *huge = malloc(m);
    memset(huge, 'x', m);
    expect("body of 1 MiB", "POST", "/api/v1/messages", tok, huge, (long)m, 413, "too_large");
    free(huge);
    /* Exactly 64 KiB of valid JSON is not too large. */
    body[64 * 1024] = '\0';
    int64_t id;
    struct h_http_resp r;
    h_http_call(srv.port, "POST", "/api/v1/messages", tok, body, 64 * 1024, &r);
    CHECK(r.status == 201, "POST /api/v1/messages with a 64 KiB body (JSON padded with spaces): expected 201, got %d %s",
          r.status, r.body);
    (void)id;
    h_http_resp_free(&r);
    free(body);
    END_CHECKS();
}

static void test_idempotent_send(void **state)
{
    (void)state;
    int64_t id1 = 0, id2 = 0;
    CHECK(h_http_post_message(srv.port, tok, NULL, "once only", "retry-42", &id1) == 201, "first send: expected 201");
    CHECK(h_http_post_message(srv.port, tok, NULL, "once only", "retry-42", &id2) == 201, "repeated send: expected 201");
    CHECK(id1 == id2, "repeated client_msg_id: expected the first id %lld again, got %lld", (long long)id1, (long long)id2);
    json_t *ev = h_http_get_events(srv.port, tok, id1 - 1);
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(ev); i++)
        if (strcmp(json_string_value(json_object_get(json_array_get(ev, i), "body")) ?: "", "once only") == 0)
            n++;
    json_decref(ev);
    CHECK(n == 1, "repeated client_msg_id stored %zu events, expected 1", n);
}

static void test_unknown_paths(void **state)
{
    (void)state;
    const char *paths[] = { "/nope", "/app.jsx", "/api", "/api/v1", "/api/v1/nope", "/api/v2/events",
                            "/api/v1/events/1", "/healthz/x", "/api/v1/../../etc/passwd" };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        expect("unknown path", "GET", paths[i], tok, NULL, 0, 404, "not_found");
    expect("unknown path", "POST", "/api/v1/nope", tok, "{}", -1, 404, "not_found");
    END_CHECKS();
}

static void test_wrong_methods(void **state)
{
    (void)state;
    expect("wrong method", "GET", "/api/v1/messages", tok, NULL, 0, 405, "method_not_allowed");
    expect("wrong method", "GET", "/api/v1/register", NULL, NULL, 0, 405, "method_not_allowed");
    expect("wrong method", "GET", "/api/v1/login", NULL, NULL, 0, 405, "method_not_allowed");
    expect("wrong method", "POST", "/api/v1/events", tok, "{}", -1, 405, "method_not_allowed");
    expect("wrong method", "POST", "/healthz", NULL, "{}", -1, 405, "method_not_allowed");
    expect("wrong method", "PUT", "/api/v1/messages", tok, "{\"body\":\"x\"}", -1, 405, "method_not_allowed");
    expect("wrong method", "DELETE", "/api/v1/events", tok, NULL, 0, 405, "method_not_allowed");
    END_CHECKS();
}

static void test_bad_queries(void **state)
{
    (void)state;
    const char *qs[] = { "after=abc", "after=-1", "after=", "after=1x", "limit=0", "limit=5000",
                         "limit=1001", "limit=abc", "wait=x", "wait=-1", "foo=1", "after=1&after=2",
                         "after=0&bogus", "after=99999999999999999999999" };
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        char path[128];
        snprintf(path, sizeof path, "/api/v1/events?%s", qs[i]);
        expect("bad query", "GET", path, tok, NULL, 0, 400, "bad_query");
    }
    const char *good[] = { "", "?after=0", "?limit=1", "?limit=1000", "?after=0&wait=0&limit=5", "?wait=0" };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char path[128];
        snprintf(path, sizeof path, "/api/v1/events%s", good[i]);
        struct h_http_resp r;
        h_http_call(srv.port, "GET", path, tok, NULL, 0, &r);
        CHECK(r.status == 200 && json_is_array(json_object_get(r.json, "events")) &&
              json_is_integer(json_object_get(r.json, "next")),
              "GET %s: expected 200 {\"events\":[...],\"next\":N}, got %d %s", path, r.status, r.body);
        if (strstr(good[i], "limit=1") && !strstr(good[i], "limit=10"))
            CHECK(json_array_size(json_object_get(r.json, "events")) <= 1, "GET %s returned more than 1 event", path);
        h_http_resp_free(&r);
    }
    END_CHECKS();
}

/* A long poll with nothing new answers 200 with [] once the server's
 * --long-poll-max-s (1 here) passes, even if the client asked for 30. */
static void test_long_poll_clamped(void **state)
{
    (void)state;
    json_t *ev = h_http_get_events(srv.port, tok, 0);
    int64_t last = 0;
    if (json_array_size(ev))
        last = json_integer_value(json_object_get(json_array_get(ev, json_array_size(ev) - 1), "id"));
    json_decref(ev);
    char path[128];
    snprintf(path, sizeof path, "/api/v1/events?after=%lld&wait=30", (long long)last);
    int64_t t0 = h_now_ms();
    struct h_http_resp r;
    h_http_call_timeout(srv.port, "GET", path, tok, NULL, 0, &r, 10000);
    int64_t dt = h_now_ms() - t0;
    CHECK(r.status == 200 && json_array_size(json_object_get(r.json, "events")) == 0 &&
          json_is_array(json_object_get(r.json, "events")),
          "GET %s: expected 200 with no events, got %d %s", path, r.status, r.body);
    CHECK(json_integer_value(json_object_get(r.json, "next")) == last,
          "long poll time-out: expected next %lld, got %s", (long long)last, r.body);
    CHECK(dt >= 700 && dt < 5000, "long poll with --long-poll-max-s 1 answered after %lld ms (expected ~1000)",
          (long long)dt);
    h_http_resp_free(&r);
}

static void test_garbage_http(void **state)
{
    (void)state;
    const char *reqs[] = {
        "GARBAGE\r\n\r\n",
        "GET\r\n\r\n",
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  /* a TLS ClientHello start */
        "POST /api/v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        struct h_http_resp r;
        h_http_request(srv.port, reqs[i], strlen(reqs[i]), &r, 5000);
        /* Any 4xx or a closed connection is fine; a 2xx or 5xx is not. */
        CHECK(r.status == 0 || (r.status >= 400 && r.status < 500),
              "garbage request %zu: expected 4xx or a closed connection, got %d", i, r.status);
        h_http_resp_free(&r);
    }
    struct h_http_resp r;
    h_http_call(srv.port, "GET", "/healthz", NULL, NULL, 0, &r);
    CHECK(r.status == 200, "healthz after garbage requests: got %d", r.status);
    h_http_resp_free(&r);
}

/* ------------------------------------------------------------------------ */
static char *hello_json(const char *token, int64_t after)
{
    json_t *o = json_pack("{s:s, s:s, s:I}", "op", "hello", "token", token, "after", (json_int_t)after);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static int64_t last_event_id(void)
{
    json_t *ev = h_http_get_events(srv.port, tok, 0);
    int64_t last = 0;
    size_t n = json_array_size(ev);
    if (n)
        last = json_integer_value(json_object_get(json_array_get(ev, n - 1), "id"));
    json_decref(ev);
    return last;
}

static int ws_close_matches(struct h_ws *w, int want, int64_t deadline, const char *what)
{
    int code = h_ws_wait_close(w, deadline);
    if (code == want)
        return 1;
    fprintf(stderr, "MISMATCH: WebSocket, %s: expected close code %d, got %s%d\n", what, want,
            code == -2 ? "time-out " : code == -1 ? "end of stream without a close frame " : "", code);
    scenario_mismatches++;
    return 0;
}

static void expect_ws_close(struct h_ws *w, int want, int64_t deadline, const char *what)
{
    int code = h_ws_wait_close(w, deadline);
    CHECK(code == want, "WebSocket, %s: expected close code %d, got %s%d", what, want,
          code == -2 ? "time-out " : code == -1 ? "end of stream without a close frame " : "", code);
}

static void test_ws_no_hello(void **state)
{
    (void)state;
    struct h_ws *w = h_ws_connect(srv.port);
    int64_t t0 = h_now_ms();
    expect_ws_close(w, 4401, h_deadline(9000), "no hello");
    int64_t dt = h_now_ms() - t0;
    CHECK(dt >= 3000, "WebSocket without hello closed after %lld ms, expected after ~5 s", (long long)dt);
    h_ws_free(w);
}

static void test_ws_bad_hello(void **state)
{
    (void)state;
    char *h = hello_json(FORGED, 0);
    const char *firsts[] = { h, "{\"op\":\"hello\",\"after\":0}", "{\"op\":\"hello\",\"token\":42}",
                             "{\"op\":\"send\",\"body\":\"hi\"}", "not json at all" };
    const char *what[] = { "hello with a forged token", "hello without a token", "hello with a number token",
                           "send before hello", "garbage before hello" };
    for (size_t i = 0; i < sizeof firsts / sizeof firsts[0]; i++) {
        struct h_ws *w = h_ws_connect(srv.port);
        h_ws_send_text(w, firsts[i]);
        ws_close_matches(w, 4401, h_deadline(8000), what[i]);
        h_ws_free(w);
    }
    free(h);
    END_CHECKS();
}

/* Sends a frame expected to draw {"op":"error","code","message"}; the
 * connection must stay open. */
static void expect_ws_error(struct h_ws *w, int opcode, const char *payload, size_t len, const char *what)
{
    h_ws_send_frame(w, opcode, 1, payload, len);
    json_t *e = h_ws_recv_op(w, "error", h_deadline(5000));
    CHECK(e, "WebSocket, %s: expected an {\"op\":\"error\"} frame%s", what,
          w->closed ? ", the server closed the connection" : "");
    CHECK(json_is_string(json_object_get(e, "code")) && json_is_string(json_object_get(e, "message")),
          "WebSocket, %s: error frame lacks string code/message", what);
    json_decref(e);
}

/* Sends a valid message and waits for its ack (and its event). */
static void ws_round_trip(struct h_ws *w, const char *body, const char *cmid)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "op", "send", "room", "general", "body", body,
                          "client_msg_id", cmid);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    h_ws_send_text(w, s);
    free(s);
    int64_t dl = h_deadline(5000);
    json_int_t ack_id = 0, ev_id = 0;
    while (!ack_id || !ev_id) {
        json_t *f = h_ws_recv_json(w, dl);
        CHECK(f, "WebSocket: no ack/event for a valid send (\"%s\") after bad input", body);
        const char *op = json_string_value(json_object_get(f, "op"));
        if (op && strcmp(op, "ack") == 0) {
            const char *c = json_string_value(json_object_get(f, "client_msg_id"));
            CHECK(c && strcmp(c, cmid) == 0 && json_is_integer(json_object_get(f, "id")),
                  "WebSocket: ack without our client_msg_id \"%s\" and an integer id", cmid);
            ack_id = json_integer_value(json_object_get(f, "id"));
        } else if (op && strcmp(op, "event") == 0) {
            json_t *ev = json_object_get(f, "event");
            const char *b = json_string_value(json_object_get(ev, "body"));
            if (b && strcmp(b, body) == 0)
                ev_id = json_integer_value(json_object_get(ev, "id"));
        } else if (op && strcmp(op, "error") == 0) {
            char *d = h_json_str(f);
            json_decref(f);
            CHECK(0, "WebSocket: a valid send drew an error: %s", d);
        }
        json_decref(f);
    }
    CHECK(ack_id == ev_id, "WebSocket: ack id %lld but event id %lld", (long long)ack_id, (long long)ev_id);
}

static void test_ws_garbage_frames(void **state)
{
    (void)state;
    int64_t after = last_event_id();
    struct h_ws *w = h_ws_connect(srv.port);
    json_t *ready = h_ws_hello(w, tok, after);
    CHECK(strcmp(json_string_value(json_object_get(ready, "user")), "alice") == 0, "ready: user is not alice");
    CHECK(json_integer_value(json_object_get(ready, "long_poll_max_s")) == 1,
          "ready: long_poll_max_s is not the server's --long-poll-max-s 1");
    json_decref(ready);
    const char *bad[] = {
        "not json", "{\"op\":", "[]", "42", "{}", "{\"op\":42}", "{\"op\":\"fly\"}",
        "{\"op\":\"send\"}", "{\"op\":\"send\",\"body\":\"\"}", "{\"op\":\"send\",\"body\":7}",
        "{\"op\":\"send\",\"room\":\"No Room\",\"body\":\"x\"}",
        "{\"op\":\"send\",\"body\":\"x\",\"client_msg_id\":\"has space\"}",
        "{\"op\":\"send\",\"body\":\"\\ud800\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char what[96];
        snprintf(what, sizeof what, "text frame %.60s", bad[i]);
        expect_ws_error(w, WS_TEXT, bad[i], strlen(bad[i]), what);
    }
    char *b4097 = repeat('z', 4097);
    char *s = malloc(5000);
    snprintf(s, 5000, "{\"op\":\"send\",\"body\":\"%s\"}", b4097);
    expect_ws_error(w, WS_TEXT, s, strlen(s), "send with a 4097-byte body");
    free(s);
    free(b4097);
    ws_round_trip(w, "still works after garbage", "ws-garbage-1");
    /* A message in three fragments is one message. */
    const char *m = "{\"op\":\"send\",\"body\":\"fragmented\",\"client_msg_id\":\"ws-frag-1\"}";
    size_t n = strlen(m);
    h_ws_send_frame(w, WS_TEXT, 0, m, 10);
    h_ws_send_frame(w, WS_CONT, 0, m + 10, 20);
    h_ws_send_frame(w, WS_CONT, 1, m + 30, n - 30);
    json_t *ack = h_ws_recv_op(w, "ack", h_deadline(5000));
    CHECK(ack, "WebSocket: no ack for a message sent in three fragments");
    const char *c = json_string_value(json_object_get(ack, "client_msg_id"));
    CHECK(c && strcmp(c, "ws-frag-1") == 0, "WebSocket: fragmented send acked with the wrong client_msg_id");
    json_decref(ack);
    /* A repeated client_msg_id is acked with the first id. */
    ws_round_trip(w, "still works after fragments", "ws-garbage-2");
    h_ws_free(w);
}

static void test_ws_binary_frame(void **state)
{
    (void)state;
    struct h_ws *w = h_ws_connect(srv.port);
    json_decref(h_ws_hello(w, tok, last_event_id()));
    const char *m = "{\"op\":\"send\",\"body\":\"binary\"}";
    h_ws_send_frame(w, WS_BIN, 1, m, strlen(m));
    /* Either an error frame (and the connection still works) or close 1003. */
    json_t *f = h_ws_recv_json(w, h_deadline(5000));
    if (f) {
        const char *op = json_string_value(json_object_get(f, "op"));
        CHECK(op && strcmp(op, "error") == 0, "WebSocket binary frame: expected an error frame or close 1003, got op %s",
              op ? op : "(none)");
        json_decref(f);
        ws_round_trip(w, "still works after a binary frame", "ws-bin-1");
    } else {
        CHECK(w->close_code == 1003, "WebSocket binary frame: expected an error frame or close 1003, got close %d",
              w->close_code);
    }
    h_ws_free(w);
}

static void test_ws_invalid_utf8(void **state)
{
    (void)state;
    struct h_ws *w = h_ws_connect(srv.port);
    json_decref(h_ws_hello(w, tok, last_event_id()));
    const char m[] = "{\"op\":\"send\",\"body\":\"\xff\xfe\"}";
    h_ws_send_frame(w, WS_TEXT, 1, m, sizeof m - 1);
    expect_ws_close(w, 1007, h_deadline(5000), "text frame with invalid UTF-8");
    h_ws_free(w);
}

static void test_ws_too_big(void **state)
{
    (void)state;
    size_t n = 64 * 1024 + 1;
    char *m = malloc(n);
    memset(m, ' ', n);
    memcpy(m, "{\"op\":\"send\",\"body\":\"big\"}", 26);

    /* One frame over 64 KiB. */
    struct h_ws *w = h_ws_connect(srv.port);
    json_decref(h_ws_hello(w, tok, last_event_id()));
    h_ws_send_frame(w, WS_TEXT, 1, m, n);
    expect_ws_close(w, 1009, h_deadline(5000), "one frame of 64 KiB + 1");
    h_ws_free(w);

    /* A message over 64 KiB in fragments of 16 KiB. */
    w = h_ws_connect(srv.port);
    json_decref(h_ws_hello(w, tok, last_event_id()));
    size_t off = 0, step = 16 * 1024;
    while (off < n && !w->closed) {
        size_t k = n - off < step ? n - off : step;
        if (h_ws_send_frame(w, off ? WS_CONT : WS_TEXT, off + k == n, m + off, k) < 0)
            break;
        off += k;
    }
    expect_ws_close(w, 1009, h_deadline(5000), "fragmented message of 64 KiB + 1");
    h_ws_free(w);

    /* Exactly 64 KiB is allowed. */
    w = h_ws_connect(srv.port);
    json_decref(h_ws_hello(w, tok, last_event_id()));
    const char *h = "{\"op\":\"send\",\"body\":\"exactly 64 KiB\",\"client_msg_id\":\"ws-64k\"}";
    memset(m, ' ', n);
    memcpy(m, h, strlen(h));
    h_ws_send_frame(w, WS_TEXT, 1, m, 64 * 1024);
    json_t *ack = h_ws_recv_op(w, "ack", h_deadline(5000));
    CHECK(ack, "WebSocket: a 64 KiB message (JSON padded with spaces) was not acked (close %d)", w->close_code);
    json_decref(ack);
    h_ws_free(w);
    free(m);
}

static void test_ws_bad_handshake(void **state)
{
    (void)state;
    struct h_http_resp r;
    struct h_ws *w = h_ws_connect_raw(srv.port, "Sec-WebSocket-Protocol: bogus.v9\r\n", &r);
    CHECK(!w, "WebSocket handshake with subprotocol bogus.v9 was accepted");
    CHECK(r.status == 0 || (r.status >= 400 && r.status < 500),
          "WebSocket handshake with a wrong subprotocol: expected 4xx or a closed connection, got %d", r.status);
    h_http_resp_free(&r);
}

/* After everything above, the server still answers. */
static void test_still_serving(void **state)
{
    (void)state;
    test_healthz(state);
    int64_t id = 0;
    CHECK(h_http_post_message(srv.port, tok, "general", "the last word", NULL, &id) == 201, "post after bad input: expected 201");
    json_t *ev = h_http_get_events(srv.port, tok, id - 1);
    CHECK(json_array_size(ev) >= 1, "the message posted after bad input is not in the feed");
    json_t *e = json_array_get(ev, 0);
    CHECK(json_integer_value(json_object_get(e, "id")) == id &&
          strcmp(json_string_value(json_object_get(e, "body")) ?: "", "the last word") == 0 &&
          strcmp(json_string_value(json_object_get(e, "from")) ?: "", "alice") == 0,
          "the event after bad input is not ours");
    json_decref(ev);
    struct h_ws *w = h_ws_connect(srv.port);
    json_decref(h_ws_hello(w, tok, id));
    ws_round_trip(w, "and one more over ws", "ws-last");
    h_ws_free(w);
    CHECK(!srv.proc->exited, "chatd exited");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_healthz),
        cmocka_unit_test(test_register_rules),
        cmocka_unit_test(test_register_limits_and_duplicate),
        cmocka_unit_test(test_login_errors),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_message_bodies),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_idempotent_send),
        cmocka_unit_test(test_unknown_paths),
        cmocka_unit_test(test_wrong_methods),
        cmocka_unit_test(test_bad_queries),
        cmocka_unit_test(test_long_poll_clamped),
        cmocka_unit_test(test_garbage_http),
        cmocka_unit_test(test_ws_no_hello),
        cmocka_unit_test(test_ws_bad_hello),
        cmocka_unit_test(test_ws_garbage_frames),
        cmocka_unit_test(test_ws_binary_frame),
        cmocka_unit_test(test_ws_invalid_utf8),
        cmocka_unit_test(test_ws_too_big),
        cmocka_unit_test(test_ws_bad_handshake),
        cmocka_unit_test(test_still_serving),
    };
    return cmocka_run_group_tests_name("e2e bad input", tests, group_setup, group_teardown);
}
