/* feed.c — the event feed: appending events (chat sends grouped into one
 * transaction per event-loop turn, bank alerts inside the bank's own
 * transactions), publishing them once committed, reading a user's events
 * after a cursor, and waking the connections that wait for them (through
 * their session's ops: the feed names no transport).
 *
 * Every store call here is asynchronous (store.h): a completion comes in
 * a later loop turn (SQLite's writer thread, PostgreSQL's connection), or
 * inside the call when the store refuses it, so state is set up before
 * each call and nothing the call may have freed is touched after it.
 *
 * Group commit: chat sends of one loop turn are kept in memory (a
 * "batch", struct feed_txn with its senders' acks) and stored at the end
 * of the turn (main.c's turn end calls feed_flush right after the turn's
 * I/O callbacks), or earlier at FEED_BATCH_MAX sends, in ONE store call
 * (STORE_CALL_EVENTS_APPEND_MANY: one transaction; on PostgreSQL one
 * statement, so its ids, which hold back every instance's reads above them
 * until it commits, are taken for no client round trip). Without that
 * turn end (tests), a timer does it. Each sender is answered only in that
 * call's completion: an acknowledged message is durable, and one fsync
 * serves the whole turn.
 * A send arriving while a batch is being stored goes into the next batch,
 * queued behind it; completions come in call order, so acks and
 * publication stay in id order. A failed batch answers every sender with
 * its error (STORE_UNAVAILABLE: retry; nothing of it is stored). At most
 * FEED_WAITING_MAX sends wait; beyond that a send is answered
 * STORE_UNAVAILABLE at once.
 *
 * The feed keeps the most recent events in memory: all events with
 * lo < id <= hi are in the ring, and a reader whose cursor is >= lo is served
 * from memory instead of the store (what makes fan-out to many subscribers
 * cheap). Events enter the ring only after their transaction committed, and
 * in id order, so every transport delivers the same stored sequence. A
 * reader further behind gets its rows from a store read kept for it (a
 * struct feed_read ticket, which a closing connection disowns).
 *
 * On a shared store (PostgreSQL, several instances) other instances commit
 * events too: the ring is then filled from the store (events_all_after
 * from hi, one read at a time), after our own commits and whenever the
 * store notifies that any instance committed, and again a while after the
 * last read. The store makes ids visible in id order (a read stops at its
 * watermark, below which no appending transaction is still open), so
 * reading "after hi" never skips an event that commits later, and our own
 * commits reach the ring, and their senders' acks go, only in that order
 * with every instance's.
 *
 * Shutdown: feed_free while store calls are still out leaves the struct
 * (marked freed) for their completions, which only free what they hold. */
#include "feed.h"
#include "clock.h"
#include "rooms.h"
#include "server.h"
#include "store.h"
#include "sweep.h"
#include "ws_frame.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FEED_RING        16384    /* recent events kept in memory */
#define FEED_BATCH_MAX   512      /* sends in one group commit */
#define FEED_WAITING_MAX STORE_ASYNC_MAX_REQUESTS  /* sends waiting for commits */
#define FEED_PAGE        512      /* events read per catch-up query */
#define FEED_RELISTEN_US (1 * LWS_USEC_PER_SEC)
#define FEED_RETRY_US    (1 * LWS_USEC_PER_SEC)
#define FEED_HELD_US     (10 * LWS_US_PER_MS)   /* own commits not readable yet */
#define FEED_RECHECK_US  (1 * LWS_USEC_PER_SEC)  /* a read no notification asked for */

struct feed_entry {
    int64_t id, recipient_id;
    int64_t room_id;              /* 0: private to recipient_id */
    int64_t sender_id;            /* a member event's user */
    json_t *event;
    unsigned char *ws_frame;      /* whole text frame of {"op":"event",...} */
    size_t ws_len;
};

/* What a transaction appended, ready for the ring once it commits. */
struct feed_pending {
    struct feed_entry *e;
    size_t n, cap;
    int lost;                     /* an appended event could not be kept */
    int64_t max_id;               /* highest id appended */
};

struct feed_txn {
    struct feed *f;
    int64_t txn;                  /* the store's handle */
    int rc;                       /* first failure inside it */
    int ended, commit;
    int batch;                    /* the group commit of chat sends */
    lws_dll2_owner_t acks;        /* a batch's senders, in call order */
    struct feed_pending pend;
    store_done_fn done;           /* feed_txn_end's */
    void *arg;
    lws_dll2_t unseen_node;       /* committed, its events not in the ring yet */
    int64_t unseen_ms;            /* since when (sweep_mono_ms) */
};

/* A chat send waiting for the commit of its batch. */
struct feed_ack {
    lws_dll2_t txn_node;          /* in its batch's acks */
    lws_dll2_t session_node;      /* in session->acks */
    struct session *s;            /* NULL once the session is gone */
    struct feed_txn *t;
    char *payload;                /* until its batch is stored: the text it stores */
    json_t *payload_obj;          /* and the same as an object, for the ring */
    int64_t room_id;              /* the room it is sent to */
    int64_t sender_id, sent_ms;   /* the event, for the batch's one call */
    int64_t id, ts;
    int rc;                       /* its append's */
    int has_cmid;
    char cmid[PROTO_CLIENT_MSG_ID_MAX + 1];
};

/* An append of feed_txn_append on its way. */
struct feed_call {
    struct feed_txn *t;
    int64_t recipient_id;
    store_done_fn done;
    void *arg;
    char *type, *payload;
};

/* A session's read of events from the store: its ticket. */
struct feed_read {
    struct session *s;            /* NULL once the session is gone */
    int64_t after;
    int busy;                     /* the read is on its way */
    int in_call;                  /* inside store_call_async: no wake */
    int rc;
    json_t *rows;
};

struct feed {
    struct server *srv;
    struct store *st;
    int shared;                   /* store_is_shared */
    struct feed_entry ring[FEED_RING];
    size_t head, count;           /* oldest at head */
    int64_t lo;                   /* every event id > lo is in the ring */
    struct feed_txn *open;        /* the batch taking sends now */
    struct feed_txn *storing;     /* the batch on its way to the store: one at
                                   * a time, so a failed one can fail the next
                                   * before it is sent (order kept per sender) */
    int waiting;                  /* sends not answered yet */
    int live;                     /* transactions and catch-up reads out */
    int freed;                    /* feed_free came: completions only free */
    int catching, catch_again;
    lws_dll2_owner_t unseen;      /* shared store: committed transactions
                                   * answered once the ring has their events */
    lws_sorted_usec_list_t flush_sul;
    int turn_end;                 /* the loop's turn end ends the batch (feed_start) */
    struct lws *listen_wsi;       /* the store's notification socket */
    lws_sorted_usec_list_t listen_sul;
    lws_sorted_usec_list_t catch_sul;
};

struct feed *feed_new(struct store *st)
{
    struct feed *f = calloc(1, sizeof *f);
    if (f && store_last_event_id(st, &f->lo) != STORE_OK) {
        free(f);
        return NULL;
    }
    if (f) {
        f->st = st;
        f->shared = store_is_shared(st);
    }
    return f;
}

/* The WebSocket frame of an event, serialized and framed once for every
 * subscriber (ws_out.c writes it as it is). */
static struct feed_entry feed_entry_new(const struct store_event *ev, json_t *event)
{
    struct feed_entry e = { ev->id, ev->recipient_id, ev->room_id, ev->sender_id, event, NULL, 0 };
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

static void feed_pending_drop(struct feed_pending *p)
{
    for (size_t i = 0; i < p->n; i++)
        feed_entry_free(&p->e[i]);
    free(p->e);
    memset(p, 0, sizeof *p);
}

static void feed_ring_clear(struct feed *f)
{
    for (size_t i = 0; i < f->count; i++)
        feed_entry_free(&f->ring[(f->head + i) % FEED_RING]);
    f->head = f->count = 0;
}

/* One store call (or transaction) of the feed's came back. */
static void feed_unref(struct feed *f)
{
    if (--f->live == 0 && f->freed)
        free(f);
}

void feed_free(struct feed *f)
{
    if (!f)
        return;
    feed_ring_clear(f);
    f->freed = 1;
    f->live++;
    feed_unref(f);
}

/* ---- who listens ---- */

static int64_t feed_hi(const struct feed *f);

void feed_subscribe(struct session *s)
{
    if (lws_dll2_is_detached(&s->sub_node))
        lws_dll2_add_tail(&s->sub_node, &s->srv->subscribers);
    if (s->srv->rooms && s->user_id)   /* by its user once it has one */
        rooms_session_add(s->srv->rooms, s);
}

int64_t feed_newest(struct server *srv)
{
    return feed_hi(srv->feed);
}

int64_t feed_held_ms(struct server *srv)
{
    struct feed *f = srv->feed;
    if (!f || !f->unseen.head)
        return 0;
    const struct feed_txn *t = lws_container_of(f->unseen.head, struct feed_txn, unseen_node);
    return sweep_mono_ms() - t->unseen_ms;
}

void feed_unsubscribe(struct session *s)
{
    if (s->srv && s->sub_node.owner)
        lws_dll2_remove(&s->sub_node);
    if (s->srv && s->srv->rooms)
        rooms_session_remove(s->srv->rooms, s);
}

/* s's hint learns that e woke it (e NULL: anything did, the hint is void). */
static void feed_hint_woken(struct feed_hint *h, const struct feed_entry *e)
{
    if (!e || (h->n && e->id < h->woken[h->n - 1]))   /* wakes come in id order */
        h->seen = 0;
    else if (!h->seen || e->id <= h->seen || h->more || (h->n && e->id == h->woken[h->n - 1]))
        return;
    else if (h->n < FEED_HINT_MAX)
        h->woken[h->n++] = e->id;
    else
        h->more = 1;
}

/* s is woken for e (arg), or for anything (NULL). */
static void feed_wake_one(void *arg, struct session *s)
{
    feed_hint_woken(&s->hint, arg);
    /* an ended session is told nothing more, even in the turn it ended */
    if (!s->ended)
        s->ops->wake(s);
}

/* Everyone, for something not said (a general event, a reset ring). */
void feed_wake_all(struct server *srv)
{
    lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, srv->subscribers.head) {
        feed_wake_one(NULL, lws_container_of(d, struct session, sub_node));
    } lws_end_foreach_dll_safe(d, d1);
}

/* Wakes the listeners of one event: its recipient's sessions, or its
 * room's online members' (and a member event's user, who may just have
 * left), through the room index: the cost is theirs, not every
 * connection's. Not "notify": that is the store's word for another
 * instance's commits (feed_on_notify). */
static void feed_wake(struct server *srv, const struct feed_entry *e)
{
    if (!srv->rooms) {
        feed_wake_all(srv);
        return;
    }
    void *arg = (void *)e;        /* feed_wake_one only reads it */
    if (e->recipient_id) {
        rooms_each_user_session(srv->rooms, e->recipient_id, feed_wake_one, arg);
        return;
    }
    rooms_each_session(srv->rooms, e->room_id, feed_wake_one, arg);
    if (e->sender_id && e->room_id != STORE_GENERAL_ROOM_ID)
        rooms_each_user_session(srv->rooms, e->sender_id, feed_wake_one, arg);
}

/* Wakes the listeners of the newest n ring entries: everyone once if one
 * of them is general's, else each event's. */
static void feed_wake_newest(struct feed *f, size_t n)
{
    if (!f->srv)
        return;
    if (n > f->count) {           /* more than the ring holds */
        feed_wake_all(f->srv);
        return;
    }
    size_t first = f->count - n;
    for (size_t i = first; i < f->count; i++) {
        const struct feed_entry *e = &f->ring[(f->head + i) % FEED_RING];
        if (!e->recipient_id && (e->room_id == 0 || e->room_id == STORE_GENERAL_ROOM_ID)) {
            feed_wake_all(f->srv);
            return;
        }
    }
    for (size_t i = first; i < f->count; i++)
        feed_wake(f->srv, &f->ring[(f->head + i) % FEED_RING]);
}

/* May user_id see e? Its own alert, or an event of a room while a member. */
static int feed_visible(const struct feed *f, const struct feed_entry *e, int64_t user_id)
{
    if (e->recipient_id)
        return e->recipient_id == user_id;
    return !f->srv || !f->srv->rooms || rooms_visible(f->srv->rooms, user_id, e->room_id, e->id);
}

/* A member event tells the room index, as it enters the ring. */
static void feed_learn(struct feed *f, const struct feed_entry *e)
{
    if (!f->srv || !f->srv->rooms || !e->room_id || !e->event)
        return;
    const char *type = json_string_value(json_object_get(e->event, "type"));
    const char *room = json_string_value(json_object_get(e->event, "room"));
    const char *action = json_string_value(json_object_get(e->event, "action"));
    if (type && room && action && !strcmp(type, "member"))
        rooms_apply_member(f->srv->rooms, e->room_id, room, e->sender_id, e->id,
                           !strcmp(action, "join"));
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
    feed_learn(f, &f->ring[(f->head + f->count - 1) % FEED_RING]);
}

/* Something could not be cached, or came out of order: forget the ring up
 * to the highest id known committed; readers behind it use the store. */
static void feed_ring_reset(struct feed *f, int64_t committed)
{
    int64_t hi = feed_hi(f);
    feed_ring_clear(f);
    f->lo = committed > hi ? committed : hi;
    if (f->srv)
        feed_wake_all(f->srv);
}

static void feed_catch_up(struct feed *f);

/* The committed events enter the ring, then their listeners are woken. */
static void feed_publish(struct feed *f, struct feed_pending *p)
{
    if (f->shared) {
        feed_catch_up(f);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < p->n && !p->lost; i++) {
        if (p->e[i].id <= feed_hi(f)) {
            p->lost = 1;
            break;
        }
        feed_ring_push(f, p->e[i]);
        p->e[i].event = NULL;
        p->e[i].ws_frame = NULL;
        n++;
    }
    if (p->lost)
        feed_ring_reset(f, p->max_id);
    else if (n)
        feed_wake_newest(f, n);
}

/* Keeps an appended event, ready for the ring, until its transaction
 * commits (feed_publish) or not (feed_pending_drop). A shared store's
 * events come from the store after the commit: only the id is kept.
 * payload_obj, when the caller still holds the payload as an object, saves
 * parsing payload (its text) again. */
static void feed_keep(struct feed_txn *t, const char *type, const struct store_event *se,
                      const char *payload, json_t *payload_obj)
{
    int64_t id = se->id, ts = se->ts_ms;
    struct feed_pending *p = &t->pend;
    if (id > p->max_id)
        p->max_id = id;
    if (t->f->shared || p->lost)
        return;
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 16;
        struct feed_entry *e = realloc(p->e, cap * sizeof *e);
        if (!e) {
            p->lost = 1;
            return;
        }
        p->e = e;
        p->cap = cap;
    }
    json_t *ev = payload_obj ? proto_event_of(id, type, ts, payload_obj)
                             : proto_event_new(id, type, ts, payload);
    struct feed_entry fe = ev ? feed_entry_new(se, ev) : (struct feed_entry){ 0 };
    if (!fe.event)
        p->lost = 1;
    else
        p->e[p->n++] = fe;
}

/* ---- catching up from a shared store ---- */

static void feed_catch_timer(lws_sorted_usec_list_t *sul)
{
    feed_catch_up(lws_container_of(sul, struct feed, catch_sul));
}

/* The rows of one page enter the ring; 1 if they all did. */
static int feed_take(struct feed *f, const struct store_reply *reply)
{
    size_t added = 0;
    int ok = 1;
    for (int i = 0; i < reply->n; i++) {
        const struct store_event *ev = &reply->events[i];
        if (ev->id <= feed_hi(f))    /* already in the ring: keep the order strict */
            continue;
        json_t *e = proto_event_new(ev->id, ev->type, ev->ts_ms, ev->payload);
        struct feed_entry fe = e ? feed_entry_new(ev, e) : (struct feed_entry){ 0 };
        if (!fe.event) {
            ok = 0;
            break;
        }
        feed_ring_push(f, fe);
        added++;
    }
    if (added)
        feed_wake_newest(f, added);
    return ok;
}

static void feed_answer_seen(struct feed *f, int force);

static void feed_caught(void *arg, const struct store_reply *reply)
{
    struct feed *f = arg;
    f->catching = 0;
    if (f->freed) {
        feed_answer_seen(f, 1);
        feed_unref(f);
        return;
    }
    int ok = reply->rc == STORE_OK && feed_take(f, reply);
    /* Committed transactions wait for their events in the ring, but not for
     * a database that stopped answering: their acks are true, and the
     * events follow once the catch-up gets through. */
    feed_answer_seen(f, !ok);
    int again = f->catch_again || (ok && reply->n == FEED_PAGE);
    feed_unref(f);
    if (!ok) {
        fprintf(stderr, "chatd: feed: catching up from the store failed; retrying in 1 s\n");
        if (f->srv && !f->srv->stopping)
            lws_sul_schedule(f->srv->ctx, 0, &f->catch_sul, feed_catch_timer, FEED_RETRY_US);
    } else if (again) {
        feed_catch_up(f);
    } else if (f->srv && !f->srv->stopping) {
        /* The read stops at the store's watermark: events committed above
         * a transaction still open elsewhere come once it ends, which its
         * commit's notification says; a rollback or a dead instance says
         * nothing, so read again anyway: soon while our own senders wait,
         * else within a second. */
        lws_sul_schedule(f->srv->ctx, 0, &f->catch_sul, feed_catch_timer,
                         f->unseen.head ? FEED_HELD_US : FEED_RECHECK_US);
    }
}

/* Shared store: reads into the ring every event committed after hi, by any
 * instance, and wakes their listeners; one read at a time, another after
 * it if asked meanwhile. */
static void feed_catch_up(struct feed *f)
{
    if (f->catching) {
        f->catch_again = 1;
        return;
    }
    f->catching = 1;
    f->catch_again = 0;
    f->live++;
    struct store_args a = { .after = feed_hi(f), .limit = FEED_PAGE };
    store_call_async(f->st, 0, STORE_CALL_EVENTS_ALL_AFTER, &a, feed_caught, f);
}

/* ---- transactions ---- */

static void feed_txn_begun(void *arg, const struct store_reply *reply)
{
    struct feed_txn *t = arg;
    if (reply->rc != STORE_OK && t->rc == STORE_OK)
        t->rc = reply->rc;
}

static struct feed_txn *feed_txn_new(struct feed *f, int batch)
{
    struct feed_txn *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->f = f;
    t->batch = batch;
    f->live++;
    if (!batch)                   /* a batch is one call at its end */
        t->txn = store_txn_begin_async(f->st, feed_txn_begun, t);
    return t;
}

struct feed_txn *feed_txn_begin(struct server *srv)
{
    srv->feed->srv = srv;
    return feed_txn_new(srv->feed, 0);
}

int64_t feed_txn_handle(const struct feed_txn *t)
{
    return t->txn;
}

static void feed_ack_free(struct feed_ack *a)
{
    lws_dll2_remove(&a->txn_node);
    if (a->s)
        lws_dll2_remove(&a->session_node);
    free(a->payload);
    json_decref(a->payload_obj);
    free(a);
}

/* Tells every sender of the batch how it ended (rc: the transaction's). */
static void feed_answer(struct feed_txn *t, int rc)
{
    struct feed *f = t->f;
    while (t->acks.head) {
        struct feed_ack *a = lws_container_of(t->acks.head, struct feed_ack, txn_node);
        struct session *s = f->freed ? NULL : a->s;
        int mine = a->rc != STORE_OK ? a->rc : t->rc != STORE_OK ? STORE_UNAVAILABLE : rc;
        int64_t id = a->id, ts = a->ts;
        char cmid[sizeof a->cmid];
        memcpy(cmid, a->cmid, sizeof cmid);
        int has_cmid = a->has_cmid;
        feed_ack_free(a);
        f->waiting--;
        if (s && mine != STORE_OK && !s->send_blocked) {
            s->send_blocked = 1;
            snprintf(s->send_blocked_cmid, sizeof s->send_blocked_cmid, "%s", has_cmid ? cmid : "");
        }
        if (s)
            s->ops->posted(s, has_cmid ? cmid : NULL, mine, id, ts);
    }
}

/* Answers the senders and the caller of feed_txn_end, and frees t. */
static void feed_txn_finish(struct feed_txn *t, int rc)
{
    struct feed *f = t->f;
    struct store_reply r = { .rc = rc };
    feed_pending_drop(&t->pend);
    feed_answer(t, rc != STORE_OK ? rc : t->commit ? STORE_OK : STORE_UNAVAILABLE);
    if (t->done)
        t->done(t->arg, &r);
    free(t);
    feed_unref(f);
}

/* Shared store: the committed transactions whose events the ring now has
 * (all of them if force: the feed stops) are answered, in commit order. */
static void feed_answer_seen(struct feed *f, int force)
{
    while (f->unseen.head) {
        struct feed_txn *t = lws_container_of(f->unseen.head, struct feed_txn, unseen_node);
        if (!force && t->pend.max_id > feed_hi(f))
            return;
        lws_dll2_remove(&t->unseen_node);
        feed_txn_finish(t, STORE_OK);
    }
}

/* On a shared store a commit's events reach the ring by the catch-up read
 * (with those of other instances committed before them, which it may not
 * have yet): its senders are answered once they are there, so whoever was
 * acknowledged finds the message in the very next read of the feed. */
static void feed_txn_ended(void *arg, const struct store_reply *reply)
{
    struct feed_txn *t = arg;
    struct feed *f = t->f;
    int rc = reply->rc;
    if (t->commit && t->rc != STORE_OK)
        rc = t->rc;
    if (!f->freed && t->commit && rc == STORE_OK && f->shared && t->pend.max_id > feed_hi(f)) {
        t->unseen_ms = sweep_mono_ms();
        lws_dll2_add_tail(&t->unseen_node, &f->unseen);
        feed_catch_up(f);
        return;
    }
    if (!f->freed && t->commit && rc == STORE_OK)
        feed_publish(f, &t->pend);
    feed_txn_finish(t, rc);
}

/* The batch gathered while the previous one was being stored goes now,
 * or fails with it (its senders retry, in their order). */
static void feed_batch_next(struct feed *f, int failed)
{
    if (f->freed || !f->open || f->storing)
        return;
    if (failed) {
        struct feed_txn *t = f->open;
        f->open = NULL;
        lws_sul_cancel(&f->flush_sul);
        feed_txn_end(t, 0, NULL, NULL);
        return;
    }
    if (f->srv)
        feed_flush(f->srv);
}

/* The batch's one call came back: each sender's id, the created events
 * kept for the ring; then as any transaction's end. */
static void feed_batch_stored(void *arg, const struct store_reply *reply)
{
    struct feed_txn *t = arg;
    struct feed *f = t->f;
    int i = 0;
    if (f->storing == t)
        f->storing = NULL;
    for (lws_dll2_t *d = t->acks.head; d; d = d->next, i++) {
        struct feed_ack *a = lws_container_of(d, struct feed_ack, txn_node);
        a->rc = reply->rc;
        if (reply->rc == STORE_OK && i < reply->n) {
            a->id = reply->ids[i];
            a->ts = reply->ts_each[i];
            struct store_event se = { .id = a->id, .ts_ms = a->ts, .room_id = a->room_id,
                                      .sender_id = a->sender_id };
            if (reply->created_each[i])
                feed_keep(t, "chat", &se, a->payload, a->payload_obj);
        }
        free(a->payload);
        a->payload = NULL;
        json_decref(a->payload_obj);
        a->payload_obj = NULL;
    }
    int failed = reply->rc != STORE_OK && t->commit;
    feed_txn_ended(t, reply);
    feed_batch_next(f, failed);
}

/* Stores a batch's chat events in one call, committed on its own. */
static void feed_batch_store(struct feed_txn *t)
{
    size_t n = t->acks.count, i = 0;
    struct store_new_event *evs = calloc(n ? n : 1, sizeof *evs);
    if (!evs || !t->commit || n == 0) {
        struct store_reply r = { .rc = !t->commit ? STORE_OK : evs ? STORE_OK : STORE_ERROR };
        free(evs);
        feed_batch_stored(t, &r);
        return;
    }
    for (lws_dll2_t *d = t->acks.head; d; d = d->next, i++) {
        struct feed_ack *a = lws_container_of(d, struct feed_ack, txn_node);
        evs[i] = (struct store_new_event){
            .type = "chat", .recipient_id = 0, .room_id = a->room_id, .sender_id = a->sender_id,
            .client_msg_id = a->has_cmid ? a->cmid : NULL, .payload = a->payload, .ts_ms = a->sent_ms,
        };
    }
    struct store_args args = { .evs = evs, .nev = (int)n };
    store_call_async(t->f->st, 0, STORE_CALL_EVENTS_APPEND_MANY, &args, feed_batch_stored, t);
    free(evs);
}

void feed_txn_end(struct feed_txn *t, int commit, store_done_fn done, void *arg)
{
    struct feed *f = t->f;
    if (f->open == t) {
        f->open = NULL;
        lws_sul_cancel(&f->flush_sul);
    }
    t->ended = 1;
    t->commit = commit;
    t->done = done;
    t->arg = arg;
    if (t->batch)
        feed_batch_store(t);
    else
        store_txn_end_async(f->st, t->txn, commit && t->rc == STORE_OK, feed_txn_ended, t);
}

static void feed_appended(void *arg, const struct store_reply *reply)
{
    struct feed_call *c = arg;
    struct feed_txn *t = c->t;
    struct store_event se = { .id = reply->id, .ts_ms = reply->ts_ms, .recipient_id = c->recipient_id };
    if (reply->rc == STORE_OK && reply->created)
        feed_keep(t, c->type, &se, c->payload, NULL);
    else if (reply->rc != STORE_OK && t->rc == STORE_OK)
        t->rc = reply->rc;
    store_done_fn done = c->done;
    void *done_arg = c->arg;
    free(c->type);
    free(c->payload);
    free(c);
    if (done)
        done(done_arg, reply);
}

void feed_txn_append(struct feed_txn *t, const struct store_new_event *ev,
                     store_done_fn done, void *arg)
{
    struct feed_call *c = calloc(1, sizeof *c);
    if (c) {
        c->type = strdup(ev->type);
        c->payload = strdup(ev->payload);
    }
    if (!c || !c->type || !c->payload) {
        struct store_reply r = { .rc = STORE_ERROR };
        if (c) {
            free(c->type);
            free(c->payload);
        }
        free(c);
        if (t->rc == STORE_OK)
            t->rc = STORE_ERROR;
        done(arg, &r);
        return;
    }
    c->t = t;
    c->recipient_id = ev->recipient_id;
    c->done = done;
    c->arg = arg;
    struct store_args a = { .ev = ev };
    store_call_async(t->f->st, t->txn, STORE_CALL_EVENT_APPEND, &a, feed_appended, c);
}

/* ---- room changes (rooms.h): the store's call makes them, with their
 * events, in one transaction; the events are published as a commit's ---- */

struct feed_room_call {
    struct feed_txn *t;
    store_done_fn done;
    void *arg;
    struct store_reply saved;     /* what the caller reads, but events */
};

static void feed_room_answered(void *arg, const struct store_reply *reply)
{
    struct feed_room_call *c = arg;
    struct store_reply r = c->saved;
    r.rc = reply->rc != STORE_OK ? reply->rc : c->saved.rc;
    store_done_fn done = c->done;
    void *done_arg = c->arg;
    free(c);
    done(done_arg, &r);
}

static void feed_room_stored(void *arg, const struct store_reply *reply)
{
    struct feed_room_call *c = arg;
    struct feed_txn *t = c->t;
    for (int i = 0; reply->rc == STORE_OK && i < reply->n; i++)
        feed_keep(t, reply->events[i].type, &reply->events[i], reply->events[i].payload, NULL);
    c->saved.rc = reply->rc;
    c->saved.room_err = reply->room_err;
    c->saved.room_id = reply->room_id;
    c->saved.id = reply->id;
    t->done = feed_room_answered;
    t->arg = c;
    struct store_reply end = { .rc = reply->rc == STORE_CONSTRAINT ? STORE_OK : reply->rc };
    feed_txn_ended(t, &end);
}

void feed_room_call(struct server *srv, enum store_call_kind kind, const struct store_args *args,
                    store_done_fn done, void *arg)
{
    struct feed *f = srv->feed;
    f->srv = srv;
    struct feed_room_call *c = calloc(1, sizeof *c);
    struct feed_txn *t = c ? calloc(1, sizeof *t) : NULL;
    if (!t) {
        struct store_reply r = { .rc = STORE_ERROR };
        free(c);
        done(arg, &r);
        return;
    }
    t->f = f;
    t->commit = t->ended = 1;
    f->live++;
    c->t = t;
    c->done = done;
    c->arg = arg;
    store_call_async(f->st, 0, kind, args, feed_room_stored, c);
}

/* ---- group commit of chat sends ---- */

void feed_flush(struct server *srv)
{
    struct feed *f = srv->feed;
    if (!f->open || f->storing)   /* it goes when the one on its way is in */
        return;
    f->storing = f->open;
    feed_txn_end(f->open, 1, NULL, NULL);
}

static void feed_flush_timer(lws_sorted_usec_list_t *sul)
{
    struct feed *f = lws_container_of(sul, struct feed, flush_sul);
    feed_flush(f->srv);
}

/* The batch taking this turn's sends, begun at its first. */
static struct feed_txn *feed_batch(struct server *srv)
{
    struct feed *f = srv->feed;
    if (f->open)
        return f->open;
    f->open = feed_txn_new(f, 1);
    if (f->open && !f->turn_end)   /* the next loop turn */
        lws_sul_schedule(srv->ctx, 0, &f->flush_sul, feed_flush_timer, 1);
    return f->open;
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

int feed_post_chat(struct server *srv, struct session *s, int64_t room_id, const char *room,
                   const char *body, const char *client_msg_id)
{
    struct feed *f = srv->feed;
    f->srv = srv;
    if (s->send_blocked) {        /* after a refused send: that one first */
        if (client_msg_id && s->send_blocked_cmid[0] && strcmp(client_msg_id, s->send_blocked_cmid)) {
            s->ops->posted(s, client_msg_id, STORE_UNAVAILABLE, 0, 0);
            return 0;
        }
        s->send_blocked = 0;
    }
    if (f->waiting >= FEED_WAITING_MAX) {
        s->send_blocked = 1;
        snprintf(s->send_blocked_cmid, sizeof s->send_blocked_cmid, "%s", client_msg_id ? client_msg_id : "");
        s->ops->posted(s, client_msg_id, STORE_UNAVAILABLE, 0, 0);
        return 0;
    }
    struct feed_ack *a = feed_ack_new(s, client_msg_id);
    json_t *obj = a ? proto_chat_payload_new(room, s->user, body) : NULL;
    char *payload = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    struct feed_txn *t = payload ? feed_batch(srv) : NULL;
    if (!t) {
        free(payload);
        json_decref(obj);
        free(a);
        return -1;
    }
    a->t = t;
    a->payload = payload;
    a->payload_obj = obj;
    a->room_id = room_id;
    a->sender_id = s->user_id;
    a->sent_ms = now_ms();
    lws_dll2_add_tail(&a->txn_node, &t->acks);
    lws_dll2_add_tail(&a->session_node, &s->acks);
    f->waiting++;
    if (t->acks.count >= FEED_BATCH_MAX)
        feed_flush(srv);
    return 0;
}

/* The session's store read: disowned if on its way, else freed. */
static void feed_read_drop(struct session *s)
{
    struct feed_read *r = s->read;
    s->read = NULL;
    if (r && r->busy) {
        r->s = NULL;              /* its completion frees it */
    } else if (r) {
        json_decref(r->rows);
        free(r);
    }
}

void feed_forget_session(struct session *s)
{
    while (s->acks.head) {
        struct feed_ack *a = lws_container_of(s->acks.head, struct feed_ack, session_node);
        lws_dll2_remove(&a->session_node);
        a->s = NULL;
    }
    feed_read_drop(s);
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
    feed_catch_up(f);             /* what was committed while we were not listening */
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
            feed_catch_up(f);
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
    if (f->shared)
        feed_listen(srv);
}

void feed_stop(struct server *srv)
{
    struct feed *f = srv->feed;
    feed_flush(srv);
    f->turn_end = 0;
    lws_sul_cancel(&f->listen_sul);
    lws_sul_cancel(&f->catch_sul);
    feed_answer_seen(f, 1);       /* committed: true acks, even unseen */
}

/* ---- reading ---- */

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
        if (feed_visible(f, e, user_id)) {
            json_array_append(arr, e->event);
            limit--;
        }
    }
}

/* The entry with this id, if the ring has it. */
static const struct feed_entry *feed_ring_get(const struct feed *f, int64_t id)
{
    size_t i = feed_ring_find(f, id - 1);
    const struct feed_entry *e = i < f->count ? &f->ring[(f->head + i) % FEED_RING] : NULL;
    return e && e->id == id ? e : NULL;
}

/* The first of s's events after `after` that its hint names: every event
 * of s's rooms, alerts and general wakes s (feed_wake) as it enters the
 * ring, and looks happen only between wakes (in the loop's writable
 * callbacks), so an event after hint.seen that did not wake s is not for
 * s. NULL with *from: look on from there (the hint knows no more, or
 * nothing); NULL with *from -1: nothing for s in the ring. Without the hint a
 * connection in one of 100 busy rooms would test ~99 other rooms' events
 * for each of its deliveries. */
static const struct feed_entry *feed_hinted(const struct feed *f, const struct session *s,
                                            int64_t after, int64_t *from)
{
    const struct feed_hint *h = &s->hint;
    *from = after;
    if (!h->seen || after < h->cursor)
        return NULL;
    for (int i = 0; i < h->n; i++) {
        const struct feed_entry *e = h->woken[i] > after ? feed_ring_get(f, h->woken[i]) : NULL;
        if (e && feed_visible(f, e, s->user_id))
            return e;
    }
    if (!h->more)
        *from = -1;
    else if (h->woken[h->n - 1] > after)
        *from = h->woken[h->n - 1];
    return NULL;
}

int feed_next_frame(struct server *srv, struct session *s, int64_t after,
                    int64_t *id, const unsigned char **frame, size_t *len)
{
    const struct feed *f = srv->feed;
    if (after < f->lo)
        return -1;
    int64_t from;
    const struct feed_entry *e = feed_hinted(f, s, after, &from);
    for (size_t i = from < 0 ? f->count : feed_ring_find(f, from); !e && i < f->count; i++) {
        const struct feed_entry *x = &f->ring[(f->head + i) % FEED_RING];
        if (feed_visible(f, x, s->user_id))
            e = x;
    }
    if (e) {
        *id = e->id;
        *frame = e->ws_frame;
        *len = e->ws_len;
        return 1;
    }
    /* nothing for s up to the newest, by the look or by the hint */
    s->hint = (struct feed_hint){ .seen = feed_hi(f), .cursor = after };
    return 0;
}

/* The rows of a session's store read, kept for it until it asks again. */
static void feed_read_done(void *arg, const struct store_reply *reply)
{
    struct feed_read *r = arg;
    r->busy = 0;
    if (!r->s) {                  /* the session went away meanwhile */
        free(r);
        return;
    }
    r->rc = reply->rc;
    r->rows = reply->rc == STORE_OK ? json_array() : NULL;
    for (int i = 0; r->rows && i < reply->n; i++) {
        const struct store_event *ev = &reply->events[i];
        if (json_array_append_new(r->rows, proto_event_new(ev->id, ev->type, ev->ts_ms, ev->payload)) < 0)
            break;
    }
    if (reply->rc == STORE_OK && (!r->rows || json_array_size(r->rows) < (size_t)reply->n)) {
        json_decref(r->rows);
        r->rows = NULL;
        r->rc = STORE_ERROR;
    }
    if (!r->in_call)
        r->s->ops->wake(r->s);
}

/* A finished read for `after`: its rows handed over. */
static int feed_read_take(struct session *s, json_t **events)
{
    struct feed_read *r = s->read;
    int rc = r->rc;
    *events = r->rows;
    s->read = NULL;
    free(r);
    return rc;
}

int feed_fetch(struct session *s, int64_t after, int limit, json_t **events)
{
    struct feed *f = s->srv->feed;
    *events = NULL;
    if (after >= f->lo) {
        json_t *arr = json_array();
        if (!arr)
            return STORE_ERROR;
        feed_fetch_ring(f, s->user_id, after, limit, arr);
        *events = arr;
        return STORE_OK;
    }
    struct feed_read *r = s->read;
    if (r && r->busy)             /* asked again before it is in: wait */
        return FEED_PENDING;
    if (r && r->after == after)
        return feed_read_take(s, events);
    feed_read_drop(s);            /* a stale read's rows, if any */
    r = calloc(1, sizeof *r);
    if (!r)
        return STORE_ERROR;
    r->s = s;
    r->after = after;
    r->busy = r->in_call = 1;
    s->read = r;
    struct store_args a = { .user_id = s->user_id, .after = after, .limit = limit };
    store_call_async(f->st, 0, STORE_CALL_EVENTS_AFTER, &a, feed_read_done, r);
    r->in_call = 0;
    return r->busy ? FEED_PENDING : feed_read_take(s, events);
}
