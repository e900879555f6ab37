/* core.h — the client core: what the user sees and what is still owed to the
 * server, independent of any transport and of lws. It owns the cursor (the
 * highest event id shown), exactly-once in-order delivery to the front end,
 * the outbox of typed but unacknowledged messages, the connection state and
 * the live cost counters. Transports feed it; front ends render it. */
#ifndef CHAT_CORE_H
#define CHAT_CORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

enum core_state {
    CORE_CONNECTING = 0,
    CORE_CONNECTED,
    CORE_RECONNECTING,  /* retry_ms says when the next attempt is */
    CORE_OFFLINE,       /* given up; core_exit_code() says why */
};

/* What the core reports, to whoever shows it (in bin/chat the app, which
 * passes each on to the front end and watches them to know when a quit is
 * done). Every one is optional; arg is passed back. Text given to on_error
 * is human-readable, never raw JSON. */
struct core_callbacks {
    void (*on_event)(void *arg, const json_t *event);
    void (*on_state)(void *arg, enum core_state state, unsigned retry_ms);
    void (*on_ack)(void *arg, const char *client_msg_id, int64_t id);
    void (*on_error)(void *arg, const char *text);
    /* A result the user asked for (balance, transfer accepted): text for
     * people, data (may be NULL) for machines, e.g. {"balance_cents":N}. */
    void (*on_notice)(void *arg, const char *text, const json_t *data);
    /* A message refused for good, after on_error has said why: its id, so
     * a front end can mark the line it showed as sending. */
    void (*on_reject)(void *arg, const char *client_msg_id, const char *why);
    /* An ephemeral item (protocol v1.1: presence, typing), validated by
     * proto_parse_ephemeral; never stored, no id, no cursor move. */
    void (*on_ephemeral)(void *arg, const json_t *item);
    void *arg;
};

/* A queued message, read-only for transports. */
struct core_msg {
    const char *client_msg_id;   /* 32 hex chars, 128 random bits */
    const char *room;            /* "" for a direct message */
    const char *to;              /* a direct message's recipient, else NULL */
    const char *body;
    unsigned    sends;           /* how often a transport has sent it */
};

struct core_stats {
    uint64_t requests;           /* HTTP requests and WS handshakes made */
    uint64_t bytes_in;           /* including a best estimate of headers */
    uint64_t bytes_out;
    uint64_t events;             /* events delivered (shown) */
    uint64_t dropped;            /* duplicate or old events dropped */
    int      have_latency;
    int64_t  latency_ms;         /* now - ts of the last delivered event written
                                    since this client started (not history) */
    int64_t  latency_median_ms;  /* over the last CORE_LATENCY_WINDOW events */
};
#define CORE_LATENCY_WINDOW 1024

struct core;

/* NULL on allocation or libsodium failure. */
struct core *core_new(const struct core_callbacks *cb);
void core_free(struct core *c);

/* Replaces the front-end callbacks (NULL: none). */
void core_set_callbacks(struct core *c, const struct core_callbacks *cb);
/* Wall clock in epoch ms; tests replace it. */
void core_set_clock(struct core *c, int64_t (*now_ms)(void *arg), void *arg);
/* A new serial for a transport connection (for core_outbox_take), unique
 * within this core even across transport switches. */
unsigned core_connection_serial(struct core *c);
/* Called whenever a message is queued, so the active transport can send it. */
void core_set_outbox_hook(struct core *c, void (*fn)(void *arg), void *arg);

/* ---- events ---- */
int64_t core_cursor(const struct core *c);
/* Moves the cursor forward to id (the start's "after=latest" cursor, once
 * the history up to it is shown); never back. */
void core_set_cursor(struct core *c, int64_t id);
/* Borrows item: an ephemeral item from any transport. Returns 0 if passed
 * on, -1 if malformed or unknown (ignored). */
int core_ephemeral(struct core *c, const json_t *item);
/* Borrows event. Returns 1 if shown, 0 if dropped as duplicate/old, -1 if
 * the event is malformed (no positive integer id / string type). */
int core_deliver(struct core *c, const json_t *event);

/* ---- outbox ---- */
/* Validates and queues a message; returns its client_msg_id (owned by the
 * core, valid until the message is acked or rejected) or NULL after
 * reporting why through on_error. Pointers from the outbox functions below
 * stay valid until that message is acked or rejected. */
const char *core_send(struct core *c, const char *room, const char *body);
/* The same for a direct message to user `to` (POST messages {"to"}). */
const char *core_send_to(struct core *c, const char *to, const char *body);
size_t core_outbox_len(const struct core *c);
/* Oldest unacknowledged message, or NULL. Bumps nothing. */
const struct core_msg *core_outbox_head(const struct core *c);
/* Oldest message not yet sent on connection `conn` (a transport's connection
 * serial, > 0); marks it sent there and counts the send. NULL if none. */
const struct core_msg *core_outbox_take(struct core *c, unsigned conn);
/* Records a send of the head (HTTP transports send one at a time). */
void core_outbox_sent(struct core *c, const char *client_msg_id);
/* Server stored the message: removes it and calls on_ack. Unknown ids are
 * ignored (returns -1), e.g. a second ack after a resend. */
int core_ack(struct core *c, const char *client_msg_id, int64_t id);
/* Server refused the message for good: drops it, then reports why. */
int core_reject(struct core *c, const char *client_msg_id, const char *why);

/* ---- connection state and errors ---- */
enum core_state core_state(const struct core *c);
void core_set_state(struct core *c, enum core_state s, unsigned retry_ms);
void core_error(struct core *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Borrows data. */
void core_notice(struct core *c, const json_t *data, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Unrecoverable: reports text, goes OFFLINE and remembers the exit code. */
void core_fatal(struct core *c, int exit_code, const char *text);
int core_exit_code(const struct core *c);

/* ---- cost counters ---- */
void core_count_request(struct core *c);
void core_count_bytes(struct core *c, uint64_t in, uint64_t out);
/* Fills *out; the median is computed on demand. */
void core_get_stats(const struct core *c, struct core_stats *out);

#endif
