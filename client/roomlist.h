/* roomlist.h — the client's room model: the rooms the user is in (public rooms
 * and direct conversations) with their unread counts, topics, who of them
 * is online, who is typing, the current room, read markers owed to the
 * server and the history paging state of each. Fed from the rooms list
 * (GET /api/v1/rooms), the feed's events, presence lists and ephemeral
 * items; read by the front ends; no I/O (client/sync.c does the calls).
 * Times are passed in (ms), so the tests drive the clock. */
#ifndef CHAT_ROOMLIST_H
#define CHAT_ROOMLIST_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "proto_rooms.h"

#define ROOMLIST_TYPING_MS      5000   /* "bob is typing" lasts this after the item */
#define ROOMLIST_TYPING_SEND_MS 3000   /* we tell the server at most this often per room */
#define ROOMLIST_TYPING_MAX     8      /* typers remembered per room */
#define ROOMLIST_ONLINE_MAX     64     /* names kept per room (the rest counted) */
#define ROOMLIST_MAX            200    /* rooms kept (the server allows 100 joined) */
#define ROOMLIST_UNREAD_IDS     64     /* unread events counted here whose ids are kept */

struct room {
    char name[PROTO_ROOM_REF_MAX + 1];
    char peer[PROTO_USER_MAX + 1];  /* a DM: the other user; else "" */
    char topic[PROTO_TOPIC_MAX + 1];
    int joined;
    int64_t members, online;        /* from the list; online kept live */
    int64_t unread;                 /* chat events not yet seen: */
    int64_t counted_upto;           /* those up to this id counted by the list (ids unknown), */
    int64_t unread_ids[ROOMLIST_UNREAD_IDS];  /* and those after it, counted here */
    int n_unread_ids, unread_ids_lost;        /* (lost: more than the array holds) */
    int64_t last_id;                /* newest event id of the room known */
    int64_t newest_shown;           /* newest id the user has seen here */
    int64_t read_sent;              /* newest read marker sent */
    int64_t oldest;                 /* oldest event id loaded (0: none) */
    int more;                       /* the server has older events */
    int64_t page_asked;             /* `before` of the page asked (0: none) */
    int loaded;                     /* a page of its history arrived */
    int view_asked;                 /* its first page is asked (roomlist_view_due) */
    struct { char user[PROTO_USER_MAX + 1]; int64_t until_ms; } typing[ROOMLIST_TYPING_MAX];
    int64_t typing_sent_ms;         /* when we last told the server we type */
    char online_names[ROOMLIST_ONLINE_MAX][PROTO_USER_MAX + 1];
    size_t n_online_names;
    int online_known;               /* online_names came from the server */
    json_t *seen;                   /* users known to be members: {name:true} */
};

struct roomlist;

struct roomlist *roomlist_new(const char *self);
void roomlist_free(struct roomlist *r);

const char *roomlist_self(const struct roomlist *r);
size_t roomlist_count(const struct roomlist *r);
/* Joined rooms in list order (general first, then public rooms by name,
 * then DMs by name); NULL past the end. */
const struct room *roomlist_at(const struct roomlist *r, size_t i);
const struct room *roomlist_find(const struct roomlist *r, const char *name);
/* The room messages go to and the screen shows; never NULL once a room is
 * known (general until the list says more). */
const struct room *roomlist_current(const struct roomlist *r);
size_t roomlist_current_index(const struct roomlist *r);
/* Shows room i / by name (wraps nothing; out of range: -1). Its unread
 * count goes to 0. */
int roomlist_switch(struct roomlist *r, size_t i);
int roomlist_switch_name(struct roomlist *r, const char *name);
/* Next / previous joined room, wrapping (Ctrl-N / Ctrl-P). */
void roomlist_switch_step(struct roomlist *r, int step);

/* The rooms list answer: joined rooms are kept (with their counts and
 * topic), rooms not joined are forgotten; the current room stays if still
 * joined. */
void roomlist_load_list(struct roomlist *r, const struct proto_room_info *v, size_t n);
/* Adds (or finds) a joined room by name; NULL if invalid or full. */
struct room *roomlist_add(struct roomlist *r, const char *name);
void roomlist_remove(struct roomlist *r, const char *name);

/* An event from the feed (live, or history when `history`): updates
 * last_id, unread (a chat from someone else in a room not shown, live
 * only, newer than the room's last_id: the rooms list counted those up to
 * it; our own there, from another of our clients showing it: 0), topic, membership (our own member events) and who is known to be
 * in the room; the first live event of a room not loaded is its oldest.
 * Returns the room it belongs to, or NULL (alerts, unknown). */
const struct room *roomlist_on_event(struct roomlist *r, const json_t *event, int history);
/* A history page of room `name` arrived: oldest and more. */
void roomlist_on_page(struct roomlist *r, const char *name, const json_t *events, int more);
/* The before id of the older page to ask for room `name`, marking it asked,
 * or 0 if none is due (no more, already asked or loaded). */
int64_t roomlist_page_due(struct roomlist *r, const char *name);

/* Only the room on screen gets its newest page at the start (sync.c); the
 * others get theirs the first time they are shown. The `before` of that
 * page for room `name`, marking it asked: the oldest event the live feed
 * brought there, else cursor + 1 (the client's cursor: nothing of the room
 * up to it was shown); 0 if it has a page or asked for one. */
int64_t roomlist_view_due(struct roomlist *r, const char *name, int64_t cursor);

/* The page asked could not be had: it may be asked again. */
void roomlist_page_failed(struct roomlist *r, const char *name);

/* Who is online: a room's presence list (names), a presence item. */
void roomlist_set_online(struct roomlist *r, const char *name, const json_t *names);
void roomlist_on_presence(struct roomlist *r, const char *user, int online);
/* Is user online, as far as we know (DM peers are marked by it). */
int roomlist_user_online(const struct roomlist *r, const char *user);
void roomlist_on_typing(struct roomlist *r, const char *room, const char *user, int64_t now_ms);
/* "bob is typing", "bob and carol are typing", "3 people are typing" for
 * the room at now, into buf; 0 if nobody is. */
int roomlist_typing_text(const struct roomlist *r, const char *room, int64_t now_ms, char *buf,
                      size_t size);
/* Should we tell the server we type in the current room now? (marks it) */
int roomlist_typing_due(struct roomlist *r, int64_t now_ms);

/* Another of the user's clients moved the read marker of room name to
 * read_id (a "read" item): read up to there. Its unread count goes to 0
 * if that is the newest event known here, else to the events counted here
 * after read_id, when they are all known by id (the marker is not below
 * what the rooms list counted); otherwise the count stays until the next
 * rooms list. */
void roomlist_on_read(struct roomlist *r, const char *name, int64_t read_id);

/* The read marker owed for the current room (its newest shown id), or 0
 * if the server has it already; marks it sent. */
int64_t roomlist_read_due(struct roomlist *r);

/* One line for people: "1:general 2:rust(3) 3:@bob*" — index, name,
 * unread in brackets, a DM peer online marked '*', the current room in
 * square brackets. Fits in width columns (names cut, then rooms left out
 * with "+N"). */
void roomlist_bar_text(const struct roomlist *r, size_t width, char *buf, size_t size);

#endif
