/* hostile.h — a scripted, misbehaving chat server for client tests: it
 * listens on a free 127.0.0.1 port and answers the real bin/chat the way a
 * broken or malicious server (or anything in between) might: impossible
 * chunk sizes, oversized or endless WebSocket messages, silence, a 204
 * without a length, an answer dripped a byte at a time. Everything it does
 * not break it answers well enough for the client to get that far (a login
 * token, an empty events page, a WebSocket "ready").
 *
 * It runs in its own thread (one poll loop per connection), so it keeps
 * serving while the test waits on the client with the harness's helpers.
 * It writes raw bytes on purpose; the WebSocket accept key is computed with
 * libwebsockets' lws_SHA1 and lws_b64_encode_string. */
#ifndef E2E_HOSTILE_H
#define E2E_HOSTILE_H

#include <stdint.h>

/* How an HTTP request (login or events poll) is answered. */
enum hostile_http {
    HOSTILE_HTTP_OK = 0,        /* a correct answer */
    HOSTILE_HTTP_CHUNKED,       /* chunked, first chunk size chunk_size (hex) */
    HOSTILE_HTTP_SILENT,        /* reads the request, never answers */
    HOSTILE_HTTP_204_NO_LENGTH, /* "204" without a length, then silence */
    HOSTILE_HTTP_DRIP,          /* a correct answer, one byte every 300 ms */
    HOSTILE_HTTP_401,           /* 401 unauthorized: the token is no good */
};

/* What the first WebSocket gets after "ready" (later ones only "ready");
 * HOSTILE_WS_CLOSE_4401: every one until ws_4401s were closed so. */
enum hostile_ws {
    HOSTILE_WS_QUIET = 0,       /* nothing */
    HOSTILE_WS_BIG,             /* one text frame declaring ws_declared bytes,
                                   then up to 300,000 bytes of it */
    HOSTILE_WS_ENDLESS,         /* a text frame and 60,000-byte continuations
                                   without end (until the peer goes) */
    HOSTILE_WS_CLOSE_4401,      /* instead of "ready": a close 4401, as chatd's
                                   when the hello came too late (hello_timeout_s) */
};

struct hostile_script {
    enum hostile_http login;    /* POST .../login (and .../register) */
    enum hostile_http events;   /* GET .../events */
    const char *chunk_size;     /* HOSTILE_HTTP_CHUNKED, e.g. "ffffffff" */
    enum hostile_ws ws;
    uint64_t ws_declared;       /* HOSTILE_WS_BIG */
    int ws_4401s;               /* HOSTILE_WS_CLOSE_4401: how many (0: 1) */
};

struct hostile_stats {
    int logins;                 /* login/register requests read */
    int polls;                  /* events requests read */
    int ws_handshakes;          /* WebSocket upgrades answered with 101 */
    int ws_close_code;          /* of the first close frame the client sent;
                                   0 none yet, 1005 a close without code */
    int ws_handshakes_at_close; /* ws_handshakes when that close came */
};

struct hostile;

/* Starts listening (fails the test through cmocka if it cannot). The
 * script is copied; chunk_size must outlive the server. */
struct hostile *hostile_start(const struct hostile_script *script);
/* "http://127.0.0.1:PORT" for the client's --server. */
const char *hostile_url(const struct hostile *h);
void hostile_get_stats(struct hostile *h, struct hostile_stats *out);
/* Waits (pumping the harness's children) until the client has sent a close
 * frame and then made another WebSocket handshake; returns 1, or 0 at the
 * deadline. */
int hostile_wait_close_then_reconnect(struct hostile *h, int64_t deadline);
/* Closes every connection, stops the thread and frees h. */
void hostile_stop(struct hostile *h);

#endif
