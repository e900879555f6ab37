/* presence.h — who is online, and the ephemeral items (presence changes,
 * typing) that reach connections without being stored (presence.c).
 *
 * A user is online on this instance while any of their sessions holds a
 * WebSocket, an SSE stream or a parked long poll (presence_hold), or made
 * an events request within the poll window (presence_polled); offline a
 * grace after the last of these ends. With a shared store each instance
 * keeps a lease per user it holds online, so every instance also knows who
 * is online elsewhere; a user shown online is online here or elsewhere.
 * Every change of what is shown is announced to every online user (all
 * share `general`) through their session's ops->ephemeral, and queued for
 * pollers by session token (a short poller holds no connection). */
#ifndef CHAT_PRESENCE_H
#define CHAT_PRESENCE_H

#include "server.h"

#define PRESENCE_QUEUE_MAX   64      /* items kept per polling session */
#define PRESENCE_ITEM_TTL_MS 10000   /* an item not fetched within this is dropped */
#define PRESENCE_GRACE_MS    10000   /* default --presence-grace-ms */
#define PRESENCE_POLL_MS     10000   /* a poll keeps its user online this long */
#define PRESENCE_LEASE_MS    30000   /* default --presence-lease-ms */
#define PRESENCE_TYPING_MS   3000    /* one typing item per user and room at most this often */

/* grace_ms, poll_ms, lease_ms: 0 for the defaults above. */
struct presence *presence_new(struct server *srv, int64_t grace_ms, int64_t poll_ms,
                              int64_t lease_ms);
void presence_free(struct presence *p);
/* After the context exists: the timer, and leases on a shared store. */
void presence_start(struct server *srv);
void presence_stop(struct server *srv);

/* Tests: the monotonic clock presence reads (default sweep_mono_ms), and a
 * callback for every change of what is shown. presence_tick runs what the
 * timer runs. */
void presence_set_clock(struct presence *p, int64_t (*clock)(void));
void presence_set_observer(struct presence *p, void (*cb)(void *arg, const char *user, int online),
                           void *arg);
void presence_tick(struct presence *p);

/* s (authenticated) holds its user online until presence_release. -1: out
 * of memory. Holding twice is holding once. */
int  presence_hold(struct session *s);
void presence_release(struct session *s);
/* s made an events request: its user is online for the poll window, and
 * ephemeral items are kept for its token from now on. */
int  presence_polled(struct session *s);
/* The items kept for s's token, oldest first, as a new JSON array (taken:
 * they are not kept any more), or NULL if there are none. */
json_t *presence_take(struct session *s);
int  presence_has_items(const struct session *s);
/* s's token was just answered with something (events or items). */
void presence_answered(struct session *s);
/* How many ms s's token still waits for its next answer, pace_ms after
 * its last one; 0 when it may be answered now. */
int64_t presence_pace_wait_ms(const struct session *s, int64_t pace_ms);

/* Who a room's ephemeral items reach, as the caller knows the room
 * (presence knows no rooms): NULL for `general` (every user). member:
 * whether user_id may see it; each_session: calls cb for every listening
 * session of the room's online members on this instance (NULL: every
 * subscriber, filtered by member). */
struct presence_room {
    int  (*member)(void *arg, int64_t user_id);
    void (*each_session)(void *arg, void (*cb)(void *cbarg, struct session *s), void *cbarg);
    void *arg;
};

/* A room's audience from this instance's room index (rooms.h): fills who
 * (with ix, which must live as long) and returns it, or NULL for general
 * (everyone). */
struct rooms;
struct presence_room_ix {
    struct rooms *rooms;
    int64_t room_id;
};
const struct presence_room *presence_room_of(struct presence_room *who, struct presence_room_ix *ix,
                                             struct rooms *r, int64_t room_id);
/* The room named name (public, or a DM's "@a,b") as s may use it for
 * typing and its presence list: its id, or 0 with *status 404 (no such
 * room, or a DM s is no party to) or 403 (not a member). */
int64_t presence_room_find(const struct session *s, const char *name, int *status);

/* How many of room_id's members are shown online (general: everyone
 * shown); O(the room's members), from the room index. */
int64_t presence_room_online(struct presence *p, struct rooms *r, int64_t room_id);

/* Typing by s in room (a name the caller has checked, s a member; room_id
 * its id): relayed to the room's other members (who: NULL, everyone) at
 * most once per PRESENCE_TYPING_MS (1), or dropped (0); -1 out of memory.
 * On a shared store it goes to every instance (STORE_CALL_BROADCAST),
 * each relaying it to the room's members it holds. */
int  presence_typing(struct session *s, const char *room, int64_t room_id, const struct presence_room *who);

/* user_id's read marker of room moved to read_id: an item
 * {"type":"read","room","read_id"} to each of that user's connections and
 * pollers, so their other clients clear the room's unread count; on a
 * shared store through every instance (STORE_CALL_BROADCAST). 1 sent, 0
 * not for anyone (no room index, a bad name), -1 out of memory. */
int  presence_read_moved(struct presence *p, int64_t user_id, const char *room, int64_t read_id);

/* Whether user_id is shown online (O(1): a rooms list's online counts);
 * the names shown online (of who's members; NULL: all), sorted, as a new
 * JSON array. */
int  presence_online(const struct presence *p, int64_t user_id);
json_t *presence_online_names(struct presence *p, const struct presence_room *who);

/* ---- a small queue of ephemeral text (SSE streams, pollers) ---- */
void eph_queue_push(struct eph_queue *q, const char *text, int64_t now);
/* Drops items older than PRESENCE_ITEM_TTL_MS. */
void eph_queue_expire(struct eph_queue *q, int64_t now);
void eph_queue_clear(struct eph_queue *q);

#endif
