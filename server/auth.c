/* auth.c — bearer tokens and the sessions behind them: minting tokens from
 * the CSPRNG, hashing them for storage, resolving a presented token (with
 * absolute and idle expiry), logout, and the session touch of open
 * WebSockets (sweep.c closes those whose session ended). */
#include "server.h"
#include "audit.h"

#include <sodium.h>
#include <string.h>

#define TOUCH_EVERY_MS   60000     /* last_used is written at most this often */

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

static void auth_close_sessions(struct server *srv, const char *hash, const char *why)
{
    lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, srv->subscribers.head) {
        struct session *s = lws_container_of(d, struct session, sub_node);
        if (s->is_ws && s->user_id && !strcmp(s->token_hash, hash))
            ws_begin_close(s, 4401, why);
    } lws_end_foreach_dll_safe(d, d1);
}

int auth_logout(struct server *srv, struct session *s)
{
    char hash[65];
    memcpy(hash, s->token_hash, sizeof hash);
    int rc = store_session_delete(srv->store, hash);
    auth_close_sessions(srv, hash, "logged out");
    audit("logout", "user=%s", s->user);
    return rc == STORE_OK ? 0 : -1;
}

/* A session in use is written as used at most this often, but often
 * enough for a short idle limit. */
int64_t auth_touch_every_ms(const struct server *srv)
{
    int64_t every = (int64_t)srv->cfg.session_idle_s * 1000 / 4;
    return every > TOUCH_EVERY_MS ? TOUCH_EVERY_MS : every;
}

/* Called by the sweep (sweep.c) for an open WebSocket, every
 * auth_touch_every_ms: keeps its session from idling out, and notices a
 * session that ended elsewhere (expiry is the sweep's own heap). */
int auth_touch(struct server *srv, struct session *s)
{
    int64_t now = now_ms();
    s->token_touched_ms = now;
    return store_session_touch(srv->store, s->token_hash, now) == STORE_NOT_FOUND ? -1 : 0;
}
