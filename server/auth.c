/* auth.c — bearer tokens and the sessions behind them: minting tokens from
 * the CSPRNG, hashing them for storage, resolving a presented token (with
 * absolute and idle expiry), and the end of a session.
 *
 * Resolving never waits on the store. Sessions are kept in a bounded
 * cache (token hash -> user, expiry, last use; a set-associative table,
 * the least recently used of a set evicted), filled by a login here
 * (auth_remember) and by asynchronous lookups; a token found there, used
 * within the idle limit and confirmed by the store within RECHECK_MS, is
 * good at once. Anything else is looked up (STORE_CALL_SESSION_LOOKUP) and
 * the caller continues in its done callback. Its ticket (struct auth_wait)
 * is disowned by auth_release when the connection goes away first.
 *
 * A connection that holds a session open (a parked long poll, an
 * authenticated WebSocket) is listed here (auth_hold) with a sweep timer at
 * its session's end (the absolute expiry, or the idle limit after its last
 * known use; at the idle limit the store is asked, asynchronously, whether
 * another instance used it since). When a session ends — logout, either
 * expiry, found gone at a touch or a lookup, or deleted by any instance
 * (the store's session-end announcements, store_set_session_end_cb) —
 * every listed connection of that token is marked ended and told through
 * its ops->ended; its transport answers or closes it. Nothing here names a
 * transport.
 *
 * Uses are written to the store as touches, at most once per
 * auth_touch_every_ms per session (WebSockets are used all the time they
 * are open), coalesced: a session is queued once, and the queue is written
 * at most every TOUCH_GAP_MS in one asynchronous transaction (one commit,
 * one fsync on SQLite: one autocommit per WebSocket per minute was 317
 * fsyncs a second with 19,000 idle WebSockets). */
#include "auth.h"
#include "audit.h"
#include "clock.h"
#include "server.h"
#include "store.h"
#include "sweep.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOUCH_EVERY_MS   60000     /* last_used is written at most this often */
#define TOUCH_GAP_MS     1000      /* shortest time between two batches of session touches */
#define TOUCH_QUEUE_MAX  4096      /* sessions in one batch; more wait for a later use */
#define CACHE_SETS       4096
#define CACHE_WAYS       4         /* 16,384 sessions known at once, about 2.4 MB */
#define RECHECK_MS       30000     /* a cached session is looked up again this often: a
                                    * missed announcement of its end is noticed within this */
#define RETRY_MS         1000      /* a held session's recheck that the store did not answer */

struct auth_entry {
    char    hash[65];              /* "": a free slot */
    char    user[PROTO_USER_MAX + 1];
    int64_t user_id, expires_ms;
    int64_t used_ms;               /* last use known here */
    int64_t stored_ms;             /* last use the store has, as far as we know */
    int64_t checked_ms;            /* when the store last vouched for the session */
    int     queued;                /* in the next batch of touches */
};

struct auth {
    lws_dll2_owner_t held;         /* connections holding a session */
    struct auth_entry *cache;      /* CACHE_SETS * CACHE_WAYS */
    struct sweep_timer flush_at;   /* the next batch of touches */
    int64_t flushed_ms;            /* the last batch */
    int     nqueued;
    char  (*queue)[65];            /* TOUCH_QUEUE_MAX token hashes */
};

/* A check, logout or recheck waiting for the store. */
struct auth_wait {
    struct session *owner;         /* NULL once the connection let go (auth_release) */
    struct server *srv;
    auth_done_fn done;
    int  in_call, finished, result; /* done came before store_call_async returned */
    char hash[65];
    char user[PROTO_USER_MAX + 1];
};

static void auth_touch_flush(struct server *srv, struct sweep_timer *t);
static void auth_on_session_end(void *arg, const char *hash);

int auth_start(struct server *srv)
{
    struct auth *a = calloc(1, sizeof *a);
    if (!a)
        return -1;
    a->cache = calloc(CACHE_SETS * CACHE_WAYS, sizeof *a->cache);
    a->queue = calloc(TOUCH_QUEUE_MAX, sizeof *a->queue);
    if (!a->cache || !a->queue) {
        free(a->cache);
        free(a->queue);
        free(a);
        return -1;
    }
    srv->auth = a;
    if (srv->store)
        store_set_session_end_cb(srv->store, auth_on_session_end, srv);
    return 0;
}

void auth_stop(struct server *srv)
{
    struct auth *a = srv->auth;
    if (!a)
        return;
    if (srv->store)
        store_set_session_end_cb(srv->store, NULL, NULL);
    sweep_cancel(srv->sweep, &a->flush_at);
    while (a->held.head)
        lws_dll2_remove(a->held.head);
    sodium_memzero(a->cache, CACHE_SETS * CACHE_WAYS * sizeof *a->cache);
    free(a->cache);
    free(a->queue);
    free(a);
    srv->auth = NULL;
}

int auth_token_new(char hex[PROTO_TOKEN_HEX_LEN + 1])
{
    unsigned char raw[PROTO_TOKEN_BYTES];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(hex, PROTO_TOKEN_HEX_LEN + 1, raw, sizeof raw);
    sodium_memzero(raw, sizeof raw);
    return 0;
}

void auth_token_hash(const char *token, char out[65])
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, (const unsigned char *)token, strlen(token));
    sodium_bin2hex(out, 65, digest, sizeof digest);
}

/* A token is exactly 64 lowercase hex characters; anything else is not looked up. */
static int auth_token_well_formed(const char *token)
{
    if (strlen(token) != PROTO_TOKEN_HEX_LEN)
        return 0;
    for (const char *p = token; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

static int64_t auth_idle_ms(const struct server *srv)
{
    return (int64_t)srv->cfg.session_idle_s * 1000;
}

/* ---- the cache ---- */

/* The set a token hash (hex of SHA-256: uniform) belongs to. */
static struct auth_entry *cache_set(struct auth *a, const char *hash)
{
    unsigned v = 0;
    for (int i = 0; i < 6; i++)
        v = v * 16 + (unsigned)(hash[i] <= '9' ? hash[i] - '0' : hash[i] - 'a' + 10);
    return &a->cache[(v % CACHE_SETS) * CACHE_WAYS];
}

static struct auth_entry *cache_find(struct auth *a, const char *hash)
{
    struct auth_entry *set = cache_set(a, hash);
    for (int i = 0; i < CACHE_WAYS; i++)
        if (!strcmp(set[i].hash, hash))
            return &set[i];
    return NULL;
}

/* hash's entry: its own, else a free slot or its set's least recently used
 * one, emptied. */
static struct auth_entry *cache_slot(struct auth *a, const char *hash)
{
    struct auth_entry *set = cache_set(a, hash), *e = cache_find(a, hash);
    if (e)
        return e;
    e = &set[0];
    for (int i = 0; i < CACHE_WAYS && e->hash[0]; i++)
        if (!set[i].hash[0] || set[i].used_ms < e->used_ms)
            e = &set[i];
    memset(e, 0, sizeof *e);
    memcpy(e->hash, hash, sizeof e->hash);
    return e;
}

static void cache_drop(struct auth *a, const char *hash)
{
    struct auth_entry *e = cache_find(a, hash);
    if (e)
        memset(e, 0, sizeof *e);
}

/* Good without asking the store: used here within the idle limit, and
 * vouched for by the store lately. */
static int cache_fresh(const struct server *srv, const struct auth_entry *e, int64_t now)
{
    return now < e->expires_ms && now - e->used_ms < auth_idle_ms(srv) &&
           now - e->checked_ms < RECHECK_MS;
}

static void auth_clear(struct session *s)
{
    s->user_id = 0;
    s->user[0] = '\0';
    s->token_hash[0] = '\0';
}

static void auth_fill(struct session *s, const struct auth_entry *e, int64_t now)
{
    s->user_id = e->user_id;
    snprintf(s->user, sizeof s->user, "%s", e->user);
    memcpy(s->token_hash, e->hash, sizeof s->token_hash);
    s->token_expires_ms = e->expires_ms;
    s->token_touched_ms = now;
}

/* ---- touches: a session's uses, written to the store ---- */

/* A session in use is written as used at most this often, but often
 * enough for a short idle limit. */
int64_t auth_touch_every_ms(const struct server *srv)
{
    int64_t every = auth_idle_ms(srv) / 4;
    return every > TOUCH_EVERY_MS ? TOUCH_EVERY_MS : every;
}

static void auth_touch_queue(struct server *srv, struct auth_entry *e)
{
    struct auth *a = srv->auth;
    if (!e->queued && a->nqueued < TOUCH_QUEUE_MAX) {
        e->queued = 1;
        memcpy(a->queue[a->nqueued++], e->hash, sizeof a->queue[0]);
    }
    if (a->nqueued && !a->flush_at.pos) {
        int64_t now = now_ms(), at = a->flushed_ms + TOUCH_GAP_MS;
        sweep_at(srv->sweep, &a->flush_at, at > now ? at : now, auth_touch_flush);
    }   /* no room for the timer: the next use tries again */
}

/* e was used at now: queued for a touch once the store's last use of it
 * is auth_touch_every_ms old. */
static void auth_used(struct server *srv, struct auth_entry *e, int64_t now)
{
    if (now > e->used_ms)
        e->used_ms = now;
    if (now - e->stored_ms >= auth_touch_every_ms(srv))
        auth_touch_queue(srv, e);
}

struct touch_batch;
struct touch_item {
    struct touch_batch *b;
    char hash[65];
    int  ok;
};
struct touch_batch {
    struct server *srv;
    int64_t at;
    int n, left;                   /* completions still to come */
    struct touch_item item[];
};

static void auth_end(struct server *srv, const char *hash, const char *why);

static void touch_batch_unref(struct touch_batch *b)
{
    if (--b->left == 0)
        free(b);
}

static void touch_begun(void *arg, const struct store_reply *rep)
{
    (void)rep;                     /* a failed BEGIN fails every touch, and the end */
    touch_batch_unref(arg);
}

/* A session that is gone (ended elsewhere, or idle) ends here too. */
static void touch_done(void *arg, const struct store_reply *rep)
{
    struct touch_item *it = arg;
    struct server *srv = it->b->srv;
    it->ok = rep->rc == STORE_OK;
    if (rep->rc == STORE_NOT_FOUND && srv->auth)
        auth_end(srv, it->hash, "session ended");
    touch_batch_unref(it->b);
}

/* Committed: the store has these uses. Failed: queued again at the next use. */
static void touch_committed(void *arg, const struct store_reply *rep)
{
    struct touch_batch *b = arg;
    struct auth *a = b->srv->auth;
    if (rep->rc != STORE_OK)
        fprintf(stderr, "chatd: session touches not committed (%d)\n", rep->rc);
    for (int i = 0; a && rep->rc == STORE_OK && i < b->n; i++) {
        struct auth_entry *e = b->item[i].ok ? cache_find(a, b->item[i].hash) : NULL;
        if (e && b->at > e->stored_ms)
            e->stored_ms = b->at;
        if (e && b->at > e->checked_ms)
            e->checked_ms = b->at;
    }
    touch_batch_unref(b);
}

/* Writes the queued touches: one transaction, every call sent now (none
 * waits on another's completion, so the transaction is never idle). */
static void auth_touch_flush(struct server *srv, struct sweep_timer *t)
{
    struct auth *a = srv->auth;
    (void)t;
    int n = a->nqueued;
    a->flushed_ms = now_ms();
    struct touch_batch *b = n ? malloc(sizeof *b + (size_t)n * sizeof b->item[0]) : NULL;
    if (!b) {
        if (n)                     /* out of memory: later */
            sweep_at(srv->sweep, &a->flush_at, a->flushed_ms + TOUCH_GAP_MS, auth_touch_flush);
        return;
    }
    b->srv = srv;
    b->at = a->flushed_ms;
    b->n = n;
    b->left = n + 2;
    for (int i = 0; i < n; i++) {
        struct auth_entry *e = cache_find(a, a->queue[i]);
        if (e)
            e->queued = 0;
        b->item[i].b = b;
        b->item[i].ok = 0;
        memcpy(b->item[i].hash, a->queue[i], sizeof b->item[i].hash);
    }
    a->nqueued = 0;
    int64_t txn = store_txn_begin_async(srv->store, touch_begun, b);
    for (int i = 0; i < n; i++) {
        struct store_args args = { .token_hash = b->item[i].hash, .now_ms = b->at };
        store_call_async(srv->store, txn, STORE_CALL_SESSION_TOUCH, &args, touch_done, &b->item[i]);
    }
    store_txn_end_async(srv->store, txn, 1, touch_committed, b);
}

/* ---- checks: from the cache, else the store ---- */

static int auth_rc_of(int store_rc)
{
    switch (store_rc) {
    case STORE_OK:          return AUTH_OK;
    case STORE_NOT_FOUND:   return AUTH_REFUSED;
    case STORE_UNAVAILABLE: return AUTH_UNAVAILABLE;
    default:                return AUTH_FAILED;
    }
}

/* s's ticket for a store call; an older one is disowned. */
static struct auth_wait *auth_wait_new(struct server *srv, struct session *s, const char *hash,
                                       auth_done_fn done)
{
    struct auth_wait *w = calloc(1, sizeof *w);
    if (s->auth_wait)
        s->auth_wait->owner = NULL;
    s->auth_wait = w;
    if (!w)
        return NULL;
    w->owner = s;
    w->srv = srv;
    w->done = done;
    memcpy(w->hash, hash, sizeof w->hash);
    snprintf(w->user, sizeof w->user, "%s", s->user);
    return w;
}

/* The store's answer, rc, to the connection: kept for auth_wait_return if
 * it came during the call, else through done. */
static void auth_wait_answer(struct auth_wait *w, int rc)
{
    struct session *s = w->owner;
    if (s && w->in_call) {
        w->finished = 1;
        w->result = rc;
        return;
    }
    if (s)
        s->auth_wait = NULL;
    auth_done_fn done = w->done;
    free(w);
    if (s && done)
        done(s, rc);
}

/* Right after the store call: its result if it came already, else AUTH_PENDING. */
static int auth_wait_return(struct auth_wait *w)
{
    w->in_call = 0;
    if (!w->finished)
        return AUTH_PENDING;
    int rc = w->result;
    w->owner->auth_wait = NULL;
    free(w);
    return rc;
}

static void auth_deleted(void *arg, const struct store_reply *rep)
{
    (void)arg;
    if (rep->rc != STORE_OK && rep->rc != STORE_NOT_FOUND)
        fprintf(stderr, "chatd: an idle session was not deleted (%d)\n", rep->rc);
}

/* The store has the session ss for hash: AUTH_OK and cached, or
 * AUTH_REFUSED if it has idled out (deleted: over for good). s, if not
 * NULL, is authenticated by it now. */
static int auth_found(struct server *srv, const char *hash, const struct store_session *ss,
                      struct session *s)
{
    struct auth *a = srv->auth;
    int64_t now = now_ms(), used = ss->last_used_ms;
    struct auth_entry *e = cache_find(a, hash);
    if (e && e->used_ms > used)
        used = e->used_ms;
    if (now >= ss->expires_ms) {
        auth_end(srv, hash, "session expired");
        return AUTH_REFUSED;
    }
    if (now - used >= auth_idle_ms(srv)) {
        struct store_args args = { .token_hash = hash };
        audit("session.idle_expired", "user=%s", ss->user);
        auth_end(srv, hash, "session ended");
        store_call_async(srv->store, 0, STORE_CALL_SESSION_DELETE, &args, auth_deleted, NULL);
        return AUTH_REFUSED;
    }
    e = cache_slot(a, hash);
    e->user_id = ss->user_id;
    snprintf(e->user, sizeof e->user, "%s", ss->user);
    e->expires_ms = ss->expires_ms;
    if (used > e->used_ms)
        e->used_ms = used;
    if (ss->last_used_ms > e->stored_ms)
        e->stored_ms = ss->last_used_ms;
    e->checked_ms = now;
    if (s) {
        auth_used(srv, e, now);
        auth_fill(s, e, now);
    }
    return AUTH_OK;
}

static void auth_lookup_done(void *arg, const struct store_reply *rep)
{
    struct auth_wait *w = arg;
    int rc = auth_rc_of(rep->rc);
    if (!w->srv->auth)
        rc = AUTH_FAILED;          /* stopping */
    else if (rc == AUTH_OK)
        rc = auth_found(w->srv, w->hash, &rep->session, w->owner);
    else if (rc == AUTH_REFUSED)
        cache_drop(w->srv->auth, w->hash);
    auth_wait_answer(w, rc);
}

int auth_check_token(struct server *srv, struct session *s, const char *token, auth_done_fn done)
{
    char hash[65];
    int64_t now = now_ms();
    auth_clear(s);
    if (!token || !auth_token_well_formed(token))
        return AUTH_REFUSED;
    if (!srv->auth)
        return AUTH_FAILED;
    auth_token_hash(token, hash);
    struct auth_entry *e = cache_find(srv->auth, hash);
    if (e && now >= e->expires_ms) {
        cache_drop(srv->auth, hash);
        return AUTH_REFUSED;
    }
    if (e && cache_fresh(srv, e, now)) {
        auth_used(srv, e, now);
        auth_fill(s, e, now);
        return AUTH_OK;
    }
    struct auth_wait *w = auth_wait_new(srv, s, hash, done);
    if (!w)
        return AUTH_FAILED;
    struct store_args args = { .token_hash = w->hash, .now_ms = now };
    w->in_call = 1;
    store_call_async(srv->store, 0, STORE_CALL_SESSION_LOOKUP, &args, auth_lookup_done, w);
    return auth_wait_return(w);
}

void auth_remember(struct server *srv, const char *token_hash, int64_t user_id,
                   const char *user, int64_t expires_ms)
{
    if (!srv->auth)
        return;
    int64_t now = now_ms();
    struct auth_entry *e = cache_slot(srv->auth, token_hash);
    e->user_id = user_id;
    snprintf(e->user, sizeof e->user, "%s", user);
    e->expires_ms = expires_ms;
    e->used_ms = e->stored_ms = e->checked_ms = now;
}

/* ---- the end of a session ---- */

void auth_release(struct session *s)
{
    if (s->auth_wait) {
        s->auth_wait->owner = NULL;    /* its completion frees it */
        s->auth_wait = NULL;
    }
    if (!s->srv)
        return;
    lws_dll2_remove(&s->held_node);
    sweep_cancel(s->srv->sweep, &s->end_at);
    sweep_leave(&s->touch);
}

/* Every connection holding the session of this token ends, now; it is
 * forgotten here. why must be a constant string (a WebSocket keeps it as
 * its close reason). */
static void auth_end(struct server *srv, const char *hash, const char *why)
{
    if (!srv->auth)
        return;
    char h[65];
    memcpy(h, hash, sizeof h);          /* hash may be in what ends */
    cache_drop(srv->auth, h);
    lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, srv->auth->held.head) {
        struct session *s = lws_container_of(d, struct session, held_node);
        if (!strcmp(s->token_hash, h)) {
            auth_release(s);
            s->ended = 1;
            s->ops->ended(s, why);
        }
    } lws_end_foreach_dll_safe(d, d1);
}

/* Another instance (or this one) deleted the session: store_notify_drain. */
static void auth_on_session_end(void *arg, const char *hash)
{
    struct server *srv = arg;
    auth_end(srv, hash, "session ended");
}

static void auth_logout_done(void *arg, const struct store_reply *rep)
{
    struct auth_wait *w = arg;
    int rc = auth_rc_of(rep->rc);
    if (rc == AUTH_OK || rc == AUTH_REFUSED)
        auth_end(w->srv, w->hash, "logged out");
    if (rc == AUTH_OK)
        audit("logout", "user=%s", w->user);
    auth_wait_answer(w, rc);
}

int auth_logout(struct server *srv, struct session *s, auth_done_fn done)
{
    struct auth_wait *w = auth_wait_new(srv, s, s->token_hash, done);
    if (!w)
        return AUTH_FAILED;
    struct store_args args = { .token_hash = w->hash };
    w->in_call = 1;
    store_call_async(srv->store, 0, STORE_CALL_SESSION_DELETE, &args, auth_logout_done, w);
    return auth_wait_return(w);
}

/* When s's session ends unless used meanwhile: its absolute expiry, or the
 * idle limit after its last known use here. */
static int64_t auth_end_due(struct session *s)
{
    struct auth_entry *e = s->srv->auth ? cache_find(s->srv->auth, s->token_hash) : NULL;
    if (e && e->used_ms > s->token_touched_ms)
        s->token_touched_ms = e->used_ms;
    int64_t idle = s->token_touched_ms + auth_idle_ms(s->srv);
    return idle < s->token_expires_ms ? idle : s->token_expires_ms;
}

static void auth_end_timer(struct server *srv, struct sweep_timer *t);

static void auth_end_arm(struct session *s, int64_t at)
{
    if (sweep_at(s->srv->sweep, &s->end_at, at, auth_end_timer) < 0)
        auth_end(s->srv, s->token_hash, "out of memory");
}

/* The store's word on a held session that looks idle here (another
 * instance may have used it): still on (s's timer set again), or ended. */
static void auth_recheck_done(void *arg, const struct store_reply *rep)
{
    struct auth_wait *w = arg;
    struct server *srv = w->srv;
    struct session *s = w->owner;
    if (s)
        s->auth_wait = NULL;
    if (!srv->auth) {
        /* stopping */
    } else if (rep->rc == STORE_NOT_FOUND) {
        auth_end(srv, w->hash, "session ended");
    } else if (rep->rc == STORE_OK && auth_found(srv, w->hash, &rep->session, NULL) != AUTH_OK) {
        /* idled out: ended by auth_found */
    } else if (s && rep->rc == STORE_OK) {
        if (rep->session.last_used_ms > s->token_touched_ms)
            s->token_touched_ms = rep->session.last_used_ms;
        auth_end_arm(s, auth_end_due(s));
    } else if (s) {                     /* no answer: ask again shortly */
        auth_end_arm(s, now_ms() + RETRY_MS);
    }
    free(w);
}

static void auth_end_timer(struct server *srv, struct sweep_timer *t)
{
    struct session *s = lws_container_of(t, struct session, end_at);
    int64_t now = now_ms();
    if (now >= s->token_expires_ms) {
        auth_end(srv, s->token_hash, "session expired");
        return;
    }
    if (now < auth_end_due(s)) {
        auth_end_arm(s, auth_end_due(s));
        return;
    }
    struct auth_wait *w = auth_wait_new(srv, s, s->token_hash, NULL);
    if (!w) {
        auth_end_arm(s, now + RETRY_MS);
        return;
    }
    struct store_args args = { .token_hash = w->hash, .now_ms = now };
    store_call_async(srv->store, 0, STORE_CALL_SESSION_LOOKUP, &args, auth_recheck_done, w);
}

int auth_still_on(struct session *s)
{
    return s->ended ? -1 : 0;
}

/* ---- connections holding a session ---- */

static void auth_touch_due(struct server *srv, struct sweep_link *l);

static const struct sweep_kind auth_touch_kind = { .due = auth_touch_due };

/* A WebSocket's session is in use while it is open: a use every
 * auth_touch_every_ms (its entry made again if the cache let it go). */
static void auth_touch_due(struct server *srv, struct sweep_link *l)
{
    struct session *s = lws_container_of(l, struct session, touch);
    int64_t now = now_ms();
    struct auth_entry *e = cache_find(srv->auth, s->token_hash);
    if (!e) {
        e = cache_slot(srv->auth, s->token_hash);
        e->user_id = s->user_id;
        snprintf(e->user, sizeof e->user, "%s", s->user);
        e->expires_ms = s->token_expires_ms;
        e->used_ms = s->token_touched_ms;
    }
    auth_used(srv, e, now);
    s->token_touched_ms = now;
    sweep_join(sweep_queue(srv->sweep, &auth_touch_kind, auth_touch_every_ms(srv)), l, sweep_mono_ms());
}

int auth_hold(struct session *s, int in_use)
{
    struct server *srv = s->srv;
    if (!srv->auth || !srv->sweep)
        return -1;
    if (lws_dll2_is_detached(&s->held_node))
        lws_dll2_add_tail(&s->held_node, &srv->auth->held);
    if (in_use)
        sweep_join(sweep_queue(srv->sweep, &auth_touch_kind, auth_touch_every_ms(srv)), &s->touch, sweep_mono_ms());
    if (sweep_at(srv->sweep, &s->end_at, auth_end_due(s), auth_end_timer) < 0) {
        auth_release(s);
        return -1;
    }
    return 0;
}
