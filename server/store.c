/* store.c — picks the storage backend for a location (a postgresql:// URL or
 * a SQLite file path) and forwards calls to it; gives a backend without
 * asynchronous calls (SQLite) a writer thread that runs them
 * (store_thread.c), and keeps its synchronous calls off the connection
 * while that thread uses it; and owns the table of transfer state names. */
#include "store.h"
#include "store_thread.h"

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
    struct store_thread *th;        /* SQLite: runs the asynchronous calls */
};

/* A synchronous call holds the connection the writer thread shares. */
static void sync_enter(struct store *st)
{
    if (st->th)
        store_thread_lock(st->th);
}

static void sync_leave(struct store *st)
{
    if (st->th)
        store_thread_unlock(st->th);
}

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
    if (!st->ops->async_call && !(st->th = store_thread_new(st->ops, st->impl))) {
        snprintf(err, errlen, "cannot start the store's writer thread");
        st->ops->close(st->impl);
        free(st);
        return NULL;
    }
    return st;
}

void store_free(struct store *st)
{
    if (!st)
        return;
    store_thread_free(st->th);      /* answers what is queued, first */
    st->ops->close(st->impl);
    free(st);
}

int store_user_create(struct store *st, const char *name, const char *pwhash,
                      int64_t now_ms, int64_t *user_id)
{
    sync_enter(st);
    int rc = st->ops->user_create(st->impl, name, pwhash, now_ms, user_id);
    sync_leave(st);
    return rc;
}

int store_user_get(struct store *st, const char *name, int64_t *user_id,
                   char *pwhash, size_t pwhash_len)
{
    sync_enter(st);
    int rc = st->ops->user_get(st->impl, name, user_id, pwhash, pwhash_len);
    sync_leave(st);
    return rc;
}

int store_session_create(struct store *st, const char *token_hash, int64_t user_id,
                         int64_t now_ms, int64_t expires_ms)
{
    sync_enter(st);
    int rc = st->ops->session_create(st->impl, token_hash, user_id, now_ms, expires_ms);
    sync_leave(st);
    return rc;
}

int store_session_lookup(struct store *st, const char *token_hash, int64_t now_ms,
                         struct store_session *out)
{
    sync_enter(st);
    int rc = st->ops->session_lookup(st->impl, token_hash, now_ms, out);
    sync_leave(st);
    return rc;
}

int store_session_touch(struct store *st, const char *token_hash, int64_t now_ms)
{
    sync_enter(st);
    int rc = st->ops->session_touch(st->impl, token_hash, now_ms);
    sync_leave(st);
    return rc;
}

int store_session_delete(struct store *st, const char *token_hash)
{
    sync_enter(st);
    int rc = st->ops->session_delete(st->impl, token_hash);
    sync_leave(st);
    return rc;
}

int store_event_append(struct store *st, const struct store_new_event *ev,
                       int64_t *id, int64_t *ts_ms, int *created)
{
    sync_enter(st);
    int rc = st->ops->event_append(st->impl, ev, id, ts_ms, created);
    sync_leave(st);
    return rc;
}

int store_events_after(struct store *st, int64_t user_id, int64_t after, int limit,
                       store_event_cb cb, void *arg)
{
    sync_enter(st);
    int rc = st->ops->events_after(st->impl, user_id, after, limit, cb, arg);
    sync_leave(st);
    return rc;
}

int store_last_event_id(struct store *st, int64_t *id)
{
    sync_enter(st);
    int rc = st->ops->last_event_id(st->impl, id);
    sync_leave(st);
    return rc;
}

int store_begin(struct store *st)
{
    sync_enter(st);                 /* held until its commit or rollback */
    int rc = st->ops->begin(st->impl);
    if (rc != STORE_OK)
        sync_leave(st);
    return rc;
}

int store_commit(struct store *st)
{
    int rc = st->ops->commit(st->impl);
    sync_leave(st);                 /* store_begin's */
    return rc;
}

void store_rollback(struct store *st)
{
    st->ops->rollback(st->impl);
    sync_leave(st);                 /* store_begin's */
}

int store_account_balance(struct store *st, int64_t user_id, int64_t *cents)
{
    sync_enter(st);
    int rc = st->ops->account_balance(st->impl, user_id, cents);
    sync_leave(st);
    return rc;
}

int store_account_move(struct store *st, int64_t user_id, int64_t delta_cents,
                       int64_t transfer_id, int64_t now_ms, const char *memo)
{
    sync_enter(st);
    int rc = st->ops->account_move(st->impl, user_id, delta_cents, transfer_id, now_ms, memo);
    sync_leave(st);
    return rc;
}

int store_transfer_insert(struct store *st, int64_t from_id, int64_t to_id, int64_t amount_cents,
                          const char *key, int64_t now_ms, int64_t *id, int *created)
{
    sync_enter(st);
    int rc = st->ops->transfer_insert(st->impl, from_id, to_id, amount_cents, key, now_ms, id, created);
    sync_leave(st);
    return rc;
}

int store_transfer_get(struct store *st, int64_t id, struct store_transfer *t)
{
    sync_enter(st);
    int rc = st->ops->transfer_get(st->impl, id, t);
    sync_leave(st);
    return rc;
}

int store_transfer_set_state(struct store *st, int64_t id, enum transfer_state state,
                             const char *reason, int64_t now_ms)
{
    sync_enter(st);
    int rc = st->ops->transfer_set_state(st->impl, id, state, reason, now_ms);
    sync_leave(st);
    return rc;
}

int store_transfers_unfinished(struct store *st, void (*cb)(void *arg, int64_t id), void *arg)
{
    sync_enter(st);
    int rc = st->ops->transfers_unfinished(st->impl, cb, arg);
    sync_leave(st);
    return rc;
}

int store_events_all_after(struct store *st, int64_t after, int limit,
                           store_event_cb cb, void *arg)
{
    sync_enter(st);
    int rc = st->ops->events_all_after(st->impl, after, limit, cb, arg);
    sync_leave(st);
    return rc;
}

int store_room_members_all(struct store *st, store_member_cb cb, void *arg)
{
    sync_enter(st);
    int rc = st->ops->room_members_all(st->impl, cb, arg);
    sync_leave(st);
    return rc;
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

void store_set_broadcast_cb(struct store *st, void (*cb)(void *arg, const char *payload), void *arg)
{
    if (st->ops->broadcast_cb)
        st->ops->broadcast_cb(st->impl, cb, arg);
}

void store_set_presence_cb(struct store *st, void (*cb)(void *arg, const char *owner), void *arg)
{
    if (st->ops->presence_cb)
        st->ops->presence_cb(st->impl, cb, arg);
}

int store_transfer_lock(struct store *st, int64_t id)
{
    sync_enter(st);
    int rc = st->ops->transfer_lock ? st->ops->transfer_lock(st->impl, id) : STORE_OK;
    sync_leave(st);
    return rc;
}

int store_transfers_stale(struct store *st, int64_t before_ms,
                          void (*cb)(void *arg, int64_t id), void *arg)
{
    sync_enter(st);
    int rc = st->ops->transfers_stale(st->impl, before_ms, cb, arg);
    sync_leave(st);
    return rc;
}

/* ---- asynchronous calls (store.h): the backend's own (PostgreSQL), or
 * the writer thread's (SQLite) ---- */

/* The writer thread, unless the ops have asynchronous calls of their own
 * (PostgreSQL; tests/test_feed.c swaps in a fake). */
static struct store_thread *writer(struct store *st)
{
    return st->ops->async_call ? NULL : st->th;
}

void store_call_async(struct store *st, int64_t txn, enum store_call_kind kind,
                      const struct store_args *args, store_done_fn done, void *arg)
{
    if (writer(st))
        store_thread_call(writer(st), txn, kind, args, done, arg);
    else
        st->ops->async_call(st->impl, txn, kind, args, done, arg);
}

int64_t store_txn_begin_async(struct store *st, store_done_fn done, void *arg)
{
    if (writer(st))
        return store_thread_txn_begin(writer(st), done, arg);
    return st->ops->async_txn_begin(st->impl, done, arg);
}

void store_txn_end_async(struct store *st, int64_t txn, int commit,
                         store_done_fn done, void *arg)
{
    if (writer(st))
        store_thread_txn_end(writer(st), txn, commit, done, arg);
    else
        st->ops->async_txn_end(st->impl, txn, commit, done, arg);
}

void store_async_bound(struct store *st, int max_requests, int64_t max_age_ms)
{
    if (writer(st))
        store_thread_bound(writer(st), max_requests, max_age_ms);
    else if (st->ops->async_bound)
        st->ops->async_bound(st->impl, max_requests, max_age_ms);
}

int store_io_fd(struct store *st)
{
    if (writer(st))
        return store_thread_fd(writer(st));
    return st->ops->io_fd ? st->ops->io_fd(st->impl) : -1;
}

void store_io_on_close(struct store *st, void (*cb)(void *arg), void *arg)
{
    if (writer(st))
        store_thread_on_close(writer(st), cb, arg);
    else if (st->ops->io_on_close)
        st->ops->io_on_close(st->impl, cb, arg);
}

int store_io_want(struct store *st)
{
    if (writer(st))
        return STORE_IO_READ;
    return st->ops->io_want ? st->ops->io_want(st->impl) : 0;
}

int store_io_pending(struct store *st)
{
    if (writer(st))
        return store_thread_pending(writer(st));
    return st->ops->io_pending ? st->ops->io_pending(st->impl) : 0;
}

void store_io_service(struct store *st)
{
    if (writer(st))
        store_thread_service(writer(st));
    else if (st->ops->io_service)
        st->ops->io_service(st->impl);
}

int store_io_health(struct store *st, int64_t slow_ms, char *reason, size_t len)
{
    if (len)
        reason[0] = '\0';
    if (writer(st))
        return store_thread_health(writer(st), slow_ms, reason, len);
    return st->ops->io_health ? st->ops->io_health(st->impl, slow_ms, reason, len) : 0;
}

void store_async_hold(struct store *st, int hold)
{
    if (writer(st))
        store_thread_hold(writer(st), hold);
}
