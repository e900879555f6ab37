/* http.h — asynchronous one-shot HTTP/1.1 requests on the lws client: one
 * connection per request, optional JSON body and bearer token, a response
 * body cap and a deadline. Used by login/register, polling and sending.
 * Every request started ends in exactly one callback (from the event loop,
 * never from inside http_request), unless it is cancelled first.
 * A request may name a server list (servers.h): it then goes to the list's
 * current server, and a failure of that server (no answer, a reset, a
 * time-out, a 5xx) is reported to the list before the callback runs, so
 * the caller's retry goes to the next server. */
#ifndef CHAT_HTTP_H
#define CHAT_HTTP_H

#include <libwebsockets.h>
#include <stddef.h>

#define HTTP_BODY_CAP (8u * 1024 * 1024)
#define HTTP_BODY_CAP_TEXT "8 MiB"

struct core;
struct http;
struct http_req;
struct servers;

struct http_call {
    const char *method;     /* "GET" or "POST" */
    const char *path;       /* with the server's path prefix and query */
    const char *body;       /* JSON or NULL */
    const char *token;      /* bearer token or NULL */
    int timeout_s;          /* whole request, connect to last byte */
    struct servers *servers;    /* NULL: the http's own host and port */
};

struct http_result {
    int status;             /* HTTP status, 0 if none arrived */
    const char *body;       /* NUL-terminated, "" if none */
    size_t len;
    const char *error;      /* NULL if a whole response arrived, else why not */
    int tls_failed;         /* the server's certificate was refused: retrying won't help */
};

typedef void (*http_done_cb)(void *arg, const struct http_result *r);

/* host/port of the server; core (may be NULL) gets the cost counters. */
struct http *http_new(struct lws_context *ctx, const char *host, int port, struct core *core);
/* Cancels every request still open. */
void http_free(struct http *h);
/* https: every request goes over TLS, the server's certificate verified. */
void http_set_tls(struct http *h, int on);

/* NULL only if out of memory (then cb is never called). */
struct http_req *http_request(struct http *h, const struct http_call *call,
                              http_done_cb cb, void *arg);
/* Abandons a request: its connection is closed, cb is not called. */
void http_cancel(struct http_req *r);

/* The lws protocol the requests bind to; add it to the vhost. */
const struct lws_protocols *http_protocol(void);

/* Best estimate of the response head lws parsed on wsi: status line and
 * every known header. Also used for the WebSocket handshake. */
uint64_t http_response_header_bytes(struct lws *wsi);

/* The "message" of an error body {"error":{"code","message"}}, copied into
 * buf; falls back to "HTTP <status>". */
const char *http_error_text(const struct http_result *r, char *buf, size_t size);

#endif
