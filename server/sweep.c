/* sweep.c — the per-connection deadlines chatd keeps itself, served by one
 * lws timer (lws keeps the HTTP header and keep-alive timeouts; a rate
 * limited WebSocket's pause has its own timer in ws_api.c):
 * the queues and timers of sweep.h. It keeps time only; what a deadline
 * means is its owner's callback (ws_api.c: the hello; ws_beat.c: the
 * heartbeat; auth.c: session touch and end; http_api.c: long-poll holds and
 * request bodies). It knows no connection: the server it is given is only
 * handed back to those callbacks.
 *
 * lws 4.1 keeps all its timers (lws_sul) in one sorted linked list and every
 * schedule walks it, so a timer per connection costs O(connections) each
 * time one is set: with 19,000 WebSockets, the heartbeat alone (lws' own
 * validity ping and pong timers, re-armed at every pong) kept the server
 * 50 % busy. Here each kind of deadline has a queue whose entries all have
 * the same timeout, so arrival order is expiry order and the queue is a
 * FIFO list: joining, leaving and expiring are O(1). Absolute deadlines
 * (a session's expiry) are a binary heap, O(log n) to set and cancel. One
 * lws timer is armed for the earliest of all, at most every SWEEP_GAP_MS. */
#include "sweep.h"
#include "clock.h"

#include <stdlib.h>

#define SWEEP_GAP_MS 20          /* shortest time between two sweeps */

struct sweep_queue {
    struct sweep *sw;
    const struct sweep_kind *k;
    int64_t timeout_ms;
    lws_dll2_owner_t links;
};

struct sweep {
    struct lws_context *ctx;
    struct server *srv;          /* given to every callback */
    lws_sorted_usec_list_t sul;
    int64_t due_ms;              /* when sul fires; 0: not armed */
    int64_t last_ms;             /* last sweep */
    int     running;
    struct sweep_queue **queues;
    size_t  nqueues;
    struct sweep_timer **heap;   /* by at_ms, heap[0] first */
    size_t  heap_n, heap_cap;
};

int64_t sweep_mono_ms(void)
{
    return lws_now_usecs() / 1000;
}

static int64_t earliest(int64_t a, int64_t b)
{
    return !a || (b && b < a) ? b : a;
}

/* ---- the timer ---- */

static void sweep_run(lws_sorted_usec_list_t *sul);

/* Makes the sweep run at due (ms, monotonic) or earlier. */
static void sweep_arm(struct sweep *sw, int64_t due)
{
    if (sw->running || (sw->due_ms && sw->due_ms <= due))
        return;
    if (due < sw->last_ms + SWEEP_GAP_MS)
        due = sw->last_ms + SWEEP_GAP_MS;
    if (sw->due_ms && sw->due_ms <= due)
        return;
    sw->due_ms = due;
    int64_t in = due - sweep_mono_ms();
    lws_sul_schedule(sw->ctx, 0, &sw->sul, sweep_run,
                     (lws_usec_t)(in > 0 ? in : 0) * LWS_US_PER_MS);
}

/* ---- queues ---- */

struct sweep_queue *sweep_queue(struct sweep *sw, const struct sweep_kind *k, int64_t timeout_ms)
{
    if (!sw)
        return NULL;
    for (size_t i = 0; i < sw->nqueues; i++)
        if (sw->queues[i]->k == k && sw->queues[i]->timeout_ms == timeout_ms)
            return sw->queues[i];
    struct sweep_queue *q = calloc(1, sizeof *q);
    struct sweep_queue **qs = q ? realloc(sw->queues, (sw->nqueues + 1) * sizeof *qs) : NULL;
    if (!qs) {
        free(q);
        return NULL;
    }
    q->sw = sw;
    q->k = k;
    q->timeout_ms = timeout_ms;
    sw->queues = qs;
    sw->queues[sw->nqueues++] = q;
    return q;
}

void sweep_leave(struct sweep_link *l)
{
    lws_dll2_remove(&l->node);
}

void sweep_join(struct sweep_queue *q, struct sweep_link *l, int64_t now_ms)
{
    sweep_leave(l);
    if (!q)
        return;
    l->since_ms = now_ms;
    lws_dll2_add_tail(&l->node, &q->links);
    sweep_arm(q->sw, now_ms + q->timeout_ms);
}

int sweep_in(const struct sweep_queue *q, const struct sweep_link *l)
{
    return q && l->node.owner == &q->links;
}

int sweep_queued(const struct sweep_link *l)
{
    return l->node.owner != NULL;
}

size_t sweep_count(const struct sweep_queue *q)
{
    return q ? q->links.count : 0;
}

static int64_t head_due(const struct sweep_queue *q)
{
    const struct sweep_link *l = q->links.head ? lws_container_of(q->links.head, struct sweep_link, node) : NULL;
    return l ? l->since_ms + q->timeout_ms : 0;
}

/* Serves q's due links; returns when to come back (0: nothing queued). */
static int64_t sweep_queue_run(struct sweep *sw, struct sweep_queue *q, int64_t now)
{
    const struct sweep_kind *k = q->k;
    int64_t due = head_due(q);
    if (!due || due > now)
        return due;
    int64_t wait = k->not_before ? k->not_before(sw->srv, now) : 0;
    if (wait > now)
        return wait;
    unsigned budget = k->budget ? k->budget(sw->srv) : (unsigned)-1;
    if (k->before)
        k->before(sw->srv);
    while ((due = head_due(q)) && due <= now) {
        if (!budget--) {
            due = now;                  /* more are due: come back soon */
            break;
        }
        struct sweep_link *l = lws_container_of(q->links.head, struct sweep_link, node);
        k->due(sw->srv, l);
        if (q->links.head == &l->node && l->since_ms + q->timeout_ms <= now)
            sweep_leave(l);             /* it did not move: never serve it twice */
    }
    if (k->after)
        k->after(sw->srv);
    return due;
}

/* ---- timers: a binary heap by at_ms ---- */

static void heap_set(struct sweep *sw, size_t i, struct sweep_timer *t)
{
    sw->heap[i] = t;
    t->pos = i + 1;
}

static void heap_up(struct sweep *sw, size_t i)
{
    struct sweep_timer *t = sw->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (sw->heap[parent]->at_ms <= t->at_ms)
            break;
        heap_set(sw, i, sw->heap[parent]);
        i = parent;
    }
    heap_set(sw, i, t);
}

static void heap_down(struct sweep *sw, size_t i)
{
    struct sweep_timer *t = sw->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= sw->heap_n)
            break;
        if (c + 1 < sw->heap_n && sw->heap[c + 1]->at_ms < sw->heap[c]->at_ms)
            c++;
        if (t->at_ms <= sw->heap[c]->at_ms)
            break;
        heap_set(sw, i, sw->heap[c]);
        i = c;
    }
    heap_set(sw, i, t);
}

void sweep_cancel(struct sweep *sw, struct sweep_timer *t)
{
    size_t i = t->pos;
    if (!i || !sw)
        return;
    i--;
    t->pos = 0;
    struct sweep_timer *last = sw->heap[--sw->heap_n];
    if (i == sw->heap_n)
        return;
    sw->heap[i] = last;
    if (i > 0 && sw->heap[(i - 1) / 2]->at_ms > last->at_ms)
        heap_up(sw, i);
    else
        heap_down(sw, i);
}

int sweep_at(struct sweep *sw, struct sweep_timer *t, int64_t at_ms,
             void (*fire)(struct server *srv, struct sweep_timer *t))
{
    if (!sw)
        return -1;
    sweep_cancel(sw, t);
    if (sw->heap_n == sw->heap_cap) {
        size_t cap = sw->heap_cap ? 2 * sw->heap_cap : 1024;
        struct sweep_timer **h = realloc(sw->heap, cap * sizeof *h);
        if (!h)
            return -1;
        sw->heap = h;
        sw->heap_cap = cap;
    }
    t->at_ms = at_ms;
    t->fire = fire;
    sw->heap[sw->heap_n++] = t;
    heap_up(sw, sw->heap_n - 1);
    int64_t left = at_ms - now_ms();
    sweep_arm(sw, sweep_mono_ms() + (left > 0 ? left : 0));
    return 0;
}

/* Fires the due timers; returns when the next is due (monotonic, 0: none). */
static int64_t sweep_timers_run(struct sweep *sw, int64_t now)
{
    int64_t wall = now_ms();
    while (sw->heap_n && sw->heap[0]->at_ms <= wall) {
        struct sweep_timer *t = sw->heap[0];
        sweep_cancel(sw, t);
        t->fire(sw->srv, t);
    }
    return sw->heap_n ? now + (sw->heap[0]->at_ms - wall) : 0;
}

/* ---- the sweep ---- */

static void sweep_run(lws_sorted_usec_list_t *sul)
{
    struct sweep *sw = lws_container_of(sul, struct sweep, sul);
    int64_t now = sweep_mono_ms();
    sw->due_ms = 0;
    sw->last_ms = now;
    sw->running = 1;
    int64_t next = 0;
    for (size_t i = 0; i < sw->nqueues; i++)
        next = earliest(next, sweep_queue_run(sw, sw->queues[i], now));
    next = earliest(next, sweep_timers_run(sw, now));
    sw->running = 0;
    if (next)
        sweep_arm(sw, next);
}

struct sweep *sweep_new(struct lws_context *ctx, struct server *srv)
{
    struct sweep *sw = calloc(1, sizeof *sw);
    if (sw) {
        sw->ctx = ctx;
        sw->srv = srv;
    }
    return sw;
}

void sweep_free(struct sweep *sw)
{
    if (!sw)
        return;
    lws_sul_cancel(&sw->sul);
    /* whatever is still queued belongs to connections lws is about to close:
     * detach them so their close does not touch the freed lists */
    for (size_t i = 0; i < sw->nqueues; i++) {
        while (sw->queues[i]->links.head)
            lws_dll2_remove(sw->queues[i]->links.head);
        free(sw->queues[i]);
    }
    for (size_t i = 0; i < sw->heap_n; i++)
        sw->heap[i]->pos = 0;
    free(sw->queues);
    free(sw->heap);
    free(sw);
}
