/* server.h — chatd's shared state: configuration, the per-connection session
 * (one struct for HTTP requests and WebSockets), and the functions the
 * protocol callback dispatches to. One lws context, one thread; only the
 * password-hash workers (pwhash.c) run elsewhere. */
#ifndef CHAT_SERVER_H
#define CHAT_SERVER_H

#include <jansson.h>
#include <libwebsockets.h>
#include <stdint.h>

#include "protocol.h"
#include "store.h"

struct pwhash_pool;
struct pwhash_job;
struct transfers;
struct limiter;
struct feed;
struct sweep;

struct server_config {
    const char *host;
    int         port;
    const char *db_path;        /* SQLite file, or a postgresql:// URL */
    const char *instance;       /* name shown by /healthz; NULL: HOST:PORT */
    const char *tls_cert;           /* PEM files; both set: https and wss only */
    const char *tls_key;
    int         long_poll_max_s;
    int         heartbeat_s;
    int         hello_timeout_s;
    int         token_ttl_s;        /* absolute session lifetime */
    int         session_idle_s;     /* unused this long, a session ends */
    const char *allow_origins[8];   /* browser Origins allowed to open a WebSocket */
    int         n_allow_origins;
    int         transfer_delay_ms;
    int         max_connections;
    int         max_connections_per_ip;
    int         max_long_polls;
    int         max_request_bytes;
    int         msg_rate;           /* per user per second */
    int         login_rate;         /* failed logins per user and address before delays */
    int         header_timeout_s;
    int         idle_timeout_s;
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
    struct ws_out       *ws_out;       /* the WebSocket writer (ws_out.c) */
    int                  parked;       /* long polls held now */
    struct sweep        *sweep;        /* per-connection deadlines (sweep.c) */
    lws_dll2_owner_t     subscribers;  /* parked long polls and live WebSockets */
    int                  responding;   /* HTTP answers being written */
    int                  stopping;
    char                 instance[80]; /* this instance's name (/healthz) */
};

/* A connection's place in one of the sweep's queues (sweep.c). Every entry
 * of a queue has the same timeout, so arrival order is expiry order. */
struct sweep_link {
    lws_dll2_t node;
    int64_t    since_ms;      /* monotonic: when it joined its queue */
};

/* Per-request state of an HTTP call. */
struct http_state {
    int      method;          /* enum http_method in http_api.c */
    char     path[64];
    char     query[260];
    char    *body;            /* request body, at most PROTO_MAX_REQUEST_BYTES */
    size_t   body_len;
    size_t   body_expected;
    unsigned status;
    char    *resp;            /* response body */
    size_t   resp_len, resp_off;
    int      headers_sent;
    int      close_after;     /* answer then close (body not read) */
    int      retry_after_s;   /* sent as Retry-After when > 0 */
    struct proto_events_query poll;
    struct sweep_link hold;   /* long-poll deadline (sweep.c) */
    int      hold_s;          /* of that hold */
    int      poll_parked;
    struct pwhash_job *job;   /* login/register waiting for a hash worker */
};

/* A queued server->client WebSocket frame (ready, ack, error), whole:
 * header and text, as ws_out.c writes it. */
struct ws_frame {
    struct ws_frame *next;
    size_t len;
    unsigned char buf[];
};

struct ws_state {
    int      authed;
    int64_t  cursor;          /* highest event id sent */
    int      more;            /* the store may have events after cursor */
    json_t  *batch;           /* fetched events not yet sent */
    size_t   batch_idx;
    struct ws_frame *out_head, *out_tail;
    unsigned out_count;
    char    *rx;              /* message being reassembled */
    size_t   rx_len;
    unsigned rx_frags;        /* fragments of the message so far */
    int      rx_binary;
    int      close_code;      /* close with this from the next WRITEABLE */
    const char *close_reason;
    struct sweep_link hb;     /* hello deadline, then heartbeat (sweep.c) */
    struct sweep_link touch;  /* next session touch (sweep.c) */
    size_t   expiry_pos;      /* in the sweep's session-expiry heap, from 1; 0 if not */
    int      ping_due;        /* the sweep asked for a ping: the next WRITEABLE sends it */
    int      held;            /* rx is a send over the rate limit, reading paused */
    int      backlogged;      /* too many frames queued for the client, reading paused */
    lws_sorted_usec_list_t hold_sul;
    lws_dll2_t ready_node;    /* in the writer's list for this turn's end (ws_out.c) */
};

struct session {
    struct lws *wsi;
    struct server *srv;
    int      is_ws;
    int64_t  user_id;         /* 0 until authenticated */
    char     user[PROTO_USER_MAX + 1];
    char     token_hash[65];  /* of the session's token, for logout and expiry */
    int64_t  token_expires_ms;
    int64_t  token_touched_ms;
    lws_dll2_t sub_node;      /* in srv->subscribers while listening for events */
    lws_dll2_owner_t acks;    /* chat sends waiting for their group commit (feed.c) */
    union {
        struct http_state http;
        struct ws_state ws;
    } u;
};

/* server.c */
int64_t now_ms(void);
struct server *server_from_wsi(struct lws *wsi);
int server_callback(struct lws *wsi, enum lws_callback_reasons reason,
                    void *user, void *in, size_t len);

/* feed.c: appending and publishing events, who listens, reading a feed */
struct feed *feed_new(struct store *st);
void feed_free(struct feed *f);
/* Appends through the store; once committed (at once outside a feed
 * transaction, else at feed_commit) the event is cached and its listeners
 * are woken. Same results as store_event_append. */
int feed_append(struct server *srv, const struct store_new_event *ev,
                int64_t *id, int64_t *ts, int *created);
/* A store transaction whose appended events are published only on commit. */
int feed_begin(struct server *srv);
int feed_commit(struct server *srv);
void feed_rollback(struct server *srv);
void feed_subscribe(struct session *s);
void feed_unsubscribe(struct session *s);
void feed_notify(struct server *srv, int64_t recipient_id);
void feed_wake_all(struct server *srv);
json_t *feed_fetch(struct server *srv, int64_t user_id, int64_t after, int limit);
/* The first of user_id's events after `after` from memory, as a ready
 * WebSocket frame, header included (owned by the feed and valid until the
 * loop runs again): 1 found, 0 none yet, -1 `after` is older
 * than memory (use feed_fetch). */
int feed_next_frame(struct server *srv, int64_t user_id, int64_t after,
                    int64_t *id, const unsigned char **frame, size_t *len);
/* Stores a chat message in this loop turn's group commit. Once committed
 * (or failed), the sender is answered with ws_on_posted or http_on_posted and
 * the listeners are woken. -1 if it could not be queued at all. */
int feed_post_chat(struct server *srv, struct session *s, const char *room,
                   const char *body, const char *client_msg_id);
/* Commits the open group commit now, if any. */
void feed_flush(struct server *srv);
/* The session is going away: its pending sends are not answered. */
void feed_forget_session(struct session *s);
/* After the context exists: group commit, and notifications from a shared
 * store. feed_stop commits what is open. */
void feed_start(struct server *srv);
void feed_stop(struct server *srv);
/* LWS_CALLBACK_RAW_*_FILE of the store's notification socket. */
int feed_on_notify(struct server *srv, struct lws *wsi, enum lws_callback_reasons reason);

/* auth.c */
int auth_token_new(char hex[PROTO_TOKEN_HEX_LEN + 1]);
void auth_token_hash(const char *token, char out[65]);
/* Looks the token up (absolute and idle expiry); fills the session's user
 * and token fields. 0 ok, -1 invalid. */
int auth_check_token(struct server *srv, struct session *s, const char *token);
/* Revokes s's session and closes its WebSockets with 4401. */
int auth_logout(struct server *srv, struct session *s);
/* How often an open WebSocket's session is touched (kept from idling out). */
int64_t auth_touch_every_ms(const struct server *srv);
/* The session behind a WebSocket is still there: 0 (touched now), -1 if not. */
int auth_touch(struct server *srv, struct session *s);

/* sweep.c: every per-connection deadline (hello, heartbeat, session touch
 * and expiry, long-poll hold) served by one timer, instead of an lws timer
 * per connection (lws 4.1 keeps those in one sorted list: every insert
 * walks it). */
int  sweep_start(struct server *srv);
void sweep_stop(struct server *srv);
void sweep_ws_open(struct session *s);     /* hello deadline */
void sweep_ws_authed(struct session *s);   /* heartbeat, session touch and expiry */
void sweep_ws_heard(struct session *s);    /* a frame or a pong came in */
void sweep_ws_closed(struct session *s);
void sweep_hold(struct session *s, int wait_s);
void sweep_unhold(struct session *s);

/* http_api.c */
int http_on_request(struct session *s, const char *uri);
int http_on_body(struct session *s, const void *in, size_t len);
int http_on_body_done(struct session *s);
int http_on_writeable(struct session *s);
void http_on_closed(struct session *s);
void http_on_hash_done(struct session *s, struct pwhash_job *job);
void http_wake(struct session *s);
/* The chat message of this request was committed (rc STORE_OK) or not. */
void http_on_posted(struct session *s, int rc, int64_t id, int64_t ts);

/* ws_out.c: one write per socket per loop turn of whole frames (control
 * frames, then events) */
struct ws_out *ws_out_new(void);
void ws_out_free(struct ws_out *p);     /* after ws_out_stop and the loop's close */
void ws_out_start(struct server *srv);
void ws_out_stop(struct server *srv);
#define WS_HEADER_MAX 10
/* The header of an unmasked final text frame of len bytes into h
 * (WS_HEADER_MAX bytes of room); returns its length. */
size_t ws_text_header(unsigned char *h, size_t len);
/* That header, then the text, into dst (len + WS_HEADER_MAX bytes of room);
 * returns the frame's length. */
size_t ws_text_frame(unsigned char *dst, const void *text, size_t len);
/* s has something to send: written at the end of this loop turn. */
void ws_out_schedule(struct session *s);
void ws_out_unschedule(struct session *s);   /* s is closing */
/* Writes every scheduled session (the feed calls it after its commit). */
void ws_out_turn_end(struct server *srv);
/* From WRITEABLE: writes what s has; -1 if the connection must close. */
int ws_on_writeable_events(struct session *s);

/* ws_api.c */
#define WS_MAX_QUEUED 256     /* control frames queued before reading pauses */
int ws_on_filter(struct lws *wsi);
int ws_on_established(struct session *s);
int ws_on_receive(struct session *s, const void *in, size_t len);
int ws_on_writeable(struct session *s);
void ws_on_closed(struct session *s);
void ws_wake(struct session *s);
/* A chat message sent on this WebSocket was committed (rc STORE_OK) or not. */
void ws_on_posted(struct session *s, const char *client_msg_id, int rc, int64_t id, int64_t ts);
void ws_begin_close(struct session *s, int code, const char *reason);

#endif
