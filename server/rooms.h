/* rooms.h — this instance's index of rooms (rooms.c): which users are
 * members of which room, from which event to which, and which sessions
 * listen for each user, so that a room's event is filtered and woken for
 * that room's online members only (protocol v1.1). Filled at startup from
 * the store and kept up from the member events as they enter the feed's
 * ring (every instance sees them in id order). general (room 1) has every
 * user as member, implicitly. Memory only; the store is the truth. */
#ifndef CHAT_ROOMS_H
#define CHAT_ROOMS_H

#include <stdint.h>

#include "server.h"
#include "store.h"

struct rooms;

struct rooms *rooms_new(void);
void rooms_free(struct rooms *r);
/* At startup, before serving: every membership from the store (synchronous). */
int rooms_load(struct rooms *r, struct store *st);

/* A member event (join if join, else leave) with id event_id entered the
 * ring; the room is made known if new. Applied once: an event older than
 * the membership's last change is ignored. */
void rooms_apply_member(struct rooms *r, int64_t room_id, const char *room, int64_t user_id,
                        int64_t event_id, int join);

/* May user_id see event_id of room room_id? (general: always; a room:
 * from the user's join event to their leave event.) */
int rooms_visible(const struct rooms *r, int64_t user_id, int64_t room_id, int64_t event_id);
/* The room named name: its id (0: unknown here) and whether user_id is a
 * member now (*member, may be NULL). A DM user_id is no party to is
 * unknown (0). Without an index (r NULL): general's, a member. */
int64_t rooms_lookup(const struct rooms *r, const char *name, int64_t user_id, int *member);

/* Sessions listening for events (feed_subscribe and feed_unsubscribe). */
void rooms_session_add(struct rooms *r, struct session *s);
void rooms_session_remove(struct rooms *r, struct session *s);
/* Calls cb for every listening session of room_id's online members on
 * this instance (general: every listening session), or of one user. */
typedef void (*rooms_session_cb)(void *arg, struct session *s);
void rooms_each_session(struct rooms *r, int64_t room_id, rooms_session_cb cb, void *arg);
void rooms_each_user_session(struct rooms *r, int64_t user_id, rooms_session_cb cb, void *arg);

/* The current memberships of a room (every member, online or not, on any
 * instance), or of a user: cb(arg, user_id, room_id, room name) each.
 * general has none listed: everyone is in it. */
typedef void (*rooms_member_cb)(void *arg, int64_t user_id, int64_t room_id, const char *room);
void rooms_each_member(struct rooms *r, int64_t room_id, rooms_member_cb cb, void *arg);
void rooms_each_room_of(struct rooms *r, int64_t user_id, rooms_member_cb cb, void *arg);

#endif
