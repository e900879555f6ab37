/* auth.h — bearer tokens and the sessions behind them (auth.c): login
 * tokens, their lookup (from an in-memory cache, else an asynchronous
 * store lookup), and the end of a session (logout, absolute and idle
 * expiry, a deletion announced by another instance) reaching every
 * connection that holds it, through its session's ops->ended. */
#ifndef CHAT_AUTH_H
#define CHAT_AUTH_H

#include "server.h"

int  auth_start(struct server *srv);
void auth_stop(struct server *srv);      /* after the last connection closed */
int auth_token_new(char hex[PROTO_TOKEN_HEX_LEN + 1]);
void auth_token_hash(const char *token, char out[65]);

/* What a check or a logout comes to. */
enum auth_rc {
    AUTH_PENDING = 1,       /* asked the store: done(s, rc) follows */
    AUTH_OK = 0,
    AUTH_REFUSED = -1,      /* invalid, expired or ended: 401 / close 4401 */
    AUTH_UNAVAILABLE = -2,  /* the store did not answer in time: retry (503) */
    AUTH_FAILED = -3,       /* the store failed otherwise (500) */
};
typedef void (*auth_done_fn)(struct session *s, int rc);

/* Authenticates s with token (absolute and idle expiry); on AUTH_OK fills
 * the session's user and token fields. A token known here (a login on this
 * instance, an earlier lookup) answers at once; another is looked up in
 * the store: AUTH_PENDING, and done(s, rc) is called later from the loop,
 * unless s lets go of it first (auth_release). Otherwise the result, and
 * done is not called. */
int auth_check_token(struct server *srv, struct session *s, const char *token,
                     auth_done_fn done);
/* A login made this session: it is known here from now on. */
void auth_remember(struct server *srv, const char *token_hash, int64_t user_id,
                   const char *user, int64_t expires_ms);
/* Revokes s's session; once the store has deleted it, ends every
 * connection holding it here (their ops->ended) and calls done(s, rc):
 * AUTH_OK, AUTH_REFUSED if it had ended already, or a store failure. The
 * same return convention as auth_check_token. */
int auth_logout(struct server *srv, struct session *s, auth_done_fn done);
/* s (authenticated) holds its session open until auth_release: a parked
 * long poll, an authenticated WebSocket. When the session ends, s->ended is
 * set and s->ops->ended called, once. in_use: the connection itself keeps
 * the session from idling out (it is touched every auth_touch_every_ms).
 * -1: no room to watch it. */
int  auth_hold(struct session *s, int in_use);
/* Lets go of everything auth keeps for s: its hold, and a check or logout
 * still waiting for the store (whose done is then never called). */
void auth_release(struct session *s);
/* Before delivering to a held connection: 0 if its session is still on,
 * -1 if it has ended (then ops->ended has run for it). From memory: every
 * end reaches the held connections at once (auth_end), ends on other
 * instances through the store's session-end announcements. */
int  auth_still_on(struct session *s);
/* How often an open WebSocket's session is touched (kept from idling out). */
int64_t auth_touch_every_ms(const struct server *srv);

#endif
