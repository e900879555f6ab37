/* auth.h — bearer tokens and the sessions behind them (auth.c): login
 * tokens, their lookup, and the end of a session (logout, absolute and
 * idle expiry) reaching every connection that holds it, through its
 * session's ops->ended. */
#ifndef CHAT_AUTH_H
#define CHAT_AUTH_H

#include "server.h"

int  auth_start(struct server *srv);
void auth_stop(struct server *srv);      /* after the last connection closed */
int auth_token_new(char hex[PROTO_TOKEN_HEX_LEN + 1]);
void auth_token_hash(const char *token, char out[65]);
/* Looks the token up (absolute and idle expiry); fills the session's user
 * and token fields. 0 ok, -1 invalid. */
int auth_check_token(struct server *srv, struct session *s, const char *token);
/* Revokes s's session and ends every connection holding it on this
 * instance (their ops->ended). 0, or -1 if it had ended already. */
int auth_logout(struct server *srv, struct session *s);
/* s (authenticated) holds its session open until auth_release: a parked
 * long poll, an authenticated WebSocket. When the session ends, s->ended is
 * set and s->ops->ended called, once. in_use: the connection itself keeps
 * the session from idling out (it is touched every auth_touch_every_ms,
 * which also notices an end elsewhere). -1: no room to watch it. */
int  auth_hold(struct session *s, int in_use);
void auth_release(struct session *s);
/* Before delivering to a held connection: 0 if its session is still on,
 * -1 if it has ended (then ops->ended has run for it). Free on a store of
 * our own (every end reaches ops->ended at once); one store lookup on a
 * shared one, where another instance may have ended it. */
int  auth_still_on(struct session *s);
/* How often an open WebSocket's session is touched (kept from idling out). */
int64_t auth_touch_every_ms(const struct server *srv);

#endif
