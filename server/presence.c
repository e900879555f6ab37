/* presence.c — who is online (presence.h): per user, the sessions holding
 * them online on this instance, the poll window (and when each polling
 * token was last answered, for http_api.c's pace), the grace before offline,
 * and whether another instance holds them (leases on a shared store); the
 * ephemeral items (presence changes, typing, a user's read markers): made once per change,
 * handed to every live connection through ops->ephemeral and queued per
 * session token for pollers (a short poller has no connection between its
 * polls); typing's rate limit. Nothing here is stored but the leases.
 *
 * One lws timer (armed only while something waits: a grace, a poller's
 * queue, a rate-limit stamp) runs presence_tick; a second one renews the
 * leases on a shared store every lease/6. A user is shown online while
 * online here (local) or under another instance's live lease (remote). */
#include "presence.h"
#include "clock.h"
#include "proto_rooms.h"
#include "rooms.h"
#include "store.h"
#include "sweep.h"

#include <errno.h>
#include <sodium.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PRESENCE_TICK_MS  250
#define PRESENCE_ANNOUNCE_MS 100    /* local changes reach the leases within this */
#define PRESENCE_PROBE_MS 1000       /* a held HTTP connection's socket is peeked at this often */
#define TYPING_SLOTS      8          /* rooms a user's typing stamps are kept for */

static void presence_probe_due(struct server *srv, struct sweep_link *l);
static const struct sweep_kind probe_kind = { .due = presence_probe_due };

struct typing_stamp {
    char room[PROTO_ROOM_MAX + 2];
    int64_t at_ms;
};

struct presence_user {
    struct presence_user *next;      /* in its hash bucket */
    int64_t user_id;
    char name[PROTO_USER_MAX + 1];
    int holds;                       /* sessions holding it online here */
    int64_t poll_until;              /* online by a poll until then (monotonic) */
    int64_t off_at;                  /* local offline due then, while holds == 0 */
    int local, remote, shown;
    int64_t remote_gen;              /* the lease read that last saw it remote */
    int waiting;                     /* in p->waiting */
    lws_dll2_t wait_node;
    lws_dll2_owner_t polls;          /* its pollers (struct presence_poll) */
    struct typing_stamp typing[TYPING_SLOTS];
};

/* A polling session token's queue. */
struct presence_poll {
    lws_dll2_t node;                 /* in its user's polls */
    lws_dll2_t all_node;             /* in p->polls */
    struct presence_user *u;
    char token_hash[65];
    int64_t last_ms;                 /* its last events request */
    int64_t answered_ms;             /* its last answer with something in it */
    struct eph_queue q;
};

struct renew_ticket {
    struct presence *p;              /* NULL: presence went away first */
};

struct presence {
    struct server *srv;
    int64_t grace_ms, poll_ms, lease_ms;
    int64_t (*clock)(void);
    void (*observe)(void *arg, const char *user, int online);
    void *observe_arg;
    struct presence_user **buckets;
    size_t nbuckets, nusers;
    size_t nlocal, nshown;           /* users online here; shown online */
    lws_dll2_owner_t waiting;        /* users whose state the tick must look at */
    lws_dll2_owner_t polls;          /* every poller's queue */
    lws_sorted_usec_list_t tick_sul, lease_sul;
    int started, tick_armed;
    /* leases */
    char lease_owner[96];
    struct renew_ticket *renewing;   /* a renewal in flight */
    int renew_again, renew_notify;
    int soon;                        /* a renewal with notify is scheduled (lease_soon) */
    int64_t gen;
};

/* ---- ephemeral queues ---- */

void eph_queue_push(struct eph_queue *q, const char *text, int64_t now)
{
    size_t n = strlen(text);
    struct eph_item *it = malloc(sizeof *it + n + 1);
    if (!it)
        return;                      /* ephemeral: lost, like one too late */
    it->next = NULL;
    it->at_ms = now;
    memcpy(it->text, text, n + 1);
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    if (++q->n > PRESENCE_QUEUE_MAX) {   /* the oldest goes */
        struct eph_item *old = q->head;
        q->head = old->next;
        q->n--;
        free(old);
    }
}

void eph_queue_expire(struct eph_queue *q, int64_t now)
{
    while (q->head && now - q->head->at_ms >= PRESENCE_ITEM_TTL_MS) {
        struct eph_item *old = q->head;
        q->head = old->next;
        q->n--;
        free(old);
    }
    if (!q->head)
        q->tail = NULL;
}

void eph_queue_clear(struct eph_queue *q)
{
    while (q->head) {
        struct eph_item *old = q->head;
        q->head = old->next;
        free(old);
    }
    q->tail = NULL;
    q->n = 0;
}

/* ---- the user table ---- */

static size_t bucket_of(const struct presence *p, int64_t user_id)
{
    uint64_t h = (uint64_t)user_id * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & (p->nbuckets - 1);
}

static struct presence_user *user_find(const struct presence *p, int64_t user_id)
{
    struct presence_user *u = p->buckets[bucket_of(p, user_id)];
    while (u && u->user_id != user_id)
        u = u->next;
    return u;
}

static void table_grow(struct presence *p)
{
    size_t old_n = p->nbuckets;
    struct presence_user **nb = calloc(old_n * 2, sizeof *nb);
    if (!nb)
        return;                      /* longer chains; still correct */
    struct presence_user **old = p->buckets;
    p->buckets = nb;
    p->nbuckets = old_n * 2;
    for (size_t i = 0; i < old_n; i++)
        while (old[i]) {
            struct presence_user *u = old[i];
            old[i] = u->next;
            size_t b = bucket_of(p, u->user_id);
            u->next = nb[b];
            nb[b] = u;
        }
    free(old);
}

static struct presence_user *user_get(struct presence *p, int64_t user_id, const char *name)
{
    struct presence_user *u = user_find(p, user_id);
    if (u)
        return u;
    if (p->nusers >= p->nbuckets)
        table_grow(p);
    u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    u->user_id = user_id;
    snprintf(u->name, sizeof u->name, "%s", name);
    size_t b = bucket_of(p, user_id);
    u->next = p->buckets[b];
    p->buckets[b] = u;
    p->nusers++;
    return u;
}

static void user_remove(struct presence *p, struct presence_user *u)
{
    struct presence_user **pp = &p->buckets[bucket_of(p, u->user_id)];
    while (*pp != u)
        pp = &(*pp)->next;
    *pp = u->next;
    p->nusers--;
    if (u->waiting)
        lws_dll2_remove(&u->wait_node);
    free(u);
}

/* ---- the timer ---- */

static void presence_tick_sul(lws_sorted_usec_list_t *sul)
{
    struct presence *p = lws_container_of(sul, struct presence, tick_sul);
    p->tick_armed = 0;
    presence_tick(p);
}

static void tick_arm(struct presence *p)
{
    if (!p->started || p->tick_armed || !p->waiting.count)
        return;
    p->tick_armed = 1;
    lws_sul_schedule(p->srv->ctx, 0, &p->tick_sul, presence_tick_sul,
                     PRESENCE_TICK_MS * LWS_US_PER_MS);
}

static void user_wait(struct presence *p, struct presence_user *u)
{
    if (!u->waiting) {
        u->waiting = 1;
        lws_dll2_add_tail(&u->wait_node, &p->waiting);
    }
    tick_arm(p);
}

/* ---- delivery ---- */

struct delivery {
    const struct ephemeral *e;
    int64_t except;
};

static void deliver_to(void *arg, struct session *s)
{
    struct delivery *d = arg;
    if (s->user_id && s->user_id != d->except && !s->ended && s->ops && s->ops->ephemeral)
        s->ops->ephemeral(s, d->e);
}

/* Every live connection's user and every poller (of who's members; NULL:
 * all) gets e, except the user `except` (the one it is about). */
static void deliver(struct presence *p, const struct ephemeral *e, int64_t except,
                    const struct presence_room *who)
{
    int64_t now = p->clock();
    lws_start_foreach_dll(struct lws_dll2 *, d, p->polls.head) {
        struct presence_poll *pl = lws_container_of(d, struct presence_poll, all_node);
        int64_t uid = pl->u->user_id;
        if (uid != except && (!who || !who->member || who->member(who->arg, uid))) {
            eph_queue_push(&pl->q, e->item, now);
            user_wait(p, pl->u);     /* its items expire */
        }
    } lws_end_foreach_dll(d);
    struct delivery dv = { e, except };
    if (who && who->each_session) {
        who->each_session(who->arg, deliver_to, &dv);
        return;
    }
    lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, p->srv->subscribers.head) {
        struct session *s = lws_container_of(d, struct session, sub_node);
        if (!who || !who->member || (s->user_id && who->member(who->arg, s->user_id)))
            deliver_to(&dv, s);
    } lws_end_foreach_dll_safe(d, d1);
}

/* deliver() of an item of type made of item and frame (both taken): 1, or
 * -1 out of memory. */
static int deliver_json(struct presence *p, const char *type, json_t *item, json_t *frame,
                        int64_t except, const struct presence_room *who)
{
    char *it = item ? json_dumps(item, JSON_COMPACT) : NULL;
    char *fr = frame ? json_dumps(frame, JSON_COMPACT) : NULL;
    int rc = it && fr ? 1 : -1;
    if (rc > 0) {
        struct ephemeral e = { type, it, fr };
        deliver(p, &e, except, who);
    }
    free(it);
    free(fr);
    json_decref(item);
    json_decref(frame);
    return rc;
}

static void announce(struct presence *p, struct presence_user *u)
{
    if (p->observe)
        p->observe(p->observe_arg, u->name, u->shown);
    /* all share general; one knows whether one is here */
    deliver_json(p, "presence",
                 json_pack("{s:s,s:s,s:b}", "type", "presence", "user", u->name, "online", u->shown),
                 json_pack("{s:s,s:s,s:b}", "op", "presence", "user", u->name, "online", u->shown),
                 u->user_id, NULL);
}

static void presence_renew(struct presence *p, int notify);
static void lease_soon(struct presence *p);

/* What is shown follows local || remote; a change is announced, and a
 * change of local renews the leases at once (other instances hear it). */
static void user_update(struct presence *p, struct presence_user *u, int local)
{
    if (local != u->local) {
        u->local = local;
        p->nlocal += local ? 1 : (size_t)-1;
        lease_soon(p);
    }
    int shown = u->local || u->remote;
    if (shown != u->shown) {
        u->shown = shown;
        p->nshown += shown ? 1 : (size_t)-1;
        announce(p, u);
    }
    if (!u->holds || u->polls.count)
        user_wait(p, u);             /* looked at again: offline, or forgotten */
}

static int typing_live(const struct presence *p, const struct presence_user *u, int64_t now)
{
    for (int i = 0; i < TYPING_SLOTS; i++)
        if (u->typing[i].room[0] && now - u->typing[i].at_ms < PRESENCE_TYPING_MS)
            return 1;
    (void)p;
    return 0;
}

static void poll_free(struct presence_poll *pl)
{
    lws_dll2_remove(&pl->node);
    lws_dll2_remove(&pl->all_node);
    eph_queue_clear(&pl->q);
    free(pl);
}

/* One user's due work; 1 while it still needs the tick. */
static int user_tick(struct presence *p, struct presence_user *u, int64_t now)
{
    lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, u->polls.head) {
        struct presence_poll *pl = lws_container_of(d, struct presence_poll, node);
        eph_queue_expire(&pl->q, now);
        if (now - pl->last_ms >= p->poll_ms + PRESENCE_ITEM_TTL_MS)
            poll_free(pl);
    } lws_end_foreach_dll_safe(d, d1);
    if (u->local && !u->holds && now >= u->off_at && now >= u->poll_until)
        user_update(p, u, 0);
    return u->polls.count || (u->local && !u->holds) || (!u->holds && typing_live(p, u, now));
}

void presence_tick(struct presence *p)
{
    int64_t now = p->clock();
    lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, p->waiting.head) {
        struct presence_user *u = lws_container_of(d, struct presence_user, wait_node);
        if (!user_tick(p, u, now)) {
            lws_dll2_remove(&u->wait_node);
            u->waiting = 0;
            if (!u->holds && !u->local && !u->remote && !u->polls.count && !typing_live(p, u, now))
                user_remove(p, u);
        }
    } lws_end_foreach_dll_safe(d, d1);
    tick_arm(p);
}

/* ---- holding ---- */

/* A held HTTP connection (a parked long poll, an SSE stream) is not read
 * by lws while it is being answered, so a client that went away (a kill -9:
 * its FIN) is otherwise only noticed at the next write: the hold's end or
 * the heartbeat, tens of seconds. Every PRESENCE_PROBE_MS a peek at its
 * socket finds the end of its stream, and the connection is closed (its
 * transport's close releases it). Not over TLS (a close_notify is data)
 * or HTTP/2 (lws reads that connection): those wait for the write. */
static void presence_probe_due(struct server *srv, struct sweep_link *l)
{
    struct session *s = lws_container_of(l, struct session, presence_probe);
    sweep_join(sweep_queue(srv->sweep, &probe_kind, PRESENCE_PROBE_MS), l, sweep_mono_ms());
    if (!s->wsi || lws_get_network_wsi(s->wsi) != s->wsi || lws_is_ssl(s->wsi))
        return;
    char c;
    ssize_t n = recv(lws_get_socket_fd(s->wsi), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        sweep_leave(l);
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
    }
}

int presence_hold(struct session *s)
{
    struct presence *p = s->srv->presence;
    if (!p || s->presence || !s->user_id)
        return 0;
    struct presence_user *u = user_get(p, s->user_id, s->user);
    if (!u)
        return -1;
    s->presence = u;
    u->holds++;
    if (!s->is_ws)                   /* a client gone is noticed (presence_probe_due) */
        sweep_join(sweep_queue(s->srv->sweep, &probe_kind, PRESENCE_PROBE_MS), &s->presence_probe,
                   sweep_mono_ms());
    u->off_at = 0;
    user_update(p, u, 1);
    return 0;
}

void presence_release(struct session *s)
{
    struct presence_user *u = s->presence;
    struct presence *p = s->srv ? s->srv->presence : NULL;
    if (!u || !p)
        return;
    s->presence = NULL;
    sweep_leave(&s->presence_probe);
    if (--u->holds == 0) {
        u->off_at = p->clock() + p->grace_ms;
        user_wait(p, u);
    }
}

static struct presence_poll *poll_find(struct presence_user *u, const char *token_hash)
{
    lws_start_foreach_dll(struct lws_dll2 *, d, u->polls.head) {
        struct presence_poll *pl = lws_container_of(d, struct presence_poll, node);
        if (!strcmp(pl->token_hash, token_hash))
            return pl;
    } lws_end_foreach_dll(d);
    return NULL;
}

int presence_polled(struct session *s)
{
    struct presence *p = s->srv->presence;
    if (!p || !s->user_id)
        return 0;
    struct presence_user *u = user_get(p, s->user_id, s->user);
    if (!u)
        return -1;
    int64_t now = p->clock();
    struct presence_poll *pl = poll_find(u, s->token_hash);
    if (!pl) {
        pl = calloc(1, sizeof *pl);
        if (!pl)
            return -1;
        pl->u = u;
        snprintf(pl->token_hash, sizeof pl->token_hash, "%s", s->token_hash);
        lws_dll2_add_tail(&pl->node, &u->polls);
        lws_dll2_add_tail(&pl->all_node, &p->polls);
    }
    pl->last_ms = now;
    if (now + p->poll_ms > u->poll_until)
        u->poll_until = now + p->poll_ms;
    user_update(p, u, 1);
    return 0;
}

static struct presence_poll *session_poll(const struct session *s)
{
    struct presence *p = s->srv ? s->srv->presence : NULL;
    struct presence_user *u = p && s->user_id ? user_find(p, s->user_id) : NULL;
    return u ? poll_find(u, s->token_hash) : NULL;
}

void presence_answered(struct session *s)
{
    struct presence_poll *pl = session_poll(s);
    if (pl)
        pl->answered_ms = s->srv->presence->clock();
}

int64_t presence_pace_wait_ms(const struct session *s, int64_t pace_ms)
{
    struct presence_poll *pl = session_poll(s);
    if (!pl || !pl->answered_ms || pace_ms <= 0)
        return 0;
    int64_t left = pl->answered_ms + pace_ms - s->srv->presence->clock();
    return left > 0 ? left : 0;
}

int presence_has_items(const struct session *s)
{
    struct presence_poll *pl = session_poll(s);
    if (pl)
        eph_queue_expire(&pl->q, s->srv->presence->clock());
    return pl && pl->q.n;
}

json_t *presence_take(struct session *s)
{
    struct presence_poll *pl = session_poll(s);
    if (!pl)
        return NULL;
    eph_queue_expire(&pl->q, s->srv->presence->clock());
    if (!pl->q.n)
        return NULL;
    json_t *a = json_array();
    for (struct eph_item *it = pl->q.head; a && it; it = it->next) {
        json_t *o = json_loads(it->text, 0, NULL);
        if (o)
            json_array_append_new(a, o);
    }
    eph_queue_clear(&pl->q);
    return a;
}

/* ---- typing ---- */

/* 1 if u may relay typing in room now (and stamps it), 0 if too soon. */
static int typing_take(struct presence_user *u, const char *room, int64_t now)
{
    int slot = -1, oldest = 0;
    for (int i = 0; i < TYPING_SLOTS; i++) {
        if (!strcmp(u->typing[i].room, room)) {
            if (now - u->typing[i].at_ms < PRESENCE_TYPING_MS)
                return 0;
            slot = i;
            break;
        }
        if (u->typing[i].at_ms < u->typing[oldest].at_ms)
            oldest = i;
    }
    if (slot < 0)
        slot = oldest;
    snprintf(u->typing[slot].room, sizeof u->typing[slot].room, "%s", room);
    u->typing[slot].at_ms = now;
    return 1;
}

/* The typing item of user (user_id) in room, to who's members but the typer. */
static int typing_deliver(struct presence *p, int64_t user_id, const char *user, const char *room,
                          const struct presence_room *who)
{
    return deliver_json(p, "typing",
                        json_pack("{s:s,s:s,s:s}", "type", "typing", "room", room, "user", user),
                        json_pack("{s:s,s:s,s:s}", "op", "typing", "room", room, "user", user),
                        user_id, who);
}

static void broadcast_done(void *arg, const struct store_reply *rep)
{
    (void)arg;
    if (rep->rc != STORE_OK)      /* ephemeral: lost, not retried */
        lwsl_warn("presence: an ephemeral item did not reach the other instances\n");
}

/* payload to every instance, this one included (presence_on_broadcast). */
static int broadcast(struct presence *p, const char *payload)
{
    struct store_args a = { .payload = payload };
    store_call_async(p->srv->store, 0, STORE_CALL_BROADCAST, &a, broadcast_done, NULL);
    return 1;
}

static int shared_store(const struct presence *p)
{
    return p->srv->store && store_is_shared(p->srv->store);
}

int presence_typing(struct session *s, const char *room, int64_t room_id, const struct presence_room *who)
{
    struct presence *p = s->srv->presence;
    if (!p || !s->user_id)
        return 0;
    struct presence_user *u = user_get(p, s->user_id, s->user);
    if (!u)
        return -1;
    int64_t now = p->clock();
    user_wait(p, u);                 /* forgotten once its stamp is old */
    if (!typing_take(u, room, now))
        return 0;
    if (!shared_store(p))
        return typing_deliver(p, u->user_id, u->name, room, who);
    char payload[STORE_BROADCAST_MAX];
    if (snprintf(payload, sizeof payload, "typing %lld %lld %s %s", (long long)u->user_id,
                 (long long)room_id, u->name, room) >= (int)sizeof payload)
        return 0;
    return broadcast(p, payload);
}

/* ---- read markers ---- */

/* Who a user's own items reach: that user's sessions and pollers. */
struct own_user {
    struct rooms *rooms;
    int64_t user_id;
};

static int own_member(void *arg, int64_t user_id)
{
    return ((const struct own_user *)arg)->user_id == user_id;
}

static void own_sessions(void *arg, void (*cb)(void *cbarg, struct session *s), void *cbarg)
{
    const struct own_user *o = arg;
    rooms_each_user_session(o->rooms, o->user_id, cb, cbarg);
}

/* The read item, to user_id's connections and pollers here. */
static int read_deliver(struct presence *p, int64_t user_id, const char *room, int64_t read_id)
{
    if (!p->srv->rooms || user_id <= 0 || read_id < 0 || !proto_room_ref_valid(room))
        return 0;
    struct own_user o = { p->srv->rooms, user_id };
    struct presence_room who = { own_member, own_sessions, &o };
    return deliver_json(p, "read",
                        json_pack("{s:s,s:s,s:I}", "type", "read", "room", room, "read_id", (json_int_t)read_id),
                        json_pack("{s:s,s:s,s:I}", "op", "read", "room", room, "read_id", (json_int_t)read_id),
                        0, &who);
}

int presence_read_moved(struct presence *p, int64_t user_id, const char *room, int64_t read_id)
{
    if (!p)
        return 0;
    if (!shared_store(p))
        return read_deliver(p, user_id, room, read_id);
    char payload[STORE_BROADCAST_MAX];
    if (snprintf(payload, sizeof payload, "read %lld %lld %s", (long long)user_id, (long long)read_id,
                 room) >= (int)sizeof payload)
        return 0;
    return broadcast(p, payload);
}

/* Another instance's (or this one's) STORE_CALL_BROADCAST, relayed to the
 * connections here: "typing USER_ID ROOM_ID USER ROOM" to the room's
 * members, "read USER_ID READ_ID ROOM" to the user's. Anything else, or
 * anything malformed, is dropped. */
static void presence_on_broadcast(void *arg, const char *payload)
{
    struct presence *p = arg;
    long long user_id, id;
    char user[PROTO_USER_MAX + 1], room[PROTO_ROOM_REF_MAX + 1];
    if (sscanf(payload, "typing %lld %lld %32s %66s", &user_id, &id, user, room) == 4) {
        if (user_id <= 0 || id <= 0 || !proto_name_valid(user) || !proto_room_ref_valid(room))
            return;
        struct presence_room who;
        struct presence_room_ix ix;
        typing_deliver(p, user_id, user, room, presence_room_of(&who, &ix, p->srv->rooms, id));
    } else if (sscanf(payload, "read %lld %lld %66s", &user_id, &id, room) == 3) {
        read_deliver(p, user_id, room, id);
    }
}

/* ---- rooms (rooms.h knows their members) ---- */

static int room_member(void *arg, int64_t user_id)
{
    const struct presence_room_ix *ix = arg;
    return rooms_visible(ix->rooms, user_id, ix->room_id, INT64_MAX);
}

static void room_sessions(void *arg, void (*cb)(void *cbarg, struct session *s), void *cbarg)
{
    const struct presence_room_ix *ix = arg;
    rooms_each_session(ix->rooms, ix->room_id, cb, cbarg);
}

const struct presence_room *presence_room_of(struct presence_room *who, struct presence_room_ix *ix,
                                             struct rooms *r, int64_t room_id)
{
    if (!r || room_id == STORE_GENERAL_ROOM_ID)
        return NULL;
    ix->rooms = r;
    ix->room_id = room_id;
    who->member = room_member;
    who->each_session = room_sessions;
    who->arg = ix;
    return who;
}

struct online_count {
    const struct presence *p;
    int64_t n;
};

static void count_online(void *arg, int64_t user_id, int64_t room_id, const char *room)
{
    (void)room_id, (void)room;
    struct online_count *c = arg;
    c->n += presence_online(c->p, user_id);
}

int64_t presence_room_online(struct presence *p, struct rooms *r, int64_t room_id)
{
    if (!p)
        return 0;
    if (!r || room_id == STORE_GENERAL_ROOM_ID)
        return (int64_t)p->nshown;
    struct online_count c = { p, 0 };
    rooms_each_member(r, room_id, count_online, &c);
    return c.n;
}

int64_t presence_room_find(const struct session *s, const char *name, int *status)
{
    int member = 0;
    int64_t id = rooms_lookup(s->srv->rooms, name, s->user_id, &member);
    *status = !id ? 404 : !member ? 403 : 200;
    return *status == 200 ? id : 0;
}

/* ---- what is shown ---- */

int presence_online(const struct presence *p, int64_t user_id)
{
    const struct presence_user *u = p ? user_find(p, user_id) : NULL;
    return u && u->shown;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *presence_online_names(struct presence *p, const struct presence_room *who)
{
    const char **names = malloc((p->nusers + 1) * sizeof *names);
    json_t *a = json_array();
    size_t n = 0;
    if (!names || !a) {
        free(names);
        json_decref(a);
        return NULL;
    }
    for (size_t b = 0; b < p->nbuckets; b++)
        for (struct presence_user *u = p->buckets[b]; u; u = u->next)
            if (u->shown && (!who || !who->member || who->member(who->arg, u->user_id)))
                names[n++] = u->name;
    qsort(names, n, sizeof *names, name_cmp);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(names[i]));
    free(names);
    return a;
}

/* ---- leases (a shared store) ----
 * One statement renews this instance's leases on its local users, drops
 * its others and every lease past its time, and reads who is online under
 * another instance's live lease; with notify, it announces the change to
 * the others, which then renew (and so read) at once. */

static void lease_sul_fired(lws_sorted_usec_list_t *sul);

static void lease_arm(struct presence *p)
{
    if (p->started && store_is_shared(p->srv->store))
        lws_sul_schedule(p->srv->ctx, 0, &p->lease_sul, lease_sul_fired,
                         (lws_usec_t)(p->lease_ms / 6) * LWS_US_PER_MS);
}

/* Users went online or offline here: renew (and tell the others) within
 * PRESENCE_ANNOUNCE_MS, one statement for all the changes meanwhile (a
 * burst of connections). */
static void lease_soon(struct presence *p)
{
    if (!p->started || !store_is_shared(p->srv->store) || p->soon)
        return;
    p->soon = 1;
    lws_sul_schedule(p->srv->ctx, 0, &p->lease_sul, lease_sul_fired,
                     PRESENCE_ANNOUNCE_MS * LWS_US_PER_MS);
}

static void remote_seen(struct presence *p, const struct store_reply *rep)
{
    p->gen++;
    for (int i = 0; i < rep->n; i++) {
        struct presence_user *u = user_get(p, rep->ids[i], rep->names[i]);
        if (u && u->user_id != 0) {
            u->remote_gen = p->gen;
            if (!u->remote) {
                u->remote = 1;
                user_update(p, u, u->local);
            }
        }
    }
    for (size_t b = 0; b < p->nbuckets; b++)
        for (struct presence_user *u = p->buckets[b]; u; u = u->next)
            if (u->remote && u->remote_gen != p->gen) {
                u->remote = 0;
                user_update(p, u, u->local);
            }
}

static void renew_done(void *arg, const struct store_reply *rep)
{
    struct renew_ticket *t = arg;
    struct presence *p = t->p;
    free(t);
    if (!p)
        return;
    p->renewing = NULL;
    if (rep->rc == STORE_OK)
        remote_seen(p, rep);
    else
        lwsl_warn("presence: lease renewal failed (%d)\n", rep->rc);
    if (p->renew_again) {
        p->renew_again = 0;
        presence_renew(p, p->renew_notify);
    }
}

static void presence_renew(struct presence *p, int notify)
{
    if (!p->started || !store_is_shared(p->srv->store))
        return;
    if (p->renewing) {               /* again once this one is back */
        p->renew_again = 1;
        p->renew_notify |= notify;
        return;
    }
    p->renew_notify = 0;
    int64_t *ids = malloc((p->nlocal + 1) * sizeof *ids);
    struct renew_ticket *t = malloc(sizeof *t);
    if (!ids || !t) {
        free(ids);
        free(t);
        return;                      /* the next period tries again */
    }
    size_t n = 0;
    for (size_t b = 0; b < p->nbuckets; b++)
        for (struct presence_user *u = p->buckets[b]; u; u = u->next)
            if (u->local && n < p->nlocal)
                ids[n++] = u->user_id;
    t->p = p;
    p->renewing = t;
    struct store_args a = { .key = p->lease_owner, .ids_in = ids, .nids_in = (int)n,
                            .expires_ms = p->lease_ms, .notify = notify };
    store_call_async(p->srv->store, 0, STORE_CALL_PRESENCE_RENEW, &a, renew_done, t);
    free(ids);
}

static void lease_sul_fired(lws_sorted_usec_list_t *sul)
{
    struct presence *p = lws_container_of(sul, struct presence, lease_sul);
    int notify = p->soon;
    p->soon = 0;
    presence_renew(p, notify);
    lease_arm(p);
}

/* Another instance's users changed: read the leases now. */
static void presence_on_notify(void *arg, const char *owner)
{
    struct presence *p = arg;
    if (strcmp(owner, p->lease_owner) != 0)
        presence_renew(p, 0);
}

/* ---- life ---- */

struct presence *presence_new(struct server *srv, int64_t grace_ms, int64_t poll_ms, int64_t lease_ms)
{
    struct presence *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->srv = srv;
    p->grace_ms = grace_ms > 0 ? grace_ms : PRESENCE_GRACE_MS;
    p->poll_ms = poll_ms > 0 ? poll_ms : PRESENCE_POLL_MS;
    p->lease_ms = lease_ms > 0 ? lease_ms : PRESENCE_LEASE_MS;
    p->clock = sweep_mono_ms;
    p->nbuckets = 1024;
    p->buckets = calloc(p->nbuckets, sizeof *p->buckets);
    if (!p->buckets) {
        free(p);
        return NULL;
    }
    return p;
}

void presence_set_clock(struct presence *p, int64_t (*clock)(void))
{
    p->clock = clock;
}

void presence_set_observer(struct presence *p, void (*cb)(void *arg, const char *user, int online),
                           void *arg)
{
    p->observe = cb;
    p->observe_arg = arg;
}

void presence_start(struct server *srv)
{
    struct presence *p = srv->presence;
    if (!p)
        return;
    unsigned char r[8];
    randombytes_buf(r, sizeof r);
    snprintf(p->lease_owner, sizeof p->lease_owner, "%.64s/%02x%02x%02x%02x%02x%02x%02x%02x",
             srv->instance, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
    p->started = 1;
    if (store_is_shared(srv->store)) {
        store_set_presence_cb(srv->store, presence_on_notify, p);
        store_set_broadcast_cb(srv->store, presence_on_broadcast, p);
        presence_renew(p, 0);
        lease_arm(p);
    }
    tick_arm(p);
}

void presence_stop(struct server *srv)
{
    struct presence *p = srv->presence;
    if (!p || !p->started)
        return;
    p->started = 0;
    lws_sul_cancel(&p->tick_sul);
    lws_sul_cancel(&p->lease_sul);
    p->tick_armed = 0;
    p->soon = 0;
    if (store_is_shared(srv->store)) {
        store_set_presence_cb(srv->store, NULL, NULL);
        store_set_broadcast_cb(srv->store, NULL, NULL);
    }
}

void presence_free(struct presence *p)
{
    if (!p)
        return;
    if (p->renewing)
        p->renewing->p = NULL;       /* its completion only frees it */
    for (size_t b = 0; b < p->nbuckets; b++)
        while (p->buckets[b]) {
            struct presence_user *u = p->buckets[b];
            p->buckets[b] = u->next;
            lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, u->polls.head) {
                poll_free(lws_container_of(d, struct presence_poll, node));
            } lws_end_foreach_dll_safe(d, d1);
            free(u);
        }
    free(p->buckets);
    free(p);
}
