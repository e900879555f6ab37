/* server.c — the one lws protocol callback (dispatch.h): it binds each
 * connection to its session and dispatches HTTP reasons to http_api.c,
 * an event stream's to sse_api.c, WebSocket reasons to ws_api.c (and what is heard on a WebSocket to its
 * heartbeat, ws_beat.c), the store's notifications to feed.c, connection
 * counts to limiter.c (each connection counted under its client: the peer
 * at accept, the client a trusted proxy names once a request's headers are
 * in, forwarded.h), and finished password hashes back to their requests. The top layer (docs/ARCHITECTURE.md): nothing calls into it
 * but lws. */
#include "dispatch.h"
#include "audit.h"
#include "feed.h"
#include "forwarded.h"
#include "http_api.h"
#include "limiter.h"
#include "pwhash.h"
#include "server.h"
#include "sse_api.h"
#include "ws_api.h"
#include "ws_beat.h"

#include <stdlib.h>
#include <string.h>

static void session_bind(struct session *s, struct lws *wsi)
{
    s->wsi = wsi;
    s->srv = server_from_wsi(wsi);
}

static void server_hash_done(struct pwhash_job *job, void *arg)
{
    (void)arg;
    struct session *s = job->owner;
    if (!s) {                       /* requester hung up meanwhile */
        sodium_memzero(job, sizeof *job);
        free(job);
        return;
    }
    http_on_hash_done(s, job);
}

/* A request's headers are in (HTTP, or a WebSocket handshake): from a
 * trusted proxy, the connection is its client's from now on, for every
 * limit and audit line that names an address (limiter_conn_addr). A proxy
 * that names no valid client leaves it the proxy's, and is audited, except
 * on GET /healthz: the balancer's own health check names no client (uri
 * NULL: a handshake). */
static void server_identify(struct lws *wsi, const char *uri)
{
    struct server *srv = server_from_wsi(wsi);
    if (srv->cfg.n_trusted_proxies == 0)
        return;               /* every peer is its own client: no getpeername per request */
    char addr[FWD_ADDR_MAX];
    enum fwd_source from = fwd_client_addr(srv->cfg.trusted_proxies, srv->cfg.n_trusted_proxies,
                                           wsi, addr, sizeof addr);
    if (from == FWD_PEER)
        return;
    if (from != FWD_FORWARDED && !(uri && strcmp(uri, "/healthz") == 0))
        audit("proxy.bad_forwarded_for", "why=%s proxy=%s",
              from == FWD_MISSING ? "missing" : "invalid", addr);
    limiter_conn_rekey(srv->limiter, wsi, addr);
}

static int server_http_reason(struct session *s, struct lws *wsi,
                              enum lws_callback_reasons reason, void *in, size_t len)
{
    if (reason != LWS_CALLBACK_HTTP && sse_is_stream(s))   /* an open event stream */
        return sse_on_reason(s, reason);
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        session_bind(s, wsi);
        server_identify(wsi, in);
        return http_on_request(s, in);
    case LWS_CALLBACK_HTTP_BODY:
        return http_on_body(s, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return http_on_body_done(s);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return http_on_writeable(s);
    case LWS_CALLBACK_CLOSED_HTTP:
        if (s && s->wsi && !s->is_ws)
            http_on_closed(s);
        return 0;
    default:
        return 0;
    }
}

int server_callback(struct lws *wsi, enum lws_callback_reasons reason,
                    void *user, void *in, size_t len)
{
    struct session *s = user;

    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED: {
        struct server *srv = server_from_wsi(wsi);
        if (srv && srv->pwhash)
            pwhash_pool_drain(srv->pwhash, server_hash_done, NULL);
        return 0;
    }
    case LWS_CALLBACK_RAW_RX_FILE:
    case LWS_CALLBACK_RAW_CLOSE_FILE:   /* the store's notification socket */
        return feed_on_notify(server_from_wsi(wsi), wsi, reason);
    case LWS_CALLBACK_RAW_ADOPT_FILE:
    case LWS_CALLBACK_RAW_WRITEABLE_FILE:
        return 0;
    case LWS_CALLBACK_HTTP:
    case LWS_CALLBACK_HTTP_BODY:
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
    case LWS_CALLBACK_HTTP_WRITEABLE:
    case LWS_CALLBACK_CLOSED_HTTP:
        return server_http_reason(s, wsi, reason, in, len);
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
        /* Full: hang up before a byte is read; there is no room to answer. */
        return limiter_conn_room(server_from_wsi(wsi)->limiter) < 0;
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
        limiter_conn_open(server_from_wsi(wsi)->limiter, wsi);
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        limiter_conn_close(server_from_wsi(wsi)->limiter, wsi);
        return 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        server_identify(wsi, NULL);
        return ws_on_confirm_upgrade(wsi, in);
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return ws_on_filter(wsi);
    case LWS_CALLBACK_ESTABLISHED:
        if (s->wsi && !s->is_ws)    /* upgraded after keep-alive requests */
            http_on_closed(s);
        session_bind(s, wsi);
        return ws_on_established(s);
    case LWS_CALLBACK_RECEIVE:
        ws_beat_heard(s);           /* the peer is there: no ping for a heartbeat */
        return ws_on_receive(s, in, len);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        return ws_on_peer_close(s, in, len);
    case LWS_CALLBACK_RECEIVE_PONG:
        if (s && s->is_ws)
            ws_beat_heard(s);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return ws_on_writeable(s);
    case LWS_CALLBACK_CLOSED:
        if (s && s->is_ws)
            ws_on_closed(s);
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}
