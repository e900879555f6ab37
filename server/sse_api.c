/* sse_api.c — the Server-Sent Events transport: GET /api/v1/stream as a
 * text/event-stream that never ends by itself. It owns the stream's cursor
 * (after=ID on the first connect, the browser's Last-Event-ID on a
 * reconnect), the response head, the events written as `id:`, `event:`,
 * `data:` lines in id order from the cursor, the `retry:` hint and a
 * `ready` event first, the heartbeat comment after --heartbeat-s of
 * silence, and its session_ops: woken by the feed, an `end` event and the
 * close when the session ends, the close when the server stops. The
 * request's HTTP intake, limits and authentication are http_api.c's,
 * which hands the request over (sse_start); each WRITEABLE then writes
 * one packed buffer. What the feed is asked is in sse_fetch alone. */
#include "sse_api.h"
#include "auth.h"
#include "feed.h"
#include "presence.h"
#include "server.h"
#include "sweep.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SSE_PACK_BYTES (64 * 1024)  /* one write at most */
#define SSE_BATCH      64           /* events asked of the feed at a time */

enum { HEAD_NONE, HEAD_SENT, READY_SENT };

/* One buffer for every stream's write: one thread, one write at a time. */
static unsigned char sse_buf[LWS_PRE + SSE_PACK_BYTES];

struct sse_pack {
    unsigned char *p;       /* sse_buf + LWS_PRE */
    size_t len;
};

static void sse_wake(struct session *s);
static void sse_posted(struct session *s, const char *cmid, int rc, int64_t id, int64_t ts);
static void sse_ended(struct session *s, const char *why);
static void sse_ephemeral(struct session *s, const struct ephemeral *e);

static const struct session_ops sse_ops = { sse_wake, sse_posted, sse_ended, sse_ephemeral };

/* Asks for WRITEABLE (between writes the stream is watched for no input:
 * server_want_write gives it back first). */
static void sse_want_write(struct session *s)
{
    server_want_write(s->wsi, &s->u.sse.input_held);
}

int sse_is_stream(const struct session *s)
{
    return s && s->ops == &sse_ops;
}

/* ---- the cursor ---- */

/* A decimal event id, 0 to 18 digits, nothing else. */
static int sse_parse_id(const char *text, int64_t *id)
{
    size_t n = strspn(text, "0123456789");
    if (!n || text[n] || n > 18)
        return -1;
    *id = strtoll(text, NULL, 10);
    return 0;
}

/* Where the stream starts: Last-Event-ID (the browser's own resume, which
 * wins), else after= (the first connect), else 0. */
static int sse_cursor(struct session *s, const char *query, int64_t *after, const char **msg)
{
    char id[32];
    int n = lws_hdr_custom_length(s->wsi, "last-event-id:", 14);
    *after = 0;
    if (n > 0) {
        if (n >= (int)sizeof id || lws_hdr_custom_copy(s->wsi, id, sizeof id, "last-event-id:", 14) < 0 ||
            sse_parse_id(id, after) < 0) {
            *msg = "Last-Event-ID must be an event id";
            return -1;
        }
        return 0;
    }
    if (!query || !*query)
        return 0;
    if (!strcmp(query, "after=latest")) {     /* v1.1: from the newest event on */
        *after = feed_newest(s->srv);
        return 0;
    }
    if (strncmp(query, "after=", 6) != 0 || sse_parse_id(query + 6, after) < 0) {
        *msg = "the only query parameter is after=ID (or after=latest)";
        return -1;
    }
    return 0;
}

/* ---- deadlines ---- */

static void sse_beat_due(struct server *srv, struct sweep_link *l);
static const struct sweep_kind sse_beat_kind = { .due = sse_beat_due };

/* The heartbeat comment is due after --heartbeat-s without a write. */
static void sse_beat_restart(struct session *s)
{
    struct sweep_queue *q = sweep_queue(s->srv->sweep, &sse_beat_kind,
                                        (int64_t)s->srv->cfg.heartbeat_s * 1000);
    sweep_join(q, &s->u.sse.beat, sweep_mono_ms());
}

static void sse_beat_due(struct server *srv, struct sweep_link *l)
{
    (void)srv;
    struct session *s = lws_container_of(l, struct session, u.sse.beat);
    sse_beat_restart(s);
    s->u.sse.beat_due = 1;
    sse_want_write(s);
}

/* ---- start ---- */

unsigned sse_start(struct session *s, const char *query, const char **code, const char **msg)
{
    int64_t after;
    *code = "bad_query";
    if (sse_cursor(s, query, &after, msg) < 0)
        return 400;
    /* From here the request's HTTP state (query, path) is not needed: the
     * union holds the stream's. */
    memset(&s->u.sse, 0, sizeof s->u.sse);
    s->u.sse.cursor = after;
    s->u.sse.more = 1;
    if (auth_hold(s, 1) < 0) {      /* touched while open, ended with its session */
        *code = "internal";
        *msg = "out of memory";
        return 500;
    }
    s->ops = &sse_ops;
    feed_subscribe(s);
    if (presence_hold(s) < 0) {     /* online while open */
        *code = "internal";
        *msg = "out of memory";
        return 500;
    }
    sse_beat_restart(s);
    /* No lws timeout on an open stream. Every header needed has been
     * read: give lws' header buffer back, as a parked long poll does.
     * lws_http_mark_sse does both, but on HTTP/1.1 (no stream of a
     * shared connection) lws 4.1 logs an error for it. */
    if (lws_get_network_wsi(s->wsi) != s->wsi) {
        lws_http_mark_sse(s->wsi);
    } else {
        lws_set_timeout(s->wsi, NO_PENDING_TIMEOUT, 0);
        lws_http_headers_detach(s->wsi);
    }
    sse_want_write(s);
    return 0;
}

/* ---- session_ops ---- */

static void sse_wake(struct session *s)
{
    if (s->srv->stopping)
        s->u.sse.closing = 1;       /* the client resumes elsewhere, or later */
    else
        s->u.sse.more = 1;
    sse_want_write(s);
}

static void sse_posted(struct session *s, const char *cmid, int rc, int64_t id, int64_t ts)
{
    (void)s, (void)cmid, (void)rc, (void)id, (void)ts;   /* a stream sends nothing */
}

static void sse_ended(struct session *s, const char *why)
{
    s->u.sse.end_reason = why ? why : "session ended";
    s->u.sse.more = 0;
    sse_want_write(s);
}

/* An ephemeral item (presence, typing, read): `event:` its type, `data:` the item, no
 * `id:` (it has none, and Last-Event-ID must not move), written with the
 * next write, before events. */
static void sse_ephemeral(struct session *s, const struct ephemeral *e)
{
    struct sse_state *st = &s->u.sse;
    char text[1024];
    if (st->end_reason || st->closing)
        return;
    int n = snprintf(text, sizeof text, "event: %s\ndata: %s\n\n", e->type, e->item);
    if (n <= 0 || (size_t)n >= sizeof text)
        return;
    eph_queue_push(&st->eph, text, sweep_mono_ms());
    sse_want_write(s);
}

/* ---- writing ---- */

/* Appends text to the pack: 1, or 0 if it does not fit. */
static int sse_put(struct sse_pack *out, const char *text, size_t n)
{
    if (n > SSE_PACK_BYTES - out->len)
        return 0;
    memcpy(out->p + out->len, text, n);
    out->len += n;
    return 1;
}

/* One event as an SSE message: `id:`, `event:` (its type), `data:` (the
 * event as compact JSON, which has no newline). 1 packed, 0 no room, -1
 * error. */
static int sse_put_event(struct sse_pack *out, json_t *ev, int64_t *id)
{
    const char *type = json_string_value(json_object_get(ev, "type"));
    char *data = json_dumps(ev, JSON_COMPACT);
    if (!data || !type || strpbrk(type, "\r\n")) {
        free(data);
        return -1;
    }
    *id = json_integer_value(json_object_get(ev, "id"));
    char head[96];
    int h = snprintf(head, sizeof head, "id: %lld\nevent: %s\ndata: ", (long long)*id, type);
    size_t n = strlen(data);
    int fits = h > 0 && (size_t)h < sizeof head && (size_t)h + n + 2 <= SSE_PACK_BYTES - out->len;
    if (fits) {
        sse_put(out, head, (size_t)h);
        sse_put(out, data, n);
        sse_put(out, "\n\n", 2);
    }
    free(data);
    return fits;
}

/* The user's events after the cursor: the one place the stream asks the
 * feed. NULL with *pending set: they come from the store, and the feed
 * wakes the stream when they are in; NULL alone: they could not be read
 * (the stream closes, and its client resumes from its Last-Event-ID). */
static json_t *sse_fetch(struct session *s, int *pending)
{
    json_t *events = NULL;
    int rc = feed_fetch(s, s->u.sse.cursor, SSE_BATCH, &events);
    *pending = rc == FEED_PENDING;
    if (rc == STORE_OK)
        return events;
    json_decref(events);
    return NULL;
}

/* Packs events after the cursor while they fit; more stays set while the
 * feed may have others. 0, or -1 if they could not be read. */
static int sse_pack_events(struct session *s, struct sse_pack *out)
{
    struct sse_state *e = &s->u.sse;
    int pending;
    json_t *batch = sse_fetch(s, &pending);
    if (!batch && pending) {
        e->more = 0;                    /* woken when the rows are in */
        return 0;
    }
    if (!batch)
        return -1;
    size_t n = json_array_size(batch), i;
    int rc = 0;
    for (i = 0; i < n; i++) {
        int64_t id;
        rc = sse_put_event(out, json_array_get(batch, i), &id);
        if (rc <= 0)
            break;
        e->cursor = id;
    }
    e->more = i < n || n == SSE_BATCH;
    json_decref(batch);
    return rc < 0 ? -1 : 0;
}

/* The first body bytes: the reconnect delay, then `ready` (no id: it
 * does not move the browser's Last-Event-ID) with what a client needs to
 * watch the stream. */
static int sse_pack_ready(struct session *s, struct sse_pack *out)
{
    char text[256];
    json_t *o = json_pack("{s:s,s:i,s:I}", "user", s->user, "heartbeat_s", s->srv->cfg.heartbeat_s,
                          "after", (json_int_t)s->u.sse.cursor);
    char *data = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    int n = data ? snprintf(text, sizeof text, "retry: %d\nevent: ready\ndata: %s\n\n", SSE_RETRY_MS, data) : -1;
    free(data);
    return n > 0 && (size_t)n < sizeof text && sse_put(out, text, (size_t)n) ? 0 : -1;
}

/* The session ended: an `end` event says why, then the close. */
static int sse_pack_end(struct session *s, struct sse_pack *out)
{
    json_t *o = json_pack("{s:s}", "reason", s->u.sse.end_reason);
    char *data = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    int ok = data && sse_put(out, "event: end\ndata: ", 17) && sse_put(out, data, strlen(data)) &&
             sse_put(out, "\n\n", 2);
    free(data);
    s->u.sse.closing = 1;
    return ok ? 0 : -1;
}

static int sse_write_head(struct session *s)
{
    unsigned char buf[LWS_PRE + 512], *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
    static const struct { const char *name, *value; } hdrs[] = {
        { "cache-control:", "no-store" },
        { "x-accel-buffering:", "no" },         /* nginx: no buffering of the stream */
        { "x-content-type-options:", "nosniff" },
    };
    if (lws_add_http_common_headers(s->wsi, HTTP_STATUS_OK, "text/event-stream",
                                    LWS_ILLEGAL_HTTP_CONTENT_LEN, &p, end))
        return -1;
    for (size_t i = 0; i < sizeof hdrs / sizeof hdrs[0]; i++)
        if (lws_add_http_header_by_name(s->wsi, (const unsigned char *)hdrs[i].name,
                                        (const unsigned char *)hdrs[i].value,
                                        (int)strlen(hdrs[i].value), &p, end))
            return -1;
    if (lws_finalize_http_header(s->wsi, &p, end) ||
        lws_write(s->wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) != (int)(p - start))
        return -1;
    s->u.sse.head_sent = HEAD_SENT;
    return 0;
}

/* What this WRITEABLE has to say, packed: ready, then the end or the
 * events, else the heartbeat. */
static int sse_pack_all(struct session *s, struct sse_pack *out)
{
    struct sse_state *e = &s->u.sse;
    if (e->head_sent == HEAD_SENT) {
        if (sse_pack_ready(s, out) < 0)
            return -1;
        e->head_sent = READY_SENT;
    }
    if (e->end_reason)
        return sse_pack_end(s, out);
    eph_queue_expire(&e->eph, sweep_mono_ms());
    while (e->eph.head && sse_put(out, e->eph.head->text, strlen(e->eph.head->text))) {
        struct eph_item *it = e->eph.head;
        e->eph.head = it->next;
        e->eph.n--;
        free(it);
    }
    if (!e->eph.head)
        e->eph.tail = NULL;
    if (e->more && sse_pack_events(s, out) < 0)
        return -1;
    if (!out->len && e->beat_due)
        sse_put(out, ": ping\n\n", 8);
    e->beat_due = 0;
    return 0;
}

static int sse_on_writeable(struct session *s)
{
    struct sse_state *e = &s->u.sse;
    if (e->closing)
        return -1;
    if (e->head_sent == HEAD_NONE) {    /* alone: on HTTP/2 the head is its own frame */
        if (sse_write_head(s) < 0)
            return -1;
        sse_want_write(s);
        return 0;
    }
    struct sse_pack out = { sse_buf + LWS_PRE, 0 };
    if (sse_pack_all(s, &out) < 0)
        return -1;
    if (out.len) {
        if (lws_write(s->wsi, out.p, out.len, LWS_WRITE_HTTP) != (int)out.len)
            return -1;
        sse_beat_restart(s);
    }
    if (e->more || e->closing || e->eph.head)   /* the rest, or the close once the end is out */
        sse_want_write(s);
    else
        server_hold_input(s->wsi, &e->input_held, 1);
    return 0;
}

static void sse_on_closed(struct session *s)
{
    sweep_leave(&s->u.sse.beat);
    presence_release(s);
    eph_queue_clear(&s->u.sse.eph);
    auth_release(s);
    feed_unsubscribe(s);
    feed_forget_session(s);
    s->ops = NULL;
    s->wsi = NULL;
}

int sse_on_reason(struct session *s, enum lws_callback_reasons reason)
{
    switch (reason) {
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return sse_on_writeable(s);
    case LWS_CALLBACK_CLOSED_HTTP:
        sse_on_closed(s);
        return 0;
    default:                        /* a body on a GET, say: not read */
        return 0;
    }
}
