/* http.c — one-shot HTTP requests on the lws client. A request owns its wsi
 * through struct wsi_owner; it ends (exactly once) on the first of: the
 * response completed, a connection error, the connection closing early, the
 * wsi being destroyed, or its own deadline. The user callback then runs
 * from a zero-delay lws_sul, so callers never see reentrant callbacks.
 * Each request keeps its own destination (the http's address or the
 * current server of the call's list, taken when it starts) and, if it had
 * a list, tells it of a failed server just before the callback. */
#include "http.h"
#include "body_buf.h"
#include "core.h"
#include "servers.h"
#include "wsi_owner.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HTTP_PROTOCOL_NAME "chat-http"
/* Headers lws 4.1 adds itself: "Pragma: no-cache", "Cache-Control:
 * no-cache" and "connection: close" (measured on the wire). */
#define LWS_EXTRA_REQUEST_HEADER_BYTES 62

struct http {
    struct lws_context *ctx;
    char *host;              /* where requests without a server list go */
    int port;
    struct core *core;
    int tls;                 /* https: verified against the CA store or --ca */
    struct http_req *reqs;   /* open requests, doubly linked */
};

struct http_req {
    struct wsi_owner owner;  /* opaque user data of wsi */
    struct http *h;
    struct http_req *prev, *next;
    struct lws *wsi;
    char *host, *hostport;   /* where this request goes */
    int port, tls;
    struct servers *list;    /* told if srv fails */
    const struct server_url *srv;
    lws_sorted_usec_list_t sul_deadline, sul_done;
    char method[8];
    char *path;
    char *auth;              /* "Bearer TOKEN" or NULL */
    unsigned char *tx;       /* LWS_PRE + body */
    size_t tx_len;
    int status;
    struct body_buf *rx;     /* the response body */
    int timeout_s;
    int finished, delivering;
    int tls_failed;          /* the server's certificate was refused */
    int local_error;         /* our fault (memory), not the server's */
    char error[160];
    http_done_cb cb;
    void *arg;
};

static struct http_req *req_of(struct lws *wsi)
{
    struct wsi_owner *o = wsi_owner_of(wsi);
    return o ? lws_container_of(o, struct http_req, owner) : NULL;
}

/* ---- lifetime ---- */

static void req_unlink(struct http_req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else if (r->h->reqs == r)
        r->h->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

/* r must be unlinked already. */
static void req_free(struct http_req *r)
{
    lws_sul_cancel(&r->sul_deadline);
    lws_sul_cancel(&r->sul_done);
    free(r->host);
    free(r->hostport);
    free(r->path);
    if (r->auth) {
        lws_explicit_bzero(r->auth, strlen(r->auth));
        free(r->auth);
    }
    if (r->tx)
        lws_explicit_bzero(r->tx, LWS_PRE + r->tx_len);
    free(r->tx);
    body_buf_free(r->rx);
    free(r);
}

/* No answer, a broken one or a 5xx: the server, not the request, failed. */
static int server_failed(const struct http_req *r)
{
    return (r->error[0] && !r->local_error) || r->status >= 500;
}

static void req_deliver(lws_sorted_usec_list_t *sul)
{
    struct http_req *r = lws_container_of(sul, struct http_req, sul_done);
    if (r->list && server_failed(r))
        servers_failed(r->list, r->srv);
    struct http_result res = {
        .status = r->status,
        .body = body_buf_data(r->rx),
        .len = body_buf_len(r->rx),
        .error = r->error[0] ? r->error : NULL,
        .tls_failed = r->tls_failed,
    };
    req_unlink(r);            /* the callback may free the whole http */
    r->delivering = 1;        /* and http_cancel(r) is then a no-op */
    r->cb(r->arg, &res);
    req_free(r);
}

/* Ends the request once. closing: we are inside a callback that already ends
 * the wsi, so just let go of it; otherwise also ask lws to close it. */
static void req_finish(struct http_req *r, const char *error, int closing)
{
    if (r->finished)
        return;
    r->finished = 1;
    if (error)
        snprintf(r->error, sizeof r->error, "%s", error);
    if (r->wsi) {
        wsi_owner_let_go(r->wsi, closing);
        r->wsi = NULL;
    }
    lws_sul_cancel(&r->sul_deadline);
    lws_sul_schedule(r->h->ctx, 0, &r->sul_done, req_deliver, 1);
}

static void req_deadline(lws_sorted_usec_list_t *sul)
{
    struct http_req *r = lws_container_of(sul, struct http_req, sul_deadline);
    char why[64];
    snprintf(why, sizeof why, "no answer within %d s", r->timeout_s);
    req_finish(r, why, 0);
}

static void req_gone(struct wsi_owner *o, struct lws *wsi)
{
    struct http_req *r = lws_container_of(o, struct http_req, owner);
    (void)wsi;
    req_finish(r, "connection lost", 1);
}

/* ---- cost estimate ---- */

/* Request line, Host, our headers, lws's own headers, blank line, body. */
static uint64_t request_bytes(const struct http_req *r)
{
    uint64_t n = strlen(r->method) + 1 + strlen(r->path) + sizeof " HTTP/1.1\r\n" - 1;
    n += sizeof "Host: \r\n" - 1 + strlen(r->hostport);
    if (r->auth)
        n += sizeof "Authorization: \r\n" - 1 + strlen(r->auth);
    if (r->tx) {
        char digits[24];
        n += sizeof "Content-Type: application/json\r\nContent-Length: \r\n" - 1 +
             (uint64_t)snprintf(digits, sizeof digits, "%zu", r->tx_len);
    }
    return n + LWS_EXTRA_REQUEST_HEADER_BYTES + 2 + r->tx_len;
}

/* Status line plus every response header lws parsed. */
uint64_t http_response_header_bytes(struct lws *wsi)
{
    uint64_t n = sizeof "HTTP/1.1 200 OK\r\n" - 1 + 2;
    for (int t = 0; t < WSI_TOKEN_COUNT; t++) {
        int len = lws_hdr_total_length(wsi, (enum lws_token_indexes)t);
        const unsigned char *name = lws_token_to_string((enum lws_token_indexes)t);
        if (len > 0 && name)
            n += strlen((const char *)name) + 1 + (unsigned)len + 2;
    }
    return n;
}

/* ---- protocol callback ---- */

static int add_headers(struct http_req *r, unsigned char **p, size_t room)
{
    unsigned char *end = *p + room;
    char clen[24];
    if (r->auth && lws_add_http_header_by_token(r->wsi, WSI_TOKEN_HTTP_AUTHORIZATION,
                       (const unsigned char *)r->auth, (int)strlen(r->auth), p, end))
        return -1;
    if (!r->tx)
        return 0;
    snprintf(clen, sizeof clen, "%zu", r->tx_len);
    if (lws_add_http_header_by_token(r->wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
                       (const unsigned char *)"application/json", 16, p, end) ||
        lws_add_http_header_by_token(r->wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH,
                       (const unsigned char *)clen, (int)strlen(clen), p, end))
        return -1;
    if (r->tx_len) {
        lws_client_http_body_pending(r->wsi, 1);
        lws_callback_on_writable(r->wsi);
    }
    return 0;
}

static int write_body(struct http_req *r)
{
    if (!r->tx || !r->tx_len)
        return 0;
    int n = lws_write(r->wsi, r->tx + LWS_PRE, r->tx_len, LWS_WRITE_HTTP_FINAL);
    lws_client_http_body_pending(r->wsi, 0);
    lws_explicit_bzero(r->tx, LWS_PRE + r->tx_len);   /* may hold a password */
    free(r->tx);              /* written once; later WRITEABLEs do nothing */
    r->tx = NULL;
    return n < 0 || (size_t)n != r->tx_len ? -1 : 0;
}

/* len comes from lws and may be anything (a chunk size of ffffffff has
 * arrived as (size_t)-1): body_buf checks it before any arithmetic. */
static int append_body(struct http_req *r, const void *in, size_t len)
{
    enum body_buf_result res = body_buf_append(r->rx, in, len);
    if (res == BODY_BUF_OK) {
        if (r->h->core)
            core_count_bytes(r->h->core, len, 0);
        return 0;
    }
    r->local_error = res == BODY_BUF_NO_MEMORY;
    req_finish(r, res == BODY_BUF_NO_MEMORY ? "out of memory"
                  : "response too large (over " HTTP_BODY_CAP_TEXT ")", 0);
    return -1;
}

static void connection_error(struct http_req *r, const void *in, size_t len)
{
    char why[160];
    if (in && !len)
        len = strlen(in);
    /* lws reports a failed certificate check as an "SSL err" while connecting */
    if (r->tls && in && memmem(in, len, "SSL", 3)) {
        r->tls_failed = 1;
        snprintf(why, sizeof why, "TLS handshake failed: the server's certificate is not "
                 "trusted or not for %s (use --ca FILE for a private CA)", r->host);
    } else {
        snprintf(why, sizeof why, "cannot reach server: %.*s",
                 (int)(len > 100 ? 100 : len), in ? (const char *)in : "connection failed");
    }
    req_finish(r, why, 1);
}

static int http_cb(struct lws *wsi, enum lws_callback_reasons reason,
                   void *user, void *in, size_t len)
{
    struct http_req *r = req_of(wsi);
    char buf[LWS_PRE + 4096], *p;
    int n;

    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        /* may come from inside lws_client_connect_via_info, before r->wsi
         * is known: let go of this wsi itself */
        wsi_owner_release(wsi);
        if (r)
            connection_error(r, in, len);
        return 0;
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
        return r ? add_headers(r, (unsigned char **)in, len) : -1;
    case LWS_CALLBACK_CLIENT_HTTP_WRITEABLE:
        return r ? write_body(r) : -1;
    case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP:
        if (!r)
            return -1;
        r->status = (int)lws_http_client_http_response(wsi);
        if (r->h->core)
            core_count_bytes(r->h->core, http_response_header_bytes(wsi), 0);
        return 0;
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP:
        if (!r)
            return -1;
        p = buf + LWS_PRE;
        n = (int)sizeof buf - LWS_PRE;
        return lws_http_client_read(wsi, &p, &n) < 0 ? -1 : 0;
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP_READ:
        return r ? append_body(r, in, len) : -1;
    case LWS_CALLBACK_COMPLETED_CLIENT_HTTP:
        if (r)
            req_finish(r, NULL, 0);
        return 0;
    case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
        wsi_owner_release(wsi);
        if (r)
            req_finish(r, "connection closed before the response was complete", 1);
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocol = {
    .name = HTTP_PROTOCOL_NAME,
    .callback = http_cb,
};

const struct lws_protocols *http_protocol(void)
{
    return &protocol;
}

/* ---- public API ---- */

struct http *http_new(struct lws_context *ctx, const char *host, int port, struct core *core)
{
    struct http *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->ctx = ctx;
    h->port = port;
    h->core = core;
    h->host = strdup(host);
    if (!h->host) {
        http_free(h);
        return NULL;
    }
    return h;
}

void http_free(struct http *h)
{
    if (!h)
        return;
    while (h->reqs)
        http_cancel(h->reqs);
    free(h->host);
    free(h);
}

/* The http's own address, or the current server of the call's list. */
static int req_set_target(struct http_req *r, const struct http_call *call)
{
    const struct server_url *s = call->servers ? servers_current(call->servers) : NULL;
    const char *host = s ? s->host : r->h->host;
    r->port = s ? s->port : r->h->port;
    r->tls = s ? s->tls : r->h->tls;
    r->list = call->servers;
    r->srv = s;
    size_t n = strlen(host) + 16;
    r->host = strdup(host);
    r->hostport = malloc(n);
    if (!r->host || !r->hostport)
        return -1;
    snprintf(r->hostport, n, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, r->port);
    return 0;
}

static struct http_req *req_new(struct http *h, const struct http_call *call)
{
    struct http_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->h = h;
    r->owner.gone = req_gone;
    if (req_set_target(r, call) < 0) {
        req_free(r);
        return NULL;
    }
    snprintf(r->method, sizeof r->method, "%s", call->method);
    r->path = strdup(call->path);
    r->rx = body_buf_new(HTTP_BODY_CAP);
    if (call->token) {
        size_t n = strlen(call->token) + sizeof "Bearer ";
        if ((r->auth = malloc(n)))
            snprintf(r->auth, n, "Bearer %s", call->token);
    }
    if (call->body) {
        r->tx_len = strlen(call->body);
        if ((r->tx = malloc(LWS_PRE + r->tx_len + 1)))
            memcpy(r->tx + LWS_PRE, call->body, r->tx_len + 1);
    }
    if (!r->path || !r->rx || (call->token && !r->auth) || (call->body && !r->tx)) {
        req_free(r);
        return NULL;
    }
    return r;
}

static void req_connect(struct http_req *r)
{
    struct lws_client_connect_info i;
    memset(&i, 0, sizeof i);
    i.context = r->h->ctx;
    i.address = r->host;
    i.port = r->port;
    i.path = r->path;
    i.host = r->hostport;
    i.method = r->method;
    i.protocol = HTTP_PROTOCOL_NAME;
    i.ssl_connection = LCCSCF_HTTP_NO_FOLLOW_REDIRECT | (r->tls ? LCCSCF_USE_SSL : 0);
    i.opaque_user_data = &r->owner;
    /* Errors found while connecting may already have ended the request. */
    struct lws *wsi = lws_client_connect_via_info(&i);
    if (r->finished)
        return;
    if (!wsi)
        req_finish(r, "cannot reach server: connection failed", 1);
    else
        r->wsi = wsi;
}

void http_set_tls(struct http *h, int on)
{
    h->tls = on;
}

struct http_req *http_request(struct http *h, const struct http_call *call,
                              http_done_cb cb, void *arg)
{
    struct http_req *r = req_new(h, call);
    if (!r)
        return NULL;
    r->cb = cb;
    r->arg = arg;
    r->timeout_s = call->timeout_s;
    r->next = h->reqs;
    if (h->reqs)
        h->reqs->prev = r;
    h->reqs = r;
    if (h->core) {
        core_count_request(h->core);
        core_count_bytes(h->core, 0, request_bytes(r));
    }
    lws_sul_schedule(h->ctx, 0, &r->sul_deadline, req_deadline,
                     (lws_usec_t)call->timeout_s * LWS_USEC_PER_SEC);
    req_connect(r);
    return r;
}

void http_cancel(struct http_req *r)
{
    if (!r || r->delivering)
        return;
    if (r->wsi)
        wsi_owner_detach(r->wsi);
    r->wsi = NULL;
    req_unlink(r);
    req_free(r);
}

const char *http_error_text(const struct http_result *r, char *buf, size_t size)
{
    json_t *root = json_loadb(r->body, r->len, 0, NULL);
    json_t *msg = json_object_get(json_object_get(root, "error"), "message");
    if (json_is_string(msg))
        snprintf(buf, size, "%s", json_string_value(msg));
    else
        snprintf(buf, size, "HTTP %d", r->status);
    json_decref(root);
    return buf;
}
