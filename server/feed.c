/* feed.c — the event feed: appending events (alone or inside a store
 * transaction), publishing them once committed, reading a user's events
 * after a cursor, and waking the sessions (parked long polls, WebSockets)
 * that wait for them.
 *
 * Every event of this server passes through feed_append, so the feed keeps
 * the most recent ones in memory: all events with lo < id <= hi are in the
 * ring, and a reader whose cursor is >= lo is served from memory instead of
 * SQLite (what makes fan-out to many subscribers cheap). Older cursors read
 * the store. Events enter the ring only after their transaction committed,
 * and in id order, so every transport delivers the same stored sequence. */
#include "server.h"

#include <stdlib.h>
#include <string.h>

#define FEED_RING   4096          /* recent events kept in memory */
#define FEED_PENDING 8            /* events appended in one transaction */

struct feed_entry {
    int64_t id, recipient_id;
    json_t *event;
};

struct feed {
    struct feed_entry ring[FEED_RING];
    size_t head, count;           /* oldest at head */
    int64_t lo;                   /* every event id > lo is in the ring */
    struct feed_entry pending[FEED_PENDING];
    int npending;
    int in_txn;
    int overflowed;               /* a transaction had too many events to cache */
};

struct feed *feed_new(struct store *st)
{
    struct feed *f = calloc(1, sizeof *f);
    if (f && store_last_event_id(st, &f->lo) != STORE_OK) {
        free(f);
        return NULL;
    }
    return f;
}

static void feed_drop_pending(struct feed *f)
{
    for (int i = 0; i < f->npending; i++)
        json_decref(f->pending[i].event);
    f->npending = 0;
    f->overflowed = 0;
}

void feed_free(struct feed *f)
{
    if (!f)
        return;
    feed_drop_pending(f);
    for (size_t i = 0; i < f->count; i++)
        json_decref(f->ring[(f->head + i) % FEED_RING].event);
    free(f);
}

/* ---- who listens ---- */

void feed_subscribe(struct session *s)
{
    if (!lws_dll2_is_detached(&s->sub_node))
        return;
    lws_dll2_add_tail(&s->sub_node, &s->srv->subscribers);
}

void feed_unsubscribe(struct session *s)
{
    if (s->srv && s->sub_node.owner)
        lws_dll2_remove(&s->sub_node);
}

static void feed_wake(struct session *s)
{
    if (s->is_ws)
        ws_wake(s);
    else
        http_wake(s);
}

void feed_notify(struct server *srv, int64_t recipient_id)
{
    lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, srv->subscribers.head) {
        struct session *s = lws_container_of(d, struct session, sub_node);
        if (recipient_id == 0 || recipient_id == s->user_id)
            feed_wake(s);
    } lws_end_foreach_dll_safe(d, d1);
}

void feed_wake_all(struct server *srv)
{
    feed_notify(srv, 0);
}

/* ---- publishing ---- */

static void feed_ring_push(struct feed *f, struct feed_entry e)
{
    if (f->count == FEED_RING) {
        struct feed_entry *old = &f->ring[f->head];
        f->lo = old->id;
        json_decref(old->event);
        f->head = (f->head + 1) % FEED_RING;
        f->count--;
    }
    f->ring[(f->head + f->count) % FEED_RING] = e;
    f->count++;
}

/* The committed events enter the ring, then their listeners are woken. */
static void feed_publish(struct server *srv)
{
    struct feed *f = srv->feed;
    if (f->overflowed) {
        /* Too many to track: forget the ring; readers use the store. */
        for (size_t i = 0; i < f->count; i++)
            json_decref(f->ring[(f->head + i) % FEED_RING].event);
        f->head = f->count = 0;
        store_last_event_id(srv->store, &f->lo);
        feed_drop_pending(f);
        feed_wake_all(srv);
        return;
    }
    for (int i = 0; i < f->npending; i++)
        feed_ring_push(f, f->pending[i]);
    int n = f->npending;
    f->npending = 0;
    for (int i = 0; i < n; i++)
        feed_notify(srv, f->ring[(f->head + f->count - (size_t)n + (size_t)i) % FEED_RING].recipient_id);
}

int feed_append(struct server *srv, const struct store_new_event *ev,
                int64_t *id, int64_t *ts, int *created)
{
    struct feed *f = srv->feed;
    int rc = store_event_append(srv->store, ev, id, ts, created);
    if (rc != STORE_OK || !*created)
        return rc;
    if (f->npending == FEED_PENDING) {
        f->overflowed = 1;
    } else {
        json_t *e = proto_event_new(*id, ev->type, *ts, ev->payload);
        if (!e)
            f->overflowed = 1;
        else
            f->pending[f->npending++] = (struct feed_entry){ *id, ev->recipient_id, e };
    }
    if (!f->in_txn)
        feed_publish(srv);
    return rc;
}

int feed_begin(struct server *srv)
{
    int rc = store_begin(srv->store);
    if (rc == STORE_OK)
        srv->feed->in_txn = 1;
    return rc;
}

int feed_commit(struct server *srv)
{
    srv->feed->in_txn = 0;
    int rc = store_commit(srv->store);
    if (rc == STORE_OK)
        feed_publish(srv);
    else
        feed_drop_pending(srv->feed);
    return rc;
}

void feed_rollback(struct server *srv)
{
    srv->feed->in_txn = 0;
    store_rollback(srv->store);
    feed_drop_pending(srv->feed);
}

/* ---- reading ---- */

static int feed_collect(void *arg, const struct store_event *ev)
{
    json_t *arr = arg;
    json_t *obj = proto_event_new(ev->id, ev->type, ev->ts_ms, ev->payload);
    if (!obj)
        return 1;
    json_array_append_new(arr, obj);
    return 0;
}

/* Index in the ring of the first entry with id > after (binary search). */
static size_t feed_ring_find(const struct feed *f, int64_t after)
{
    size_t lo = 0, hi = f->count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (f->ring[(f->head + mid) % FEED_RING].id <= after)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void feed_fetch_ring(const struct feed *f, int64_t user_id, int64_t after, int limit, json_t *arr)
{
    for (size_t i = feed_ring_find(f, after); i < f->count && limit > 0; i++) {
        const struct feed_entry *e = &f->ring[(f->head + i) % FEED_RING];
        if (e->recipient_id == 0 || e->recipient_id == user_id) {
            json_array_append(arr, e->event);
            limit--;
        }
    }
}

json_t *feed_fetch(struct server *srv, int64_t user_id, int64_t after, int limit)
{
    json_t *arr = json_array();
    if (!arr)
        return NULL;
    if (after >= srv->feed->lo) {
        feed_fetch_ring(srv->feed, user_id, after, limit, arr);
        return arr;
    }
    if (store_events_after(srv->store, user_id, after, limit, feed_collect, arr) != STORE_OK) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

int feed_post_chat(struct server *srv, struct session *s, const char *room,
                   const char *body, const char *client_msg_id, int64_t *id, int64_t *ts)
{
    char *payload = proto_chat_payload(room, s->user, body);
    if (!payload)
        return STORE_ERROR;
    struct store_new_event ev = {
        .type = "chat", .recipient_id = 0, .sender_id = s->user_id,
        .client_msg_id = client_msg_id, .payload = payload, .ts_ms = now_ms(),
    };
    int created = 0;
    /* Committed before anyone is told: feed_append publishes after commit. */
    int rc = feed_append(srv, &ev, id, ts, &created);
    free(payload);
    return rc;
}
