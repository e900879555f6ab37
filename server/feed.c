/* feed.c — the event feed: appending events (chat sends grouped into one
 * transaction per event-loop turn, bank alerts inside the bank's own
 * transactions), publishing them once committed, reading a user's events
 * after a cursor, and waking the connections that wait for them (through
 * their session's ops: the feed names no transport).
 *
 * Group commit: chat sends of one loop turn share one store transaction (a
 * "batch"), committed at the end of the turn (main.c's turn end calls
 * feed_flush right after the turn's I/O callbacks), or earlier: at
 * FEED_BATCH_MAX sends, or when the store needs it (store.h). Without that
 * turn end (tests), a timer does it.
 * Each sender is answered only after that commit: an acknowledged message
 * is durable, and one fsync serves the whole turn.
 *
 * The feed keeps the most recent events in memory: all events with
 * lo < id <= hi are in the ring, and a reader whose cursor is >= lo is served
 * from memory instead of the store (what makes fan-out to many subscribers
 * cheap). Events enter the ring only after their transaction committed, and
 * in id order, so every transport delivers the same stored sequence.
 *
 * On a shared store (PostgreSQL, several instances) other instances commit
 * events too: the ring is then filled from the store (store_events_all_after
 * from hi), after our own commits and whenever the store notifies that any
 * instance committed. The store makes ids visible in id order, so reading
 * "after hi" never skips an event that commits later. */
#include "feed.h"
#include "clock.h"
#include "server.h"
#include "store.h"
#include "ws_frame.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FEED_RING        4096     /* recent events kept in memory */
#define FEED_BATCH_MAX   512      /* sends in one group commit */
#define FEED_PAGE        512      /* events read per catch-up query */
#define FEED_RELISTEN_US (1 * LWS_USEC_PER_SEC)

struct feed_entry {
    int64_t id, recipient_id;
    json_t *event;
    unsigned char *ws_frame;      /* whole text frame of {"op":"event",...} */
    size_t ws_len;
};

/* A chat send waiting for the commit of its batch. */
struct feed_ack {
    lws_dll2_t batch_node;        /* in feed->acks */
    lws_dll2_t session_node;      /* in session->acks */
    struct session *s;            /* NULL once the session is gone */
    int64_t id, ts;
    int has_cmid;
    char cmid[PROTO_CLIENT_MSG_ID_MAX + 1];
};

struct feed {
    struct server *srv;
    struct feed_entry ring[FEED_RING];
    size_t head, count;           /* oldest at head */
    int64_t lo;                   /* every event id > lo is in the ring */
    struct feed_entry *pending;   /* appended, not yet committed */
    size_t npending, cap;
    int in_txn;
    int lost;                     /* an appended event could not be cached */
    lws_dll2_owner_t acks;        /* sends in the open batch */
    lws_sorted_usec_list_t flush_sul;
    int turn_end;                 /* the loop's turn end commits the batch (feed_start) */
    struct lws *listen_wsi;       /* the store's notification socket */
    lws_sorted_usec_list_t listen_sul;
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

/* The WebSocket frame of an event, serialized and framed once for every
 * subscriber (ws_out.c writes it as it is). */
static struct feed_entry feed_entry_new(int64_t id, int64_t recipient_id, json_t *event)
{
    struct feed_entry e = { id, recipient_id, event, NULL, 0 };
    char *text = proto_ws_event_text(event);
    if (text) {
        size_t len = strlen(text);
        e.ws_frame = malloc(WS_HEADER_MAX + len);
        if (e.ws_frame)
            e.ws_len = ws_text_frame(e.ws_frame, text, len);
        free(text);
    }
    if (!e.ws_frame) {
        json_decref(event);
        e.event = NULL;
    }
    return e;
}

static void feed_entry_free(struct feed_entry *e)
{
    json_decref(e->event);
    free(e->ws_frame);
}

static void feed_drop_pending(struct feed *f)
{
    for (size_t i = 0; i < f->npending; i++)
        feed_entry_free(&f->pending[i]);
    f->npending = 0;
    f->lost = 0;
}

static void feed_ring_clear(struct feed *f)
{
    for (size_t i = 0; i < f->count; i++)
        feed_entry_free(&f->ring[(f->head + i) % FEED_RING]);
    f->head = f->count = 0;
}

void feed_free(struct feed *f)
{
    if (!f)
        return;
    feed_drop_pending(f);
    free(f->pending);
    feed_ring_clear(f);
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

/* Wakes the listeners of recipient_id's events (0: everyone's). Not
 * "notify": that is the store's word for another instance's commits
 * (feed_on_notify). */
static void feed_wake(struct server *srv, int64_t recipient_id)
{
    lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, srv->subscribers.head) {
        struct session *s = lws_container_of(d, struct session, sub_node);
        /* an ended session is told nothing more, even in the turn it ended */
        if ((recipient_id == 0 || recipient_id == s->user_id) && !s->ended)
            s->ops->wake(s);
    } lws_end_foreach_dll_safe(d, d1);
}

void feed_wake_all(struct server *srv)
{
    feed_wake(srv, 0);
}

/* Wakes the listeners of the newest n ring entries: everyone once if one
 * of them is for everyone, else each recipient. */
static void feed_wake_newest(struct server *srv, size_t n)
{
    struct feed *f = srv->feed;
    size_t first = f->count - n;
    for (size_t i = first; i < f->count; i++)
        if (f->ring[(f->head + i) % FEED_RING].recipient_id == 0) {
            feed_wake_all(srv);
            return;
        }
    for (size_t i = first; i < f->count; i++)
        feed_wake(srv, f->ring[(f->head + i) % FEED_RING].recipient_id);
}

/* ---- the ring ---- */

static int64_t feed_hi(const struct feed *f)
{
    return f->count ? f->ring[(f->head + f->count - 1) % FEED_RING].id : f->lo;
}

static void feed_ring_push(struct feed *f, struct feed_entry e)
{
    if (f->count == FEED_RING) {
        struct feed_entry *old = &f->ring[f->head];
        f->lo = old->id;
        feed_entry_free(old);
        f->head = (f->head + 1) % FEED_RING;
        f->count--;
    }
    f->ring[(f->head + f->count) % FEED_RING] = e;
    f->count++;
}

/* Something could not be cached: forget the ring; readers use the store. */
static void feed_ring_reset(struct server *srv)
{
    struct feed *f = srv->feed;
    feed_ring_clear(f);
    if (store_last_event_id(srv->store, &f->lo) != STORE_OK)
        fprintf(stderr, "chatd: feed: cannot read the last event id\n");
}

struct feed_take {
    struct feed *f;
    int n;                        /* rows read in this page */
    size_t added;                 /* entered the ring */
    int failed;
};

static int feed_take_one(void *arg, const struct store_event *ev)
{
    struct feed_take *t = arg;
    t->n++;
    if (ev->id <= feed_hi(t->f))     /* already in the ring: keep the order strict */
        return 0;
    json_t *e = proto_event_new(ev->id, ev->type, ev->ts_ms, ev->payload);
    struct feed_entry fe = e ? feed_entry_new(ev->id, ev->recipient_id, e) : (struct feed_entry){ 0 };
    if (!fe.event) {
        t->failed = 1;
        return 1;
    }
    feed_ring_push(t->f, fe);
    t->added++;
    return 0;
}

/* Shared store: reads into the ring every event committed after hi, by any
 * instance, and wakes their listeners. */
static void feed_catch_up(struct server *srv)
{
    struct feed *f = srv->feed;
    if (store_batch_open(srv->store)) {
        /* Reading would commit the open batch first, and that commit catches
         * up itself: let it, rather than read from a position it moves. */
        feed_flush(srv);
        return;
    }
    struct feed_take t = { f, FEED_PAGE, 0, 0 };
    while (t.n == FEED_PAGE && !t.failed) {
        t.n = 0;
        if (store_events_all_after(srv->store, feed_hi(f), FEED_PAGE, feed_take_one, &t) != STORE_OK)
            t.failed = 1;
    }
    size_t added = t.added;
    if (added > f->count) {       /* more than the ring holds: wake everyone */
        feed_wake_all(srv);
        return;
    }
    if (added)
        feed_wake_newest(srv, added);
    if (t.failed)
        fprintf(stderr, "chatd: feed: catching up from the store failed; retrying at the next event\n");
}

/* The committed events enter the ring, then their listeners are woken. */
static void feed_publish(struct server *srv)
{
    struct feed *f = srv->feed;
    if (store_is_shared(srv->store)) {
        feed_drop_pending(f);
        feed_catch_up(srv);
        return;
    }
    if (f->lost) {
        feed_drop_pending(f);
        feed_ring_reset(srv);
        feed_wake_all(srv);
        return;
    }
    size_t n = f->npending;
    for (size_t i = 0; i < n; i++)
        feed_ring_push(f, f->pending[i]);
    f->npending = 0;
    feed_wake_newest(srv, n < f->count ? n : f->count);
}

/* Keeps an appended event, ready for the ring, until its transaction
 * commits (feed_publish) or not (feed_drop_pending). */
static void feed_keep_pending(struct feed *f, const struct store_new_event *ev, int64_t id, int64_t ts)
{
    if (f->npending == f->cap) {
        size_t cap = f->cap ? 2 * f->cap : 16;
        struct feed_entry *p = realloc(f->pending, cap * sizeof *p);
        if (!p) {
            f->lost = 1;
            return;
        }
        f->pending = p;
        f->cap = cap;
    }
    json_t *e = proto_event_new(id, ev->type, ts, ev->payload);
    struct feed_entry fe = e ? feed_entry_new(id, ev->recipient_id, e) : (struct feed_entry){ 0 };
    if (!fe.event)
        f->lost = 1;
    else
        f->pending[f->npending++] = fe;
}

/* ---- transactions ---- */

int feed_append(struct server *srv, const struct store_new_event *ev,
                int64_t *id, int64_t *ts, int *created)
{
    struct feed *f = srv->feed;
    if (!f->in_txn && store_batch_open(srv->store))
        feed_flush(srv);
    int rc = store_event_append(srv->store, ev, id, ts, created);
    if (rc != STORE_OK || !*created)
        return rc;
    feed_keep_pending(f, ev, *id, *ts);
    if (!f->in_txn)
        feed_publish(srv);
    return rc;
}

int feed_begin(struct server *srv)
{
    int rc = store_begin(srv->store);   /* commits an open batch first */
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

/* ---- group commit of chat sends ---- */

static void feed_ack_free(struct feed_ack *a)
{
    lws_dll2_remove(&a->batch_node);
    if (a->s)
        lws_dll2_remove(&a->session_node);
    free(a);
}

/* Tells every sender of the batch how it ended. */
static void feed_answer(struct server *srv, int rc)
{
    struct feed *f = srv->feed;
    while (f->acks.head) {
        struct feed_ack *a = lws_container_of(f->acks.head, struct feed_ack, batch_node);
        struct session *s = a->s;
        int64_t id = a->id, ts = a->ts;
        char cmid[sizeof a->cmid];
        memcpy(cmid, a->cmid, sizeof cmid);
        int has_cmid = a->has_cmid;
        feed_ack_free(a);
        if (s)
            s->ops->posted(s, has_cmid ? cmid : NULL, rc, id, ts);
    }
}

static void feed_batch_end(struct server *srv, int rc)
{
    struct feed *f = srv->feed;
    lws_sul_cancel(&f->flush_sul);
    if (rc == STORE_OK) {
        rc = store_batch_commit(srv->store);
        if (rc != STORE_OK)
            store_rollback(srv->store);
    } else {
        store_batch_rollback(srv->store);
    }
    if (rc == STORE_OK)
        feed_publish(srv);
    else
        feed_drop_pending(f);
    feed_answer(srv, rc);
}

void feed_flush(struct server *srv)
{
    if (store_batch_open(srv->store))
        feed_batch_end(srv, STORE_OK);
}

static void feed_flush_store(void *arg)
{
    feed_flush(arg);
}

static void feed_flush_timer(lws_sorted_usec_list_t *sul)
{
    struct feed *f = lws_container_of(sul, struct feed, flush_sul);
    feed_flush(f->srv);
}

static int feed_batch_join(struct server *srv)
{
    if (store_batch_open(srv->store))
        return STORE_OK;
    int rc = store_batch_begin(srv->store);
    if (rc == STORE_OK && !srv->feed->turn_end)   /* the next loop turn */
        lws_sul_schedule(srv->ctx, 0, &srv->feed->flush_sul, feed_flush_timer, 1);
    return rc;
}

static struct feed_ack *feed_ack_new(struct session *s, const char *cmid)
{
    struct feed_ack *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->s = s;
    if (cmid) {
        a->has_cmid = 1;
        snprintf(a->cmid, sizeof a->cmid, "%s", cmid);
    }
    return a;
}

int feed_post_chat(struct server *srv, struct session *s, const char *room,
                   const char *body, const char *client_msg_id)
{
    char *payload = proto_chat_payload(room, s->user, body);
    struct feed_ack *a = feed_ack_new(s, client_msg_id);
    if (!payload || !a || feed_batch_join(srv) != STORE_OK) {
        free(payload);
        free(a);
        return -1;
    }
    struct store_new_event ev = {
        .type = "chat", .recipient_id = 0, .sender_id = s->user_id,
        .client_msg_id = client_msg_id, .payload = payload, .ts_ms = now_ms(),
    };
    int created = 0;
    lws_dll2_add_tail(&a->batch_node, &srv->feed->acks);
    lws_dll2_add_tail(&a->session_node, &s->acks);
    int rc = store_event_append(srv->store, &ev, &a->id, &a->ts, &created);
    if (rc == STORE_OK && created)
        feed_keep_pending(srv->feed, &ev, a->id, a->ts);
    free(payload);
    if (rc != STORE_OK)           /* the batch may be broken: its senders retry */
        feed_batch_end(srv, rc);
    else if (srv->feed->acks.count >= FEED_BATCH_MAX)
        feed_flush(srv);
    return 0;
}

void feed_forget_session(struct session *s)
{
    while (s->acks.head) {
        struct feed_ack *a = lws_container_of(s->acks.head, struct feed_ack, session_node);
        lws_dll2_remove(&a->session_node);
        a->s = NULL;
    }
}

/* ---- notifications from other instances ---- */

static void feed_listen_timer(lws_sorted_usec_list_t *sul);

static void feed_listen(struct server *srv)
{
    struct feed *f = srv->feed;
    int fd = store_notify_fd(srv->store);
    lws_sock_file_fd_type u;
    /* lws closes what it adopts, the store closes its own: give lws a copy. */
    u.filefd = fd >= 0 ? dup(fd) : -1;
    struct lws_vhost *vh = lws_get_vhost_by_name(srv->ctx, "chatd");
    if (u.filefd >= 0 && vh)
        f->listen_wsi = lws_adopt_descriptor_vhost(vh, LWS_ADOPT_RAW_FILE_DESC, u,
                                                   PROTO_WS_SUBPROTOCOL, NULL);
    if (!f->listen_wsi) {
        if (u.filefd >= 0)
            close(u.filefd);
        fprintf(stderr, "chatd: feed: no notifications from the store; retrying in 1 s\n");
        lws_sul_schedule(srv->ctx, 0, &f->listen_sul, feed_listen_timer, FEED_RELISTEN_US);
        return;
    }
    feed_catch_up(srv);           /* what was committed while we were not listening */
}

static void feed_listen_timer(lws_sorted_usec_list_t *sul)
{
    struct feed *f = lws_container_of(sul, struct feed, listen_sul);
    feed_listen(f->srv);
}

int feed_on_notify(struct server *srv, struct lws *wsi, enum lws_callback_reasons reason)
{
    struct feed *f = srv->feed;
    if (reason == LWS_CALLBACK_RAW_RX_FILE) {
        int n = store_notify_drain(srv->store);
        if (n > 0)
            feed_catch_up(srv);
        return n < 0 ? -1 : 0;    /* lost: close it; CLOSE_FILE listens again */
    }
    if (reason == LWS_CALLBACK_RAW_CLOSE_FILE && wsi == f->listen_wsi) {
        f->listen_wsi = NULL;
        if (!srv->stopping)
            lws_sul_schedule(srv->ctx, 0, &f->listen_sul, feed_listen_timer, FEED_RELISTEN_US);
    }
    return 0;
}

void feed_start(struct server *srv, int turn_end)
{
    struct feed *f = srv->feed;
    f->srv = srv;
    f->turn_end = turn_end;
    store_set_batch_flush(srv->store, feed_flush_store, srv);
    if (store_is_shared(srv->store))
        feed_listen(srv);
}

void feed_stop(struct server *srv)
{
    struct feed *f = srv->feed;
    feed_flush(srv);
    f->turn_end = 0;
    lws_sul_cancel(&f->listen_sul);
    store_set_batch_flush(srv->store, NULL, NULL);
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

int feed_next_frame(struct server *srv, int64_t user_id, int64_t after,
                    int64_t *id, const unsigned char **frame, size_t *len)
{
    const struct feed *f = srv->feed;
    if (after < f->lo)
        return -1;
    for (size_t i = feed_ring_find(f, after); i < f->count; i++) {
        const struct feed_entry *e = &f->ring[(f->head + i) % FEED_RING];
        if (e->recipient_id == 0 || e->recipient_id == user_id) {
            *id = e->id;
            *frame = e->ws_frame;
            *len = e->ws_len;
            return 1;
        }
    }
    return 0;
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
