/* ws_out.c — the WebSocket writer. Sessions with something to send (an ack,
 * an error, new events) are listed, and at the end of the loop turn
 * (main.c's turn end, after the feed's group commit) each gets one write
 * (up to WS_TURN_WRITES sockets a turn; the rest in the next turns):
 * its queued control frames (ready, acks, errors), then its events after
 * its cursor, each as a whole text frame, packed into one buffer that goes
 * out with one lws_write.
 *
 * Why at the end of the turn and not from a WRITEABLE callback: asking lws
 * for one costs two epoll_ctl calls per socket (POLLOUT on, then off), a
 * third of the server's time on fan-out. A socket is asked for WRITEABLE
 * only when lws holds part of an earlier write (the kernel's buffer was
 * full), the writer still has more than one pack to send, or a close or a
 * ping is due (and always without main.c's turn end, in unit tests).
 *
 * Why not one lws_write per frame: each write becomes its own TCP segment,
 * and on fan-out the kernel's cost per segment (about 5 µs on loopback,
 * where the sender's CPU also runs the peer's receive) was three quarters
 * of the server's time. Packed, a socket that has fallen behind gets many
 * events per segment, so the cost per event falls as the load grows.
 *
 * The frames are server-to-client, hence unmasked (RFC 6455 5.1), and chatd
 * negotiates no extension, so these bytes are exactly what lws would write
 * frame by frame; lws still owns the socket, buffering a partial write and
 * finishing it before the next WRITEABLE. */
#include "ws_out.h"
#include "feed.h"
#include "server.h"
#include "ws_frame.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define WS_PACK_BYTES (64 * 1024)   /* one write at most, unless one frame is larger */
#define WS_BATCH      64            /* events read from the store at a time */
/* Sockets written per loop turn at most; the rest wait for the next turns,
 * while the loop reads what came in, so a fan-out to many sockets neither
 * stalls the loop nor writes one event per segment when events come faster
 * than it goes round: a socket that waited gets everything new at once. */
#define WS_TURN_WRITES 1024

struct ws_out {
    unsigned char *buf;         /* LWS_PRE headroom, then the frames */
    size_t len, cap;
    lws_dll2_owner_t ready;     /* sessions to write at the end of this turn */
    uv_idle_t busy;             /* active while some are: the loop's poll won't block */
    int busy_on;
};

struct ws_out *ws_out_new(void)
{
    struct ws_out *p = calloc(1, sizeof *p);
    if (p && !(p->buf = malloc(LWS_PRE + WS_PACK_BYTES))) {
        free(p);
        return NULL;
    }
    if (p)
        p->cap = WS_PACK_BYTES;
    return p;
}

void ws_out_free(struct ws_out *p)
{
    if (!p)
        return;
    free(p->buf);
    free(p);
}

/* Room for n more bytes: an empty pack grows for a frame larger than it. */
static int pack_room(struct ws_out *p, size_t n)
{
    if (p->len + n <= p->cap)
        return 1;
    if (p->len)
        return 0;
    unsigned char *grown = realloc(p->buf, LWS_PRE + n);
    if (!grown)
        return 0;
    p->buf = grown;
    p->cap = n;
    return 1;
}

/* A frame made already (the feed's, a queued control frame). 1 packed, 0 no room. */
static int pack_frame(struct ws_out *p, const void *frame, size_t len)
{
    if (!pack_room(p, len))
        return 0;
    memcpy(p->buf + LWS_PRE + p->len, frame, len);
    p->len += len;
    return 1;
}

/* Text to frame. 1 packed, 0 no room. */
static int pack_text(struct ws_out *p, const void *text, size_t len)
{
    if (!pack_room(p, WS_HEADER_MAX + len))
        return 0;
    p->len += ws_text_frame(p->buf + LWS_PRE + p->len, text, len);
    return 1;
}

/* The queued control frames, oldest first, while they fit. */
static void pack_control(struct session *s, struct ws_out *p)
{
    struct ws_state *w = &s->u.ws;
    while (w->out_head && pack_frame(p, w->out_head->buf, w->out_head->len)) {
        struct ws_frame *f = w->out_head;
        w->out_head = f->next;
        if (!w->out_head)
            w->out_tail = NULL;
        w->out_count--;
        free(f);
    }
    /* reading was paused while too many were queued (ws_queue) */
    if (w->backlogged && w->out_count <= WS_MAX_QUEUED / 2) {
        w->backlogged = 0;
        if (!w->held)
            lws_rx_flow_control(s->wsi, 1);
    }
}

/* The next event of a batch read from the store (a client far behind
 * memory). 1 packed, 0 no room, -1 error. */
static int pack_stored_event(struct session *s, struct ws_out *p)
{
    struct ws_state *w = &s->u.ws;
    json_t *ev = json_array_get(w->batch, w->batch_idx);
    char *text = proto_ws_event_text(ev);
    if (!text)
        return -1;
    int packed = pack_text(p, text, strlen(text));
    free(text);
    if (packed) {
        w->batch_idx++;
        w->cursor = json_integer_value(json_object_get(ev, "id"));
    }
    return packed;
}

/* The next event the client has not had: the feed's ready frame when it is
 * in memory, else from a batch read from the store (feed_fetch; while it is
 * on its way, nothing: the feed wakes s when its rows are in). 1 packed, 0
 * nothing to send now or no room (w->more or the batch says which), -1
 * error. */
static int pack_next_event(struct session *s, struct ws_out *p)
{
    struct ws_state *w = &s->u.ws;
    if (w->batch && w->batch_idx < json_array_size(w->batch))
        return pack_stored_event(s, p);
    json_decref(w->batch);
    w->batch = NULL;
    if (!w->more)
        return 0;
    int64_t id;
    const unsigned char *frame;
    size_t len;
    int found = feed_next_frame(s->srv, s, w->cursor, &id, &frame, &len);
    if (found > 0) {
        if (!pack_frame(p, frame, len))
            return 0;
        w->cursor = id;
        return 1;
    }
    if (found == 0) {
        w->more = 0;
        return 0;
    }
    /* Behind memory: a store read, which may come back later; then the
     * feed wakes s (ws_wake sets more again) and this asks again. A failed
     * read waits for the next event (a wake) to be tried again. */
    w->batch_idx = 0;
    if (feed_fetch(s, w->cursor, WS_BATCH, &w->batch) != STORE_OK ||
        json_array_size(w->batch) == 0) {
        w->more = 0;
        return 0;
    }
    return pack_stored_event(s, p);
}

static int ws_out_pending(const struct session *s)
{
    const struct ws_state *w = &s->u.ws;
    return w->out_head || w->more || (w->batch && w->batch_idx < json_array_size(w->batch));
}

static int ws_out_write(struct session *s)
{
    struct ws_out *p = s->srv->ws_out;
    int rc = 0;
    p->len = 0;
    pack_control(s, p);
    if (s->u.ws.authed && !s->ended && !s->u.ws.out_head)
        while ((rc = pack_next_event(s, p)) > 0)
            ;
    if (rc < 0)
        return -1;
    if (p->len && lws_write(s->wsi, p->buf + LWS_PRE, p->len, LWS_WRITE_RAW) < (int)p->len)
        return -1;
    return 0;
}

int ws_out_on_writeable(struct session *s)
{
    if (ws_out_write(s) < 0)
        return -1;
    if (ws_out_pending(s))
        lws_callback_on_writable(s->wsi);
    return 0;
}

/* ---- end of the loop turn ---- */

static void ws_out_busy(uv_idle_t *h)
{
    (void)h;                    /* only there to keep the poll from blocking */
}

void ws_out_start(struct server *srv)
{
    struct ws_out *p = srv->ws_out;
    if (srv->loop && uv_idle_init(srv->loop, &p->busy) == 0)
        p->busy_on = 1;
}

void ws_out_stop(struct server *srv)
{
    struct ws_out *p = srv->ws_out;
    while (p->ready.count)
        ws_out_turn_end(srv);
    if (p->busy_on) {           /* closed by the loop before ws_out_free */
        uv_idle_stop(&p->busy);
        uv_close((uv_handle_t *)&p->busy, NULL);
        p->busy_on = 0;
    }
}

void ws_out_schedule(struct session *s)
{
    struct ws_out *p = s->srv->ws_out;
    if (!p->busy_on) {          /* no loop of ours (tests): lws' WRITEABLE */
        lws_callback_on_writable(s->wsi);
        return;
    }
    if (!lws_dll2_is_detached(&s->u.ws.ready_node))
        return;
    if (!p->ready.count)
        uv_idle_start(&p->busy, ws_out_busy);
    lws_dll2_add_tail(&s->u.ws.ready_node, &p->ready);
}

void ws_out_unschedule(struct session *s)
{
    if (!lws_dll2_is_detached(&s->u.ws.ready_node))
        lws_dll2_remove(&s->u.ws.ready_node);
}

/* A close or a ping goes first, from WRITEABLE (ws_on_writeable); so does
 * the rest of a write lws holds. */
static void ws_out_now(struct session *s)
{
    struct ws_state *w = &s->u.ws;
    if (w->peer_closed)         /* lws is answering the client's close */
        return;
    if (w->close_code || w->ping_due || lws_partial_buffered(s->wsi)) {
        lws_callback_on_writable(s->wsi);
        return;
    }
    if (ws_out_write(s) < 0) {  /* outside its callbacks: lws closes it soon */
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
        return;
    }
    if (ws_out_pending(s))
        lws_callback_on_writable(s->wsi);
}

void ws_out_turn_end(struct server *srv)
{
    struct ws_out *p = srv->ws_out;
    for (int n = 0; p->ready.head && n < WS_TURN_WRITES; n++) {
        struct session *s = lws_container_of(p->ready.head, struct session, u.ws.ready_node);
        lws_dll2_remove(&s->u.ws.ready_node);
        ws_out_now(s);
    }
    if (p->busy_on && !p->ready.count)
        uv_idle_stop(&p->busy);
}
