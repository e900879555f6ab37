/* store.c — picks the storage backend for a location and forwards calls to it. */
#include "store.h"

#include <stdlib.h>

struct store {
    const struct store_ops *ops;
    void *impl;
};

struct store *store_open(const char *location, char *err, size_t errlen)
{
    struct store *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->ops = &store_sqlite_ops;
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

int store_transfer_set_status(struct store *st, int64_t id, const char *status,
                              const char *reason, int64_t now_ms)
{
    return st->ops->transfer_set_status(st->impl, id, status, reason, now_ms);
}

int store_transfers_unfinished(struct store *st, void (*cb)(void *arg, int64_t id), void *arg)
{
    return st->ops->transfers_unfinished(st->impl, cb, arg);
}
