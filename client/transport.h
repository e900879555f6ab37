/* transport.h — the transport interface (Janus-style: a struct of function
 * pointers per transport, one file each). A transport moves events from the
 * server into the core (core_deliver) and the core's outbox to the server
 * (core_ack / core_reject), reports connection state, and reconnects with
 * backoff, resuming from core_cursor(). With a server list it connects to
 * the list's current server each time and reports that server's failures
 * to the list, so a reconnect goes to the next URL. All run in the one lws
 * event loop. */
#ifndef CHAT_TRANSPORT_H
#define CHAT_TRANSPORT_H

#include <libwebsockets.h>

struct core;
struct http;
struct servers;

/* Everything a transport needs; all pointers are borrowed and outlive it. */
struct transport_env {
    struct lws_context *ctx;
    /* Where to connect: the current server of servers, or if servers is
     * NULL the fixed address below. */
    struct servers *servers;
    const char *host;           /* server address as given, no brackets */
    int port;
    int tls;                    /* wss:// (certificate verified) */
    const char *prefix;         /* path prefix: "" or "/something" */
    const char *token;          /* session token from login */
    struct core *core;
    struct http *http;          /* for the HTTP transports */
    int interval_ms;            /* short poll period */
    int wait_s;                 /* long-poll hold asked of the server */
    int timeout_s;              /* deadline of a send or short poll (0: default) */
    /* Optional: the WebSocket's lws retry and idle policy (NULL: backoff.c's,
     * which pings a quiet server after 30 s and hangs up after 70 s). */
    const lws_retry_bo_t *ws_idle_policy;
    /* Optional: the WebSocket upgrade was refused (see
     * transport_upgrade_refused). Returns 1 if the caller takes over: the
     * transport then stops trying and waits to be replaced; 0 to keep
     * retrying with backoff as after any failure. */
    int (*ws_refused)(void *arg, const char *why);
    void *hook_arg;
};

struct transport_ops {
    const char *name;
    /* lws protocol to add to the vhost, or NULL if it only uses http.c. */
    const struct lws_protocols *protocol;
    void *(*create)(const struct transport_env *env);
    void (*destroy)(void *t);
    /* Begin connecting; 0 or -1. */
    int (*start)(void *t);
    /* The core queued a message. */
    void (*outbox_changed)(void *t);
    /* Optional: begin an orderly goodbye (a WebSocket close frame) and
     * return 1 while it is still under way; called again until it returns
     * 0 or the caller's patience ends. */
    int (*stop)(void *t);
};

extern const struct transport_ops transport_short_poll;
extern const struct transport_ops transport_long_poll;
extern const struct transport_ops transport_websocket;
extern const struct transport_ops transport_sse;

/* By name ("short-poll", "long-poll", "websocket", "sse"), or NULL. */
const struct transport_ops *transport_find(const char *name);

/* Does this end of a WebSocket handshake mean that something between us
 * and the server (or the server) will not upgrade, so that HTTP polling is
 * the way through? status: the HTTP answer, 0 if none; sent: our upgrade
 * request had gone out (the TCP, and TLS, connection was up). Refusals: any
 * answer other than 101 except 401 (a bad session), 408, 429 and 5xx
 * other than 501/505 (the server is failing, not refusing), and a
 * connection closed after the request without an answer. */
int transport_upgrade_refused(int status, int sent);

struct server_url;
/* A connection that holds the feed (WebSocket, SSE) was lost: the server in
 * use is marked failed (the list moves on), the first failure of a streak
 * is reported as "NAME: why", and the next attempt, cb, is scheduled on sul
 * after the backoff (state reconnecting). */
void transport_retry_later(const struct transport_env *env, const struct server_url *srv,
                           uint16_t *tries, lws_sorted_usec_list_t *sul, sul_cb_t cb,
                           const char *name, const char *why);

#endif
