/* test_http_strict.c — chatd's HTTP side against hostile and non-standard
 * input, over raw sockets: it listens on exactly the address it is given;
 * after an answer that closes, nothing more is written and the connection
 * ends (bytes after a body are the next request, or nothing); a request
 * sent too slowly gets 408; a bad version, Content-Length or query gets a
 * JSON error of the right status and a close, and so does what lws' parser
 * gives up on (a garbage request line, an unknown method, CONNECT: its
 * fallback to http_reject.c); what lws 4.1 still refuses by itself (an
 * absolute URI, a bad %-escape, no request line, oversized headers) is at
 * least never a 200 and closed at once. */
#include "harness.h"
#include "scenario.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define PW "correct horse battery"

/* ---- a raw exchange: everything the server writes until it closes ---- */

struct raw_out {
    int     connected;     /* 0: refused (errno in err) */
    int     err;
    int     status;        /* of the first response, 0 if none */
    json_t *json;          /* its body, if JSON */
    int     nresp;         /* status lines seen in all */
    int     closed;        /* the server closed before the deadline */
    int64_t closed_ms;     /* when, from the send */
    char   *all;
    size_t  len;
};

static void raw_free(struct raw_out *o)
{
    json_decref(o->json);
    free(o->all);
    memset(o, 0, sizeof *o);
}

/* A blocking TCP connection to host:port (IPv4 or IPv6 literal); -1 with
 * errno if refused. */
static int connect_to(const char *host, int port)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        sl = sizeof *a4;
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        sl = sizeof *a6;
    } else {
        errno = EINVAL;
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&ss, sl) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static void parse_first(struct raw_out *o)
{
    const char *p = o->all;
    for (const char *q = p; (q = strstr(q, "\r\n\r\n")) != NULL; q++)
        o->nresp++;                     /* a head's end: JSON bodies hold no CRLF */
    const char *he = strstr(p, "\r\n\r\n");
    if (!he || sscanf(p, "HTTP/1.%*d %d", &o->status) != 1)
        return;
    const char *cl = strcasestr(p, "\r\ncontent-length:");
    size_t n = cl && cl < he ? strtoul(cl + 17, NULL, 10) : 0;
    he += 4;
    if ((size_t)(o->all + o->len - he) >= n)
        o->json = json_loadb(he, n, 0, NULL);
}

/* Reads until the server closes, wait_ms pass or 1 MB came. */
static void read_all(int fd, struct raw_out *o, int64_t t0, int wait_ms)
{
    int64_t dl = t0 + wait_ms;
    size_t cap = 0;
    while (o->len < (1u << 20)) {
        int left = (int)(dl - h_now_ms());
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        if (left <= 0 || poll(&pfd, 1, left) <= 0)
            break;
        if (o->len + 65536 + 1 > cap) {
            cap = (o->len + 65536 + 1) * 2;
            o->all = realloc(o->all, cap);
        }
        ssize_t k = recv(fd, o->all + o->len, 65536, 0);
        if (k <= 0) {
            o->closed = 1;
            o->closed_ms = h_now_ms() - t0;
            break;
        }
        o->len += (size_t)k;
    }
    if (!o->all)
        o->all = calloc(1, 1);
    o->all[o->len] = '\0';
    parse_first(o);
}

static void raw_exchange_at(const char *host, int port, const char *raw, size_t len, int wait_ms,
                            struct raw_out *o)
{
    memset(o, 0, sizeof *o);
    int fd = connect_to(host, port);
    if (fd < 0) {
        o->err = errno;
        o->all = calloc(1, 1);
        return;
    }
    o->connected = 1;
    int64_t t0 = h_now_ms();
    (void)!send(fd, raw, len, MSG_NOSIGNAL);
    read_all(fd, o, t0, wait_ms);
    close(fd);
}

static void raw_exchange(int port, const char *raw, int wait_ms, struct raw_out *o)
{
    raw_exchange_at("127.0.0.1", port, raw, strlen(raw), wait_ms, o);
}

/* The first answer is status with {"error":{"code":code}} and the server
 * closed the connection after exactly one answer. */
static int check_error_close(const char *what, const struct raw_out *o, int status, const char *code)
{
    json_t *e = o->json ? json_object_get(o->json, "error") : NULL;
    const char *c = json_string_value(json_object_get(e, "code"));
    int ok = o->status == status && c && (!code || strcmp(c, code) == 0) &&
             json_is_string(json_object_get(e, "message")) && o->nresp == 1 && o->closed;
    if (!ok)
        fprintf(stderr, "MISMATCH: %s: want %d %s, one answer, closed; got status %d code %s, "
                "%d answer(s), %s, %zu bytes: %.300s\n", what, status, code ? code : "*", o->status,
                c ? c : "(none)", o->nresp, o->closed ? "closed" : "still open", o->len, o->all);
    return ok;
}

/* For what lws 4.1 refuses before chatd sees a request (see PROTOCOL.md,
 * "HTTP errors"): at most one answer, never a success, and the connection
 * closed at once. */
static int check_refused_close(const char *what, const struct raw_out *o)
{
    int ok = o->status != 200 && (o->status == 0 || o->status >= 400) && o->nresp <= 1 &&
             o->closed && o->closed_ms < 1000;
    if (!ok)
        fprintf(stderr, "MISMATCH: %s: want a refusal and a prompt close; got status %d, %d answer(s), "
                "%s after %lld ms: %.300s\n", what, o->status, o->nresp, o->closed ? "closed" : "still open",
                (long long)o->closed_ms, o->all);
    return ok;
}

/* ---- 1. the listening address ---- */

static int have_ipv6_loopback(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
    int ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static const char HEALTHZ[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

/* host answers /healthz with 200 on port (1), or refuses the connection (0). */
static int answers(const char *host, int port)
{
    struct raw_out o;
    raw_exchange_at(host, port, HEALTHZ, strlen(HEALTHZ), 5000, &o);
    int refused = !o.connected && o.err == ECONNREFUSED;
    int ok = o.connected && o.status == 200;
    CHECK(ok || refused, "%s:%d neither answered 200 nor refused (errno %d): %s", host, port, o.err, o.all);
    raw_free(&o);
    return ok;
}

static void start_on(struct h_server *s, const char *host)
{
    const char *extra[] = { "--host", host, NULL };
    h_server_start(s, NULL, extra);
}

static void test_bind_exact_address(void **state)
{
    (void)state;
    struct h_server s;
    start_on(&s, "127.0.0.1");
    CHECK(answers("127.0.0.1", s.port), "127.0.0.1 must answer");
    CHECK(!answers("127.0.0.2", s.port), "--host 127.0.0.1 must not accept on 127.0.0.2");
    h_server_stop(&s);

    start_on(&s, "127.0.0.2");
    CHECK(answers("127.0.0.2", s.port), "--host 127.0.0.2 must answer on 127.0.0.2");
    CHECK(!answers("127.0.0.1", s.port), "--host 127.0.0.2 must not accept on 127.0.0.1");
    h_server_stop(&s);

    start_on(&s, "0.0.0.0");
    CHECK(answers("127.0.0.1", s.port) && answers("127.0.0.2", s.port),
          "--host 0.0.0.0 must answer on every IPv4 address");
    h_server_stop(&s);
}

static void test_bind_ipv6(void **state)
{
    (void)state;
    if (!have_ipv6_loopback()) {
        fprintf(stderr, "SKIP: this machine has no IPv6 loopback (::1)\n");
        skip();
    }
    struct h_server s;
    start_on(&s, "::1");
    CHECK(answers("::1", s.port), "--host ::1 must answer on ::1");
    CHECK(!answers("127.0.0.1", s.port), "--host ::1 must not accept on 127.0.0.1");
    h_server_stop(&s);
}

static void test_bind_refuses_non_address(void **state)
{
    (void)state;
    /* Not an address: chatd must refuse to start (usage error, exit 2)
     * rather than listen somewhere else. `timeout` ends it if it does. */
    char cmd[512];
    const char *bin = getenv("CHATD_BIN") ? getenv("CHATD_BIN") : "bin/chatd";
    snprintf(cmd, sizeof cmd, "timeout -s KILL 5 %s --host eth-nonsense --port 0 --db %s/x.db "
             ">/dev/null 2>&1 </dev/null", bin, h_tmpdir());
    int rc = system(cmd);
    CHECK(rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 2,
          "chatd --host eth-nonsense must exit 2 (bad flag), got status %d", rc);
}

/* ---- 2. refused connections are given back ---- */

/* What lws' parser hands to http_reject.c still counts against the
 * per-address limit while open, and is given back when it closes: three
 * times the limit of refusals in a row, then the address is still served. */
static void test_refusals_free_their_connection(void **state)
{
    (void)state;
    struct h_server s;
    const char *extra[] = { "--max-connections-per-ip", "4", NULL };
    h_server_start(&s, NULL, extra);
    static const char *const raws[] = { "GARBAGE\r\n\r\n", "CONNECT x:80 HTTP/1.1\r\nHost: x\r\n\r\n" };
    int bad = 0;
    for (int i = 0; i < 12; i++) {
        struct raw_out o;
        raw_exchange_at("127.0.0.1", s.port, raws[i % 2], strlen(raws[i % 2]), 3000, &o);
        if (!check_error_close(raws[i % 2], &o, 400, "bad_request"))
            bad++;
        raw_free(&o);
    }
    CHECK(bad == 0, "%d of 12 refusals not answered 400 bad_request and closed", bad);
    CHECK(answers("127.0.0.1", s.port), "the address is no longer served after 12 refusals");
    h_server_stop(&s);
}

/* ---- one server for the rest ---- */

static struct h_server srv;
static char tok[65];

static int group_setup(void **state)
{
    (void)state;
    harness_init();
    const char *extra[] = { "--request-timeout-s", "2", "--header-timeout-s", "10", NULL };
    h_server_start(&srv, NULL, extra);
    if (h_http_register(srv.port, "alice", PW) != 201 || h_http_login(srv.port, "alice", PW, tok) != 200) {
        h_dump_logs();
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


static void expect_close(const char *what, const char *raw, int status, const char *code)
{
    struct raw_out o;
    raw_exchange(srv.port, raw, 3000, &o);
    if (!check_error_close(what, &o, status, code))
        scenario_mismatches++;
    raw_free(&o);
}

static void expect_refused(const char *what, const char *raw)
{
    struct raw_out o;
    raw_exchange(srv.port, raw, 3000, &o);
    if (!check_refused_close(what, &o))
        scenario_mismatches++;
    raw_free(&o);
}

/* ---- 3. nothing after an answer that closes ---- */

static void test_close_after_body(void **state)
{
    (void)state;
    expect_close("messages, Connection: close, 2 bytes after the body",
                 "POST /api/v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                 "Connection: close\r\n\r\n{}xx", 401, "unauthorized");
    expect_close("register, Connection: close, 1 byte after the body",
                 "POST /api/v1/register HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                 "Connection: close\r\n\r\n{}x", 400, "invalid");
    expect_close("login, Connection: close, 1 byte after the body",
                 "POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                 "Connection: close\r\n\r\n{}x", 400, "invalid");
    expect_close("HTTP/1.0 login, 1 byte after the body",
                 "POST /api/v1/login HTTP/1.0\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}x",
                 400, "invalid");
    END_CHECKS();
}

/* Bytes after a kept-alive body are the next request: answered in turn. */
static void test_pipelined_after_body(void **state)
{
    (void)state;
    struct raw_out o;
    raw_exchange(srv.port, "POST /api/v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
                           "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 3000, &o);
    CHECK(o.status == 401 && o.nresp == 2 && strstr(o.all, "HTTP/1.1 200") && o.closed,
          "want 401 then 200 then close; got %zu bytes (%s): %.600s", o.len,
          o.closed ? "closed" : "open", o.all);
    raw_free(&o);

    /* garbage as the next request: refused once with the JSON 400 and
     * closed, never an answer per loop turn */
    raw_exchange(srv.port, "POST /api/v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}xx",
                 3000, &o);
    const char *second = strstr(o.all, "\r\n\r\n");
    second = second ? strstr(second, "HTTP/1.1 400 ") : NULL;
    CHECK(o.status == 401 && o.nresp == 2 && o.closed && second &&
          strstr(second, "{\"error\":{\"code\":\"bad_request\""),
          "want a 401, then a JSON 400 bad_request for \"xx\", and a close; got %d answers, %s, %zu bytes: %.400s",
          o.nresp, o.closed ? "closed" : "open", o.len, o.all);
    raw_free(&o);
}

/* ---- 4. a whole-request deadline ---- */

static void test_slow_body_deadline(void **state)
{
    (void)state;
    int fd = connect_to("127.0.0.1", srv.port);
    CHECK(fd >= 0, "connect failed");
    const char head[] = "POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n";
    int64_t t0 = h_now_ms();
    CHECK(send(fd, head, strlen(head), MSG_NOSIGNAL) == (ssize_t)strlen(head), "send failed");
    struct raw_out o;
    memset(&o, 0, sizeof o);
    /* a byte every 200 ms (each would restart an idle timer) until the
     * server answers or 8 s pass */
    while (h_now_ms() - t0 < 8000) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        if (poll(&pfd, 1, 200) > 0)
            break;
        if (send(fd, "{", 1, MSG_NOSIGNAL) != 1)
            break;
    }
    read_all(fd, &o, t0, 8000);
    close(fd);
    int ok = check_error_close("body of 60000 bytes sent a byte per 200 ms", &o, 408, "request_timeout");
    CHECK(ok && o.closed_ms < 4500, "want 408 request_timeout and a close ~2 s after the headers, got %s after %lld ms",
          ok ? "it" : "otherwise", (long long)o.closed_ms);
    raw_free(&o);
}

/* ---- 6. errors in the protocol's shape ---- */

static void test_bad_request_lines(void **state)
{
    (void)state;
    /* lws' parser gives up on these and falls back to http_reject.c */
    expect_close("garbage request line", "GARBAGE\r\n\r\n", 400, "bad_request");
    expect_close("unknown method", "FOO /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request");
    expect_close("TRACE", "TRACE / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request");
    expect_close("a TLS hello on the plain port", "\x16\x03\x01\x00\x05hello", 400, "bad_request");
    /* lws hands CONNECT to a raw protocol with no timeout: answered, not held */
    expect_close("CONNECT", "CONNECT x:80 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request");
    /* lws 4.1 still answers these itself (HTML 403, or a close for a
     * request with no request line) before any callback */
    expect_refused("absolute URI", "GET http://x/healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_refused("bad %-escape", "GET /healthz%zz HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_refused("no request line", "Host: x\r\n\r\n");
    /* the fallback protocol is no WebSocket subprotocol: asked for by
     * name, the upgrade is refused (no 101) and the connection closed */
    expect_refused("WebSocket asking for chatd-http-reject",
                   "GET /api/v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Protocol: chatd-http-reject\r\n\r\n");
    expect_close("HTTP/2.0", "GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 505, "http_version_not_supported");
    expect_close("HTTP/0.9", "GET /healthz HTTP/0.9\r\nHost: x\r\n\r\n", 505, "http_version_not_supported");
    expect_close("no version", "GET /healthz\r\nHost: x\r\n\r\n", 400, "bad_request");
    expect_close("not HTTP", "GET /healthz FTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request");
    END_CHECKS();
}

static void test_bad_content_length(void **state)
{
    (void)state;
    static const char *const cls[] = {
        "Content-Length: 2\r\nContent-Length: 2\r\n",
        "Content-Length: 2 \r\n",
        "Content-Length: +2\r\n",
        "Content-Length: 0x2\r\n",
        "Content-Length: -2\r\n",
        "Content-Length: 2,2\r\n",
    };
    for (size_t i = 0; i < sizeof cls / sizeof cls[0]; i++) {
        char raw[512], what[128];
        snprintf(raw, sizeof raw, "POST /api/v1/login HTTP/1.1\r\nHost: x\r\n%s\r\n{}", cls[i]);
        snprintf(what, sizeof what, "%.*s", (int)strcspn(cls[i] + 16, "\r") + 16, cls[i]);
        expect_close(what, raw, 400, "bad_request");
    }
    expect_close("Content-Length over the limit",
                 "POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n{}",
                 413, "too_large");
    END_CHECKS();
}

static void test_oversized_headers(void **state)
{
    (void)state;
    char *raw = malloc(20000);
    char *big = malloc(8001);
    memset(big, 'a', 8000);
    big[8000] = '\0';
    snprintf(raw, 20000, "GET /healthz HTTP/1.1\r\nHost: x\r\nUser-Agent: %s\r\n\r\n", big);
    /* lws 4.1 fails its parse and closes, with no callback to answer 431 */
    expect_refused("an 8000-byte header", raw);
    free(big);
    free(raw);
    END_CHECKS();
}

static void test_query_edges(void **state)
{
    (void)state;
    char path[128];
    struct h_http_resp r;
    /* the largest cursor is a cursor: nothing after it */
    h_http_call(srv.port, "GET", "/api/v1/events?after=9223372036854775807&wait=0", tok, NULL, 0, &r);
    CHECK(r.status == 200 && json_array_size(json_object_get(r.json, "events")) == 0,
          "after=INT64_MAX: want 200 and no events, got %d %s", r.status, r.body);
    h_http_resp_free(&r);
    h_http_call(srv.port, "GET", "/api/v1/events?after=9223372036854775808&wait=0", tok, NULL, 0, &r);
    h_assert_error("after=INT64_MAX+1", &r, 400, "bad_query");
    h_http_resp_free(&r);
    /* an encoded '&' is part of a value, not a separator */
    snprintf(path, sizeof path, "/api/v1/events?after=0%%26limit=5&wait=0");
    h_http_call(srv.port, "GET", path, tok, NULL, 0, &r);
    h_assert_error("after=0%26limit=5", &r, 400, "bad_query");
    h_http_resp_free(&r);
}

/* After all of it the server still serves, promptly. */
static void test_still_serves(void **state)
{
    (void)state;
    int64_t t0 = h_now_ms();
    struct h_http_resp r;
    h_http_call(srv.port, "GET", "/healthz", NULL, NULL, 0, &r);
    CHECK(r.status == 200 && h_now_ms() - t0 < 1000, "healthz: %d after %lld ms", r.status,
          (long long)(h_now_ms() - t0));
    h_http_resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest bind_tests[] = {
        cmocka_unit_test_teardown(test_bind_exact_address, h_teardown),
        cmocka_unit_test_teardown(test_bind_ipv6, h_teardown),
        cmocka_unit_test_teardown(test_bind_refuses_non_address, h_teardown),
        cmocka_unit_test_teardown(test_refusals_free_their_connection, h_teardown),
    };
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_close_after_body),
        cmocka_unit_test(test_pipelined_after_body),
        cmocka_unit_test(test_slow_body_deadline),
        cmocka_unit_test(test_bad_request_lines),
        cmocka_unit_test(test_bad_content_length),
        cmocka_unit_test(test_oversized_headers),
        cmocka_unit_test(test_query_edges),
        cmocka_unit_test(test_still_serves),
    };
    int rc = cmocka_run_group_tests_name("bind", bind_tests, h_setup, h_teardown);
    return rc + cmocka_run_group_tests_name("http_strict", tests, group_setup, group_teardown);
}
