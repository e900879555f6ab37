/* server.h — chatd's shared types, and only those: the configuration, the
 * server (one per process: what every module hangs its state on), the
 * per-connection session (one struct for HTTP requests and WebSockets) and
 * the ops its transport fills in. Each module's functions are in its own
 * header. One lws context, one thread; only the password-hash workers
 * (pwhash.c) run elsewhere. */
#ifndef CHAT_SERVER_H
#define CHAT_SERVER_H

#include <jansson.h>
#include <libwebsockets.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"
#include "sweep.h"

struct store;
struct pwhash_pool;
struct pwhash_job;
struct http_transfer;
struct transfers;
struct limiter;
struct feed;
struct rooms;
struct ruser;             /* rooms.c */
struct feed_read;
struct sweep;
struct auth;
struct session;
struct auth_wait;         /* auth.c */
struct http_call;         /* http_api.c */
struct ws_dm_open;        /* ws_api.c */
struct ws_frame;          /* ws_frame.h */
struct web_file;          /* web_files.h */
struct presence;          /* presence.h */
struct presence_user;     /* presence.c */

/* An ephemeral item (presence.h): never stored, no id. item is its JSON
 * for polls and SSE ({"type":...}), frame its WebSocket form ({"op":...}),
 * type "presence" or "typing". */
struct ephemeral {
    const char *type, *item, *frame;
};
/* Ephemeral items waiting for a connection or a poller (presence.c). */
struct eph_item {
    struct eph_item *next;
    int64_t at_ms;            /* monotonic: when it was queued */
    char text[];
};
struct eph_queue {
    struct eph_item *head, *tail;
    unsigned n;
};

struct server_config {
    const char *host;
    int         port;
    const char *db_path;        /* SQLite file, or a postgresql:// URL */
    const char *instance;       /* name shown by /healthz; NULL: HOST:PORT */
    const char *tls_cert;           /* PEM files; both set: https and wss only */
    const char *tls_key;
    int         long_poll_max_s;
    int         long_poll_pace_ms; /* a token's long-poll answers at most this often */
    int         heartbeat_s;
    int         hello_timeout_s;
    int         token_ttl_s;        /* absolute session lifetime */
    int         session_idle_s;     /* unused this long, a session ends */
    const char *allow_origins[8];   /* browser Origins allowed to open a WebSocket */
    int         n_allow_origins;
    /* balancers whose X-Forwarded-For names the client (forwarded.h) */
    const char *trusted_proxies[8];
    int         n_trusted_proxies;
    int         transfer_delay_ms;
    int         max_connections;
    int         max_connections_per_ip;
    int         max_long_polls;
    int         max_request_bytes;
    int         msg_rate;           /* per user per second */
    int         login_rate;         /* failed logins per user and address before delays */
    int         header_timeout_s;
    int         request_timeout_s;  /* a body must arrive within this of its headers */
    int         idle_timeout_s;
    int         presence_grace_ms;  /* 0: PRESENCE_GRACE_MS */
    int         presence_lease_ms;  /* 0: PRESENCE_LEASE_MS */
    int         presence_poll_ms;   /* 0: PRESENCE_POLL_MS */
    int         pwhash_cost;        /* enum pwhash_cost (pwhash.h); 0: interactive */
};

struct server {
    struct server_config cfg;
    struct lws_context  *ctx;
    struct uv_loop_s    *loop;         /* libuv's, which lws runs on (main.c) */
    struct store        *store;
    struct pwhash_pool  *pwhash;
    struct transfers    *transfers;
    struct limiter      *limiter;
    struct feed         *feed;
    struct rooms        *rooms;        /* rooms and who listens, by room (rooms.c) */
    struct ws_out       *ws_out;       /* the WebSocket writer (ws_out.c) */
    int                  parked;       /* long polls held now */
    struct sweep        *sweep;        /* per-connection deadlines (sweep.c) */
    struct auth         *auth;         /* connections holding a session (auth.c) */
    struct presence     *presence;     /* who is online, ephemeral items (presence.c) */
    lws_dll2_owner_t     subscribers;  /* parked long polls and live WebSockets */
    int                  responding;   /* HTTP answers being written */
    int                  stopping;
    char                 instance[80]; /* this instance's name (/healthz) */
};

/* Per-request state of an HTTP call. */
#define HTTP_PATH_SIZE  160   /* a longer path is no path of ours: 404 */
#define HTTP_QUERY_SIZE 260   /* a longer query: 400 */

struct http_state {
    int      method;          /* enum http_method in http_api.c */
    unsigned status;
    /* The request target, "" until one is read: borrowed from target, the
     * one allocation the request's path and query share. A buffer of each
     * in every session would cost every WebSocket 420 bytes it never uses
     * (the union is as large as its largest member). */
    const char *path;         /* shorter than HTTP_PATH_SIZE */
    const char *query;        /* shorter than HTTP_QUERY_SIZE */
    char    *target;
    char    *body;            /* request body, at most PROTO_MAX_REQUEST_BYTES */
    size_t   body_len;
    size_t   body_expected;
    char    *resp;            /* response body */
    size_t   resp_len, resp_off;
    int      headers_sent;
    int      close_after;     /* answer then close (body not read) */
    int      routed;          /* handed to its route: answered once, whatever lws repeats */
    int      retry_after_s;   /* sent as Retry-After when > 0 */
    struct sweep_link body_wait; /* body deadline (http_api.c, on the sweep) */
    struct proto_events_query poll;
    int      poll_parked;
    int      input_held;      /* parked: lws watches it for no input (http_park) */
    struct sweep_link hold;   /* long-poll deadline (sweep.c) */
    struct sweep_link pace;   /* parked for its token's pace: the backstop (http_api.c) */
    char    *room;            /* a DM sent: its room, for the answer (owned) */
    struct pwhash_job *job;   /* login/register waiting for a hash worker */
    struct http_call *call;   /* the store call it waits for (http_api.c) */
    int    (*route)(struct session *s);  /* to run once authenticated */
    struct http_transfer *transfer; /* a transfer submit on its way (http_api.c) */
    const struct web_file *file;  /* the answer is this web client file (web_files.h) */
    int      want_cookie;     /* a browser login: answer with the session cookie */
    int      by_cookie;       /* authenticated by the session cookie (browser.h) */
    char    *set_cookie;      /* a Set-Cookie value to send, or NULL (owned) */
};

struct ws_state {
    int      authed;
    int      hello_wait;      /* its hello's token is being looked up: reading paused */
    char    *cookie_token;    /* the handshake's session cookie, until the hello (owned) */
    int64_t  cursor;          /* highest event id sent */
    int      more;            /* the store may have events after cursor */
    unsigned out_count;
    json_t  *batch;           /* fetched events not yet sent */
    size_t   batch_idx;
    struct ws_frame *out_head, *out_tail;
    char    *rx;              /* message being reassembled */
    size_t   rx_len;
    unsigned rx_frags;        /* fragments of the message so far */
    int      rx_binary;
    int      close_code;      /* close with this from the next WRITEABLE */
    int      peer_closed;     /* the client's close came: read and write nothing more */
    const char *close_reason;
    struct sweep_link hb;     /* hello deadline (ws_api.c), then heartbeat (ws_beat.c) */
    int      ping_due;        /* ws_beat asked for a ping: the next WRITEABLE sends it */
    int      held;            /* rx is a send over the rate limit, reading paused */
    int      backlogged;      /* too many frames queued for the client, reading paused */
    lws_sorted_usec_list_t hold_sul;
    lws_dll2_t ready_node;    /* in the writer's list for this turn's end (ws_out.c) */
    struct ws_dm_open *dm_open; /* a first direct message's conversation being made (ws_api.c) */
};

/* An open Server-Sent Events stream (sse_api.c). */
struct sse_state {
    int64_t  cursor;          /* highest event id sent */
    int      more;            /* the feed may have events after cursor */
    int      head_sent;       /* the response head and the ready event are out */
    int      input_held;      /* between writes lws watches it for no input (sse_api.c) */
    int      beat_due;        /* the heartbeat comment is due */
    const char *end_reason;   /* the session ended (or the server stops): say so, close */
    int      closing;         /* the end was written: close at the next WRITEABLE */
    struct sweep_link beat;   /* heartbeat deadline (--heartbeat-s of silence) */
    struct eph_queue eph;     /* ephemeral items to write (no id: line) */
};

/* How the feed and auth reach a connection, whatever its transport: each
 * transport (http_api.c, ws_api.c, sse_api.c) fills one in, and nothing below it names
 * a transport. */
struct session_ops {
    /* events for this connection's user may have been committed */
    void (*wake)(struct session *s);
    /* a chat message sent on it was committed (rc STORE_OK) or not */
    void (*posted)(struct session *s, const char *client_msg_id, int rc, int64_t id, int64_t ts);
    /* its session ended (logout, expiry): end what it holds now, deliver
     * nothing more (a parked long poll: 401; a WebSocket: close 4401) */
    void (*ended)(struct session *s, const char *why);
    /* an ephemeral item for this connection's user (presence.h): sent if
     * it can be, never stored; a poll's items are kept by presence, which
     * calls this only to wake a parked one */
    void (*ephemeral)(struct session *s, const struct ephemeral *e);
};

/* What a session's last look at the feed's memory learned, so that its
 * next look skips the other rooms' events (feed_next_frame): no event in
 * (cursor, seen] was for it, and since then it was woken for woken[0..n)
 * (ascending), and for more after those if more. seen 0: nothing known. */
#define FEED_HINT_MAX 4
struct feed_hint {
    int64_t seen, cursor;
    int64_t woken[FEED_HINT_MAX];
    int n, more;
};

struct session {
    struct lws *wsi;
    struct server *srv;
    const struct session_ops *ops;
    int      is_ws;
    int      ended;           /* its session ended: nothing more is delivered */
    int64_t  user_id;         /* 0 until authenticated */
    char     user[PROTO_USER_MAX + 1];
    char     token_hash[65];  /* of the session's token, for logout and expiry */
    int64_t  token_expires_ms;
    int64_t  token_touched_ms;
    lws_dll2_t held_node;     /* in auth's list while it holds the session open */
    struct auth_wait *auth_wait;  /* a token check or logout waiting for the store (auth.c) */
    struct sweep_timer end_at;   /* the session's expiry, absolute or idle (auth.c) */
    struct sweep_link touch;  /* next session touch, WebSockets (auth.c) */
    lws_dll2_t sub_node;      /* in srv->subscribers while listening for events */
    lws_dll2_t room_node;     /* in its user's sessions while listening (rooms.c) */
    struct ruser *room_user;  /* that user's entry (rooms.c) */
    lws_dll2_owner_t acks;    /* chat sends waiting for their group commit (feed.c) */
    /* A send of this connection was refused (e.g. store_unavailable): its
     * later sends are refused too until that one comes again, so one
     * sender's messages are never stored out of order (feed.c). */
    int      send_blocked;
    char     send_blocked_cmid[PROTO_CLIENT_MSG_ID_MAX + 1];
    struct feed_read *read;   /* its read of events from the store (feed.c) */
    struct feed_hint hint;    /* where its next look at the ring starts (feed.c) */
    struct presence_user *presence;  /* its user, while it holds them online (presence.c) */
    struct sweep_link presence_probe; /* while it holds them over HTTP: is its client there? */
    union {
        struct http_state http;
        struct ws_state ws;
        struct sse_state sse;
    } u;
};

/* A held HTTP/1 connection (a parked poll, an SSE stream between writes)
 * is watched for no input (hold 1): lws reads nothing from it while it
 * answers, so a client gone would leave its socket readable at its end and
 * the loop spinning until presence.c's probe closes it. It is watched
 * again (hold 0) before each write: lws 4.1 gives an HTTP/1 connection
 * watched for no input no WRITEABLE. *held says which it is now; a stream
 * of a shared (HTTP/2) connection is left alone. */
static inline void server_hold_input(struct lws *wsi, int *held, int hold)
{
    if (hold == *held || (hold && lws_get_network_wsi(wsi) != wsi))
        return;
    *held = hold;
    lws_rx_flow_control(wsi, !hold);
}

/* Asks for WRITEABLE on such a connection, watching it for input again
 * first (the lws 4.1 rule above). */
static inline void server_want_write(struct lws *wsi, int *held)
{
    server_hold_input(wsi, held, 0);
    lws_callback_on_writable(wsi);
}

/* Frees *p, a string that may hold a session token (a cookie), wiped
 * first; *p becomes NULL. */
static inline void server_free_secret(char **p)
{
    if (!*p)
        return;
    sodium_memzero(*p, strlen(*p));
    free(*p);
    *p = NULL;
}

/* The server a connection belongs to: the context's user (main.c). */
static inline struct server *server_from_wsi(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

#endif
