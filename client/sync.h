/* sync.h — the client's protocol v1.1 calls over HTTP, whatever the event
 * transport: the start (shared/PROTOCOL.md "How a client starts": the
 * cursor from after=latest, the rooms list, the newest 100 messages of
 * the room on screen, then the live feed from the cursor), each other
 * room's newest page the first time it is shown, older history pages on
 * demand, joining, leaving, the rooms list, presence lists,
 * topics, read markers and typing notices. Answers are parsed with
 * shared/proto_rooms.h, kept in the room model (roomlist.h), and passed to
 * the app through the callbacks; errors reach the user through the core
 * (core_error). */
#ifndef CHAT_SYNC_H
#define CHAT_SYNC_H

#include <jansson.h>
#include <stdint.h>

#include "proto_rooms.h"

struct core;
struct http;
struct roomlist;
struct servers;

#define SYNC_HISTORY 100        /* messages per page (the room's first, and older ones) */

struct sync_env {
    struct http *http;
    struct core *core;
    struct roomlist *rooms;
    struct servers *servers;
    const char *token;          /* borrowed, outlives the sync */
    int timeout_s;
    /* The start is over: the history up to cursor was delivered (history())
     * and the live feed goes on after it. 0 when the feed is empty, or the
     * server has no v1.1 start (a v1 server answers after=latest with 400)
     * or could not be asked: the feed then starts from its beginning, as
     * v1 did. */
    void (*started)(void *arg, int64_t cursor);
    /* Events older than the live feed, oldest first, one room's (at the
     * start, the room on screen's: room NULL, to go through the core). */
    void (*history)(void *arg, const char *room, const json_t *events, int more, int start);
    /* The room model changed (list, presence, membership): redraw. The
     * answers to /rooms and /who are core notices (text and data). */
    void (*changed)(void *arg);
    void *arg;
};

struct sync;
struct sync *sync_new(const struct sync_env *env);
/* Cancels every request still open. */
void sync_free(struct sync *s);

void sync_start(struct sync *s);
/* /join NAME: join, or create if there is no such room; then shown. */
void sync_join(struct sync *s, const char *name);
void sync_part(struct sync *s, const char *name);
void sync_list(struct sync *s);
void sync_who(struct sync *s, const char *name);
/* The same without a word to the user: the room's online list, kept. */
void sync_presence(struct sync *s, const char *name);
void sync_topic(struct sync *s, const char *name, const char *topic);
/* The room shown is shown for the first time: its newest page, once
 * (roomlist_view_due; after the start). */
void sync_view(struct sync *s);
/* The older page of room `name`, if one is due (roomlist_page_due). */
void sync_page(struct sync *s, const char *name);
/* The read marker of the room shown, if owed (roomlist_read_due). */
void sync_read(struct sync *s);
/* The user types in the room shown: tells the server, at most every 3 s. */
void sync_typing(struct sync *s, int64_t now_ms);

/* A room name as a path segment ("@alice,bob" percent-encoded). */
void sync_path_name(const char *name, char *out, size_t size);

#endif
