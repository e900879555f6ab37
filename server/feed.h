/* feed.h — the event feed (feed.c): appending and publishing events, who
 * listens (woken through their session's ops), reading a user's events. */
#ifndef CHAT_FEED_H
#define CHAT_FEED_H

#include "server.h"
#include "store.h"

struct feed *feed_new(struct store *st);
void feed_free(struct feed *f);
/* Appends through the store; once committed (at once outside a feed
 * transaction, else at feed_commit) the event is cached and its listeners
 * are woken. Same results as store_event_append. */
int feed_append(struct server *srv, const struct store_new_event *ev,
                int64_t *id, int64_t *ts, int *created);
/* A store transaction whose appended events are published only on commit. */
int feed_begin(struct server *srv);
int feed_commit(struct server *srv);
void feed_rollback(struct server *srv);
void feed_subscribe(struct session *s);
void feed_unsubscribe(struct session *s);
void feed_wake_all(struct server *srv);
json_t *feed_fetch(struct server *srv, int64_t user_id, int64_t after, int limit);
/* The first of user_id's events after `after` from memory, as a ready
 * WebSocket frame, header included (owned by the feed and valid until the
 * loop runs again): 1 found, 0 none yet, -1 `after` is older
 * than memory (use feed_fetch). */
int feed_next_frame(struct server *srv, int64_t user_id, int64_t after,
                    int64_t *id, const unsigned char **frame, size_t *len);
/* Stores a chat message in this loop turn's group commit. Once committed
 * (or failed), the sender is answered through its ops->posted and the
 * listeners are woken. -1 if it could not be queued at all. */
int feed_post_chat(struct server *srv, struct session *s, const char *room,
                   const char *body, const char *client_msg_id);
/* Commits the open group commit now, if any; main.c's turn end calls it
 * at the end of every loop turn. */
void feed_flush(struct server *srv);
/* The session is going away: its pending sends are not answered. */
void feed_forget_session(struct session *s);
/* After the context exists: group commit, and notifications from a shared
 * store. turn_end: the loop calls feed_flush at the end of every turn (main.c);
 * else (tests) a timer commits the group at the next turn. feed_stop
 * commits what is open. */
void feed_start(struct server *srv, int turn_end);
void feed_stop(struct server *srv);
/* LWS_CALLBACK_RAW_*_FILE of the store's notification socket. */
int feed_on_notify(struct server *srv, struct lws *wsi, enum lws_callback_reasons reason);

#endif
