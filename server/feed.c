/* feed.c — the event feed: storing chat events, reading a user's events
 * after a cursor, and waking the sessions (parked long polls, WebSockets)
 * that wait for them. Sessions read from the store themselves when woken,
 * so every transport delivers the same stored sequence in id order. */
#include "server.h"

#include <stdlib.h>

void feed_subscribe(struct session *s)
{
    if (!lws_dll2_is_detached(&s->sub_node))
        return;
    lws_dll2_add_tail(&s->sub_node, &s->srv->subscribers);
}

void feed_unsubscribe(struct session *s)
{
    if (s->srv && s->sub_node.owner)
        lws_dll2_remove(&s->sub_node);
}

static void feed_wake(struct session *s)
{
    if (s->is_ws)
        ws_wake(s);
    else
        http_wake(s);
}

void feed_notify(struct server *srv, int64_t recipient_id)
{
    lws_start_foreach_dll_safe(struct lws_dll2 *, d, d1, srv->subscribers.head) {
        struct session *s = lws_container_of(d, struct session, sub_node);
        if (recipient_id == 0 || recipient_id == s->user_id)
            feed_wake(s);
    } lws_end_foreach_dll_safe(d, d1);
}

void feed_wake_all(struct server *srv)
{
    feed_notify(srv, 0);
}

static int feed_collect(void *arg, const struct store_event *ev)
{
    json_t *arr = arg;
    json_t *obj = proto_event_new(ev->id, ev->type, ev->ts_ms, ev->payload);
    if (!obj)
        return 1;
    json_array_append_new(arr, obj);
    return 0;
}

json_t *feed_fetch(struct server *srv, int64_t user_id, int64_t after, int limit)
{
    json_t *arr = json_array();
    if (!arr)
        return NULL;
    if (store_events_after(srv->store, user_id, after, limit, feed_collect, arr) != STORE_OK) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

int feed_post_chat(struct server *srv, struct session *s, const char *room,
                   const char *body, const char *client_msg_id, int64_t *id, int64_t *ts)
{
    char *payload = proto_chat_payload(room, s->user, body);
    if (!payload)
        return STORE_ERROR;
    struct store_new_event ev = {
        .type = "chat", .recipient_id = 0, .sender_id = s->user_id,
        .client_msg_id = client_msg_id, .payload = payload, .ts_ms = now_ms(),
    };
    int created = 0;
    int rc = store_event_append(srv->store, &ev, id, ts, &created);
    free(payload);
    /* Committed before anyone is told: listeners re-read the store. */
    if (rc == STORE_OK && created)
        feed_notify(srv, 0);
    return rc;
}
