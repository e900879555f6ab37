/* transport.h — the transport interface (Janus-style: a struct of function
 * pointers per transport, one file each). A transport moves events from the
 * server into the core (core_deliver) and the core's outbox to the server
 * (core_ack / core_reject), reports connection state, and reconnects with
 * backoff, resuming from core_cursor(). All run in the one lws event loop. */
#ifndef CHAT_TRANSPORT_H
#define CHAT_TRANSPORT_H

#include <libwebsockets.h>

struct core;
struct http;

/* Everything a transport needs; all pointers are borrowed and outlive it. */
struct transport_env {
    struct lws_context *ctx;
    const char *host;           /* server address as given, no brackets */
    int port;
    int tls;                    /* wss:// (certificate verified) */
    const char *prefix;         /* path prefix: "" or "/something" */
    const char *token;          /* session token from login */
    struct core *core;
    struct http *http;          /* for the HTTP transports */
    int interval_ms;            /* short poll period */
    int wait_s;                 /* long-poll hold asked of the server */
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

/* By name ("short-poll", "long-poll", "websocket"), or NULL. */
const struct transport_ops *transport_find(const char *name);

#endif
