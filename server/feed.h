/* feed.h — the event feed (feed.c): appending and publishing events, who
 * listens (woken through their session's ops), reading a user's events.
 * Every store call it makes while serving is asynchronous (store.h): its
 * completions may run before the call returns (SQLite) or later. */
#ifndef CHAT_FEED_H
#define CHAT_FEED_H

#include "server.h"
#include "store.h"

/* At startup: reads the last event id (synchronously, before serving). */
struct feed *feed_new(struct store *st);
/* After the loop's last turn; what the store still answers later finds the
 * feed's objects marked gone and only frees them. */
void feed_free(struct feed *f);

/* ---- a store transaction whose events are published on commit ----
 * The bank's steps: feed_txn_begin queues the BEGIN and returns at once
 * (NULL: out of memory, nothing was sent); the caller sends its first call
 * right away, with feed_txn_handle(t) for store_call_async, and from each
 * completion its next call, then feed_txn_end. A failed BEGIN makes the
 * calls inside fail and the end report it. Events appended with
 * feed_txn_append enter the ring and wake their listeners only once the
 * commit succeeded. feed_txn_end calls done exactly once with the end's
 * reply (rc: the commit's, or the first failure inside the transaction
 * when commit was asked but it could not commit) and then frees t. */
struct feed_txn;
struct feed_txn *feed_txn_begin(struct server *srv);
int64_t feed_txn_handle(const struct feed_txn *t);
/* done(arg, reply) as STORE_CALL_EVENT_APPEND's (id, ts_ms, created). */
void feed_txn_append(struct feed_txn *t, const struct store_new_event *ev,
                     store_done_fn done, void *arg);
void feed_txn_end(struct feed_txn *t, int commit, store_done_fn done, void *arg);

/* Listening: woken for every event (feed_wake_all), and once s has a
 * user, for its user's and rooms' (rooms.h); again after it has one. */
void feed_subscribe(struct session *s);
/* The newest event id this instance knows: where after=latest starts. */
int64_t feed_newest(struct server *srv);
/* Shared store: how long (ms) the oldest of this instance's committed
 * batches has waited for its events to become readable, i.e. for a
 * transaction open elsewhere below them to end (the read watermark, db/pg/
 * 006_event_ids.sql); 0 if none waits. For /healthz. */
int64_t feed_held_ms(struct server *srv);
void feed_unsubscribe(struct session *s);
void feed_wake_all(struct server *srv);

/* A user's events after `after`, at most limit, for session s (whose
 * user_id is the reader): STORE_OK and a new reference in *events (from
 * memory, or the rows a store read finished for s with this same `after`);
 * FEED_PENDING when they must come from the store: the read is started
 * (or still running) and s->ops->wake(s) is called once its rows are in,
 * so s asks again; or the read's store error (STORE_UNAVAILABLE: retry). */
#define FEED_PENDING (-1)
int feed_fetch(struct session *s, int64_t after, int limit, json_t **events);
/* The first of user_id's events after `after` from memory, as a ready
 * WebSocket frame, header included (owned by the feed and valid until the
 * loop runs again): 1 found, 0 none yet, -1 `after` is older
 * than memory (use feed_fetch). */
int feed_next_frame(struct server *srv, struct session *s, int64_t after,
                    int64_t *id, const unsigned char **frame, size_t *len);

/* Stores a chat message in the open group commit. Once its transaction has
 * committed (or failed), the sender is answered through its ops->posted
 * (STORE_UNAVAILABLE: retryable, e.g. too many sends waiting), in id
 * order, and the listeners are woken. -1 if it could not be queued at all
 * (out of memory): the caller answers. */
int feed_post_chat(struct server *srv, struct session *s, int64_t room_id, const char *room,
                   const char *body, const char *client_msg_id);
/* A room change (STORE_CALL_ROOM_CREATE, _JOIN, _LEAVE, _TOPIC, _READ,
 * DM_OPEN): the store makes it, then its events enter the ring as a
 * commit's (the room index learns a membership from its member event
 * there), and only then done(arg, reply) with the call's rc, room_err,
 * room_id and id (reply->events are not passed on). */
void feed_room_call(struct server *srv, enum store_call_kind kind, const struct store_args *args,
                    store_done_fn done, void *arg);
/* Ends the open group commit now (its commit may complete later), if any;
 * main.c's turn end calls it at the end of every loop turn. */
void feed_flush(struct server *srv);
/* The session is going away: its pending sends are not answered and its
 * store read, if any, is dropped when it completes. */
void feed_forget_session(struct session *s);
/* After the context exists: group commit, and notifications from a shared
 * store. turn_end: the loop calls feed_flush at the end of every turn (main.c);
 * else (tests) a timer ends the group at the next turn. feed_stop
 * ends what is open. */
void feed_start(struct server *srv, int turn_end);
void feed_stop(struct server *srv);
/* LWS_CALLBACK_RAW_*_FILE of the store's notification socket. */
int feed_on_notify(struct server *srv, struct lws *wsi, enum lws_callback_reasons reason);

#endif
