/* store.c — picks the storage backend for a location (a postgresql:// URL or
 * a SQLite file path) and forwards calls to it; runs the asynchronous calls
 * synchronously for a backend without them (SQLite); and owns the table of
 * transfer state names. */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The one table of transfer state names. The schema's CHECK (db/migrations,
 * db/pg) lists the same four, and the backends' queries for unfinished
 * transfers name 'pending' and 'processing'. */
static const char *const TRANSFER_STATE_NAMES[] = {
    [TRANSFER_PENDING] = "pending",
    [TRANSFER_PROCESSING] = "processing",
    [TRANSFER_COMPLETED] = "completed",
    [TRANSFER_FAILED] = "failed",
};
#define TRANSFER_STATES (sizeof TRANSFER_STATE_NAMES / sizeof TRANSFER_STATE_NAMES[0])

const char *transfer_state_name(enum transfer_state state)
{
    return (unsigned)state < TRANSFER_STATES ? TRANSFER_STATE_NAMES[state] : "unknown";
}

int transfer_state_parse(const char *name, enum transfer_state *state)
{
    for (unsigned i = 0; name && i < TRANSFER_STATES; i++) {
        if (!strcmp(name, TRANSFER_STATE_NAMES[i])) {
            *state = (enum transfer_state)i;
            return 0;
        }
    }
    return -1;
}

int store_transfer_state_read(const char *text, enum transfer_state *state)
{
    if (transfer_state_parse(text, state) == 0)
        return STORE_OK;
    fprintf(stderr, "store: transfer_get: unknown transfer state \"%.32s\"\n", text ? text : "(null)");
    return STORE_ERROR;
}

struct store {
    const struct store_ops *ops;
    void *impl;
    int64_t async_txn;              /* SQLite: the open asynchronous transaction */
    int64_t last_txn;               /* the last handle given */
};

struct store *store_open(const char *location, char *err, size_t errlen)
{
    struct store *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    int pg = !strncmp(location, "postgresql://", 13) || !strncmp(location, "postgres://", 11);
    st->ops = pg ? &store_pg_ops : &store_sqlite_ops;
    st->impl = st->ops->open(location, err, errlen);
    if (!st->impl) {
        free(st);
        return NULL;
    }
    return st;
}

void store_free(struct store *st)
{
    if (!st)
        return;
    st->ops->close(st->impl);
    free(st);
}

int store_user_create(struct store *st, const char *name, const char *pwhash,
                      int64_t now_ms, int64_t *user_id)
{
    return st->ops->user_create(st->impl, name, pwhash, now_ms, user_id);
}

int store_user_get(struct store *st, const char *name, int64_t *user_id,
                   char *pwhash, size_t pwhash_len)
{
    return st->ops->user_get(st->impl, name, user_id, pwhash, pwhash_len);
}

int store_session_create(struct store *st, const char *token_hash, int64_t user_id,
                         int64_t now_ms, int64_t expires_ms)
{
    return st->ops->session_create(st->impl, token_hash, user_id, now_ms, expires_ms);
}

int store_session_lookup(struct store *st, const char *token_hash, int64_t now_ms,
                         struct store_session *out)
{
    return st->ops->session_lookup(st->impl, token_hash, now_ms, out);
}

int store_session_touch(struct store *st, const char *token_hash, int64_t now_ms)
{
    return st->ops->session_touch(st->impl, token_hash, now_ms);
}

int store_session_delete(struct store *st, const char *token_hash)
{
    return st->ops->session_delete(st->impl, token_hash);
}

int store_event_append(struct store *st, const struct store_new_event *ev,
                       int64_t *id, int64_t *ts_ms, int *created)
{
    return st->ops->event_append(st->impl, ev, id, ts_ms, created);
}

int store_events_after(struct store *st, int64_t user_id, int64_t after, int limit,
                       store_event_cb cb, void *arg)
{
    return st->ops->events_after(st->impl, user_id, after, limit, cb, arg);
}

int store_last_event_id(struct store *st, int64_t *id)
{
    return st->ops->last_event_id(st->impl, id);
}

int store_begin(struct store *st)
{
    return st->ops->begin(st->impl);
}

int store_commit(struct store *st)
{
    return st->ops->commit(st->impl);
}

void store_rollback(struct store *st)
{
    st->ops->rollback(st->impl);
}

int store_account_balance(struct store *st, int64_t user_id, int64_t *cents)
{
    return st->ops->account_balance(st->impl, user_id, cents);
}

int store_account_move(struct store *st, int64_t user_id, int64_t delta_cents,
                       int64_t transfer_id, int64_t now_ms, const char *memo)
{
    return st->ops->account_move(st->impl, user_id, delta_cents, transfer_id, now_ms, memo);
}

int store_transfer_insert(struct store *st, int64_t from_id, int64_t to_id, int64_t amount_cents,
                          const char *key, int64_t now_ms, int64_t *id, int *created)
{
    return st->ops->transfer_insert(st->impl, from_id, to_id, amount_cents, key, now_ms, id, created);
}

int store_transfer_get(struct store *st, int64_t id, struct store_transfer *t)
{
    return st->ops->transfer_get(st->impl, id, t);
}

int store_transfer_set_state(struct store *st, int64_t id, enum transfer_state state,
                             const char *reason, int64_t now_ms)
{
    return st->ops->transfer_set_state(st->impl, id, state, reason, now_ms);
}

int store_transfers_unfinished(struct store *st, void (*cb)(void *arg, int64_t id), void *arg)
{
    return st->ops->transfers_unfinished(st->impl, cb, arg);
}

int store_events_all_after(struct store *st, int64_t after, int limit,
                           store_event_cb cb, void *arg)
{
    return st->ops->events_all_after(st->impl, after, limit, cb, arg);
}

int store_room_members_all(struct store *st, store_member_cb cb, void *arg)
{
    return st->ops->room_members_all(st->impl, cb, arg);
}

int store_is_shared(struct store *st)
{
    return st->ops->shared;
}

int store_notify_fd(struct store *st)
{
    return st->ops->notify_fd ? st->ops->notify_fd(st->impl) : -1;
}

int store_notify_drain(struct store *st)
{
    return st->ops->notify_drain ? st->ops->notify_drain(st->impl) : 0;
}

void store_set_session_end_cb(struct store *st, void (*cb)(void *arg, const char *token_hash),
                              void *arg)
{
    if (st->ops->session_end_cb)
        st->ops->session_end_cb(st->impl, cb, arg);
}

int store_transfer_lock(struct store *st, int64_t id)
{
    return st->ops->transfer_lock ? st->ops->transfer_lock(st->impl, id) : STORE_OK;
}

int store_transfers_stale(struct store *st, int64_t before_ms,
                          void (*cb)(void *arg, int64_t id), void *arg)
{
    return st->ops->transfers_stale(st->impl, before_ms, cb, arg);
}

/* ---- asynchronous calls (store.h) ----
 * A backend without them (SQLite) runs the synchronous call and answers at
 * once, before the call returns. Its one writer means one transaction at a
 * time: a call from outside the open asynchronous transaction is refused
 * (a caller that left its transaction idle). */

/* Collects what a read's callback sees, for the reply. */
struct rows {
    struct store_event *ev;
    int64_t *ids;
    int n, cap, failed;
    int64_t *ts;                /* EVENTS_APPEND_MANY */
    int *created;
};

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

static int sync_reads(struct store *st, enum store_call_kind kind,
                      const struct store_args *a, struct store_reply *rep, struct rows *rows)
{
    int rc;
    switch (kind) {
    case STORE_CALL_EVENTS_AFTER:
        rc = st->ops->events_after(st->impl, a->user_id, a->after, a->limit, rows_add_event, rows);
        break;
    case STORE_CALL_EVENTS_ALL_AFTER:
        rc = st->ops->events_all_after(st->impl, a->after, a->limit, rows_add_event, rows);
        break;
    case STORE_CALL_TRANSFERS_UNFINISHED:
        rc = st->ops->transfers_unfinished(st->impl, rows_add_id, rows);
        break;
    default:
        rc = st->ops->transfers_stale(st->impl, a->before_ms, rows_add_id, rows);
        break;
    }
    if (rc == STORE_OK && rows->failed)
        rc = STORE_ERROR;
    rep->n = rows->n;
    rep->events = rows->ev;
    rep->ids = rows->ids;
    return rc;
}

static int sync_call(struct store *st, enum store_call_kind kind, const struct store_args *a,
                     struct store_reply *rep, struct rows *rows)
{
    const struct store_ops *o = st->ops;
    void *im = st->impl;
    switch (kind) {
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
        return sync_reads(st, kind, a, rep, rows);
    default:
        if (kind >= STORE_CALL_ROOM_CREATE && kind < STORE_CALL_COUNT && o->room_call)
            return o->room_call(im, kind, a, rep);
        return STORE_ERROR;
    }
}

/* EVENTS_APPEND_MANY: each append in turn, inside the caller's transaction
 * or one of its own (own). */
static int sync_append_many(struct store *st, const struct store_args *a, int own,
                            struct store_reply *rep, struct rows *rows)
{
    int n = a->nev > 0 ? a->nev : 0;
    rows->ids = calloc((size_t)n + 1, sizeof *rows->ids);
    rows->ts = calloc((size_t)n + 1, sizeof *rows->ts);
    rows->created = calloc((size_t)n + 1, sizeof *rows->created);
    if (!rows->ids || !rows->ts || !rows->created || !a->evs)
        return STORE_ERROR;
    int rc = own ? st->ops->begin(st->impl) : STORE_OK;
    for (int i = 0; rc == STORE_OK && i < n; i++)
        rc = st->ops->event_append(st->impl, &a->evs[i], &rows->ids[i], &rows->ts[i], &rows->created[i]);
    if (own && rc == STORE_OK)
        rc = st->ops->commit(st->impl);
    else if (own)
        st->ops->rollback(st->impl);
    rep->n = n;
    rep->ids = rows->ids;
    rep->ts_each = rows->ts;
    rep->created_each = rows->created;
    return rc;
}

/* 0 if a call of txn may run now: it belongs to the open transaction, or
 * none is open. */
static int sync_outside(struct store *st, int64_t txn)
{
    if (st->async_txn && txn == st->async_txn)
        return 0;
    if (txn) {
        fprintf(stderr, "store: a call names transaction %lld, which is not open\n", (long long)txn);
        return -1;
    }
    if (st->async_txn) {
        fprintf(stderr, "store: a call while transaction %lld is open\n", (long long)st->async_txn);
        return -1;
    }
    return 0;
}

void store_call_async(struct store *st, int64_t txn, enum store_call_kind kind,
                      const struct store_args *args, store_done_fn done, void *arg)
{
    if (st->ops->async_call) {
        st->ops->async_call(st->impl, txn, kind, args, done, arg);
        return;
    }
    struct store_reply rep;
    struct rows rows = {0};
    memset(&rep, 0, sizeof rep);
    if (sync_outside(st, txn) < 0)
        rep.rc = STORE_ERROR;
    else if (kind == STORE_CALL_EVENTS_APPEND_MANY)
        rep.rc = sync_append_many(st, args, txn == 0, &rep, &rows);
    else
        rep.rc = sync_call(st, kind, args, &rep, &rows);
    done(arg, &rep);
    rows_free(&rows);
}

int64_t store_txn_begin_async(struct store *st, store_done_fn done, void *arg)
{
    if (st->ops->async_txn_begin)
        return st->ops->async_txn_begin(st->impl, done, arg);
    struct store_reply rep;
    memset(&rep, 0, sizeof rep);
    int64_t txn = ++st->last_txn;
    rep.rc = sync_outside(st, 0) < 0 ? STORE_ERROR : st->ops->begin(st->impl);
    if (rep.rc == STORE_OK)
        st->async_txn = txn;
    done(arg, &rep);
    return txn;
}

void store_txn_end_async(struct store *st, int64_t txn, int commit,
                         store_done_fn done, void *arg)
{
    if (st->ops->async_txn_end) {
        st->ops->async_txn_end(st->impl, txn, commit, done, arg);
        return;
    }
    struct store_reply rep;
    memset(&rep, 0, sizeof rep);
    if (!txn || txn != st->async_txn) {
        rep.rc = commit ? STORE_ERROR : STORE_OK;  /* its BEGIN failed: nothing to end */
    } else {
        st->async_txn = 0;
        if (commit)
            rep.rc = st->ops->commit(st->impl);
        else
            st->ops->rollback(st->impl);
    }
    done(arg, &rep);
}

void store_async_bound(struct store *st, int max_requests, int64_t max_age_ms)
{
    if (st->ops->async_bound)
        st->ops->async_bound(st->impl, max_requests, max_age_ms);
}

int store_io_fd(struct store *st)
{
    return st->ops->io_fd ? st->ops->io_fd(st->impl) : -1;
}

void store_io_on_close(struct store *st, void (*cb)(void *arg), void *arg)
{
    if (st->ops->io_on_close)
        st->ops->io_on_close(st->impl, cb, arg);
}

int store_io_want(struct store *st)
{
    return st->ops->io_want ? st->ops->io_want(st->impl) : 0;
}

int store_io_pending(struct store *st)
{
    return st->ops->io_pending ? st->ops->io_pending(st->impl) : 0;
}

void store_io_service(struct store *st)
{
    if (st->ops->io_service)
        st->ops->io_service(st->impl);
}

int store_io_health(struct store *st, int64_t slow_ms, char *reason, size_t len)
{
    if (len)
        reason[0] = '\0';
    return st->ops->io_health ? st->ops->io_health(st->impl, slow_ms, reason, len) : 0;
}
