/* test_limits.c — hostile load against chatd's limits: a slowloris client,
 * message floods over HTTP and WebSocket, login brute force, too many
 * connections from one address, too many long polls, and 2,000 idle
 * WebSockets. Each limit answers with a clear error, and a normal client
 * is still served throughout. */
#include "harness.h"

#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PW "correct horse battery"

/* 1 once the peer closed fd (read returns 0 or an error) before deadline. */
static int wait_closed(int fd, int64_t deadline)
{
    char buf[512];
    for (;;) {
        int64_t left = deadline - h_now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, (int)left) > 0) {
            ssize_t n = read(fd, buf, sizeof buf);
            if (n <= 0)
                return 1;
        }
    }
}

static int healthz_ms(int port)
{
    struct h_http_resp r;
    int64_t t0 = h_now_ms();
    h_http_call(port, "GET", "/healthz", NULL, NULL, 0, &r);
    int ok = r.status == 200;
    h_http_resp_free(&r);
    return ok ? (int)(h_now_ms() - t0) : -1;
}

/* Connections that trickle their headers are cut off after the header
 * timeout, and nobody else waits for them meanwhile. */
static void test_slowloris(void **state)
{
    (void)state;
    struct h_server s;
    char tok[65];
    const char *extra[] = { "--header-timeout-s", "2", NULL };
    h_server_start_with_user(&s, extra, "alice", PW, tok);
    int fds[20];
    for (int i = 0; i < 20; i++) {
        fds[i] = h_tcp_connect(s.port);
        CHECK(fds[i] >= 0, "connect %d", i);
        const char *part = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
        CHECK(write(fds[i], part, strlen(part)) > 0, "write partial headers");
    }
    int ms = healthz_ms(s.port);
    CHECK(ms >= 0 && ms < 1000, "healthz during slowloris: %d ms", ms);
    for (int i = 0; i < 20; i++) {
        CHECK(wait_closed(fds[i], h_deadline(6000)), "slow connection %d still open after the header timeout", i);
        close(fds[i]);
    }
    h_server_stop(&s);
}

/* Over the message rate: 429 with Retry-After, then served again. */
static void test_flood_http(void **state)
{
    (void)state;
    struct h_server s;
    char tok[65], body[64];
    const char *extra[] = { "--msg-rate", "5", NULL };
    h_server_start_with_user(&s, extra, "alice", PW, tok);
    int ok = 0, limited = 0;
    for (int i = 0; i < 30; i++) {
        struct h_http_resp r;
        snprintf(body, sizeof body, "{\"body\":\"flood %d\"}", i);
        h_http_call(s.port, "POST", "/api/v1/messages", tok, body, -1, &r);
        if (r.status == 201) {
            ok++;
        } else {
            h_assert_error("message over the rate", &r, 429, "rate_limited");
            char *ra = h_http_header(&r, "Retry-After");
            CHECK(ra && atoi(ra) >= 1, "429 without a Retry-After");
            free(ra);
            limited++;
        }
        h_http_resp_free(&r);
    }
    CHECK(ok >= 10 && ok <= 12 && limited >= 18, "burst of 10 at 5/s: %d stored, %d limited", ok, limited);
    int64_t id = 0, deadline = h_deadline(5000);
    while (h_http_post_message(s.port, tok, NULL, "after the pause", NULL, &id) != 201)
        CHECK(h_now_ms() < deadline, "still limited 5 s after the flood");
    CHECK(healthz_ms(s.port) >= 0, "healthz after the flood");
    h_server_stop(&s);
}

/* Over the rate on a WebSocket: one error frame, reading pauses, and every
 * message is still stored, in order. */
static void test_flood_ws(void **state)
{
    (void)state;
    struct h_server s;
    char tok[65], frame[128];
    const char *extra[] = { "--msg-rate", "10", NULL };
    h_server_start_with_user(&s, extra, "alice", PW, tok);
    struct h_ws *w = h_ws_connect(s.port);
    json_decref(h_ws_hello(w, tok, 1000000));
    for (int i = 0; i < 40; i++) {
        snprintf(frame, sizeof frame, "{\"op\":\"send\",\"body\":\"ws %d\",\"client_msg_id\":\"m%d\"}", i, i);
        CHECK(h_ws_send_text(w, frame) == 0, "send frame %d", i);
    }
    int acks = 0, limited = 0;
    int64_t deadline = h_deadline(10000);
    while (acks < 40 && h_now_ms() < deadline) {
        json_t *m = h_ws_recv_json(w, deadline);
        CHECK(m, "connection ended after %d acks", acks);
        const char *op = json_string_value(json_object_get(m, "op"));
        const char *code = json_string_value(json_object_get(m, "code"));
        if (op && !strcmp(op, "ack"))
            acks++;
        else if (op && !strcmp(op, "error") && code && !strcmp(code, "rate_limited"))
            limited++;
        json_decref(m);
    }
    CHECK(acks == 40, "%d of 40 messages acknowledged", acks);
    CHECK(limited >= 1, "no rate_limited error frame");
    json_t *events = h_http_get_events(s.port, tok, 0);
    CHECK(json_array_size(events) == 40, "%zu events stored", json_array_size(events));
    for (size_t i = 0; i < 40; i++) {
        snprintf(frame, sizeof frame, "ws %zu", i);
        CHECK(!strcmp(json_string_value(json_object_get(json_array_get(events, i), "body")), frame),
              "message %zu out of order", i);
    }
    json_decref(events);
    h_ws_free(w);
    h_server_stop(&s);
}

/* At the default rate (20/s, bursts of 40) a client that pipelines 50 sends
 * over one WebSocket waits only as long as the token bucket owes it: the
 * 41st is owed 50 ms, the 50th 500 ms (bounds leave room for ASan and a
 * loaded machine, far below a resume in whole seconds). Each is acked once,
 * in order. */
static void test_ws_rate_resume(void **state)
{
    (void)state;
    enum { N = 50 };
    struct h_server s;
    char tok[65], frame[128], want[16];
    h_server_start_with_user(&s, NULL, "alice", PW, tok);
    struct h_ws *w = h_ws_connect(s.port);
    json_decref(h_ws_hello(w, tok, 1000000));
    int64_t t0 = h_now_ms(), at[N];
    for (int i = 0; i < N; i++) {
        snprintf(frame, sizeof frame, "{\"op\":\"send\",\"body\":\"r %d\",\"client_msg_id\":\"r%d\"}", i, i);
        CHECK(h_ws_send_text(w, frame) == 0, "send frame %d", i);
    }
    int acks = 0;
    int64_t deadline = h_deadline(10000);
    while (acks < N) {
        json_t *m = h_ws_recv_json(w, deadline);
        CHECK(m, "connection ended or timed out after %d of %d acks", acks, N);
        const char *op = json_string_value(json_object_get(m, "op"));
        if (op && !strcmp(op, "ack")) {
            snprintf(want, sizeof want, "r%d", acks);
            const char *cmid = json_string_value(json_object_get(m, "client_msg_id"));
            CHECK(cmid && !strcmp(cmid, want), "ack %d is for %s, expected %s", acks, cmid ? cmid : "-", want);
            at[acks++] = h_now_ms() - t0;
        }
        json_decref(m);
    }
    CHECK(at[40] < 1000, "the 41st ack came after %lld ms (the bucket owes 50 ms)", (long long)at[40]);
    CHECK(at[N - 1] < 1500, "the 50th ack came after %lld ms (the bucket owes 500 ms)", (long long)at[N - 1]);
    json_t *m = h_ws_recv_op(w, "ack", h_deadline(300));
    CHECK(!m, "an extra ack after all %d", N);
    h_ws_free(w);
    h_server_stop(&s);
}

/* A test that fails while it plays another address must not leave that
 * address to the tests after it (which would then see someone else's
 * limits): put the default back, then stop what is left. */
static int source_teardown(void **state)
{
    h_set_source_addr(NULL);
    return h_teardown(state);
}

/* A login from the current source address; the status, and Retry-After
 * (0 if none) in *retry. */
static int login_from(int port, const char *user, const char *pw, int *retry)
{
    char body[160];
    struct h_http_resp r;
    snprintf(body, sizeof body, "{\"user\":\"%s\",\"password\":\"%s\"}", user, pw);
    h_http_call(port, "POST", "/api/v1/login", NULL, body, -1, &r);
    int status = r.status;
    if (status == 429)
        h_assert_error("login over the limit", &r, 429, "rate_limited");
    char *ra = h_http_header(&r, "Retry-After");
    *retry = ra ? atoi(ra) : 0;
    free(ra);
    h_http_resp_free(&r);
    return status;
}

/* Ten wrong guesses from one address delay that address (429 with
 * Retry-After), never the owner logging in from another: neither at once
 * nor while the guesser keeps trying as soon as it is let. */
static void test_login_bruteforce(void **state)
{
    (void)state;
    struct h_server s;
    char tok[65];
    int retry, owner_retry;
    h_server_start_with_user(&s, NULL, "alice", PW, tok);
    h_set_source_addr("127.0.0.2");                       /* the guesser */
    for (int i = 0; i < 10; i++)
        CHECK(login_from(s.port, "alice", "wrong password", &retry) == 401, "wrong guess %d not refused with 401", i);
    CHECK(login_from(s.port, "alice", "wrong password", &retry) == 429 && retry >= 1,
          "11th guess: expected 429 with Retry-After, Retry-After %d", retry);
    for (int round = 0; round < 2; round++) {
        h_set_source_addr("127.0.0.3");                   /* the owner */
        CHECK(login_from(s.port, "alice", PW, &owner_retry) == 200, "round %d: the owner was kept out", round);
        h_set_source_addr("127.0.0.2");
        int64_t deadline = h_deadline(retry * 1000 + 3000);
        int status;
        while ((status = login_from(s.port, "alice", "wrong password", &retry)) == 429) {
            CHECK(h_now_ms() < deadline, "round %d: the guesser still delayed after its Retry-After", round);
            h_pump(100);
        }
        CHECK(status == 401, "round %d: a guess after the delay got %d", round, status);
        CHECK(login_from(s.port, "alice", "wrong password", &retry) == 429 && retry >= 1,
              "round %d: a guess right after a failure was not delayed", round);
    }
    h_set_source_addr("127.0.0.3");
    CHECK(login_from(s.port, "alice", PW, &owner_retry) == 200, "the owner was kept out at the end");
    h_set_source_addr(NULL);
    h_server_stop(&s);
}

/* One address trying many user names meets the per-address limit
 * (3 x --login-rate a minute, all of it at once), and other addresses are
 * not affected. The bucket refills while each hash runs (a slow machine
 * takes seconds for nine), so the 429 is due once the attempts outrun what
 * could have refilled by then, not at a fixed count. */
static void test_login_rotating_names(void **state)
{
    (void)state;
    struct h_server s;
    char tok[65], user[16];
    int retry = 0, status = 0, i;
    const char *extra[] = { "--login-rate", "3", NULL };
    const double burst = 9, per_s = 9 / 60.0;
    h_server_start_with_user(&s, extra, "alice", PW, tok);
    h_set_source_addr("127.0.0.4");
    int64_t start = h_now_ms();
    for (i = 0; i < 30; i++) {
        snprintf(user, sizeof user, "u%d", i);
        status = login_from(s.port, user, "wrong password", &retry);
        double refilled = per_s * (double)(h_now_ms() - start) / 1000.0;
        if (i < burst) {
            CHECK(status == 401, "guess %d (within the burst) not refused with 401: %d", i, status);
            continue;
        }
        if (status == 429)
            break;
        CHECK(status == 401, "guess %d: expected 401 or 429, got %d", i, status);
        CHECK(i < burst + refilled, "guess %d from one address let through with %.2f tokens refilled", i, refilled);
    }
    CHECK(status == 429 && retry >= 1, "one address rotating names was never limited (last %d, Retry-After %d)",
          status, retry);
    h_set_source_addr("127.0.0.5");
    CHECK(login_from(s.port, "alice", PW, &retry) == 200, "another address was throttled");
    h_set_source_addr(NULL);
    h_server_stop(&s);
}

/* ---- behind a trusted proxy (--trusted-proxy) ----
 * The test connects from 127.0.0.1 and plays the balancer: it names the
 * client in X-Forwarded-For as HAProxy's `option forwardfor` does. */

/* A login sent with the given extra header lines (each ending in \r\n, may
 * be ""), from the current source address; the status, and Retry-After (0
 * if none) in *retry. */
static int login_fwd(int port, const char *user, const char *pw, const char *headers, int *retry)
{
    char body[160], req[1024];
    struct h_http_resp r;
    int blen = snprintf(body, sizeof body, "{\"user\":\"%s\",\"password\":\"%s\"}", user, pw);
    int n = snprintf(req, sizeof req,
                     "POST /api/v1/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     "Content-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s",
                     blen, headers, body);
    CHECK(n > 0 && (size_t)n < sizeof req, "login request too long");
    CHECK(h_http_request(port, req, (size_t)n, &r, 10000) == 0, "no answer to a login");
    int status = r.status;
    if (status == 429)
        h_assert_error("login over the limit", &r, 429, "rate_limited");
    char *ra = h_http_header(&r, "Retry-After");
    *retry = ra ? atoi(ra) : 0;
    free(ra);
    h_http_resp_free(&r);
    return status;
}

/* Ten wrong guesses forwarded for one client delay that client, never the
 * owner behind the same balancer: the proxy's own address is not the key. */
static void test_proxy_forwarded_client(void **state)
{
    (void)state;
    struct h_server s;
    char tok[65];
    int retry;
    const char *extra[] = { "--trusted-proxy", "127.0.0.1", NULL };
    h_server_start_with_user(&s, extra, "alice", PW, tok);
    const char *guesser = "X-Forwarded-For: 198.51.100.7\r\n";
    for (int i = 0; i < 10; i++)
        CHECK(login_fwd(s.port, "alice", "wrong password", guesser, &retry) == 401,
              "forwarded wrong guess %d not refused with 401", i);
    CHECK(login_fwd(s.port, "alice", "wrong password", guesser, &retry) == 429 && retry >= 1,
          "11th forwarded guess: expected 429 with Retry-After");
    int st = login_fwd(s.port, "alice", PW, "X-Forwarded-For: 198.51.100.8\r\n", &retry);
    CHECK(st == 200, "the owner behind the same proxy got %d (Retry-After %d): keyed on the proxy", st, retry);
    CHECK(h_client_wait_stderr_match(s.proc, "audit login.failed user=alice addr=198.51.100.7", h_deadline(5000)),
          "no audit line naming the forwarded address of the failures");
    CHECK(h_client_wait_stderr_match(s.proc, "audit login user=alice addr=198.51.100.8", h_deadline(5000)),
          "no audit line naming the forwarded address of the login");
    h_server_stop(&s);
}

/* A client that is not a trusted proxy gets nothing from X-Forwarded-For:
 * its failures are its own address's, whatever it claims. */
static void test_proxy_forged_header(void **state)
{
    (void)state;
    struct h_server s;
    char tok[65], hdr[64];
    int retry;
    const char *extra[] = { "--trusted-proxy", "127.0.0.1", NULL };
    h_server_start_with_user(&s, extra, "alice", PW, tok);
    h_set_source_addr("127.0.0.2");
    for (int i = 0; i < 10; i++) {
        snprintf(hdr, sizeof hdr, "X-Forwarded-For: 198.51.100.%d\r\n", 100 + i);
        CHECK(login_fwd(s.port, "alice", "wrong password", hdr, &retry) == 401,
              "forged wrong guess %d not refused with 401", i);
    }
    CHECK(login_fwd(s.port, "alice", "wrong password", "X-Forwarded-For: 198.51.100.99\r\n", &retry) == 429,
          "a direct client escaped its delay with a new X-Forwarded-For");
    CHECK(login_fwd(s.port, "alice", PW, "X-Forwarded-For: 127.0.0.1, 198.51.100.98\r\n", &retry) == 429,
          "a direct client's right password with a forged header escaped the delay");
    h_set_source_addr("127.0.0.3");
    CHECK(login_fwd(s.port, "alice", PW, "X-Forwarded-For: 127.0.0.2\r\n", &retry) == 200,
          "another direct client was delayed");
    h_set_source_addr(NULL);
    CHECK(h_client_wait_stderr_match(s.proc, "audit login.failed user=alice addr=127.0.0.2", h_deadline(5000)),
          "no audit line naming the direct client's own address");
    CHECK(!strstr(s.proc->err.data, "addr=198.51.100."), "a forged address reached the audit log");
    h_server_stop(&s);
}

/* The proxy's entry is the last one ("a, b": b, also over two header
 * lines); an entry that is no address falls back to the proxy's own
 * address, with an audit line, and a header never names a client twice. */
static void test_proxy_last_entry(void **state)
{
    (void)state;
    struct h_server s;
    char tok[65];
    int retry;
    const char *extra[] = { "--trusted-proxy", "127.0.0.1", "--login-rate", "3", NULL };
    h_server_start_with_user(&s, extra, "alice", PW, tok);
    const char *two = "X-Forwarded-For: 198.51.100.20, 198.51.100.21\r\n";
    for (int i = 0; i < 3; i++)
        CHECK(login_fwd(s.port, "alice", "wrong password", two, &retry) == 401, "guess %d (a, b)", i);
    CHECK(login_fwd(s.port, "alice", PW, "X-Forwarded-For: 198.51.100.21\r\n", &retry) == 429,
          "\"a, b\" was not keyed on b");
    CHECK(login_fwd(s.port, "alice", PW, "X-Forwarded-For: 198.51.100.20\r\n", &retry) == 200,
          "\"a, b\" was keyed on a");
    const char *lines = "X-Forwarded-For: 198.51.100.22\r\nX-Forwarded-For: 198.51.100.23\r\n";
    for (int i = 0; i < 3; i++)
        CHECK(login_fwd(s.port, "alice", "wrong password", lines, &retry) == 401, "guess %d (two lines)", i);
    CHECK(login_fwd(s.port, "alice", PW, "X-Forwarded-For: 198.51.100.23\r\n", &retry) == 429,
          "two header lines were not keyed on the last");
    CHECK(login_fwd(s.port, "alice", PW, "X-Forwarded-For: 198.51.100.22\r\n", &retry) == 200,
          "two header lines were keyed on the first");
    /* garbage: the proxy's own address, never the garbage */
    const char *bad[] = { "X-Forwarded-For: 198.51.100.24, not-an-address\r\n",
                          "X-Forwarded-For: 198.51.100.300\r\n", "X-Forwarded-For: \r\n" };
    for (int i = 0; i < 3; i++)
        CHECK(login_fwd(s.port, "alice", "wrong password", bad[i], &retry) == 401, "garbage guess %d", i);
    CHECK(login_fwd(s.port, "alice", PW, "", &retry) == 429, "garbage was not keyed on the proxy's address");
    CHECK(login_fwd(s.port, "alice", PW, "X-Forwarded-For: 198.51.100.24\r\n", &retry) == 200,
          "garbage was keyed on the entry before it");
    CHECK(h_client_wait_stderr_match(s.proc, "audit proxy.bad_forwarded_for", h_deadline(5000)),
          "no audit line for a bad X-Forwarded-For");
    CHECK(h_client_wait_stderr_match(s.proc, "audit login.failed user=alice addr=127.0.0.1", h_deadline(5000)),
          "a bad X-Forwarded-For was not keyed on the proxy");
    CHECK(!strstr(s.proc->err.data, "not-an-address") && !strstr(s.proc->err.data, "198.51.100.300"),
          "garbage reached the log");
    h_server_stop(&s);
}

/* A WebSocket handshake through the proxy is its client's too: the refused
 * Origin is audited under the client, and the per-address connection cap
 * counts the client's WebSockets, not everyone's behind the proxy. */
static void test_proxy_websocket(void **state)
{
    (void)state;
    struct h_server s;
    char tok[65];
    struct h_http_resp r;
    const char *extra[] = { "--trusted-proxy", "127.0.0.1", "--max-connections-per-ip", "2", NULL };
    h_server_start_with_user(&s, extra, "alice", PW, tok);
    const char *proto = "Sec-WebSocket-Protocol: chat.v1\r\n";
    char hdr[256];
    snprintf(hdr, sizeof hdr, "%sOrigin: http://evil.example\r\nX-Forwarded-For: 198.51.100.30\r\n", proto);
    struct h_ws *w = h_ws_connect_raw(s.port, hdr, &r);
    CHECK(!w && r.status == 403, "a refused Origin through the proxy: status %d", r.status);
    h_http_resp_free(&r);
    CHECK(h_client_wait_stderr_match(s.proc, "audit ws.origin_refused addr=198.51.100.30", h_deadline(5000)),
          "the refused Origin was not audited under the forwarded address");
    struct h_ws *ws[3];
    snprintf(hdr, sizeof hdr, "%sX-Forwarded-For: 198.51.100.40\r\n", proto);
    for (int i = 0; i < 2; i++) {
        ws[i] = h_ws_connect_raw(s.port, hdr, &r);
        CHECK(ws[i], "WebSocket %d of 198.51.100.40 refused (status %d)", i, r.status);
        h_http_resp_free(&r);
    }
    ws[2] = h_ws_connect_raw(s.port, hdr, &r);
    CHECK(!ws[2], "a third WebSocket of 198.51.100.40 past a cap of 2");
    h_http_resp_free(&r);
    snprintf(hdr, sizeof hdr, "%sX-Forwarded-For: 198.51.100.41\r\n", proto);
    ws[2] = h_ws_connect_raw(s.port, hdr, &r);
    CHECK(ws[2], "198.51.100.41 refused: the cap counted everyone behind the proxy (status %d)", r.status);
    h_http_resp_free(&r);
    json_decref(h_ws_hello(ws[2], tok, 0));
    for (int i = 0; i < 3; i++)
        h_ws_free(ws[i]);
    h_server_stop(&s);
}

static void test_connections_per_address(void **state)
{
    (void)state;
    struct h_server s;
    char tok[65];
    const char *extra[] = { "--max-connections-per-ip", "10", NULL };
    h_server_start_with_user(&s, extra, "alice", PW, tok);
    int fds[10];
    for (int i = 0; i < 10; i++)
        CHECK((fds[i] = h_tcp_connect(s.port)) >= 0, "connect %d", i);
    struct h_http_resp r;
    h_http_call(s.port, "GET", "/healthz", NULL, NULL, 0, &r);
    h_assert_error("an 11th connection", &r, 429, "too_many_connections");
    h_http_resp_free(&r);
    for (int i = 0; i < 10; i++)
        close(fds[i]);
    int64_t deadline = h_deadline(5000);
    while (healthz_ms(s.port) < 0)
        CHECK(h_now_ms() < deadline, "still refused after the idle connections closed");
    h_server_stop(&s);
}

static void test_long_poll_waiters(void **state)
{
    (void)state;
    struct h_server s;
    char tok[65], req[512];
    const char *extra[] = { "--max-long-polls", "3", NULL };
    h_server_start_with_user(&s, extra, "alice", PW, tok);
    int n = snprintf(req, sizeof req, "GET /api/v1/events?after=0&wait=20 HTTP/1.1\r\nHost: x\r\n"
                     "Authorization: Bearer %s\r\nConnection: close\r\n\r\n", tok);
    int fds[3];
    for (int i = 0; i < 3; i++)
        CHECK((fds[i] = h_http_send_request(s.port, req, (size_t)n)) >= 0, "long poll %d", i);
    /* The fourth is refused once the three are parked. */
    int64_t deadline = h_deadline(5000);
    for (;;) {
        struct h_http_resp r;
        h_http_request(s.port, req, (size_t)n, &r, 2000);
        int status = r.status;
        if (status == 503)
            h_assert_error("a fourth long poll", &r, 503, "overloaded");
        h_http_resp_free(&r);
        if (status == 503)
            break;
        CHECK(h_now_ms() < deadline, "a fourth long poll was never refused (status %d)", status);
    }
    int64_t id;
    CHECK(h_http_post_message(s.port, tok, NULL, "wake up", NULL, &id) == 201, "post");
    for (int i = 0; i < 3; i++) {
        struct h_http_resp r;
        CHECK(h_http_read_response(fds[i], &r, 5000) == 0 && r.status == 200, "parked poll %d not answered", i);
        CHECK(json_array_size(json_object_get(r.json, "events")) == 1, "parked poll %d: no event", i);
        h_http_resp_free(&r);
    }
    h_server_stop(&s);
}

/* Past --max-connections new connections are hung up at once; the server
 * serves again as soon as some close. */
static void test_total_connections(void **state)
{
    (void)state;
    struct h_server s;
    char tok[65];
    const char *extra[] = { "--max-connections", "16", NULL };
    h_server_start_with_user(&s, extra, "alice", PW, tok);
    int fds[20], n = 0, refused = 0;
    int64_t deadline = h_deadline(5000);
    while (!refused && n < 20) {
        int fd = h_tcp_connect(s.port);
        CHECK(fd >= 0, "connect");
        /* a connection over the cap is closed before a byte is read */
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 200) > 0 && wait_closed(fd, deadline)) {
            refused = 1;
            close(fd);
        } else {
            fds[n++] = fd;
        }
    }
    CHECK(refused, "no connection was refused with %d open", n);
    CHECK(n <= 16, "%d connections were let in past a cap of 16", n);
    struct h_http_resp r;
    CHECK(h_http_request(s.port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 34, &r, 2000) < 0 || r.status == 0,
          "a request over the connection cap was served");
    h_http_resp_free(&r);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    /* until the server has seen the closes, a new connection is still hung up */
    deadline = h_deadline(5000);
    for (;;) {
        h_http_request(s.port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 34, &r, 1000);
        int status = r.status;
        h_http_resp_free(&r);
        if (status == 200)
            break;
        CHECK(h_now_ms() < deadline, "still refused after the connections closed");
    }
    h_server_stop(&s);
}

/* An idle keep-alive HTTP connection is closed after --idle-timeout-s. */
static void test_keepalive_idle(void **state)
{
    (void)state;
    struct h_server s;
    char tok[65], buf[4096];
    const char *extra[] = { "--idle-timeout-s", "1", NULL };
    h_server_start_with_user(&s, extra, "alice", PW, tok);
    int fd = h_tcp_connect(s.port);
    const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n";
    CHECK(write(fd, req, strlen(req)) == (ssize_t)strlen(req), "write");
    struct pollfd p = { .fd = fd, .events = POLLIN };
    CHECK(poll(&p, 1, 2000) > 0 && read(fd, buf, sizeof buf) > 0, "no answer on a keep-alive connection");
    CHECK(wait_closed(fd, h_deadline(4000)), "an idle keep-alive connection stayed open");
    close(fd);
    h_server_stop(&s);
}

/* A message in more than 1,024 fragments is refused like an oversized one. */
static void test_ws_fragment_cap(void **state)
{
    (void)state;
    struct h_server s;
    char tok[65];
    h_server_start_with_user(&s, NULL, "alice", PW, tok);
    struct h_ws *w = h_ws_connect(s.port);
    json_decref(h_ws_hello(w, tok, 0));
    int rc = h_ws_send_frame(w, WS_TEXT, 0, "{", 1);
    for (int i = 0; i < 1100 && rc == 0; i++)
        rc = h_ws_send_frame(w, WS_CONT, 0, " ", 1);
    int code = h_ws_wait_close(w, h_deadline(5000));
    CHECK(code == 1009, "1,100 fragments: closed with %d, expected 1009", code);
    h_ws_free(w);
    CHECK(healthz_ms(s.port) >= 0, "healthz after the fragment flood");
    h_server_stop(&s);
}

/* A client that pipelines sends without reading its acks is slowed down,
 * never disconnected, and every message is stored once. */
static void test_ws_pipelined_sends(void **state)
{
    (void)state;
    enum { N = 700 };
    struct h_server s;
    char tok[65], frame[128];
    const char *extra[] = { "--msg-rate", "100000", NULL };
    h_server_start_with_user(&s, extra, "alice", PW, tok);
    struct h_ws *w = h_ws_connect(s.port);
    json_decref(h_ws_hello(w, tok, 1000000));
    for (int i = 0; i < N; i++) {
        snprintf(frame, sizeof frame, "{\"op\":\"send\",\"body\":\"p %d\",\"client_msg_id\":\"p%d\"}", i, i);
        CHECK(h_ws_send_text(w, frame) == 0, "send frame %d: the server closed the connection", i);
    }
    int acks = 0;
    int64_t deadline = h_deadline(20000);
    while (acks < N) {
        json_t *m = h_ws_recv_json(w, deadline);
        CHECK(m, "connection ended or timed out after %d of %d acks (close %d)", acks, N, w->close_code);
        const char *op = json_string_value(json_object_get(m, "op"));
        acks += op && !strcmp(op, "ack");
        json_decref(m);
    }
    json_t *events = h_http_get_events(s.port, tok, 0);
    CHECK(json_array_size(events) == N, "%zu of %d messages stored", json_array_size(events), N);
    json_decref(events);
    h_ws_free(w);
    h_server_stop(&s);
}

/* The longest body (4,096 bytes of three-byte characters and one ASCII
 * byte) in one frame: the server takes a frame larger than its receive
 * buffer (main.c) in pieces, and stores and delivers it byte for byte. */
static void test_ws_longest_message(void **state)
{
    (void)state;
    struct h_server s;
    char tok[65], body[4097], frame[4200];
    h_server_start_with_user(&s, NULL, "alice", PW, tok);
    size_t n = 0;
    while (n + 3 <= 4095) {
        memcpy(body + n, "\xe2\x82\xac", 3);   /* U+20AC */
        n += 3;
    }
    body[n++] = 'a';
    body[n] = '\0';
    struct h_ws *w = h_ws_connect(s.port);
    json_decref(h_ws_hello(w, tok, 0));
    snprintf(frame, sizeof frame, "{\"op\":\"send\",\"body\":\"%s\",\"client_msg_id\":\"long1\"}", body);
    CHECK(h_ws_send_text(w, frame) == 0, "send the %zu-byte frame", strlen(frame));
    json_t *ev = h_ws_recv_op(w, "event", h_deadline(5000));
    const char *got = json_string_value(json_object_get(json_object_get(ev, "event"), "body"));
    CHECK(got && strlen(got) == 4096 && !strcmp(got, body), "the WebSocket's event: %zu bytes, intact %d",
          got ? strlen(got) : 0, got && !strcmp(got, body));
    json_decref(ev);
    json_t *events = h_http_get_events(s.port, tok, 0);
    got = json_string_value(json_object_get(json_array_get(events, 0), "body"));
    CHECK(json_array_size(events) == 1 && got && !strcmp(got, body), "stored: %zu events, intact %d",
          json_array_size(events), got && !strcmp(got, body));
    json_decref(events);
    h_ws_free(w);
    h_server_stop(&s);
}

static long rss_kb(pid_t pid)
{
    char path[64], line[256];
    long kb = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

/* 2,000 idle, authenticated WebSockets: the server still answers a normal
 * client at once, and memory per connection stays small. */
static void test_idle_websockets(void **state)
{
    (void)state;
    enum { N = 2000 };
    struct h_server s;
    char tok[65];
    const char *extra[] = { "--max-connections-per-ip", "5000", NULL };
    h_server_start_with_user(&s, extra, "alice", PW, tok);
    long before = rss_kb(s.proc->pid);
    struct h_ws **ws = calloc(N, sizeof *ws);
    for (int i = 0; i < N; i++) {
        ws[i] = h_ws_connect(s.port);
        json_decref(h_ws_hello(ws[i], tok, 0));   /* no events yet: nothing to replay */
    }
    long after = rss_kb(s.proc->pid);
    long per_conn = (after - before) * 1024 / N;
    print_message("server RSS %ld kB -> %ld kB with %d idle WebSockets: %ld bytes each\n",
                  before, after, N, per_conn);
    /* ~6 KB in a normal build, ~26 KB under ASan; a per-connection buffer
     * of the message size (64 KB) would break this bound. */
    CHECK(per_conn < 48 * 1024, "%ld bytes per idle WebSocket", per_conn);
    int ms = healthz_ms(s.port);
    CHECK(ms >= 0 && ms < 1000, "healthz with 2,000 idle WebSockets: %d ms", ms);
    /* a message round trip reaches an idle socket */
    int64_t id;
    CHECK(h_http_post_message(s.port, tok, NULL, "to everyone", NULL, &id) == 201, "post");
    json_t *ev = h_ws_recv_op(ws[N - 1], "event", h_deadline(5000));
    CHECK(ev, "the last idle WebSocket did not get the message");
    json_decref(ev);
    for (int i = 0; i < N; i++)
        h_ws_free(ws[i]);
    free(ws);
    h_server_stop(&s);
}

int main(void)
{
    /* The harness holds 16 temporary folders at a time: the proxy tests
     * give theirs back (h_teardown) so the suite stays under that. */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slowloris),
        cmocka_unit_test(test_flood_http),
        cmocka_unit_test(test_flood_ws),
        cmocka_unit_test(test_ws_rate_resume),
        cmocka_unit_test_teardown(test_login_bruteforce, source_teardown),
        cmocka_unit_test_teardown(test_login_rotating_names, source_teardown),
        cmocka_unit_test_teardown(test_proxy_forwarded_client, h_teardown),
        cmocka_unit_test_teardown(test_proxy_forged_header, source_teardown),
        cmocka_unit_test_teardown(test_proxy_last_entry, h_teardown),
        cmocka_unit_test_teardown(test_proxy_websocket, h_teardown),
        cmocka_unit_test(test_connections_per_address),
        cmocka_unit_test(test_long_poll_waiters),
        cmocka_unit_test(test_idle_websockets),
        cmocka_unit_test(test_total_connections),
        cmocka_unit_test(test_keepalive_idle),
        cmocka_unit_test(test_ws_fragment_cap),
        cmocka_unit_test(test_ws_pipelined_sends),
        cmocka_unit_test(test_ws_longest_message),
    };
    if (getenv("LIMITS_ONLY"))
        cmocka_set_test_filter(getenv("LIMITS_ONLY"));
    int rc = cmocka_run_group_tests_name("limits", tests, NULL, NULL);
    harness_cleanup();
    return rc;
}
