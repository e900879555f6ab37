/* auth.c — bearer tokens and the sessions behind them: minting tokens from
 * the CSPRNG, hashing them for storage, resolving a presented token (with
 * absolute and idle expiry), and the end of a session.
 *
 * A connection that holds a session open (a parked long poll, an
 * authenticated WebSocket) is listed here (auth_hold) with a sweep timer at
 * its session's end (the absolute expiry, or the idle limit after its last
 * known use). When a session ends — logout, either expiry, or found gone at
 * a touch or a check — every listed connection of that token is marked
 * ended and told through its ops->ended; its transport answers or closes
 * it. Nothing here names a transport.
 *
 * WebSockets keep their session in use: each is touched every
 * auth_touch_every_ms. Touches are a store write each (a commit, an fsync):
 * they are done at most once a second, all that are due in one transaction,
 * and a session behind several connections is written once per batch. (One
 * autocommit per WebSocket per minute was 317 fsyncs a second with 19,000
 * idle WebSockets.) */
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
#define TOUCH_DEDUPE     64        /* distinct sessions remembered within a batch */

struct auth {
    lws_dll2_owner_t held;         /* connections holding a session */
    int64_t touched_ms;            /* last batch of touches (monotonic) */
    int     txn;                   /* the batch's transaction is open */
    int     nseen;
    struct { char hash[65]; int ended; int64_t at; } seen[TOUCH_DEDUPE];
};

int auth_start(struct server *srv)
{
    srv->auth = calloc(1, sizeof *srv->auth);
    return srv->auth ? 0 : -1;
}

void auth_stop(struct server *srv)
{
    if (!srv->auth)
        return;
    while (srv->auth->held.head)
        lws_dll2_remove(srv->auth->held.head);
    free(srv->auth);
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

static void auth_clear(struct session *s)
{
    s->user_id = 0;
    s->user[0] = '\0';
    s->token_hash[0] = '\0';
}

int auth_check_token(struct server *srv, struct session *s, const char *token)
{
    struct store_session ss;
    char hash[65];
    int64_t now = now_ms();
    auth_clear(s);
    if (!token || !auth_token_well_formed(token))
        return -1;
    auth_token_hash(token, hash);
    if (store_session_lookup(srv->store, hash, now, &ss) != STORE_OK)
        return -1;
    if (now - ss.last_used_ms >= srv->cfg.session_idle_s * 1000) {
        store_session_delete(srv->store, hash);       /* idle too long: over for good */
        audit("session.idle_expired", "user=%s", ss.user);
        return -1;
    }
    if (now - ss.last_used_ms >= auth_touch_every_ms(srv))
        store_session_touch(srv->store, hash, now);
    s->user_id = ss.user_id;
    snprintf(s->user, sizeof s->user, "%s", ss.user);
    memcpy(s->token_hash, hash, sizeof hash);
    s->token_expires_ms = ss.expires_ms;
    s->token_touched_ms = now;
    return 0;
}

/* ---- the end of a session ---- */

void auth_release(struct session *s)
{
    if (!s->srv)
        return;
    lws_dll2_remove(&s->held_node);
    sweep_cancel(s->srv->sweep, &s->end_at);
    sweep_leave(&s->touch);
}

/* Every connection holding the session of this token ends, now. */
static void auth_end(struct server *srv, const char *hash, const char *why)
{
    if (!srv->auth)
        return;
    lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, srv->auth->held.head) {
        struct session *s = lws_container_of(d, struct session, held_node);
        if (!strcmp(s->token_hash, hash)) {
            auth_release(s);
            s->ended = 1;
            s->ops->ended(s, why);
        }
    } lws_end_foreach_dll_safe(d, d1);
}

int auth_logout(struct server *srv, struct session *s)
{
    char hash[65];
    memcpy(hash, s->token_hash, sizeof hash);
    int rc = store_session_delete(srv->store, hash);
    auth_end(srv, hash, "logged out");
    audit("logout", "user=%s", s->user);
    return rc == STORE_OK ? 0 : -1;
}

/* When s's session ends unless used meanwhile: its absolute expiry, or the
 * idle limit after its last known use. */
static int64_t auth_end_due(const struct session *s)
{
    int64_t idle = s->token_touched_ms + (int64_t)s->srv->cfg.session_idle_s * 1000;
    return idle < s->token_expires_ms ? idle : s->token_expires_ms;
}

/* The store's word on s's session: 0 on (s's last use refreshed), -1 ended
 * (idle: deleted, as auth_check_token would). */
static int auth_recheck(struct server *srv, struct session *s)
{
    struct store_session ss;
    int64_t now = now_ms();
    if (store_session_lookup(srv->store, s->token_hash, now, &ss) != STORE_OK)
        return -1;
    if (now - ss.last_used_ms >= srv->cfg.session_idle_s * 1000) {
        store_session_delete(srv->store, s->token_hash);
        audit("session.idle_expired", "user=%s", s->user);
        return -1;
    }
    if (ss.last_used_ms > s->token_touched_ms)
        s->token_touched_ms = ss.last_used_ms;
    return 0;
}

static void auth_end_timer(struct server *srv, struct sweep_timer *t)
{
    struct session *s = lws_container_of(t, struct session, end_at);
    int64_t now = now_ms();
    char hash[65];
    memcpy(hash, s->token_hash, sizeof hash);
    if (now >= s->token_expires_ms)
        auth_end(srv, hash, "session expired");
    else if (now >= auth_end_due(s) && auth_recheck(srv, s) < 0)
        auth_end(srv, hash, "session ended");      /* idle, or gone elsewhere */
    else if (sweep_at(srv->sweep, &s->end_at, auth_end_due(s), auth_end_timer) < 0)
        auth_end(srv, hash, "out of memory");
}

int auth_still_on(struct session *s)
{
    if (s->ended)
        return -1;
    if (!store_is_shared(s->srv->store) || auth_recheck(s->srv, s) == 0)
        return 0;
    char hash[65];
    memcpy(hash, s->token_hash, sizeof hash);
    auth_end(s->srv, hash, "session ended");
    return -1;
}

/* ---- touches of sessions in use ---- */

/* A session in use is written as used at most this often, but often
 * enough for a short idle limit. */
int64_t auth_touch_every_ms(const struct server *srv)
{
    int64_t every = (int64_t)srv->cfg.session_idle_s * 1000 / 4;
    return every > TOUCH_EVERY_MS ? TOUCH_EVERY_MS : every;
}

static int64_t auth_touch_not_before(struct server *srv, int64_t now)
{
    int64_t at = srv->auth->touched_ms + TOUCH_GAP_MS;
    return srv->auth->touched_ms && at > now ? at : 0;
}

static void auth_touch_before(struct server *srv)
{
    struct auth *a = srv->auth;
    a->touched_ms = sweep_mono_ms();
    a->nseen = 0;
    a->txn = store_begin(srv->store) == STORE_OK;   /* commits the chat batch first */
}

static void auth_touch_after(struct server *srv)
{
    if (srv->auth->txn && store_commit(srv->store) != STORE_OK)
        fprintf(stderr, "chatd: session touches not committed\n");
    srv->auth->txn = 0;
}

/* Writes s's session as used now, once per batch; 0, or -1 if it is gone. */
static int auth_touch_once(struct server *srv, struct session *s)
{
    struct auth *a = srv->auth;
    int i = 0;
    while (i < a->nseen && strcmp(a->seen[i].hash, s->token_hash) != 0)
        i++;
    if (i < a->nseen) {
        s->token_touched_ms = a->seen[i].at;
        return a->seen[i].ended ? -1 : 0;
    }
    int64_t now = now_ms();
    int ended = store_session_touch(srv->store, s->token_hash, now) == STORE_NOT_FOUND;
    s->token_touched_ms = now;
    if (a->nseen < TOUCH_DEDUPE) {
        memcpy(a->seen[a->nseen].hash, s->token_hash, sizeof a->seen[0].hash);
        a->seen[a->nseen].ended = ended;
        a->seen[a->nseen++].at = now;
    }
    return ended ? -1 : 0;
}

static void auth_touch_due(struct server *srv, struct sweep_link *l);

static const struct sweep_kind auth_touch_kind = {
    .due = auth_touch_due, .not_before = auth_touch_not_before,
    .before = auth_touch_before, .after = auth_touch_after,
};

/* A session that is gone (ended on another instance) ends here too. */
static void auth_touch_due(struct server *srv, struct sweep_link *l)
{
    struct session *s = lws_container_of(l, struct session, touch);
    if (auth_touch_once(srv, s) == 0) {
        sweep_join(sweep_queue(srv->sweep, &auth_touch_kind, auth_touch_every_ms(srv)), l, sweep_mono_ms());
        return;
    }
    char hash[65];
    memcpy(hash, s->token_hash, sizeof hash);
    auth_end(srv, hash, "session ended");
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
