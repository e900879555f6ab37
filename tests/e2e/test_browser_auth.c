/* test_browser_auth.c — the browser rules of shared/PROTOCOL.md ("Browsers")
 * on the wire, without a browser: the page's files and their headers (CSP,
 * nosniff, Referrer-Policy, ETag and 304); a cookie login (HttpOnly,
 * SameSite=Strict, no token in the body); the cookie accepted only from the
 * server's own origin (a POST without Origin or with another is 403, so is
 * the stream from another origin); the WebSocket: the page's own Origin
 * allowed, its cookie standing for an empty hello token, never from
 * another origin or without one; a cookie logout clears the cookie; and
 * Bearer tokens unchanged. tests/browser/ runs the same in Chromium. */
#include "scenario.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One request with extra headers (each ending in \r\n) and a JSON body or NULL. */
static void req(int port, const char *method, const char *path, const char *hdrs, const char *body,
                struct h_http_resp *r)
{
    char raw[2048];
    size_t blen = body ? strlen(body) : 0;
    int n = snprintf(raw, sizeof raw, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n%s"
                     "Content-Length: %zu\r\n%s\r\n%s", method, path, port, hdrs ? hdrs : "", blen,
                     body ? "Content-Type: application/json\r\n" : "", body ? body : "");
    CHECK(n > 0 && (size_t)n < sizeof raw, "request too long");
    CHECK(h_http_request(port, raw, (size_t)n, r, 10000) == 0, "%s %s: no answer", method, path);
}

static int header_has(const struct h_http_resp *r, const char *name, const char *part)
{
    char *v = h_http_header(r, name);
    int ok = v && strstr(v, part);
    free(v);
    return ok;
}

/* A cookie login; the Cookie header for it into cookie ("Cookie: ...\r\n"). */
static void cookie_login(int port, char *cookie, size_t size)
{
    struct h_http_resp r;
    req(port, "POST", "/api/v1/login", NULL,
        "{\"user\":\"alice\",\"password\":\"" PW_ALICE "\",\"cookie\":true}", &r);
    CHECK(r.status == 200, "cookie login: %d %s", r.status, r.body);
    CHECK(!strstr(r.body, "token"), "a cookie login's body holds no token: %s", r.body);
    char *sc = h_http_header(&r, "Set-Cookie");
    CHECK(sc && strstr(sc, "HttpOnly") && strstr(sc, "SameSite=Strict") && strstr(sc, "Path=/api/") &&
          !strstr(sc, "Secure"), "Set-Cookie: %s", sc ? sc : "(none)");
    CHECK(strncmp(sc, "chat_session=", 13) == 0 && strspn(sc + 13, "0123456789abcdef") == 64,
          "Set-Cookie: %s", sc);
    snprintf(cookie, size, "Cookie: %.77s\r\n", sc);
    free(sc);
    h_http_resp_free(&r);
}

static void test_page(void **state)
{
    (void)state;
    struct h_server s;
    char alice[65];
    start_alice_bob(&s, NULL, alice, NULL);
    struct h_http_resp r;
    const char *files[][2] = { { "/", "text/html" }, { "/app.js", "text/javascript" },
                               { "/app.css", "text/css" }, { "/lab.html", "text/html" } };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        req(s.port, "GET", files[i][0], NULL, NULL, &r);
        CHECK(r.status == 200 && header_has(&r, "Content-Type", files[i][1]), "GET %s: %d", files[i][0], r.status);
        CHECK(header_has(&r, "Content-Security-Policy", "script-src 'self'") &&
              !header_has(&r, "Content-Security-Policy", "unsafe-inline") &&
              header_has(&r, "X-Content-Type-Options", "nosniff") &&
              header_has(&r, "Referrer-Policy", "no-referrer") && header_has(&r, "Cache-Control", "no-cache"),
              "GET %s: the page headers:\n%s", files[i][0], r.head);
        char *etag = h_http_header(&r, "ETag"), hdr[128];
        CHECK(etag, "GET %s: no ETag", files[i][0]);
        snprintf(hdr, sizeof hdr, "If-None-Match: %s\r\n", etag);
        free(etag);
        h_http_resp_free(&r);
        req(s.port, "GET", files[i][0], hdr, NULL, &r);
        CHECK(r.status == 304 && r.body_len == 0, "GET %s with its ETag: %d, expected 304", files[i][0], r.status);
        h_http_resp_free(&r);
    }
    req(s.port, "POST", "/", NULL, "{}", &r);
    h_assert_error("POST /", &r, 405, "method_not_allowed");
    h_http_resp_free(&r);
    h_server_stop(&s);
}

static void test_cookie_origin(void **state)
{
    (void)state;
    struct h_server s;
    char alice[65], cookie[128], own[64], hdrs[256];
    start_alice_bob(&s, NULL, alice, NULL);
    cookie_login(s.port, cookie, sizeof cookie);
    snprintf(own, sizeof own, "Origin: http://127.0.0.1:%d\r\n", s.port);
    struct h_http_resp r;
    const char *msg = "{\"body\":\"by cookie\"}";
    req(s.port, "GET", "/api/v1/account", cookie, NULL, &r);
    CHECK(r.status == 200, "GET by cookie, no Origin: %d %s", r.status, r.body);
    h_http_resp_free(&r);
    req(s.port, "POST", "/api/v1/messages", cookie, msg, &r);
    h_assert_error("POST by cookie without Origin", &r, 403, "forbidden_origin");
    h_http_resp_free(&r);
    snprintf(hdrs, sizeof hdrs, "%sOrigin: http://127.0.0.1:%d\r\n", cookie, s.port + 1);
    req(s.port, "POST", "/api/v1/messages", hdrs, msg, &r);
    h_assert_error("POST by cookie from another port", &r, 403, "forbidden_origin");
    h_http_resp_free(&r);
    req(s.port, "POST", "/api/v1/transfers", hdrs, "{\"to\":\"bob\",\"amount_cents\":5,\"idempotency_key\":\"k\"}", &r);
    h_assert_error("transfer by cookie from another port", &r, 403, "forbidden_origin");
    h_http_resp_free(&r);
    req(s.port, "GET", "/api/v1/stream", hdrs, NULL, &r);
    h_assert_error("the stream by cookie from another port", &r, 403, "forbidden_origin");
    h_http_resp_free(&r);
    req(s.port, "POST", "/api/v1/login", hdrs,
        "{\"user\":\"alice\",\"password\":\"" PW_ALICE "\",\"cookie\":true}", &r);
    h_assert_error("a cookie login from another origin", &r, 403, "forbidden_origin");
    h_http_resp_free(&r);
    req(s.port, "POST", "/api/v1/login", NULL, "{\"user\":\"alice\",\"password\":\"" PW_ALICE "\",\"cookie\":1}", &r);
    h_assert_error("cookie: 1", &r, 400, "invalid");
    h_http_resp_free(&r);
    snprintf(hdrs, sizeof hdrs, "%s%s", cookie, own);
    req(s.port, "POST", "/api/v1/messages", hdrs, msg, &r);
    CHECK(r.status == 201, "POST by cookie from the own origin: %d %s", r.status, r.body);
    h_http_resp_free(&r);
    /* a Bearer token wins over a cookie, and needs no Origin */
    int64_t id;
    CHECK(h_http_post_message(s.port, alice, NULL, "by token", NULL, &id) == 201, "Bearer POST");
    req(s.port, "POST", "/api/v1/logout", hdrs, NULL, &r);
    CHECK(r.status == 200 && header_has(&r, "Set-Cookie", "Max-Age=0"), "cookie logout: %d\n%s", r.status, r.head);
    h_http_resp_free(&r);
    req(s.port, "GET", "/api/v1/account", cookie, NULL, &r);
    h_assert_error("the cookie after its logout", &r, 401, "unauthorized");
    h_http_resp_free(&r);
    h_server_stop(&s);
}

static void test_ws_cookie(void **state)
{
    (void)state;
    struct h_server s;
    char alice[65], cookie[128], hdrs[512];
    start_alice_bob(&s, NULL, alice, NULL);
    cookie_login(s.port, cookie, sizeof cookie);
    struct h_http_resp r;
    /* the page's own origin: allowed without --allow-origin, its cookie stands for the token */
    snprintf(hdrs, sizeof hdrs, "Sec-WebSocket-Protocol: chat.v1\r\n%sOrigin: http://127.0.0.1:%d\r\n", cookie, s.port);
    struct h_ws *w = h_ws_connect_raw(s.port, hdrs, &r);
    CHECK(w && r.status == 101, "WebSocket from the own origin: %d", r.status);
    h_http_resp_free(&r);
    json_t *ready = h_ws_hello(w, "", 0);
    CHECK(ready, "hello with an empty token and the cookie: no ready");
    json_decref(ready);
    h_ws_free(w);
    /* no Origin: the cookie does not count */
    snprintf(hdrs, sizeof hdrs, "Sec-WebSocket-Protocol: chat.v1\r\n%s", cookie);
    w = h_ws_connect_raw(s.port, hdrs, &r);
    CHECK(w && r.status == 101, "WebSocket without Origin: %d", r.status);
    h_http_resp_free(&r);
    CHECK(h_ws_send_text(w, "{\"op\":\"hello\",\"token\":\"\",\"after\":0}") == 0, "send hello");
    int code = h_ws_wait_close(w, h_deadline(5000));
    CHECK(code == 4401, "empty hello, cookie without Origin: closed with %d, expected 4401", code);
    h_ws_free(w);
    /* another origin: refused at the handshake */
    snprintf(hdrs, sizeof hdrs, "Sec-WebSocket-Protocol: chat.v1\r\n%sOrigin: http://127.0.0.1:%d\r\n", cookie,
             s.port + 1);
    w = h_ws_connect_raw(s.port, hdrs, &r);
    CHECK(!w && r.status == 403, "WebSocket from another port: %d, expected 403", r.status);
    h_http_resp_free(&r);
    h_server_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_page),
        cmocka_unit_test(test_cookie_origin),
        cmocka_unit_test(test_ws_cookie),
    };
    int rc = cmocka_run_group_tests_name("browser_auth", tests, NULL, NULL);
    harness_cleanup();
    return rc;
}
