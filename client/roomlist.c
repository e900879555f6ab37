/* roomlist.c — see roomlist.h. */
#include "roomlist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct roomlist {
    char self[PROTO_USER_MAX + 1];
    struct room *v[ROOMLIST_MAX];
    size_t n;
    size_t current;
    json_t *online;                 /* users known online: {name:true} */
};

struct roomlist *roomlist_new(const char *self)
{
    struct roomlist *r = calloc(1, sizeof *r);
    if (!r || !(r->online = json_object())) {
        free(r);
        return NULL;
    }
    snprintf(r->self, sizeof r->self, "%s", self ? self : "");
    if (!roomlist_add(r, PROTO_DEFAULT_ROOM)) {
        roomlist_free(r);
        return NULL;
    }
    return r;
}

static void room_free(struct room *rm)
{
    if (rm)
        json_decref(rm->seen);
    free(rm);
}

void roomlist_free(struct roomlist *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        room_free(r->v[i]);
    json_decref(r->online);
    free(r);
}

const char *roomlist_self(const struct roomlist *r) { return r->self; }
size_t roomlist_count(const struct roomlist *r) { return r->n; }

const struct room *roomlist_at(const struct roomlist *r, size_t i)
{
    return i < r->n ? r->v[i] : NULL;
}

static struct room *find(const struct roomlist *r, const char *name, size_t *at)
{
    for (size_t i = 0; name && i < r->n; i++)
        if (strcmp(r->v[i]->name, name) == 0) {
            if (at)
                *at = i;
            return r->v[i];
        }
    return NULL;
}

const struct room *roomlist_find(const struct roomlist *r, const char *name)
{
    return find(r, name, NULL);
}

const struct room *roomlist_current(const struct roomlist *r)
{
    return r->n ? r->v[r->current] : NULL;
}

size_t roomlist_current_index(const struct roomlist *r) { return r->current; }

/* Everything known of rm is read. */
static void unread_clear(struct room *rm)
{
    rm->unread = 0;
    rm->counted_upto = rm->last_id;
    rm->n_unread_ids = rm->unread_ids_lost = 0;
}

/* One more unread event, id, counted here. */
static void unread_add(struct room *rm, int64_t id)
{
    rm->unread++;
    if (rm->n_unread_ids < ROOMLIST_UNREAD_IDS)
        rm->unread_ids[rm->n_unread_ids++] = id;
    else
        rm->unread_ids_lost = 1;
}

int roomlist_switch(struct roomlist *r, size_t i)
{
    if (i >= r->n)
        return -1;
    r->current = i;
    unread_clear(r->v[i]);
    if (r->v[i]->last_id > r->v[i]->newest_shown)
        r->v[i]->newest_shown = r->v[i]->last_id;
    return 0;
}

int roomlist_switch_name(struct roomlist *r, const char *name)
{
    size_t i;
    return find(r, name, &i) ? roomlist_switch(r, i) : -1;
}

void roomlist_switch_step(struct roomlist *r, int step)
{
    if (r->n)
        roomlist_switch(r, (r->current + r->n + (size_t)(step % (int)r->n + (int)r->n)) % r->n);
}

/* general first, then public rooms by name, then DMs by name. */
static int order(const struct room *a, const struct room *b)
{
    int ga = strcmp(a->name, PROTO_DEFAULT_ROOM) == 0, gb = strcmp(b->name, PROTO_DEFAULT_ROOM) == 0;
    if (ga != gb)
        return gb - ga;
    int da = a->peer[0] != 0, db = b->peer[0] != 0;
    if (da != db)
        return da - db;
    return strcmp(a->name, b->name);
}

struct room *roomlist_add(struct roomlist *r, const char *name)
{
    struct room *rm = find(r, name, NULL);
    const struct room *cur = roomlist_current(r);
    size_t at;
    if (rm)
        return rm;
    if (!proto_room_ref_valid(name) || r->n == ROOMLIST_MAX || !(rm = calloc(1, sizeof *rm)) ||
        !(rm->seen = json_object())) {
        free(rm);
        return NULL;
    }
    if (proto_room_is_direct(name) && proto_dm_peer(name, r->self, rm->peer) < 0) {
        room_free(rm);
        return NULL;            /* a DM that is not ours */
    }
    memcpy(rm->name, name, strlen(name) + 1);
    rm->joined = 1;
    for (at = 0; at < r->n && order(r->v[at], rm) < 0; at++)
        ;
    memmove(&r->v[at + 1], &r->v[at], (r->n - at) * sizeof r->v[0]);
    r->v[at] = rm;
    r->n++;
    if (cur)
        find(r, cur->name, &r->current);
    return rm;
}

void roomlist_remove(struct roomlist *r, const char *name)
{
    size_t at;
    struct room *rm = find(r, name, &at);
    const struct room *cur = roomlist_current(r);
    if (!rm || strcmp(name, PROTO_DEFAULT_ROOM) == 0)
        return;
    int was_current = rm == cur;
    memmove(&r->v[at], &r->v[at + 1], (r->n - at - 1) * sizeof r->v[0]);
    r->n--;
    room_free(rm);
    if (was_current)
        r->current = at > 0 ? at - 1 : 0;
    else
        find(r, cur->name, &r->current);
}

void roomlist_load_list(struct roomlist *r, const struct proto_room_info *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct room *rm;
        if (!v[i].joined) {
            roomlist_remove(r, v[i].name);
            continue;
        }
        if (!(rm = roomlist_add(r, v[i].name)))
            continue;
        memcpy(rm->topic, v[i].topic, sizeof rm->topic);
        rm->members = v[i].members;
        rm->online = v[i].online;
        if (v[i].last_id > rm->last_id)
            rm->last_id = v[i].last_id;
        unread_clear(rm);
        if (rm != roomlist_current(r))
            rm->unread = v[i].unread;   /* counted up to last_id, by the server */
    }
}

/* ---- events ---- */

static void seen_add(struct room *rm, const char *user)
{
    if (user && proto_name_valid(user) && json_object_size(rm->seen) < 100000)
        json_object_set_new(rm->seen, user, json_true());
}

static void online_names_add(struct room *rm, const char *user)
{
    for (size_t i = 0; i < rm->n_online_names; i++)
        if (strcmp(rm->online_names[i], user) == 0)
            return;
    if (rm->n_online_names < ROOMLIST_ONLINE_MAX)
        snprintf(rm->online_names[rm->n_online_names++], PROTO_USER_MAX + 1, "%s", user);
    rm->online++;
}

static void online_names_del(struct room *rm, const char *user)
{
    for (size_t i = 0; i < rm->n_online_names; i++)
        if (strcmp(rm->online_names[i], user) == 0) {
            memmove(rm->online_names[i], rm->online_names[i + 1],
                    (rm->n_online_names - i - 1) * sizeof rm->online_names[0]);
            rm->n_online_names--;
            if (rm->online > 0)
                rm->online--;
            return;
        }
}

/* Our own member event: join adds the room, leave removes it. */
static struct room *own_membership(struct roomlist *r, const char *room, const char *action)
{
    if (action && strcmp(action, "leave") == 0) {
        roomlist_remove(r, room);
        return NULL;
    }
    return roomlist_add(r, room);
}

const struct room *roomlist_on_event(struct roomlist *r, const json_t *event, int history)
{
    const char *type = json_string_value(json_object_get(event, "type"));
    const char *room = json_string_value(json_object_get(event, "room"));
    const char *from = json_string_value(json_object_get(event, "from"));
    const char *user = json_string_value(json_object_get(event, "user"));
    json_int_t id = json_integer_value(json_object_get(event, "id"));
    struct room *rm;
    if (!type || !room || !proto_room_ref_valid(room))
        return NULL;
    if (strcmp(type, "member") == 0 && user && strcmp(user, r->self) == 0 && !history)
        rm = own_membership(r, room, json_string_value(json_object_get(event, "action")));
    else
        rm = find(r, room, NULL);
    if (!rm && strcmp(type, "chat") == 0 && proto_room_is_direct(room))
        rm = roomlist_add(r, room);        /* a DM begins with its first message */
    if (!rm)
        return NULL;
    int newer = id > rm->last_id;       /* not in the list's unread count */
    if (newer)
        rm->last_id = id;
    if (!history && !rm->loaded && rm->oldest == 0)
        rm->oldest = id;                /* its first page ends before this */
    if (strcmp(type, "topic") == 0 && proto_topic_text_valid(json_string_value(json_object_get(event, "topic"))))
        snprintf(rm->topic, sizeof rm->topic, "%s", json_string_value(json_object_get(event, "topic")));
    seen_add(rm, strcmp(type, "member") == 0 ? user : from);
    if (strcmp(type, "member") == 0 && user && !history && strcmp(user, r->self) != 0) {
        const char *action = json_string_value(json_object_get(event, "action"));
        rm->members += action && strcmp(action, "leave") == 0 ? (rm->members > 0 ? -1 : 0) : 1;
    }
    int chat = strcmp(type, "chat") == 0 && !history && from && rm != roomlist_current(r);
    if (chat && strcmp(from, r->self) == 0)
        unread_clear(rm);       /* sent from another of our clients, there: read */
    else if (chat && newer && rm->unread < PROTO_UNREAD_CAP)
        unread_add(rm, id);
    if (rm == roomlist_current(r) && id > rm->newest_shown)
        rm->newest_shown = id;
    return rm;
}

void roomlist_on_page(struct roomlist *r, const char *name, const json_t *events, int more)
{
    struct room *rm = find(r, name, NULL);
    json_int_t first = json_integer_value(json_object_get(json_array_get(events, 0), "id"));
    size_t i;
    json_t *ev;
    if (!rm)
        return;
    json_array_foreach(events, i, ev) {
        json_int_t id = json_integer_value(json_object_get(ev, "id"));
        const char *type = json_string_value(json_object_get(ev, "type"));
        seen_add(rm, json_string_value(json_object_get(ev, type && strcmp(type, "member") == 0 ?
                                                             "user" : "from")));
        if (id > rm->last_id)
            rm->last_id = id;
    }
    if (first > 0 && (rm->oldest == 0 || first < rm->oldest))
        rm->oldest = first;
    rm->more = more && json_array_size(events) > 0;
    rm->loaded = 1;
}

int64_t roomlist_view_due(struct roomlist *r, const char *name, int64_t cursor)
{
    struct room *rm = find(r, name, NULL);
    if (!rm || rm->loaded || rm->view_asked)
        return 0;
    rm->view_asked = 1;
    return rm->oldest > 0 ? rm->oldest : cursor + 1;
}

int64_t roomlist_page_due(struct roomlist *r, const char *name)
{
    struct room *rm = find(r, name, NULL);
    if (!rm || !rm->more || rm->oldest <= 0 || rm->page_asked == rm->oldest)
        return 0;
    rm->page_asked = rm->oldest;
    return rm->oldest;
}

void roomlist_page_failed(struct roomlist *r, const char *name)
{
    struct room *rm = find(r, name, NULL);
    if (rm)
        rm->page_asked = rm->view_asked = 0;
}

/* ---- presence and typing ---- */

void roomlist_set_online(struct roomlist *r, const char *name, const json_t *names)
{
    struct room *rm = find(r, name, NULL);
    size_t i;
    json_t *n;
    if (!rm)
        return;
    rm->n_online_names = 0;
    rm->online = 0;
    rm->online_known = 1;
    json_array_foreach(names, i, n) {
        const char *user = json_string_value(n);
        if (!user || !proto_name_valid(user))
            continue;
        online_names_add(rm, user);
        seen_add(rm, user);
        json_object_set_new(r->online, user, json_true());
    }
}

void roomlist_on_presence(struct roomlist *r, const char *user, int online)
{
    if (!user || !proto_name_valid(user))
        return;
    if (online)
        json_object_set_new(r->online, user, json_true());
    else
        json_object_del(r->online, user);
    for (size_t i = 0; i < r->n; i++) {
        struct room *rm = r->v[i];
        int member = strcmp(rm->name, PROTO_DEFAULT_ROOM) == 0 || strcmp(rm->peer, user) == 0 ||
                     json_object_get(rm->seen, user);
        if (!online)
            online_names_del(rm, user);
        else if (member)
            online_names_add(rm, user);
    }
}

int roomlist_user_online(const struct roomlist *r, const char *user)
{
    return user && json_object_get(r->online, user) != NULL;
}

void roomlist_on_typing(struct roomlist *r, const char *room, const char *user, int64_t now_ms)
{
    struct room *rm = find(r, room, NULL);
    size_t slot = 0;
    if (!rm || !user || !proto_name_valid(user) || strcmp(user, r->self) == 0)
        return;
    for (size_t i = 0; i < ROOMLIST_TYPING_MAX; i++) {
        if (strcmp(rm->typing[i].user, user) == 0) {
            slot = i;
            break;
        }
        if (rm->typing[i].until_ms < rm->typing[slot].until_ms)
            slot = i;           /* else the oldest gives way */
    }
    snprintf(rm->typing[slot].user, sizeof rm->typing[slot].user, "%s", user);
    rm->typing[slot].until_ms = now_ms + ROOMLIST_TYPING_MS;
    roomlist_on_presence(r, user, 1);
}

int roomlist_typing_text(const struct roomlist *r, const char *room, int64_t now_ms, char *buf,
                      size_t size)
{
    const struct room *rm = find(r, room, NULL);
    const char *names[ROOMLIST_TYPING_MAX];
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; rm && i < ROOMLIST_TYPING_MAX; i++)
        if (rm->typing[i].user[0] && rm->typing[i].until_ms > now_ms)
            names[n++] = rm->typing[i].user;
    if (n == 1)
        snprintf(buf, size, "%s is typing", names[0]);
    else if (n == 2)
        snprintf(buf, size, "%s and %s are typing", names[0], names[1]);
    else if (n > 2)
        snprintf(buf, size, "%zu people are typing", n);
    return n > 0;
}

int roomlist_typing_due(struct roomlist *r, int64_t now_ms)
{
    struct room *rm = r->n ? r->v[r->current] : NULL;
    if (!rm || (rm->typing_sent_ms && now_ms - rm->typing_sent_ms < ROOMLIST_TYPING_SEND_MS))
        return 0;
    rm->typing_sent_ms = now_ms;
    return 1;
}

void roomlist_on_read(struct roomlist *r, const char *name, int64_t read_id)
{
    struct room *rm = find(r, name, NULL);
    if (!rm)
        return;
    if (read_id > rm->read_sent)
        rm->read_sent = read_id;      /* the server has it: not owed by us */
    if (read_id >= rm->last_id) {
        unread_clear(rm);
    } else if (read_id >= rm->counted_upto && !rm->unread_ids_lost) {
        int k = 0;                    /* those counted here after the marker */
        for (int i = 0; i < rm->n_unread_ids; i++)
            if (rm->unread_ids[i] > read_id)
                rm->unread_ids[k++] = rm->unread_ids[i];
        rm->n_unread_ids = k;
        rm->unread = k;
        rm->counted_upto = read_id;
    }
    if (read_id > rm->newest_shown)
        rm->newest_shown = read_id;
}

int64_t roomlist_read_due(struct roomlist *r)
{
    struct room *rm = r->n ? r->v[r->current] : NULL;
    if (!rm || rm->newest_shown <= rm->read_sent)
        return 0;
    rm->read_sent = rm->newest_shown;
    return rm->read_sent;
}

/* ---- the room bar ---- */

static int room_label(const struct roomlist *r, size_t i, size_t cut, char *buf, size_t size)
{
    const struct room *rm = r->v[i];
    const char *name = rm->peer[0] ? rm->peer : rm->name;
    char unread[16] = "";
    if (rm->unread)
        snprintf(unread, sizeof unread, "(%lld%s)", (long long)rm->unread,
                 rm->unread >= PROTO_UNREAD_CAP ? "+" : "");
    int cur = i == r->current;
    return snprintf(buf, size, "%s%zu:%s%.*s%s%s%s", cur ? "[" : "", i + 1, rm->peer[0] ? "@" : "",
                    (int)cut, name, rm->peer[0] && roomlist_user_online(r, rm->peer) ? "*" : "",
                    unread, cur ? "]" : "");
}

void roomlist_bar_text(const struct roomlist *r, size_t width, char *buf, size_t size)
{
    char label[128];
    size_t used = 0;
    buf[0] = '\0';
    for (size_t cut = 32; cut >= 4; cut = cut > 8 ? 8 : cut - 4) {
        used = 0;
        buf[0] = '\0';
        size_t i;
        for (i = 0; i < r->n; i++) {
            int n = room_label(r, i, cut, label, sizeof label);
            size_t need = (size_t)n + (used ? 1 : 0);
            if (used + need + (i + 1 < r->n ? 4 : 0) > width || used + need + 1 > size)
                break;
            used += (size_t)snprintf(buf + used, size - used, "%s%s", used ? " " : "", label);
        }
        if (i == r->n || cut == 4) {
            if (i < r->n && used + 5 < size)
                snprintf(buf + used, size - used, " +%zu", r->n - i);
            return;
        }
    }
}
