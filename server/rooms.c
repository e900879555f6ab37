/* rooms.c — this instance's room index (rooms.h): rooms by id and name,
 * users by id, each membership (room, user, joined_id, left_id) linked
 * from both, and the sessions listening for each user. A room keeps the
 * list of its members who have a listening session here ("online"
 * here), so waking a room's event costs its online members, not every
 * connection (issue 18, item 6). general (STORE_GENERAL_ROOM_ID) has no
 * membership entries: everyone is in it, and its online members are the
 * users with a listening session (r->online). */
#include "rooms.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A chained hash table of intrusive nodes; a key may repeat (names are
 * hashed), so lookups compare the entry too. */
struct hnode {
    struct hnode *next;
    uint64_t key;
};

struct htab {
    struct hnode **b;
    size_t nb, n;
};

struct ruser {
    struct hnode h;
    int64_t id;
    lws_dll2_owner_t sessions;    /* session.room_node */
    lws_dll2_owner_t members;     /* rmember.user_node */
    lws_dll2_t online_node;       /* in rooms.online while it has sessions */
};

struct rroom {
    struct hnode h_id, h_name;
    int64_t id;
    char name[72];
    lws_dll2_owner_t members;     /* rmember.room_node */
    lws_dll2_owner_t online;      /* rmember.online_node: members with sessions */
};

struct rmember {
    struct rroom *room;
    struct ruser *user;
    int64_t joined_id, left_id;   /* left_id 0: a member now */
    int64_t changed_id;           /* the last event applied */
    lws_dll2_t room_node, user_node, online_node;
};

struct rooms {
    struct htab by_id, by_name, users;
    lws_dll2_owner_t online;      /* users with a listening session */
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
    return h;
}

static uint64_t hash_id(int64_t id)
{
    return (uint64_t)id * 0x9E3779B97F4A7C15ULL;
}

static int htab_add(struct htab *t, struct hnode *n, uint64_t key)
{
    if (t->n >= t->nb) {
        size_t nb = t->nb ? t->nb * 2 : 64;
        struct hnode **b = calloc(nb, sizeof *b);
        if (!b)
            return -1;
        for (size_t i = 0; i < t->nb; i++)
            for (struct hnode *x = t->b[i], *next; x; x = next) {
                next = x->next;
                x->next = b[x->key % nb];
                b[x->key % nb] = x;
            }
        free(t->b);
        t->b = b;
        t->nb = nb;
    }
    n->key = key;
    n->next = t->b[key % t->nb];
    t->b[key % t->nb] = n;
    t->n++;
    return 0;
}

static struct hnode *htab_first(const struct htab *t, uint64_t key)
{
    struct hnode *x = t->nb ? t->b[key % t->nb] : NULL;
    while (x && x->key != key)
        x = x->next;
    return x;
}

static struct hnode *htab_next(struct hnode *x)
{
    uint64_t key = x->key;
    for (x = x->next; x && x->key != key; x = x->next)
        ;
    return x;
}

struct rooms *rooms_new(void)
{
    return calloc(1, sizeof(struct rooms));
}

static void rooms_free_users(struct rooms *r)
{
    for (size_t i = 0; i < r->users.nb; i++)
        for (struct hnode *x = r->users.b[i], *next; x; x = next) {
            next = x->next;
            struct ruser *u = lws_container_of(x, struct ruser, h);
            while (u->sessions.head) {
                struct session *s = lws_container_of(u->sessions.head, struct session, room_node);
                lws_dll2_remove(&s->room_node);
                s->room_user = NULL;
            }
            free(u);
        }
    free(r->users.b);
}

void rooms_free(struct rooms *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->by_id.nb; i++)
        for (struct hnode *x = r->by_id.b[i], *next; x; x = next) {
            next = x->next;
            struct rroom *room = lws_container_of(x, struct rroom, h_id);
            while (room->members.head) {
                struct rmember *m = lws_container_of(room->members.head, struct rmember, room_node);
                lws_dll2_remove(&m->room_node);
                free(m);
            }
            free(room);
        }
    free(r->by_id.b);
    free(r->by_name.b);
    rooms_free_users(r);
    free(r);
}

static struct rroom *room_by_id(const struct rooms *r, int64_t id)
{
    for (struct hnode *x = htab_first(&r->by_id, hash_id(id)); x; x = htab_next(x)) {
        struct rroom *room = lws_container_of(x, struct rroom, h_id);
        if (room->id == id)
            return room;
    }
    return NULL;
}

static struct rroom *room_by_name(const struct rooms *r, const char *name)
{
    for (struct hnode *x = htab_first(&r->by_name, hash_str(name)); x; x = htab_next(x)) {
        struct rroom *room = lws_container_of(x, struct rroom, h_name);
        if (!strcmp(room->name, name))
            return room;
    }
    return NULL;
}

static struct ruser *user_find(const struct rooms *r, int64_t id)
{
    for (struct hnode *x = htab_first(&r->users, hash_id(id)); x; x = htab_next(x)) {
        struct ruser *u = lws_container_of(x, struct ruser, h);
        if (u->id == id)
            return u;
    }
    return NULL;
}

static struct ruser *user_get(struct rooms *r, int64_t id)
{
    struct ruser *u = user_find(r, id);
    if (u || !(u = calloc(1, sizeof *u)))
        return u;
    u->id = id;
    if (htab_add(&r->users, &u->h, hash_id(id)) < 0) {
        free(u);
        return NULL;
    }
    return u;
}

static struct rroom *room_get(struct rooms *r, int64_t id, const char *name)
{
    struct rroom *room = room_by_id(r, id);
    if (room || !name || strlen(name) >= sizeof room->name || !(room = calloc(1, sizeof *room)))
        return room;
    room->id = id;
    snprintf(room->name, sizeof room->name, "%s", name);
    if (htab_add(&r->by_id, &room->h_id, hash_id(id)) < 0) {
        free(room);
        return NULL;
    }
    if (htab_add(&r->by_name, &room->h_name, hash_str(name)) < 0)
        fprintf(stderr, "chatd: rooms: out of memory indexing %s\n", name);
    return room;
}

static struct rmember *member_find(const struct ruser *u, int64_t room_id)
{
    for (lws_dll2_t *d = u ? u->members.head : NULL; d; d = d->next) {
        struct rmember *m = lws_container_of(d, struct rmember, user_node);
        if (m->room->id == room_id)
            return m;
    }
    return NULL;
}

/* Keeps m in its room's online list exactly while it is a member now and
 * its user has a listening session here. */
static void member_online_sync(struct rmember *m)
{
    int want = !m->left_id && m->user->sessions.count > 0;
    int is = !lws_dll2_is_detached(&m->online_node);
    if (want && !is)
        lws_dll2_add_tail(&m->online_node, &m->room->online);
    else if (!want && is)
        lws_dll2_remove(&m->online_node);
}

static void member_set(struct rooms *r, int64_t room_id, const char *room, int64_t user_id,
                       int64_t joined_id, int64_t left_id, int64_t event_id)
{
    struct rroom *rm = room_get(r, room_id, room);
    struct ruser *u = rm && user_id ? user_get(r, user_id) : NULL;
    if (!u)
        return;
    struct rmember *m = member_find(u, room_id);
    if (!m) {
        if (!(m = calloc(1, sizeof *m)))
            return;
        m->room = rm;
        m->user = u;
        lws_dll2_add_tail(&m->room_node, &rm->members);
        lws_dll2_add_tail(&m->user_node, &u->members);
    } else if (event_id && event_id <= m->changed_id) {
        return;                   /* applied already (loaded after it) */
    }
    if (joined_id >= 0)
        m->joined_id = joined_id;
    m->left_id = left_id;
    m->changed_id = event_id ? event_id : (left_id > joined_id ? left_id : joined_id);
    member_online_sync(m);
}

static void rooms_loaded(void *arg, int64_t room_id, const char *room, int dm,
                         int64_t user_id, int64_t joined_id, int64_t left_id)
{
    (void)dm;
    struct rooms *r = arg;
    if (!user_id)
        room_get(r, room_id, room);
    else
        member_set(r, room_id, room, user_id, joined_id, left_id, 0);
}

int rooms_load(struct rooms *r, struct store *st)
{
    return store_room_members_all(st, rooms_loaded, r);
}

void rooms_apply_member(struct rooms *r, int64_t room_id, const char *room, int64_t user_id,
                        int64_t event_id, int join)
{
    if (room_id == STORE_GENERAL_ROOM_ID)
        return;
    if (join)
        member_set(r, room_id, room, user_id, event_id, 0, event_id);
    else
        member_set(r, room_id, room, user_id, -1, event_id, event_id);
}

int rooms_visible(const struct rooms *r, int64_t user_id, int64_t room_id, int64_t event_id)
{
    if (room_id == 0 || room_id == STORE_GENERAL_ROOM_ID)
        return 1;
    const struct rmember *m = member_find(user_find(r, user_id), room_id);
    return m && m->joined_id <= event_id && (!m->left_id || event_id <= m->left_id);
}

int64_t rooms_lookup(const struct rooms *r, const char *name, int64_t user_id, int *member)
{
    int dummy;
    member = member ? member : &dummy;
    *member = 0;
    if (!r || !strcmp(name, PROTO_DEFAULT_ROOM)) {   /* no index: v1, one room */
        *member = 1;
        return STORE_GENERAL_ROOM_ID;
    }
    const struct rroom *room = room_by_name(r, name);
    if (!room)
        return 0;
    const struct rmember *m = member_find(user_find(r, user_id), room->id);
    if (name[0] == '@' && !m)
        return 0;                 /* a DM is no one else's business */
    *member = m && !m->left_id;
    return room->id;
}

void rooms_session_add(struct rooms *r, struct session *s)
{
    if (!lws_dll2_is_detached(&s->room_node))
        return;
    struct ruser *u = user_get(r, s->user_id);
    if (!u)
        return;
    s->room_user = u;
    lws_dll2_add_tail(&s->room_node, &u->sessions);
    if (u->sessions.count == 1) {
        lws_dll2_add_tail(&u->online_node, &r->online);
        for (lws_dll2_t *d = u->members.head; d; d = d->next)
            member_online_sync(lws_container_of(d, struct rmember, user_node));
    }
}

void rooms_session_remove(struct rooms *r, struct session *s)
{
    struct ruser *u = s->room_user;
    if (!u || lws_dll2_is_detached(&s->room_node))
        return;
    (void)r;
    lws_dll2_remove(&s->room_node);
    s->room_user = NULL;
    if (u->sessions.count == 0) {
        lws_dll2_remove(&u->online_node);
        for (lws_dll2_t *d = u->members.head; d; d = d->next)
            member_online_sync(lws_container_of(d, struct rmember, user_node));
    }
}

static void user_sessions(struct ruser *u, rooms_session_cb cb, void *arg)
{
    lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, u->sessions.head) {
        cb(arg, lws_container_of(d, struct session, room_node));
    } lws_end_foreach_dll_safe(d, d1);
}

void rooms_each_user_session(struct rooms *r, int64_t user_id, rooms_session_cb cb, void *arg)
{
    struct ruser *u = user_find(r, user_id);
    if (u)
        user_sessions(u, cb, arg);
}

void rooms_each_session(struct rooms *r, int64_t room_id, rooms_session_cb cb, void *arg)
{
    if (room_id == 0 || room_id == STORE_GENERAL_ROOM_ID) {
        lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, r->online.head) {
            user_sessions(lws_container_of(d, struct ruser, online_node), cb, arg);
        } lws_end_foreach_dll_safe(d, d1);
        return;
    }
    struct rroom *room = room_by_id(r, room_id);
    if (!room)
        return;
    lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, room->online.head) {
        user_sessions(lws_container_of(d, struct rmember, online_node)->user, cb, arg);
    } lws_end_foreach_dll_safe(d, d1);
}

void rooms_each_member(struct rooms *r, int64_t room_id, rooms_member_cb cb, void *arg)
{
    struct rroom *room = room_by_id(r, room_id);
    for (lws_dll2_t *d = room ? room->members.head : NULL; d; d = d->next) {
        struct rmember *m = lws_container_of(d, struct rmember, room_node);
        if (!m->left_id)
            cb(arg, m->user->id, room->id, room->name);
    }
}

void rooms_each_room_of(struct rooms *r, int64_t user_id, rooms_member_cb cb, void *arg)
{
    struct ruser *u = user_find(r, user_id);
    for (lws_dll2_t *d = u ? u->members.head : NULL; d; d = d->next) {
        struct rmember *m = lws_container_of(d, struct rmember, user_node);
        if (!m->left_id)
            cb(arg, user_id, m->room->id, m->room->name);
    }
}
