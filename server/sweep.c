/* sweep.c — every per-connection deadline of chatd, served by one lws timer.
 *
 * lws 4.1 keeps all its timers (lws_sul) in one sorted linked list and every
 * schedule walks it, so a timer per connection costs O(connections) each
 * time one is set: with 19,000 WebSockets, the heartbeat alone (lws' own
 * validity ping and pong timers, re-armed at every pong) kept the server
 * 50 % busy. Here each kind of deadline has a queue whose entries all have
 * the same timeout, so arrival order is expiry order and the queue is a
 * FIFO list: joining, leaving and expiring are O(1). One lws timer is
 * armed for the earliest head of all the queues, at most every SWEEP_GAP_MS.
 *
 *   hello    WebSockets not yet authenticated (--hello timeout 5 s)
 *   quiet    authenticated WebSockets by the last frame or pong heard: a
 *            ping is due --heartbeat-s after it
 *   pinged   by the ping: hang up --heartbeat-s after it (2 x in all)
 *   touch    by the last session touch (auth_touch_every_ms)
 *   holds[w] long polls parked for w seconds (one queue per w, 1..max)
 *   bodies   HTTP requests whose body is still coming, by their headers:
 *            408 --request-timeout-s after them (lws restarts its own
 *            body timer at every byte, so a byte a second never ends)
 *
 * Session expiry is an absolute time per token, not a timeout, so it is a
 * binary heap (O(log n) at hello and close only).
 *
 * Pings are sent in batches of at most ping_budget() per sweep, so that
 * connections opened together (a restart: everyone reconnects) do not all
 * ping at once every heartbeat; a late ping only delays its hang-up, which
 * counts from the ping.
 *
 * Session touches are a store write each (a commit, an fsync): they are
 * done at most once a second, all that are due in one transaction, and a
 * session behind several connections is written once per batch. (One
 * autocommit per WebSocket per minute was 317 fsyncs a second with 19,000
 * idle WebSockets.) */
#include "server.h"
#include "audit.h"
#include "limiter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SWEEP_GAP_MS      20     /* shortest time between two sweeps */
#define PING_BUDGET_MIN   64     /* pings per sweep at least */
#define TOUCH_GAP_MS      1000   /* shortest time between two batches of session touches */
#define TOUCH_DEDUPE      64     /* distinct sessions remembered within a batch */

struct sweep {
    struct server *srv;
    lws_sorted_usec_list_t sul;
    int64_t due_ms;              /* when sul fires; 0: not armed */
    int64_t last_ms;             /* last sweep */
    int64_t touched_ms;          /* last batch of session touches */
    int     running;
    lws_dll2_owner_t hello, quiet, pinged, touch, bodies;
    struct session **heap;       /* by token_expires_ms, heap[0] first */
    size_t  heap_n, heap_cap;
    int     hold_max;
    lws_dll2_owner_t holds[];    /* [1..hold_max] */
};

static int64_t mono_ms(void)
{
    return lws_now_usecs() / 1000;
}

static struct session *ws_of(lws_dll2_t *d, size_t off)
{
    return d ? (struct session *)((char *)d - off) : NULL;
}

#define HB_OFF    (offsetof(struct session, u.ws.hb.node))
#define TOUCH_OFF (offsetof(struct session, u.ws.touch.node))
#define HOLD_OFF  (offsetof(struct session, u.http.hold.node))
#define BODY_OFF  (offsetof(struct session, u.http.body_wait.node))

static void link_join(struct sweep_link *l, lws_dll2_owner_t *q, int64_t now)
{
    lws_dll2_remove(&l->node);
    l->since_ms = now;
    lws_dll2_add_tail(&l->node, q);
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
    int64_t in = due - mono_ms();
    lws_sul_schedule(sw->srv->ctx, 0, &sw->sul, sweep_run,
                     (lws_usec_t)(in > 0 ? in : 0) * LWS_US_PER_MS);
}

static int64_t earliest(int64_t a, int64_t b)
{
    return !a || (b && b < a) ? b : a;
}

static int64_t head_due(lws_dll2_owner_t *q, int64_t timeout_ms)
{
    struct sweep_link *l = q->head ? lws_container_of(q->head, struct sweep_link, node) : NULL;
    return l ? l->since_ms + timeout_ms : 0;
}

/* ---- session expiry: a binary heap of WebSockets by token_expires_ms ---- */

static void heap_set(struct sweep *sw, size_t i, struct session *s)
{
    sw->heap[i] = s;
    s->u.ws.expiry_pos = i + 1;
}

static void heap_up(struct sweep *sw, size_t i)
{
    struct session *s = sw->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (sw->heap[parent]->token_expires_ms <= s->token_expires_ms)
            break;
        heap_set(sw, i, sw->heap[parent]);
        i = parent;
    }
    heap_set(sw, i, s);
}

static void heap_down(struct sweep *sw, size_t i)
{
    struct session *s = sw->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= sw->heap_n)
            break;
        if (c + 1 < sw->heap_n && sw->heap[c + 1]->token_expires_ms < sw->heap[c]->token_expires_ms)
            c++;
        if (s->token_expires_ms <= sw->heap[c]->token_expires_ms)
            break;
        heap_set(sw, i, sw->heap[c]);
        i = c;
    }
    heap_set(sw, i, s);
}

static int heap_add(struct sweep *sw, struct session *s)
{
    if (sw->heap_n == sw->heap_cap) {
        size_t cap = sw->heap_cap ? 2 * sw->heap_cap : 1024;
        struct session **h = realloc(sw->heap, cap * sizeof *h);
        if (!h)
            return -1;
        sw->heap = h;
        sw->heap_cap = cap;
    }
    sw->heap[sw->heap_n++] = s;
    heap_up(sw, sw->heap_n - 1);
    return 0;
}

static void heap_remove(struct sweep *sw, struct session *s)
{
    size_t i = s->u.ws.expiry_pos;
    if (!i)
        return;
    i--;
    s->u.ws.expiry_pos = 0;
    struct session *last = sw->heap[--sw->heap_n];
    if (i == sw->heap_n)
        return;
    sw->heap[i] = last;
    if (i > 0 && sw->heap[(i - 1) / 2]->token_expires_ms > last->token_expires_ms)
        heap_up(sw, i);
    else
        heap_down(sw, i);
}

/* ---- the sweep ---- */

static int64_t heartbeat_ms(const struct sweep *sw)
{
    return (int64_t)sw->srv->cfg.heartbeat_s * 1000;
}

/* Enough pings per sweep to keep up with twice the steady rate (every
 * connection once per heartbeat) when sweeping every SWEEP_GAP_MS. */
static unsigned ping_budget(const struct sweep *sw)
{
    size_t n = sw->quiet.count + sw->pinged.count;
    size_t b = (size_t)((double)n * 2 * SWEEP_GAP_MS / (double)heartbeat_ms(sw)) + 1;
    return b < PING_BUDGET_MIN ? PING_BUDGET_MIN : (unsigned)b;
}

/* The due session touches, in one store transaction; a session behind
 * several WebSockets is written once. A session that is gone (ended
 * elsewhere) closes its WebSockets with 4401. */
static void sweep_touch(struct sweep *sw, int64_t now, int64_t every)
{
    struct server *srv = sw->srv;
    struct session *s = ws_of(sw->touch.head, TOUCH_OFF);
    if (!s || s->u.ws.touch.since_ms + every > now || now < sw->touched_ms + TOUCH_GAP_MS)
        return;
    sw->touched_ms = now;
    struct { char hash[65]; int ended; int64_t at; } seen[TOUCH_DEDUPE];
    int nseen = 0;
    feed_flush(srv);                    /* our own transaction, not the chat group commit */
    int txn = feed_begin(srv) == STORE_OK;
    while ((s = ws_of(sw->touch.head, TOUCH_OFF)) && s->u.ws.touch.since_ms + every <= now) {
        lws_dll2_remove(&s->u.ws.touch.node);
        int i = 0;
        while (i < nseen && strcmp(seen[i].hash, s->token_hash) != 0)
            i++;
        int ended;
        if (i < nseen) {
            ended = seen[i].ended;
            s->token_touched_ms = seen[i].at;
        } else {
            ended = auth_touch(srv, s) < 0;
            if (nseen < TOUCH_DEDUPE) {
                memcpy(seen[nseen].hash, s->token_hash, sizeof seen[nseen].hash);
                seen[nseen].ended = ended;
                seen[nseen++].at = s->token_touched_ms;
            }
        }
        if (ended)
            ws_begin_close(s, 4401, "session ended");
        else
            link_join(&s->u.ws.touch, &sw->touch, now);
    }
    if (txn && feed_commit(srv) != STORE_OK)
        fprintf(stderr, "chatd: session touches not committed\n");
}

static int64_t sweep_ws(struct sweep *sw, int64_t now)
{
    struct server *srv = sw->srv;
    int64_t hb = heartbeat_ms(sw), hello = (int64_t)srv->cfg.hello_timeout_s * 1000, next = 0;
    struct session *s;
    while ((s = ws_of(sw->hello.head, HB_OFF)) && s->u.ws.hb.since_ms + hello <= now) {
        lws_dll2_remove(&s->u.ws.hb.node);
        ws_begin_close(s, 4401, "expected a hello with a valid token");
    }
    /* quiet for a heartbeat: ping */
    unsigned budget = ping_budget(sw);
    while ((s = ws_of(sw->quiet.head, HB_OFF)) && s->u.ws.hb.since_ms + hb <= now) {
        if (!budget--) {
            next = now;              /* more are due: come back soon */
            break;
        }
        link_join(&s->u.ws.hb, &sw->pinged, now);
        s->u.ws.ping_due = 1;
        lws_callback_on_writable(s->wsi);
    }
    /* no answer for another heartbeat: hang up, as lws' validity check did */
    while ((s = ws_of(sw->pinged.head, HB_OFF)) && s->u.ws.hb.since_ms + hb <= now) {
        lws_dll2_remove(&s->u.ws.hb.node);
        audit("ws.silent", "user=%s addr=%s", s->user[0] ? s->user : "-", limiter_conn_addr(s->wsi));
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_WS_PONG_CHECK_GET_PONG, LWS_TO_KILL_ASYNC);
    }
    int64_t every = auth_touch_every_ms(srv);
    sweep_touch(sw, now, every);
    int64_t wall = now_ms();
    while (sw->heap_n && sw->heap[0]->token_expires_ms <= wall) {
        s = sw->heap[0];
        heap_remove(sw, s);
        ws_begin_close(s, 4401, "session expired");
    }
    next = earliest(next, head_due(&sw->hello, hello));
    next = earliest(next, head_due(&sw->quiet, hb));
    next = earliest(next, head_due(&sw->pinged, hb));
    int64_t touch_due = head_due(&sw->touch, every);
    if (touch_due && touch_due < sw->touched_ms + TOUCH_GAP_MS)
        touch_due = sw->touched_ms + TOUCH_GAP_MS;
    next = earliest(next, touch_due);
    if (sw->heap_n)
        next = earliest(next, now + (sw->heap[0]->token_expires_ms - wall));
    return next;
}

static int64_t sweep_holds(struct sweep *sw, int64_t now)
{
    int64_t next = 0;
    for (int w = 1; w <= sw->hold_max; w++) {
        struct session *s;
        while ((s = ws_of(sw->holds[w].head, HOLD_OFF)) && s->u.http.hold.since_ms + w * 1000LL <= now) {
            lws_dll2_remove(&s->u.http.hold.node);
            lws_callback_on_writable(s->wsi);     /* answers with what there is */
        }
        next = earliest(next, head_due(&sw->holds[w], w * 1000LL));
    }
    return next;
}

static int64_t sweep_bodies(struct sweep *sw, int64_t now)
{
    int64_t timeout = (int64_t)sw->srv->cfg.request_timeout_s * 1000;
    struct session *s;
    while ((s = ws_of(sw->bodies.head, BODY_OFF)) && s->u.http.body_wait.since_ms + timeout <= now) {
        lws_dll2_remove(&s->u.http.body_wait.node);
        http_on_request_late(s);
    }
    return head_due(&sw->bodies, timeout);
}

static void sweep_run(lws_sorted_usec_list_t *sul)
{
    struct sweep *sw = lws_container_of(sul, struct sweep, sul);
    int64_t now = mono_ms();
    sw->due_ms = 0;
    sw->last_ms = now;
    sw->running = 1;
    int64_t next = earliest(sweep_ws(sw, now), sweep_holds(sw, now));
    next = earliest(next, sweep_bodies(sw, now));
    sw->running = 0;
    if (next)
        sweep_arm(sw, next);
}

int sweep_start(struct server *srv)
{
    int max = srv->cfg.long_poll_max_s;
    struct sweep *sw = calloc(1, sizeof *sw + (size_t)(max + 1) * sizeof sw->holds[0]);
    if (!sw)
        return -1;
    sw->srv = srv;
    sw->hold_max = max;
    srv->sweep = sw;
    return 0;
}

void sweep_stop(struct server *srv)
{
    struct sweep *sw = srv->sweep;
    if (!sw)
        return;
    lws_sul_cancel(&sw->sul);
    /* whatever is still queued belongs to connections lws is about to close:
     * detach them so their close does not touch the freed lists */
    lws_dll2_owner_t *qs[] = { &sw->hello, &sw->quiet, &sw->pinged, &sw->touch, &sw->bodies };
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++)
        while (qs[i]->head)
            lws_dll2_remove(qs[i]->head);
    for (int w = 1; w <= sw->hold_max; w++)
        while (sw->holds[w].head)
            lws_dll2_remove(sw->holds[w].head);
    for (size_t i = 0; i < sw->heap_n; i++)
        sw->heap[i]->u.ws.expiry_pos = 0;
    free(sw->heap);
    free(sw);
    srv->sweep = NULL;
}

/* ---- WebSockets ---- */

void sweep_ws_open(struct session *s)
{
    struct sweep *sw = s->srv->sweep;
    if (!sw)
        return;
    int64_t now = mono_ms();
    link_join(&s->u.ws.hb, &sw->hello, now);
    sweep_arm(sw, now + (int64_t)s->srv->cfg.hello_timeout_s * 1000);
}

void sweep_ws_authed(struct session *s)
{
    struct sweep *sw = s->srv->sweep;
    if (!sw)
        return;
    int64_t now = mono_ms();
    link_join(&s->u.ws.hb, &sw->quiet, now);
    link_join(&s->u.ws.touch, &sw->touch, now);
    heap_remove(sw, s);
    if (heap_add(sw, s) < 0)
        ws_begin_close(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
    int64_t due = now + heartbeat_ms(sw);
    int64_t left = s->token_expires_ms - now_ms();
    sweep_arm(sw, earliest(due, now + (left > 0 ? left : 0)));
}

void sweep_ws_heard(struct session *s)
{
    struct sweep *sw = s->srv->sweep;
    lws_dll2_owner_t *q = s->u.ws.hb.node.owner;
    if (!sw || (q != &sw->quiet && q != &sw->pinged))
        return;                     /* hello pending, or being closed */
    int64_t now = mono_ms();
    if (q == &sw->quiet && s->u.ws.hb.since_ms == now)
        return;
    link_join(&s->u.ws.hb, &sw->quiet, now);
    sweep_arm(sw, now + heartbeat_ms(sw));
}

void sweep_ws_closed(struct session *s)
{
    lws_dll2_remove(&s->u.ws.hb.node);
    lws_dll2_remove(&s->u.ws.touch.node);
    s->u.ws.ping_due = 0;
    if (s->srv && s->srv->sweep)
        heap_remove(s->srv->sweep, s);
}

/* ---- long polls ---- */

void sweep_hold(struct session *s, int wait_s)
{
    struct sweep *sw = s->srv->sweep;
    if (!sw)
        return;
    if (wait_s < 1)
        wait_s = 1;
    if (wait_s > sw->hold_max)
        wait_s = sw->hold_max;
    int64_t now = mono_ms();
    s->u.http.hold_s = wait_s;
    link_join(&s->u.http.hold, &sw->holds[wait_s], now);
    sweep_arm(sw, now + wait_s * 1000LL);
}

void sweep_unhold(struct session *s)
{
    lws_dll2_remove(&s->u.http.hold.node);
}

/* ---- request bodies ---- */

void sweep_body_wait(struct session *s)
{
    struct sweep *sw = s->srv->sweep;
    if (!sw)
        return;
    int64_t now = mono_ms();
    link_join(&s->u.http.body_wait, &sw->bodies, now);
    sweep_arm(sw, now + (int64_t)s->srv->cfg.request_timeout_s * 1000);
}

void sweep_body_done(struct session *s)
{
    lws_dll2_remove(&s->u.http.body_wait.node);
}
