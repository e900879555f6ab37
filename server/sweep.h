/* sweep.h — deadlines for many connections on one lws timer (sweep.c).
 *
 * Two kinds. A queue holds links that all share one timeout, so arrival
 * order is expiry order: joining, leaving and expiring are O(1). A timer
 * is an absolute wall-clock time, kept in a binary heap. The owner of each
 * queue (a struct sweep_kind) or timer gives the callback that acts when a
 * deadline passes; the sweep itself only keeps time. */
#ifndef CHAT_SWEEP_H
#define CHAT_SWEEP_H

#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

struct server;
struct sweep;
struct sweep_queue;

/* A place in one queue. */
struct sweep_link {
    lws_dll2_t node;
    int64_t    since_ms;      /* monotonic: when it joined its queue */
};

/* What a queue's deadlines mean; one static const per use. */
struct sweep_kind {
    /* l's timeout passed (l still queued): it must leave its queue
     * (sweep_leave, or sweep_join of another or the same queue). */
    void (*due)(struct server *srv, struct sweep_link *l);
    /* Optional: the most due() calls in one sweep; the rest wait for the
     * next (a sweep comes at most every 20 ms). */
    unsigned (*budget)(struct server *srv);
    /* Optional: 0 if the due links may be served now, else the earliest
     * monotonic ms at which they may. */
    int64_t (*not_before)(struct server *srv, int64_t now);
    /* Optional: around the due() calls of one sweep, if there are any. */
    void (*before)(struct server *srv);
    void (*after)(struct server *srv);
};

/* A place in the heap of absolute deadlines. */
struct sweep_timer {
    size_t  pos;              /* in the heap, from 1; 0 if not there */
    int64_t at_ms;            /* wall clock (now_ms) */
    void  (*fire)(struct server *srv, struct sweep_timer *t);   /* after it left the heap */
};

/* srv is only handed to the callbacks. */
struct sweep *sweep_new(struct lws_context *ctx, struct server *srv);
void sweep_free(struct sweep *sw);       /* detaches whatever is still queued */
int64_t sweep_mono_ms(void);
/* The queue of kind k with this timeout, made at first use. NULL: no
 * sweep (sw NULL: stopped) or out of memory. */
struct sweep_queue *sweep_queue(struct sweep *sw, const struct sweep_kind *k, int64_t timeout_ms);
/* l (re)joins q at now_ms (monotonic); q NULL: l just leaves its queue. */
void sweep_join(struct sweep_queue *q, struct sweep_link *l, int64_t now_ms);
void sweep_leave(struct sweep_link *l);
/* l's queue is q. */
int  sweep_in(const struct sweep_queue *q, const struct sweep_link *l);
/* l is in a queue: not yet made to leave it (sweep_leave, a due() done). */
int  sweep_queued(const struct sweep_link *l);
size_t sweep_count(const struct sweep_queue *q);
/* t fires at at_ms (wall clock), replacing any earlier setting. -1: no room. */
int  sweep_at(struct sweep *sw, struct sweep_timer *t, int64_t at_ms,
              void (*fire)(struct server *srv, struct sweep_timer *t));
void sweep_cancel(struct sweep *sw, struct sweep_timer *t);

#endif
