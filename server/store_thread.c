/* store_thread.c — the writer thread of a backend without asynchronous
 * calls (SQLite): it owns the connection while the server serves, runs
 * store.h's asynchronous requests one at a time through the backend's
 * synchronous ops, and hands each reply back to the event loop through an
 * eventfd (store_io_fd), where store_thread_service calls done. So the
 * loop keeps reading, answering and delivering while a commit waits for
 * its fsync, and the next group commit forms meanwhile.
 *
 * Order: one FIFO; once a transaction's BEGIN has run, only that
 * transaction's requests run until its end (others wait behind it, as on
 * PostgreSQL). Completions are delivered in the order the thread finished
 * them, which is call order but for that rule. A request's arguments are
 * copied into one block when it is queued; its reply's rows are its own
 * until done returns. A request still queued past the age bound is
 * answered STORE_UNAVAILABLE and never runs (by the thread before it takes
 * the next, or by the loop's service tick while the thread is busy), so
 * its answer may come before that of an earlier request still running;
 * one running cannot be cancelled: a stalled disk shows in
 * store_thread_health.
 *
 * Locks: mu guards the queues and the fields marked so; conn (recursive)
 * is held while the connection is used: by the thread for one request at a
 * time, and by store.c around every synchronous call. */
#include "store_thread.h"

#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

enum req_op { REQ_CALL, REQ_BEGIN, REQ_END };

/* Collects what a read's callback sees, for the reply. */
struct rows {
    struct store_event *ev;
    int64_t *ids;
    int n, cap, failed;
    int64_t *ts;                /* EVENTS_APPEND_MANY */
    int *created;
};

struct req {
    struct req *next;
    enum req_op op;
    enum store_call_kind kind;
    int64_t txn;                /* 0: alone */
    int commit;                 /* REQ_END */
    int64_t queued_ms;
    struct store_args a;        /* pointers into buf */
    char *buf;
    store_done_fn done;
    void *arg;
    struct store_reply rep;
    struct rows rows;           /* what rep points to */
    struct store_room *rooms;
};

struct store_thread {
    const struct store_ops *ops;
    void *impl;
    pthread_t tid;
    pthread_mutex_t conn;       /* the connection (recursive) */
    pthread_mutex_t mu;         /* everything below but last_txn */
    pthread_cond_t wake;        /* work for the thread, or stop */
    struct req *todo, **todo_tail;
    struct req *done, **done_tail;
    struct req *running;
    int queued, finished;       /* in todo, in done */
    int stop, hold;
    int64_t open_txn;           /* the transaction whose BEGIN ran */
    int64_t doomed;             /* a transaction that lost a request to the age bound */
    int max_requests;
    int64_t max_age_ms;
    int64_t last_txn;           /* the loop's: the last handle given */
    int efd;
    void (*on_close)(void *arg);
    void *on_close_arg;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the arguments' copy: one block, sized by a first pass ---- */

struct arena {
    char *p;                    /* NULL: only count */
    size_t used;
};

static void *arena_take(struct arena *ar, size_t n, size_t align)
{
    size_t at = (ar->used + align - 1) & ~(align - 1);
    ar->used = at + n;
    return ar->p ? ar->p + at : NULL;
}

static const char *arena_str(struct arena *ar, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = arena_take(ar, n, 1);
    if (d)
        memcpy(d, s, n);
    return d;
}

static void arena_event(struct arena *ar, const struct store_new_event *in,
                        struct store_new_event *out)
{
    struct store_new_event e = *in;
    e.type = arena_str(ar, in->type);
    e.client_msg_id = arena_str(ar, in->client_msg_id);
    e.payload = arena_str(ar, in->payload);
    if (out)
        *out = e;
}

static void arena_args(struct arena *ar, const struct store_args *in, struct store_args *out)
{
    *out = *in;
    out->name = arena_str(ar, in->name);
    out->pwhash = arena_str(ar, in->pwhash);
    out->token_hash = arena_str(ar, in->token_hash);
    out->key = arena_str(ar, in->key);
    out->reason = arena_str(ar, in->reason);
    out->memo = arena_str(ar, in->memo);
    out->topic = arena_str(ar, in->topic);
    out->to = arena_str(ar, in->to);
    out->payload = arena_str(ar, in->payload);
    out->payload2 = arena_str(ar, in->payload2);
    if (in->ev) {
        struct store_new_event *e = arena_take(ar, sizeof *e, alignof(struct store_new_event));
        arena_event(ar, in->ev, e);
        out->ev = e;
    }
    int nev = in->evs && in->nev > 0 ? in->nev : 0;
    struct store_new_event *evs = nev ? arena_take(ar, (size_t)nev * sizeof *evs,
                                                   alignof(struct store_new_event)) : NULL;
    for (int i = 0; i < nev; i++)
        arena_event(ar, &in->evs[i], evs ? &evs[i] : NULL);
    out->evs = evs;
    int nids = in->ids_in && in->nids_in > 0 ? in->nids_in : 0;
    int64_t *ids = nids ? arena_take(ar, (size_t)nids * sizeof *ids, alignof(int64_t)) : NULL;
    if (ids)
        memcpy(ids, in->ids_in, (size_t)nids * sizeof *ids);
    out->ids_in = ids;
}

/* 0, or -1 without memory. */
static int req_copy_args(struct req *r, const struct store_args *in)
{
    struct arena ar = { NULL, 0 };
    struct store_args scratch;
    arena_args(&ar, in, &scratch);
    r->buf = malloc(ar.used ? ar.used : 1);
    if (!r->buf)
        return -1;
    ar = (struct arena){ r->buf, 0 };
    arena_args(&ar, in, &r->a);
    return 0;
}

/* ---- the reply's rows ---- */

static int rows_grow(struct rows *r)
{
    if (r->n < r->cap)
        return 0;
    int cap = r->cap ? r->cap * 2 : 16;
    struct store_event *ev = realloc(r->ev, (size_t)cap * sizeof *ev);
    if (ev)
        r->ev = ev;
    int64_t *ids = realloc(r->ids, (size_t)cap * sizeof *ids);
    if (ids)
        r->ids = ids;
    if (!ev || !ids) {
        r->failed = 1;
        return -1;
    }
    r->cap = cap;
    return 0;
}

static int rows_add_event(void *arg, const struct store_event *ev)
{
    struct rows *r = arg;
    if (rows_grow(r) < 0)
        return 1;
    struct store_event *e = &r->ev[r->n];
    *e = *ev;
    e->type = strdup(ev->type);
    e->payload = strdup(ev->payload);
    r->ids[r->n++] = ev->id;
    if (!e->type || !e->payload)
        r->failed = 1;
    return r->failed;
}

static void rows_add_id(void *arg, int64_t id)
{
    struct rows *r = arg;
    if (rows_grow(r) == 0) {
        r->ev[r->n] = (struct store_event){ .id = id };
        r->ids[r->n++] = id;
    }
}

static void rows_free(struct rows *r)
{
    free(r->ts);
    free(r->created);
    for (int i = 0; r->ev && i < r->n; i++) {
        free((char *)r->ev[i].type);
        free((char *)r->ev[i].payload);
    }
    free(r->ev);
    free(r->ids);
}

static void req_free(struct req *r)
{
    rows_free(&r->rows);
    free(r->rooms);
    free(r->buf);
    free(r);
}

/* ---- running one request on the thread, through the synchronous ops ---- */

static int run_reads(struct store_thread *th, struct req *r)
{
    const struct store_args *a = &r->a;
    struct rows *rows = &r->rows;
    int rc;
    switch (r->kind) {
    case STORE_CALL_EVENTS_AFTER:
        rc = th->ops->events_after(th->impl, a->user_id, a->after, a->limit, rows_add_event, rows);
        break;
    case STORE_CALL_EVENTS_ALL_AFTER:
        rc = th->ops->events_all_after(th->impl, a->after, a->limit, rows_add_event, rows);
        break;
    case STORE_CALL_TRANSFERS_UNFINISHED:
        rc = th->ops->transfers_unfinished(th->impl, rows_add_id, rows);
        break;
    default:
        rc = th->ops->transfers_stale(th->impl, a->before_ms, rows_add_id, rows);
        break;
    }
    if (rc == STORE_OK && rows->failed)
        rc = STORE_ERROR;
    r->rep.n = rows->n;
    r->rep.events = rows->ev;
    r->rep.ids = rows->ids;
    return rc;
}

/* EVENTS_APPEND_MANY: each append in turn, inside the caller's transaction
 * or one of its own (own). */
static int run_append_many(struct store_thread *th, struct req *r, int own)
{
    const struct store_args *a = &r->a;
    struct rows *rows = &r->rows;
    int n = a->nev > 0 ? a->nev : 0;
    rows->ids = calloc((size_t)n + 1, sizeof *rows->ids);
    rows->ts = calloc((size_t)n + 1, sizeof *rows->ts);
    rows->created = calloc((size_t)n + 1, sizeof *rows->created);
    if (!rows->ids || !rows->ts || !rows->created || !a->evs)
        return STORE_ERROR;
    int rc = own ? th->ops->begin(th->impl) : STORE_OK;
    for (int i = 0; rc == STORE_OK && i < n; i++)
        rc = th->ops->event_append(th->impl, &a->evs[i], &rows->ids[i], &rows->ts[i],
                                   &rows->created[i]);
    if (own && rc == STORE_OK)
        rc = th->ops->commit(th->impl);
    else if (own)
        th->ops->rollback(th->impl);
    r->rep.n = n;
    r->rep.ids = rows->ids;
    r->rep.ts_each = rows->ts;
    r->rep.created_each = rows->created;
    return rc;
}

/* A room call's reply points into the backend until its next call: the
 * request keeps its own copy for done. */
static int run_room(struct store_thread *th, struct req *r)
{
    struct store_reply *rep = &r->rep;
    if (!th->ops->room_call)
        return STORE_ERROR;
    int rc = th->ops->room_call(th->impl, r->kind, &r->a, rep);
    for (int i = 0; i < rep->n; i++)
        rows_add_event(&r->rows, &rep->events[i]);
    rep->events = r->rows.ev;
    if (rep->n_rooms > 0) {
        r->rooms = malloc((size_t)rep->n_rooms * sizeof *r->rooms);
        if (r->rooms)
            memcpy(r->rooms, rep->rooms, (size_t)rep->n_rooms * sizeof *r->rooms);
    }
    rep->rooms = r->rooms;
    if (r->rows.failed || (rep->n_rooms > 0 && !r->rooms)) {
        rep->n = rep->n_rooms = 0;
        return rc == STORE_OK ? STORE_ERROR : rc;
    }
    return rc;
}

static int run_call(struct store_thread *th, struct req *r)
{
    const struct store_ops *o = th->ops;
    void *im = th->impl;
    const struct store_args *a = &r->a;
    struct store_reply *rep = &r->rep;
    switch (r->kind) {
    case STORE_CALL_USER_CREATE:
        return o->user_create(im, a->name, a->pwhash, a->now_ms, &rep->id);
    case STORE_CALL_USER_GET:
        return o->user_get(im, a->name, &rep->id, rep->pwhash, sizeof rep->pwhash);
    case STORE_CALL_SESSION_CREATE:
        return o->session_create(im, a->token_hash, a->user_id, a->now_ms, a->expires_ms);
    case STORE_CALL_SESSION_LOOKUP:
        return o->session_lookup(im, a->token_hash, a->now_ms, &rep->session);
    case STORE_CALL_SESSION_TOUCH:
        return o->session_touch(im, a->token_hash, a->now_ms);
    case STORE_CALL_SESSION_DELETE:
        return o->session_delete(im, a->token_hash);
    case STORE_CALL_EVENT_APPEND:
        return a->ev ? o->event_append(im, a->ev, &rep->id, &rep->ts_ms, &rep->created) : STORE_ERROR;
    case STORE_CALL_LAST_EVENT_ID:
        return o->last_event_id(im, &rep->id);
    case STORE_CALL_ACCOUNT_BALANCE:
        return o->account_balance(im, a->user_id, &rep->cents);
    case STORE_CALL_ACCOUNT_MOVE:
        return o->account_move(im, a->user_id, a->delta_cents, a->id, a->now_ms, a->memo);
    case STORE_CALL_TRANSFER_INSERT:
        return o->transfer_insert(im, a->from_id, a->to_id, a->amount_cents, a->key, a->now_ms,
                                  &rep->id, &rep->created);
    case STORE_CALL_TRANSFER_GET:
        return o->transfer_get(im, a->id, &rep->transfer);
    case STORE_CALL_TRANSFER_SET_STATE:
        return o->transfer_set_state(im, a->id, a->state, a->reason, a->now_ms);
    case STORE_CALL_TRANSFER_LOCK:
        return o->transfer_lock ? o->transfer_lock(im, a->id) : STORE_OK;
    case STORE_CALL_EVENTS_AFTER:
    case STORE_CALL_EVENTS_ALL_AFTER:
    case STORE_CALL_TRANSFERS_UNFINISHED:
    case STORE_CALL_TRANSFERS_STALE:
        return run_reads(th, r);
    case STORE_CALL_EVENTS_APPEND_MANY:
        return run_append_many(th, r, r->txn == 0);
    case STORE_CALL_PRESENCE_RENEW:     /* one instance: nobody else holds leases */
    case STORE_CALL_BROADCAST:          /* nor hears */
        return STORE_OK;
    default:
        if (r->kind >= STORE_CALL_ROOM_CREATE && r->kind < STORE_CALL_COUNT)
            return run_room(th, r);
        return STORE_ERROR;
    }
}

/* Runs r (conn held). in: r belongs to the open transaction; doomed: its
 * transaction lost a request to the age bound. */
static void run(struct store_thread *th, struct req *r, int in, int doomed)
{
    struct store_reply *rep = &r->rep;
    if (r->op == REQ_BEGIN) {
        rep->rc = th->ops->begin(th->impl);
    } else if (r->op == REQ_END) {
        if (in && (doomed || !r->commit))
            th->ops->rollback(th->impl);
        if (in && !doomed && r->commit)
            rep->rc = th->ops->commit(th->impl);
        else if (r->commit)         /* doomed, or its BEGIN failed: nothing stored */
            rep->rc = doomed ? STORE_UNAVAILABLE : STORE_ERROR;
        else
            rep->rc = STORE_OK;
    } else if (doomed) {
        rep->rc = STORE_UNAVAILABLE;
    } else if (r->txn && !in) {
        fprintf(stderr, "store: a call names transaction %lld, which is not open\n",
                (long long)r->txn);
        rep->rc = STORE_ERROR;
    } else {
        rep->rc = run_call(th, r);
    }
}

/* ---- the queues (mu held) ---- */

/* 1 if the list was empty: the loop must be woken (wake_loop, outside
 * mu, so the loop does not wake into a held lock). */
static int push_done(struct store_thread *th, struct req *r)
{
    int was_empty = th->done == NULL;
    r->next = NULL;
    *th->done_tail = r;
    th->done_tail = &r->next;
    th->finished++;
    return was_empty;
}

/* The loop reads the eventfd before it takes the list, so a reply pushed
 * on an empty list always finds it readable again. */
static void wake_loop(struct store_thread *th)
{
    uint64_t one = 1;
    ssize_t w = write(th->efd, &one, sizeof one);
    (void)w;                        /* EAGAIN: it is readable already */
}

/* Answers STORE_UNAVAILABLE every queued request older than the bound.
 * The queue is in arrival order, so the walk stops at the first young
 * one. A transaction's end is kept (it must roll back what ran), its
 * transaction doomed. 1 if the loop must be woken. */
static int expire(struct store_thread *th, int64_t now)
{
    int wake = 0;
    struct req **pp = &th->todo;
    while (*pp && now - (*pp)->queued_ms > th->max_age_ms) {
        struct req *r = *pp;
        if (r->txn)
            th->doomed = r->txn;
        if (r->op == REQ_END) {
            pp = &r->next;
            continue;
        }
        *pp = r->next;
        if (!*pp)
            th->todo_tail = pp;
        th->queued--;
        r->rep.rc = STORE_UNAVAILABLE;
        wake |= push_done(th, r);
    }
    return wake;
}

/* The next request to run: the open transaction's first, or (none open)
 * the queue's first; NULL if there is none now. */
static struct req *take_next(struct store_thread *th)
{
    struct req **pp = &th->todo;
    if (th->open_txn)
        while (*pp && (*pp)->txn != th->open_txn)
            pp = &(*pp)->next;
    struct req *r = *pp;
    if (!r)
        return NULL;
    *pp = r->next;
    if (!*pp)
        th->todo_tail = pp;
    th->queued--;
    return r;
}

static void *worker(void *arg)
{
    struct store_thread *th = arg;
    pthread_mutex_lock(&th->mu);
    for (;;) {
        if (expire(th, mono_ms())) {
            pthread_mutex_unlock(&th->mu);
            wake_loop(th);
            pthread_mutex_lock(&th->mu);
        }
        struct req *r = th->stop || th->hold ? NULL : take_next(th);
        if (!r) {
            if (th->stop)
                break;
            pthread_cond_wait(&th->wake, &th->mu);
            continue;
        }
        int in = r->txn && r->txn == th->open_txn;
        int doomed = r->txn && r->txn == th->doomed;
        th->running = r;
        pthread_mutex_unlock(&th->mu);
        pthread_mutex_lock(&th->conn);
        run(th, r, in, doomed);
        pthread_mutex_unlock(&th->conn);
        pthread_mutex_lock(&th->mu);
        th->running = NULL;
        if (r->op == REQ_BEGIN && r->rep.rc == STORE_OK)
            th->open_txn = r->txn;
        else if (r->op == REQ_END && in)
            th->open_txn = 0;
        if (push_done(th, r)) {
            pthread_mutex_unlock(&th->mu);
            wake_loop(th);
            pthread_mutex_lock(&th->mu);
        }
    }
    pthread_mutex_unlock(&th->mu);
    return NULL;
}

/* ---- the loop's side ---- */

static void refuse(store_done_fn done, void *arg, int rc)
{
    struct store_reply rep;
    memset(&rep, 0, sizeof rep);
    rep.rc = rc;
    done(arg, &rep);
}

static void enqueue(struct store_thread *th, struct req *r)
{
    pthread_mutex_lock(&th->mu);
    int full = th->stop || th->queued + (th->running != NULL) >= th->max_requests;
    if (!full) {
        r->queued_ms = mono_ms();
        r->next = NULL;
        *th->todo_tail = r;
        th->todo_tail = &r->next;
        th->queued++;
    }
    pthread_mutex_unlock(&th->mu);
    if (!full)                      /* after the unlock: the thread may run at once */
        pthread_cond_signal(&th->wake);
    if (full) {                     /* refused at once (store.h) */
        store_done_fn done = r->done;
        void *arg = r->arg;
        req_free(r);
        refuse(done, arg, STORE_UNAVAILABLE);
    }
}

static struct req *req_new(enum req_op op, int64_t txn, store_done_fn done, void *arg)
{
    struct req *r = calloc(1, sizeof *r);
    if (r) {
        r->op = op;
        r->txn = txn;
        r->done = done;
        r->arg = arg;
    }
    return r;
}

void store_thread_call(struct store_thread *th, int64_t txn, enum store_call_kind kind,
                       const struct store_args *args, store_done_fn done, void *arg)
{
    struct req *r = req_new(REQ_CALL, txn, done, arg);
    if (!r || req_copy_args(r, args) < 0) {
        free(r);
        refuse(done, arg, STORE_ERROR);
        return;
    }
    r->kind = kind;
    enqueue(th, r);
}

int64_t store_thread_txn_begin(struct store_thread *th, store_done_fn done, void *arg)
{
    int64_t txn = ++th->last_txn;
    struct req *r = req_new(REQ_BEGIN, txn, done, arg);
    if (!r)
        refuse(done, arg, STORE_ERROR);
    else
        enqueue(th, r);
    return txn;
}

void store_thread_txn_end(struct store_thread *th, int64_t txn, int commit,
                          store_done_fn done, void *arg)
{
    struct req *r = req_new(REQ_END, txn, done, arg);
    if (!r) {       /* cannot happen in practice; the transaction stays open */
        refuse(done, arg, STORE_ERROR);
        return;
    }
    r->commit = commit;
    /* never refused for the bound: without its end the transaction would
     * hold every other request */
    pthread_mutex_lock(&th->mu);
    if (th->stop) {                 /* closing: store_thread_free rolls it back */
        pthread_mutex_unlock(&th->mu);
        free(r);
        refuse(done, arg, commit ? STORE_UNAVAILABLE : STORE_OK);
        return;
    }
    r->queued_ms = mono_ms();
    *th->todo_tail = r;
    th->todo_tail = &r->next;
    th->queued++;
    pthread_mutex_unlock(&th->mu);
    pthread_cond_signal(&th->wake);
}

void store_thread_bound(struct store_thread *th, int max_requests, int64_t max_age_ms)
{
    pthread_mutex_lock(&th->mu);
    th->max_requests = max_requests > 0 ? max_requests : STORE_ASYNC_MAX_REQUESTS;
    th->max_age_ms = max_age_ms > 0 ? max_age_ms : STORE_ASYNC_MAX_AGE_MS;
    pthread_mutex_unlock(&th->mu);
}

int store_thread_fd(struct store_thread *th)
{
    return th->efd;
}

void store_thread_on_close(struct store_thread *th, void (*cb)(void *arg), void *arg)
{
    th->on_close = cb;
    th->on_close_arg = arg;
}

int store_thread_pending(struct store_thread *th)
{
    pthread_mutex_lock(&th->mu);
    int n = th->queued + (th->running != NULL) + th->finished;
    pthread_mutex_unlock(&th->mu);
    return n;
}

/* Calls done for each of list, in order, and frees them. */
static void deliver(struct req *list)
{
    while (list) {
        struct req *r = list;
        list = r->next;
        r->done(r->arg, &r->rep);
        req_free(r);
    }
}

void store_thread_service(struct store_thread *th)
{
    uint64_t v;
    ssize_t got = read(th->efd, &v, sizeof v);    /* before taking the list */
    (void)got;
    pthread_mutex_lock(&th->mu);
    expire(th, mono_ms());          /* delivered just below: no wake-up needed */
    struct req *list = th->done;
    th->done = NULL;
    th->done_tail = &th->done;
    th->finished = 0;
    pthread_mutex_unlock(&th->mu);
    deliver(list);
}

int store_thread_health(struct store_thread *th, int64_t slow_ms, char *reason, size_t len)
{
    pthread_mutex_lock(&th->mu);
    int64_t oldest = -1;
    if (th->running)
        oldest = th->running->queued_ms;
    if (th->todo && (oldest < 0 || th->todo->queued_ms < oldest))
        oldest = th->todo->queued_ms;
    pthread_mutex_unlock(&th->mu);
    int64_t waited = oldest < 0 ? 0 : mono_ms() - oldest;
    if (waited <= slow_ms)
        return 0;
    snprintf(reason, len, "oldest database request waiting %lld ms", (long long)waited);
    return 1;
}

void store_thread_hold(struct store_thread *th, int hold)
{
    pthread_mutex_lock(&th->mu);
    th->hold = hold;
    pthread_cond_signal(&th->wake);
    pthread_mutex_unlock(&th->mu);
}

void store_thread_lock(struct store_thread *th)
{
    pthread_mutex_lock(&th->conn);
}

void store_thread_unlock(struct store_thread *th)
{
    pthread_mutex_unlock(&th->conn);
}

/* ---- life ---- */

struct store_thread *store_thread_new(const struct store_ops *ops, void *impl)
{
    struct store_thread *th = calloc(1, sizeof *th);
    if (!th)
        return NULL;
    th->ops = ops;
    th->impl = impl;
    th->todo_tail = &th->todo;
    th->done_tail = &th->done;
    th->max_requests = STORE_ASYNC_MAX_REQUESTS;
    th->max_age_ms = STORE_ASYNC_MAX_AGE_MS;
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    int ok = pthread_mutex_init(&th->conn, &ma) == 0;
    pthread_mutexattr_destroy(&ma);
    ok = ok && pthread_mutex_init(&th->mu, NULL) == 0 && pthread_cond_init(&th->wake, NULL) == 0;
    th->efd = ok ? eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC) : -1;
    if (th->efd < 0 || pthread_create(&th->tid, NULL, worker, th) != 0) {
        if (th->efd >= 0)
            close(th->efd);
        free(th);                   /* mutexes need no destroy on Linux */
        return NULL;
    }
    return th;
}

void store_thread_free(struct store_thread *th)
{
    if (!th)
        return;
    pthread_mutex_lock(&th->mu);
    th->stop = 1;
    pthread_cond_signal(&th->wake);
    pthread_mutex_unlock(&th->mu);
    pthread_join(th->tid, NULL);
    if (th->open_txn)               /* its end never came: nothing of it stays */
        th->ops->rollback(th->impl);
    struct req *done = th->done, *todo = th->todo;
    th->done = th->todo = NULL;
    deliver(done);
    for (struct req *r = todo; r; r = r->next)
        r->rep.rc = r->op == REQ_END && !r->commit ? STORE_OK : STORE_UNAVAILABLE;
    deliver(todo);
    if (th->on_close)
        th->on_close(th->on_close_arg);
    close(th->efd);
    pthread_cond_destroy(&th->wake);
    pthread_mutex_destroy(&th->mu);
    pthread_mutex_destroy(&th->conn);
    free(th);
}
