/* test_rfc6455.c — RFC 6455 conformance of chatd's WebSocket endpoint, with
 * hand-built client frames on a raw TCP socket: the handshake (version,
 * refused Origin), framing (mask, reserved bits and opcodes, control frames,
 * fragmentation), close codes and UTF-8. A violation must be answered with a
 * close frame carrying the code the RFC asks for, then the end of the TCP
 * connection, and nothing sent after it may be processed; a valid case must
 * work. Where libwebsockets 4.x decides by itself and gives chatd no hook
 * (shared/PROTOCOL.md, "WebSocket conformance"), the test accepts what lws
 * does instead and still asserts the prompt hang-up with nothing processed. */
#include "harness.h"

#include <libwebsockets.h>          /* LWS_LIBRARY_VERSION_MAJOR only */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PW     "correct horse battery"
#define ORIGIN "https://chat.example"
#define FIN    0x80
#define RSV1   0x40

/* lws before 5.0 drops these connections without a close frame or (mask)
 * accepts the frame; see shared/PROTOCOL.md. */
#define LWS_OLD (LWS_LIBRARY_VERSION_MAJOR < 5)

static struct h_server srv;
static char tok[65];

static int group_setup(void **state)
{
    (void)state;
    harness_init();
    const char *extra[] = { "--allow-origin", ORIGIN, NULL };
    h_server_start_with_user(&srv, extra, "alice", PW, tok);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    h_server_stop(&srv);
    harness_cleanup();
    return 0;
}

/* One client frame: b0 is FIN | RSV | opcode as it goes on the wire. */
static size_t frame(unsigned char *out, int b0, int masked, const void *payload, size_t len)
{
    static const unsigned char mask[4] = { 0x12, 0x34, 0x56, 0x78 };
    size_t h = 0;
    out[h++] = (unsigned char)b0;
    if (len < 126) {
        out[h++] = (unsigned char)((masked ? 0x80 : 0) | len);
    } else {
        out[h++] = (unsigned char)((masked ? 0x80 : 0) | 126);
        out[h++] = (unsigned char)(len >> 8);
        out[h++] = (unsigned char)len;
    }
    if (masked) {
        memcpy(out + h, mask, 4);
        h += 4;
    }
    const unsigned char *p = payload;
    for (size_t i = 0; i < len; i++)
        out[h + i] = masked ? p[i] ^ mask[i & 3] : p[i];
    return h + len;
}

/* A hello frame with alice's token: if the server answers it after a bad
 * frame, it processed input it must have dropped. */
static size_t hello_frame(unsigned char *out)
{
    char text[160];
    int n = snprintf(text, sizeof text, "{\"op\":\"hello\",\"token\":\"%s\",\"after\":0}", tok);
    return frame(out, FIN | WS_TEXT, 1, text, (size_t)n);
}

/* Sends bad (a frame or more, b bytes) followed by a valid hello in one write. */
static void send_then_hello(struct h_ws *w, const unsigned char *bad, size_t b)
{
    unsigned char buf[70000];
    memcpy(buf, bad, b);
    size_t n = b + hello_frame(buf + b);
    h_ws_send_raw(w, buf, n);
}

/* The server must answer with a close frame of code want, process no frame
 * sent after the violation, and end the TCP connection. limited: lws 4.x
 * hangs up without a close frame here and chatd cannot change it. */
static void expect_ws_close(struct h_ws *w, int want, int limited, const char *what)
{
    int64_t dl = h_deadline(5000);
    for (;;) {
        int op, fin;
        char *p = NULL;
        size_t n;
        int k = h_ws_recv_frame(w, dl, &op, &fin, &p, &n);
        CHECK(k != 0, "%s: no close frame and no hang-up within 5 s", what);
        if (k < 0) {
            CHECK(limited && LWS_OLD, "%s: the connection ended without a close frame (want %d)", what, want);
            return;                 /* lws 4.x: TCP closed, nothing processed */
        }
        if (op == WS_CLOSE) {
            free(p);
            break;
        }
        CHECK(0, "%s: the server answered a frame after the violation: %.120s", what, p);
    }
    CHECK(w->close_code == want, "%s: close code %d, want %d", what, w->close_code, want);
    /* lws' own close frames (limited cases) wait up to 5 s for the echo */
    CHECK(h_ws_wait_eof(w, h_deadline(limited ? 7000 : 3000)), "%s: TCP still open after the close frame", what);
}

static void bad_frame_case(int b0, int masked, const void *payload, size_t len, int want, int limited,
                           const char *what)
{
    unsigned char f[70000];
    struct h_ws *w = h_ws_connect(srv.port);
    send_then_hello(w, f, frame(f, b0, masked, payload, len));
    expect_ws_close(w, want, limited, what);
    h_ws_free(w);
}

/* ---- handshake ----------------------------------------------------------- */

static void test_version_not_13_is_426(void **state)
{
    (void)state;
    const char *versions[] = { "8", "12", "14", NULL };
    for (int i = 0; i < 4; i++) {
        char req[512], what[64], ver[48] = "";
        if (versions[i])
            snprintf(ver, sizeof ver, "Sec-WebSocket-Version: %s\r\n", versions[i]);
        int n = snprintf(req, sizeof req,
                         "GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         "%sSec-WebSocket-Protocol: chat.v1\r\n\r\n", ver);
        snprintf(what, sizeof what, "handshake with Sec-WebSocket-Version %s", versions[i] ? versions[i] : "missing");
        struct h_http_resp r;
        h_http_request(srv.port, req, (size_t)n, &r, 5000);
        h_assert_error(what, &r, 426, "upgrade_required");
        char *v = h_http_header(&r, "Sec-WebSocket-Version");
        CHECK(v && strcmp(v, "13") == 0, "%s: 426 without Sec-WebSocket-Version: 13", what);
        free(v);
        h_http_resp_free(&r);
    }
}

static void test_refused_origin_is_403(void **state)
{
    (void)state;
    struct h_http_resp r;
    struct h_ws *w = h_ws_connect_raw(srv.port, "Sec-WebSocket-Protocol: chat.v1\r\nOrigin: https://evil.example\r\n", &r);
    CHECK(!w, "a WebSocket from a refused Origin was accepted");
    h_assert_error("WebSocket handshake from a refused Origin", &r, 403, "forbidden_origin");
    h_http_resp_free(&r);
    w = h_ws_connect_raw(srv.port, "Sec-WebSocket-Protocol: chat.v1\r\nOrigin: " ORIGIN "\r\n", &r);
    CHECK(w, "a WebSocket from the allowed Origin was refused (%d)", r.status);
    json_decref(h_ws_hello(w, tok, 0));
    h_ws_free(w);
    h_http_resp_free(&r);
}

/* ---- framing (section 5) ----------------------------------------------- */

static void test_unmasked_frame_is_1002(void **state)
{
    (void)state;
    unsigned char f[256];
    char text[160];
    int n = snprintf(text, sizeof text, "{\"op\":\"hello\",\"token\":\"%s\",\"after\":0}", tok);
    struct h_ws *w = h_ws_connect(srv.port);
    h_ws_send_raw(w, f, frame(f, FIN | WS_TEXT, 0, text, (size_t)n));
    if (LWS_OLD) {
        /* lws 4.x never checks the mask bit and offers no hook (PROTOCOL.md):
         * the frame is read as if masked. Pin that down so a change shows. */
        json_t *ready = h_ws_recv_op(w, "ready", h_deadline(5000));
        CHECK(ready, "unmasked hello: neither refused (1002) nor read as lws 4.x reads it");
        json_decref(ready);
    } else {
        expect_ws_close(w, 1002, 0, "unmasked client frame");
    }
    h_ws_free(w);
}

static void test_ping_over_125_is_1002(void **state)
{
    (void)state;
    char p[126];
    memset(p, 'p', sizeof p);
    bad_frame_case(FIN | WS_PING, 1, p, sizeof p, 1002, 1, "ping of 126 bytes");
}

static void test_fragmented_ping_is_1002(void **state)
{
    (void)state;
    bad_frame_case(WS_PING, 1, "frag", 4, 1002, 1, "ping without FIN");
}

static void test_reserved_bits_are_1002(void **state)
{
    (void)state;
    bad_frame_case(FIN | RSV1 | WS_TEXT, 1, "{}", 2, 1002, 1, "text frame with RSV1 (no extension)");
    bad_frame_case(FIN | 0x20 | WS_TEXT, 1, "{}", 2, 1002, 1, "text frame with RSV2");
    bad_frame_case(FIN | 0x10 | WS_PING, 1, "x", 1, 1002, 1, "ping with RSV3");
}

static void test_reserved_opcodes_are_1002(void **state)
{
    (void)state;
    const int ops[] = { 3, 7, 0xB, 0xF };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        char what[48];
        snprintf(what, sizeof what, "reserved opcode 0x%X", ops[i]);
        bad_frame_case(FIN | ops[i], 1, "x", 1, 1002, 1, what);
    }
}

static void test_continuation_without_start_is_1002(void **state)
{
    (void)state;
    bad_frame_case(FIN | WS_CONT, 1, "{}", 2, 1002, 1, "continuation with no message open");
}

static void test_new_message_inside_fragmented_is_1002(void **state)
{
    (void)state;
    unsigned char f[256];
    size_t n = frame(f, WS_TEXT, 1, "{\"op\":", 6);
    n += frame(f + n, FIN | WS_TEXT, 1, "{}", 2);
    struct h_ws *w = h_ws_connect(srv.port);
    send_then_hello(w, f, n);
    expect_ws_close(w, 1002, 1, "a text frame while a fragmented message is open");
    h_ws_free(w);
}

/* ---- UTF-8 (sections 5.6, 8.1) ------------------------------------------ */

static void test_invalid_utf8_text_is_1007(void **state)
{
    (void)state;
    bad_frame_case(FIN | WS_TEXT, 1, "{\"op\":\"\xff\"}", 10, 1007, 0, "text frame with byte 0xFF");
    bad_frame_case(FIN | WS_TEXT, 1, "{\"x\":\"\xed\xa0\x80\"}", 12, 1007, 0, "text frame with a surrogate");
    unsigned char f[256];           /* a sequence cut short at the message's end */
    size_t n = frame(f, WS_TEXT, 1, "\"caf", 4);
    n += frame(f + n, FIN | WS_CONT, 1, "\xc3", 1);
    struct h_ws *w = h_ws_connect(srv.port);
    send_then_hello(w, f, n);
    expect_ws_close(w, 1007, 0, "text message ending inside a UTF-8 sequence");
    h_ws_free(w);
}

/* A character split across two fragments is valid: the message is acked. */
static void test_utf8_split_across_fragments_is_accepted(void **state)
{
    (void)state;
    struct h_ws *w = h_ws_connect(srv.port);
    json_decref(h_ws_hello(w, tok, 0));
    const char *m = "{\"op\":\"send\",\"body\":\"caf\xc3\xa9 \xe2\x98\x95\",\"client_msg_id\":\"split-1\"}";
    const char *cut1 = strstr(m, "\xc3") + 1;          /* inside the é */
    const char *cut2 = strstr(m, "\xe2") + 2;          /* inside the ☕ */
    h_ws_send_frame(w, WS_TEXT, 0, m, (size_t)(cut1 - m));
    h_ws_send_frame(w, WS_CONT, 0, cut1, (size_t)(cut2 - cut1));
    h_ws_send_frame(w, WS_CONT, 1, cut2, strlen(cut2));
    json_t *ack = h_ws_recv_op(w, "ack", h_deadline(5000));
    CHECK(ack, "a message with characters split across fragments was not acked (close %d)", w->close_code);
    json_decref(ack);
    json_t *ev = h_ws_recv_op(w, "event", h_deadline(5000));
    const char *body = json_string_value(json_object_get(json_object_get(ev, "event"), "body"));
    CHECK(body && strcmp(body, "caf\xc3\xa9 \xe2\x98\x95") == 0, "the split message came back as %s",
          body ? body : "(nothing)");
    json_decref(ev);
    h_ws_free(w);
}

/* ---- control frames and closing (sections 5.5, 7.4) --------------------- */

static void test_ping_is_answered_with_its_payload(void **state)
{
    (void)state;
    struct h_ws *w = h_ws_connect(srv.port);
    w->keep_pongs = 1;
    char p[125];
    for (size_t i = 0; i < sizeof p; i++)
        p[i] = (char)('a' + i % 26);
    const size_t sizes[] = { 0, 1, 125 };
    for (size_t i = 0; i < 3; i++) {
        h_ws_send_frame(w, WS_PING, 1, p, sizes[i]);
        int op = -1, fin;
        char *got = NULL;
        size_t n = 0;
        int k = h_ws_recv_frame(w, h_deadline(5000), &op, &fin, &got, &n);
        CHECK(k == 1 && op == WS_PONG, "ping of %zu bytes: no pong (got %d, opcode %d)", sizes[i], k, op);
        CHECK(n == sizes[i] && memcmp(got, p, n) == 0, "ping of %zu bytes: pong carries %zu other bytes",
              sizes[i], n);
        free(got);
    }
    h_ws_free(w);
}

static void close_case(const void *payload, size_t len, int want, int limited, const char *what)
{
    unsigned char f[256];
    struct h_ws *w = h_ws_connect(srv.port);
    send_then_hello(w, f, frame(f, FIN | WS_CLOSE, 1, payload, len));
    expect_ws_close(w, want, limited, what);
    h_ws_free(w);
}

static void test_valid_close_codes_are_echoed(void **state)
{
    (void)state;
    const int codes[] = { 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999 };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        unsigned char p[8] = { (unsigned char)(codes[i] >> 8), (unsigned char)codes[i], 'b', 'y', 'e' };
        char what[48];
        snprintf(what, sizeof what, "close %d", codes[i]);
        close_case(p, 5, codes[i], 0, what);
    }
    close_case("", 0, 1005, 0, "close without a code");  /* 1005: an empty close back */
}

static void test_invalid_close_codes_are_1002(void **state)
{
    (void)state;
    const int codes[] = { 0, 999, 1004, 1005, 1006, 1012, 1013, 1014, 1015, 1016, 2000, 2999, 5000, 65535 };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        unsigned char p[2] = { (unsigned char)(codes[i] >> 8), (unsigned char)codes[i] };
        char what[48];
        snprintf(what, sizeof what, "close with code %d", codes[i]);
        close_case(p, 2, 1002, 0, what);
    }
    close_case("\x03", 1, 1002, 0, "close with a 1-byte payload");
}

static void test_close_reason_not_utf8_is_1007(void **state)
{
    (void)state;
    close_case("\x03\xe8" "bye \xff", 7, 1007, 0, "close 1000 with reason 0xFF");
    close_case("\x03\xe8" "\xc3", 3, 1007, 0, "close 1000 with a cut UTF-8 sequence");
}

/* After all of the above, the server still serves. */
static void test_still_serving(void **state)
{
    (void)state;
    struct h_ws *w = h_ws_connect(srv.port);
    json_decref(h_ws_hello(w, tok, 0));
    h_ws_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_not_13_is_426),
        cmocka_unit_test(test_refused_origin_is_403),
        cmocka_unit_test(test_unmasked_frame_is_1002),
        cmocka_unit_test(test_ping_over_125_is_1002),
        cmocka_unit_test(test_fragmented_ping_is_1002),
        cmocka_unit_test(test_reserved_bits_are_1002),
        cmocka_unit_test(test_reserved_opcodes_are_1002),
        cmocka_unit_test(test_continuation_without_start_is_1002),
        cmocka_unit_test(test_new_message_inside_fragmented_is_1002),
        cmocka_unit_test(test_invalid_utf8_text_is_1007),
        cmocka_unit_test(test_utf8_split_across_fragments_is_accepted),
        cmocka_unit_test(test_ping_is_answered_with_its_payload),
        cmocka_unit_test(test_valid_close_codes_are_echoed),
        cmocka_unit_test(test_invalid_close_codes_are_1002),
        cmocka_unit_test(test_close_reason_not_utf8_is_1007),
        cmocka_unit_test(test_still_serving),
    };
    int rc = cmocka_run_group_tests_name("rfc6455", tests, group_setup, group_teardown);
    harness_cleanup();
    return rc;
}
