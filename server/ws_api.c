/* ws_api.c — the WebSocket endpoint: handshake checks (version and Origin,
 * answered in HTTP; path and limits), hello/authentication with a deadline,
 * message reassembly with size and fragment caps and UTF-8 validation, the
 * client's close frame, the client ops (send; over the message rate, the
 * message is held and reading paused until the bucket has a token), the
 * queue of control frames,
 * and what each WRITEABLE writes: a close, a ping, or (ws_out.c) the queued
 * control frames, then the user's events in id order from the cursor. Its
 * session_ops: woken by the feed, acks after the commit, closed with 4401
 * when the session ends. RFC 6455 conformance, and what lws 4.1 decides
 * alone: shared/PROTOCOL.md. */
#include "ws_api.h"
#include "audit.h"
#include "auth.h"
#include "browser.h"
#include "clock.h"
#include "feed.h"
#include "presence.h"
#include "rooms.h"
#include "limiter.h"
#include "server.h"
#include "store.h"
#include "sweep.h"
#include "ws_beat.h"
#include "ws_frame.h"
#include "ws_out.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WS_HARD_QUEUED    (4 * WS_MAX_QUEUED)  /* still growing while paused: give up */
#define WS_MAX_FRAGMENTS  1024
#define WS_HELD           1      /* ws_handle_message kept the message for later */
/* lws 4.1's own close opcode for lws_write (private-lib-roles-ws.h), see
 * ws_on_writeable */
#define WS_WRITE_CLOSE    ((enum lws_write_protocol)4)

/* A browser page may only open a WebSocket from an allowed Origin (else any
 * site the user visits could ride on their session): the server's own
 * pages', or one --allow-origin names; terminal clients send no Origin and
 * are allowed. */
static int ws_origin_allowed(const struct server *srv, struct lws *wsi)
{
    char origin[256];
    if (browser_origin_of(wsi) != BROWSER_OTHER_ORIGIN)
        return 1;
    if (lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN) < 0)
        return 0;
    for (int i = 0; i < srv->cfg.n_allow_origins; i++)
        if (strcmp(origin, srv->cfg.allow_origins[i]) == 0)
            return 1;
    return 0;
}

/* An HTTP error answer written at once, with the API's JSON error body;
 * extra is one more header (name, value) or NULL. */
static int ws_refuse(struct lws *wsi, unsigned status, const char *code, const char *msg,
                     const char *extra, const char *extra_value)
{
    unsigned char buf[LWS_PRE + 512], *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf;
    char *body = NULL;
    json_t *o = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
    if (o)
        body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    size_t n = body ? strlen(body) : 0;
    int bad = !body || n > 256 ||
              lws_add_http_common_headers(wsi, status, "application/json", n, &p, end) ||
              (extra && lws_add_http_header_by_name(wsi, (const unsigned char *)extra,
                                                    (const unsigned char *)extra_value,
                                                    (int)strlen(extra_value), &p, end)) ||
              lws_finalize_write_http_header(wsi, start, &p, end);
    if (!bad)
        bad = lws_write(wsi, (unsigned char *)body, n, LWS_WRITE_HTTP_FINAL) < (int)n;
    free(body);
    return bad ? -1 : 1;        /* 1: answered, lws completes the transaction */
}

/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: the last point where a refused
 * handshake can still get an HTTP answer (lws calls FILTER_PROTOCOL_CONNECTION
 * after it has switched the connection to the WebSocket role; a refusal
 * there is a bare hang-up). Written here, as lws itself answers an unknown
 * Upgrade from this spot; 0 lets the upgrade go on. */
int ws_on_confirm_upgrade(struct lws *wsi, const char *upgrade)
{
    char ver[8];
    if (!upgrade || strcasecmp(upgrade, "websocket") != 0)
        return 0;
    /* lws 4.1 goes on with any version (server-ws.c: "Unknown client spec
     * version", then treats it as 13); RFC 6455 4.4 asks for 426. */
    if (lws_hdr_copy(wsi, ver, sizeof ver, WSI_TOKEN_VERSION) <= 0 || strcmp(ver, "13") != 0)
        return ws_refuse(wsi, 426, "upgrade_required", "only WebSocket version 13 is supported",
                         "Sec-WebSocket-Version:", "13");
    if (!ws_origin_allowed(server_from_wsi(wsi), wsi)) {
        audit("ws.origin_refused", "addr=%s", limiter_conn_addr(wsi));
        return ws_refuse(wsi, 403, "forbidden_origin", "this Origin may not open a WebSocket", NULL, NULL);
    }
    return 0;
}

int ws_on_filter(struct lws *wsi)
{
    struct server *srv = server_from_wsi(wsi);
    char uri[64];
    if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) < 0 || strcmp(uri, PROTO_WS_PATH) != 0)
        return 1;               /* non-zero rejects the upgrade */
    return srv->stopping || limiter_conn_over(srv->limiter, wsi);
}

/* The close frame, written at once: from WRITEABLE, or from the peer's close
 * callback, after which lws hangs up without waiting for a WRITEABLE. */
static void ws_write_close(struct lws *wsi, int code, const char *reason)
{
    unsigned char frame[LWS_PRE + 125];
    const char *r = reason ? reason : "";
    size_t n = strlen(r) > 123 ? 123 : strlen(r);
    frame[LWS_PRE] = (unsigned char)(code >> 8);
    frame[LWS_PRE + 1] = (unsigned char)(code & 0xff);
    memcpy(frame + LWS_PRE + 2, r, n);
    lws_write(wsi, frame + LWS_PRE, n + 2, WS_WRITE_CLOSE);
}

/* Codes a peer may send (RFC 6455 7.4.1, 7.4.2): not 1004-1006 or 1015,
 * nor anything unassigned below 3000. */
static int ws_close_code_valid(int code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

/* The client's close frame. Returning 0 lets lws echo it, as RFC 6455 5.5.1
 * asks; but lws 4.1 echoes codes it does not know are invalid (5000, 65535)
 * and, with VALIDATE_UTF8 off (main.c), any reason. Those are answered here
 * with 1002 or 1007, written now: a non-zero return makes lws hang up at
 * once (it writes nothing of its own: no close reason was set). */
int ws_on_peer_close(struct session *s, const unsigned char *in, size_t len)
{
    int code = len >= 2 ? (in[0] << 8) | in[1] : 0;
    int answer = 0;
    if (len == 1 || (len >= 2 && !ws_close_code_valid(code)))
        answer = LWS_CLOSE_STATUS_PROTOCOL_ERR;
    else if (len > 2 && !proto_utf8_valid((const char *)in + 2, len - 2))
        answer = LWS_CLOSE_STATUS_INVALID_PAYLOAD;
    if (!s || !s->is_ws)
        return answer ? -1 : 0;
    s->u.ws.peer_closed = 1;
    ws_out_unschedule(s);
    if (!answer)
        return 0;
    ws_write_close(s->wsi, answer, answer == LWS_CLOSE_STATUS_PROTOCOL_ERR ? "invalid close code"
                                                                          : "close reason is not UTF-8");
    return -1;
}

static void ws_begin_close(struct session *s, int code, const char *reason)
{
    if (s->u.ws.close_code)
        return;
    s->u.ws.close_code = code;
    s->u.ws.close_reason = reason;
    lws_callback_on_writable(s->wsi);
}

static void ws_on_posted(struct session *s, const char *client_msg_id, int rc, int64_t id, int64_t ts);
static void ws_wake(struct session *s);

/* Logout or expiry: nothing more is sent but the close. */
static void ws_on_ended(struct session *s, const char *why)
{
    ws_begin_close(s, 4401, why);
}

static void ws_ephemeral(struct session *s, const struct ephemeral *e);

static const struct session_ops ws_ops = { ws_wake, ws_on_posted, ws_on_ended, ws_ephemeral };

/* No hello in time (hello_timeout_s): 4401. The deadline is on the sweep
 * with the link the heartbeat (ws_beat.c) takes over after the hello. */
static void ws_hello_late(struct server *srv, struct sweep_link *l)
{
    (void)srv;
    struct session *s = lws_container_of(l, struct session, u.ws.hb);
    sweep_leave(l);
    ws_begin_close(s, 4401, "expected a hello with a valid token");
}

static const struct sweep_kind ws_hello_kind = { .due = ws_hello_late };

int ws_on_established(struct session *s)
{
    memset(&s->u.ws, 0, sizeof s->u.ws);
    s->ops = &ws_ops;
    s->ended = 0;
    s->is_ws = 1;
    s->user_id = 0;
    s->user[0] = '\0';
    /* A page of ours sends its hello with an empty token: its HttpOnly
     * session cookie, kept until the hello, stands for it. Only from our
     * own origin (an --allow-origin page must say hello with a token). */
    char tok[PROTO_TOKEN_HEX_LEN + 1];
    if (browser_origin_of(s->wsi) == BROWSER_SAME_ORIGIN && browser_cookie_token(s->wsi, tok) == 0) {
        s->u.ws.cookie_token = strdup(tok);
        sodium_memzero(tok, sizeof tok);
        if (!s->u.ws.cookie_token)
            return -1;
    }
    /* Subscribed from the start so a shutdown reaches unauthenticated sockets too. */
    feed_subscribe(s);
    sweep_join(sweep_queue(s->srv->sweep, &ws_hello_kind, (int64_t)s->srv->cfg.hello_timeout_s * 1000),
               &s->u.ws.hb, sweep_mono_ms());
    return 0;
}

static void ws_wake(struct session *s)
{
    if (s->srv->stopping) {
        ws_begin_close(s, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down");
        return;
    }
    if (!s->u.ws.authed)
        return;
    s->u.ws.more = 1;
    ws_out_schedule(s);
}

/* Queues a control frame of text. */
static int ws_queue_text(struct session *s, const char *text)
{
    struct ws_state *w = &s->u.ws;
    size_t len = strlen(text);
    struct ws_frame *f = malloc(sizeof *f + WS_HEADER_MAX + len);
    if (!f)
        return -1;
    f->next = NULL;
    f->len = ws_text_frame(f->buf, text, len);
    if (w->out_tail)
        w->out_tail->next = f;
    else
        w->out_head = f;
    w->out_tail = f;
    /* A client that sends faster than it reads its acks is slowed down, not
     * dropped: stop reading until the queue has drained by half. */
    if (++w->out_count >= WS_MAX_QUEUED && !w->backlogged) {
        w->backlogged = 1;
        lws_rx_flow_control(s->wsi, 0);
    }
    if (w->out_count > WS_HARD_QUEUED)
        ws_begin_close(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "reader too slow");
    ws_out_schedule(s);
    return 0;
}

/* Queues a control frame; steals o. */
static int ws_queue(struct session *s, json_t *o)
{
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text)
        return -1;
    int rc = ws_queue_text(s, text);
    free(text);
    return rc;
}

/* Control frames queued past which an ephemeral one is dropped: a mass
 * connect (every user's presence to every user) must not fill memory. */
#define WS_EPHEMERAL_QUEUED 32

/* A presence or typing frame: with the control frames, so it is written
 * this turn, before events still to send (it has no place in their
 * order). Ephemeral: dropped for a client that is behind on its control
 * frames, rather than pausing its reading or closing it. */
static void ws_ephemeral(struct session *s, const struct ephemeral *e)
{
    struct ws_state *w = &s->u.ws;
    if (!w->authed || w->close_code || w->peer_closed || w->out_count >= WS_EPHEMERAL_QUEUED)
        return;
    ws_queue_text(s, e->frame);
}

static int ws_error(struct session *s, const char *code, const char *message)
{
    return ws_queue(s, json_pack("{s:s,s:s,s:s}", "op", "error", "code", code, "message", message));
}

/* An error about one sent message names it, so the client knows which failed. */
static int ws_send_error(struct session *s, const char *cmid, const char *code, const char *message)
{
    return ws_queue(s, json_pack("{s:s,s:s,s:s,s:s?}", "op", "error", "code", code,
                                 "message", message, "client_msg_id", cmid));
}

/* The hello's token came to rc: ready (and the heartbeat from now), or
 * closed: 4401 for a token that is no good, 1011 when the store did not
 * answer (the client reconnects and says hello again). */
static int ws_hello_done(struct session *s, int rc)
{
    struct ws_state *w = &s->u.ws;
    if (w->close_code)          /* the hello deadline passed meanwhile */
        return 0;
    if (rc == AUTH_UNAVAILABLE || rc == AUTH_FAILED) {
        ws_begin_close(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
                       rc == AUTH_UNAVAILABLE ? "store_unavailable: retry shortly"
                                              : "could not check the token");
        return 0;
    }
    if (rc != AUTH_OK) {
        audit("auth.refused", "path=%s addr=%s", PROTO_WS_PATH, limiter_conn_addr(s->wsi));
        ws_begin_close(s, 4401, "invalid or expired token");
        return 0;
    }
    if (auth_hold(s, 1) < 0) {  /* touched while open, closed when the session ends */
        ws_begin_close(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
        return 0;
    }
    w->authed = 1;
    ws_beat_authed(s);          /* heartbeat from now */
    w->more = 1;
    if (w->cursor == PROTO_AFTER_LATEST)
        w->cursor = feed_newest(s->srv);
    feed_subscribe(s);          /* now by its user, in the room index */
    /* ready goes first: control frames are written before events. */
    if (ws_queue(s, json_pack("{s:s,s:s,s:i,s:i,s:I}", "op", "ready", "user", s->user,
                              "heartbeat_s", s->srv->cfg.heartbeat_s,
                              "long_poll_max_s", s->srv->cfg.long_poll_max_s,
                              "after", (json_int_t)w->cursor)) < 0)
        return -1;
    return presence_hold(s);    /* online while open (its own change comes after ready) */
}

/* The token's lookup came back: reading, paused meanwhile, goes on. */
static void ws_on_authed(struct session *s, int rc)
{
    struct ws_state *w = &s->u.ws;
    w->hello_wait = 0;
    if (!w->held && !w->backlogged)
        lws_rx_flow_control(s->wsi, 1);
    if (ws_hello_done(s, rc) < 0)
        ws_begin_close(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
}

/* The hello deadline keeps running while the token is looked up; nothing
 * more is read until it is (what follows the hello needs its answer). */
static int ws_hello(struct session *s, const struct proto_ws_frame *f)
{
    struct ws_state *w = &s->u.ws;
    w->cursor = f->after;
    int rc = auth_check_token(s->srv, s, f->token[0] || !w->cookie_token ? f->token : w->cookie_token,
                              ws_on_authed);
    server_free_secret(&w->cookie_token);   /* needed only until the hello */
    if (rc != AUTH_PENDING)
        return ws_hello_done(s, rc);
    w->hello_wait = 1;
    lws_rx_flow_control(s->wsi, 0);
    return 0;
}

static void ws_hold_over(lws_sorted_usec_list_t *sul);

/* Over the message rate: keep this message, stop reading until the bucket
 * has a token again (wait_ms, not a whole second: at 20/s the next token is
 * 50 ms away). Nothing is dropped and the order is kept; the sender is told
 * why it is slowed down once per hold. */
static int ws_hold(struct session *s, int64_t wait_ms)
{
    struct ws_state *w = &s->u.ws;
    if (!w->held && ws_queue(s, json_pack("{s:s,s:s,s:s,s:I}", "op", "error", "code", "rate_limited",
                                          "message", "too many messages; slowing down",
                                          "retry_after_s", (json_int_t)((wait_ms + 999) / 1000))) < 0)
        return -1;
    if (!w->held)
        audit("limit", "code=rate_limited path=%s user=%s addr=%s", PROTO_WS_PATH, s->user,
              limiter_conn_addr(s->wsi));
    w->held = 1;
    lws_rx_flow_control(s->wsi, 0);
    lws_sul_schedule(lws_get_context(s->wsi), 0, &w->hold_sul, ws_hold_over,
                     (lws_usec_t)wait_ms * LWS_US_PER_MS);
    return WS_HELD;
}

/* A first direct message waits for its conversation to be made; reading
 * is paused meanwhile (the sender's order is kept). The connection may
 * close first: then s is NULL and the completion only frees. */
struct ws_dm_open {
    struct session *s;
    int64_t room_id;
    char room[PROTO_DM_NAME_MAX + 1];
    char cmid[PROTO_CLIENT_MSG_ID_MAX + 1];
    int has_cmid;
    char body[];
};

static void ws_dm_opened(void *arg, const struct store_reply *rep)
{
    struct ws_dm_open *d = arg;
    struct session *s = d->s;
    const char *cmid = d->has_cmid ? d->cmid : NULL;
    if (s) {
        s->u.ws.dm_open = NULL;
        int rc = rep->rc == STORE_OK
            ? feed_post_chat(s->srv, s, rep->room_id, d->room, d->body, cmid)
            : rep->rc == STORE_CONSTRAINT && rep->room_err == STORE_ROOM_NOT_FOUND
            ? ws_send_error(s, cmid, "not_found", "no such user")
            : rep->rc == STORE_CONSTRAINT && rep->room_err == STORE_ROOM_TOO_MANY
            ? ws_send_error(s, cmid, "too_many_rooms", "a user may be in at most 100 rooms")
            : rep->rc == STORE_UNAVAILABLE
            ? ws_send_error(s, cmid, "store_unavailable", "the database is unavailable; retry shortly")
            : ws_send_error(s, cmid, "internal", "could not open the conversation");
        if (rc < 0)
            ws_begin_close(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
        else if (!s->u.ws.held && !s->u.ws.backlogged)
            lws_rx_flow_control(s->wsi, 1);
    }
    free(d);
}

static int ws_send_dm_open(struct session *s, const struct proto_ws_frame *f, const char *room)
{
    size_t blen = strlen(f->body);
    struct ws_dm_open *d = calloc(1, sizeof *d + blen + 1);
    char *pa = proto_member_payload(room, s->user, 1), *pb = proto_member_payload(room, f->to, 1);
    if (!d || !pa || !pb) {
        free(d);
        free(pa);
        free(pb);
        return ws_send_error(s, f->client_msg_id, "internal", "out of memory");
    }
    d->s = s;
    snprintf(d->room, sizeof d->room, "%s", room);
    if (f->client_msg_id) {
        d->has_cmid = 1;
        snprintf(d->cmid, sizeof d->cmid, "%s", f->client_msg_id);
    }
    memcpy(d->body, f->body, blen + 1);
    s->u.ws.dm_open = d;
    lws_rx_flow_control(s->wsi, 0);
    struct store_args args = { .user_id = s->user_id, .name = room, .to = f->to, .now_ms = now_ms(),
                               .payload = pa, .payload2 = pb };
    feed_room_call(s->srv, STORE_CALL_DM_OPEN, &args, ws_dm_opened, d);
    free(pa);
    free(pb);
    return 0;
}

static int ws_send(struct session *s, const struct proto_ws_frame *f)
{
    int64_t wait_ms = limiter_take_ms(s->srv->limiter, LIMIT_MESSAGES, s->user, now_ms());
    if (wait_ms > 0)
        return ws_hold(s, wait_ms);
    char dm[PROTO_DM_NAME_MAX + 1];
    const char *room = f->room;
    if (f->to && proto_dm_name(s->user, f->to, dm, sizeof dm) < 0)
        return ws_send_error(s, f->client_msg_id, "invalid", "to must be another user's name");
    if (f->to)
        room = dm;
    int member = 0;
    int64_t room_id = rooms_lookup(s->srv->rooms, room, s->user_id, &member);
    if (!member && f->to)
        return ws_send_dm_open(s, f, room);
    if (!room_id)
        return ws_send_error(s, f->client_msg_id, "not_found", "no such room");
    if (!member)
        return ws_send_error(s, f->client_msg_id, "not_member", "join the room first");
    /* acknowledged by ws_on_posted once the group commit is durable */
    if (feed_post_chat(s->srv, s, room_id, room, f->body, f->client_msg_id) < 0)
        return ws_send_error(s, f->client_msg_id, "internal", "could not store the message");
    return 0;
}

/* {"op":"typing"}: relayed to the room's members (presence.c), at most
 * once per 3 s; extras dropped without a word. "to": the DM with that user. */
static int ws_typing(struct session *s, const struct proto_ws_frame *f)
{
    char name[PROTO_DM_NAME_MAX + 1];
    int status;
    if (f->to ? proto_dm_name(s->user, f->to, name, sizeof name) < 0
              : snprintf(name, sizeof name, "%s", f->room) >= (int)sizeof name)
        return ws_error(s, "not_found", "no such room");
    int64_t id = presence_room_find(s, name, &status);
    if (!id)
        return status == 403 ? ws_error(s, "not_member", "you are not a member of this room")
                             : ws_error(s, "not_found", "no such room");
    struct presence_room who;
    struct presence_room_ix ix;
    return presence_typing(s, name, id, presence_room_of(&who, &ix, s->srv->rooms, id)) < 0 ? -1 : 0;
}

static void ws_on_posted(struct session *s, const char *client_msg_id, int rc, int64_t id, int64_t ts)
{
    int r = rc == STORE_OK
        ? ws_queue(s, json_pack("{s:s,s:s?,s:I,s:I}", "op", "ack", "client_msg_id", client_msg_id,
                                "id", (json_int_t)id, "ts", (json_int_t)ts))
        : rc == STORE_UNAVAILABLE   /* retryable: the client sends it again */
        ? ws_send_error(s, client_msg_id, "store_unavailable", "the database is unavailable; retry shortly")
        : ws_send_error(s, client_msg_id, "internal", "could not store the message");
    if (r < 0)
        ws_begin_close(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
}

static int ws_handle_message(struct session *s, const char *buf, size_t len, int binary)
{
    struct ws_state *w = &s->u.ws;
    struct proto_ws_frame f;
    const char *code, *err;
    json_t *root = NULL;
    int rc = 0;
    if (binary || proto_parse_ws_frame(buf, len, &root, &f, &code, &err) < 0) {
        if (!w->authed)
            ws_begin_close(s, 4401, "expected a hello with a valid token");
        else if (binary)
            rc = ws_error(s, "bad_request", "binary frames are not supported");
        else
            rc = ws_error(s, code, err);
        return rc;
    }
    if (!w->authed && f.op != PROTO_OP_HELLO)
        ws_begin_close(s, 4401, "expected a hello with a valid token");
    else if (f.op == PROTO_OP_HELLO)
        rc = w->authed ? ws_error(s, "bad_request", "already authenticated") : ws_hello(s, &f);
    else if (f.op == PROTO_OP_TYPING)
        rc = ws_typing(s, &f);
    else
        rc = ws_send(s, &f);
    json_decref(root);
    return rc;
}

int ws_on_receive(struct session *s, const void *in, size_t len)
{
    struct ws_state *w = &s->u.ws;
    if (w->close_code || w->peer_closed)
        return 0;
    if (w->held) {             /* lws keeps reading paused; never drop a message */
        ws_begin_close(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "input while paused");
        return 0;
    }
    if (lws_is_first_fragment(s->wsi)) {
        w->rx_len = 0;
        w->rx_frags = 0;
        w->rx_binary = lws_frame_is_binary(s->wsi);
    }
    if (len > (size_t)s->srv->cfg.max_request_bytes - w->rx_len || ++w->rx_frags > WS_MAX_FRAGMENTS) {
        ws_begin_close(s, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too large");
        return 0;
    }
    if (len) {
        char *grown = realloc(w->rx, w->rx_len + len);
        if (!grown)
            return -1;
        w->rx = grown;
        memcpy(w->rx + w->rx_len, in, len);
        w->rx_len += len;
    }
    if (!lws_is_final_fragment(s->wsi))
        return 0;
    /* Whole messages are checked, so a character split across fragments is
     * fine (lws' own VALIDATE_UTF8 is off, main.c). */
    if (!w->rx_binary && !proto_utf8_valid(w->rx, w->rx_len)) {
        ws_begin_close(s, LWS_CLOSE_STATUS_INVALID_PAYLOAD, "text is not UTF-8");
        return 0;
    }
    int rc = ws_handle_message(s, w->rx, w->rx_len, w->rx_binary);
    if (rc == WS_HELD)
        return 0;
    free(w->rx);                 /* idle connections hold no receive buffer */
    w->rx = NULL;
    w->rx_len = 0;
    return rc;
}

static void ws_hold_over(lws_sorted_usec_list_t *sul)
{
    struct ws_state *w = lws_container_of(sul, struct ws_state, hold_sul);
    struct session *s = lws_container_of(w, struct session, u.ws);
    w->held = 0;
    int rc = ws_handle_message(s, w->rx, w->rx_len, 0);
    if (rc == WS_HELD)
        return;
    /* The batch's turn-end commit (feed.c) runs after the loop's next poll,
     * which a timer callback does not shorten: the last held send would wait
     * for unrelated I/O (seconds). Commit it now. */
    feed_flush(s->srv);
    free(w->rx);
    w->rx = NULL;
    w->rx_len = 0;
    if (rc < 0)
        ws_begin_close(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "internal error");
    else if (!w->backlogged)
        lws_rx_flow_control(s->wsi, 1);
}

int ws_on_writeable(struct session *s)
{
    struct ws_state *w = &s->u.ws;
    if (w->close_code) {
        /* The close frame is written here, not left to lws_close_reason and
         * lws' close: Debian's lws is a _DEBUG build, which on the libuv
         * loop (main.c) closes a connection a second time at once ("uv
         * repeat test" in lws_service_fd_tsi), before that frame is sent. */
        ws_write_close(s->wsi, w->close_code, w->close_reason);
        return -1;
    }
    if (w->peer_closed)           /* lws writes the echo of the client's close */
        return 0;
    if (w->ping_due) {            /* heartbeat (ws_beat.c): a ping, on its own */
        /* with a payload: lws 4.1 calls back no LWS_CALLBACK_RECEIVE_PONG
         * for an empty pong, and the sweep needs to hear it; text, so
         * the pong's payload is valid UTF-8 should a checker look */
        unsigned char ping[LWS_PRE + 24];
        w->ping_due = 0;
        int n = snprintf((char *)ping + LWS_PRE, 24, "%llx", (unsigned long long)lws_now_usecs());
        if (lws_write(s->wsi, ping + LWS_PRE, (size_t)n, LWS_WRITE_PING) < n)
            return -1;
        if (lws_partial_buffered(s->wsi)) {
            lws_callback_on_writable(s->wsi);     /* the rest next time */
            return 0;
        }
    }
    return ws_out_on_writeable(s);
}

void ws_on_closed(struct session *s)
{
    struct ws_state *w = &s->u.ws;
    server_free_secret(&w->cookie_token);   /* closed before its hello */
    ws_beat_closed(s);
    presence_release(s);
    auth_release(s);
    ws_out_unschedule(s);
    lws_sul_cancel(&w->hold_sul);
    if (w->dm_open)
        w->dm_open->s = NULL;     /* its completion frees it */
    feed_unsubscribe(s);
    feed_forget_session(s);
    while (w->out_head) {
        struct ws_frame *f = w->out_head;
        w->out_head = f->next;
        free(f);
    }
    w->out_tail = NULL;
    free(w->rx);
    w->rx = NULL;
    json_decref(w->batch);
    w->batch = NULL;
    s->is_ws = 0;
    s->wsi = NULL;
}
