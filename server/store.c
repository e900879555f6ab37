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
                         int64_t *user_id, char *user, size_t user_len)
{
    return st->ops->session_lookup(st->impl, token_hash, now_ms, user_id, user, user_len);
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
