/* transport_websocket.c — one WebSocket to /api/v1/ws (subprotocol chat.v1):
 * hello with after=cursor, then events, acks and errors arrive as frames and
 * the outbox goes out as send frames. Messages are reassembled from
 * fragments up to 64 KiB (ws_reasm.c); a bigger one is dropped and the
 * connection closed with 1009, then retried. We write only from
 * CLIENT_WRITEABLE. A lost
 * connection is retried with backoff and every unacknowledged message is
 * sent again on the new one, with its client_msg_id, for the server to
 * dedupe. Close code 4401 (a hello refused or too late, or the session
 * ended) is checked with one HTTP request with the token: a 401 ends the
 * client with exit code 2 (log in again), anything else is retried like
 * any lost connection (the server's hello deadline passed while it or we
 * were stalled); an upgrade answered 401 ends it at once.
 * Each attempt goes to the server list's current server; a lost connection
 * or failed attempt moves the list on, so the retry goes to the next URL.
 * An upgrade refused on the way (transport_upgrade_refused) is offered to
 * env->ws_refused first: in auto mode the app then switches to long
 * polling and this transport stops trying. */
#include "backoff.h"
#include "core.h"
#include "http.h"
#include "protocol.h"
#include "servers.h"
#include "transport.h"
#include "ws_reasm.h"
#include "wsi_owner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WS_PROTOCOL_NAME  "chat-ws"
#define WS_RX_CAP         PROTO_MAX_REQUEST_BYTES
#define WS_FRAGMENTS_MAX  1024
#define WS_CLOSE_BAD_HELLO 4401
#define WS_READY_TIMEOUT_S 10     /* connect + handshake + hello -> ready */
#define WS_SENDS_PER_WRITE 32

struct ws {
    struct transport_env env;
    struct wsi_owner owner;
    const struct server_url *srv;    /* of the current attempt; NULL: env's address */
    char hostport[300];
    char path[600];
    struct lws *wsi;
    int attempt_live;            /* a connection attempt or connection is up */
    int handshake_sent;          /* the upgrade request went out */
    int refused;                 /* the attempt ended as an upgrade refusal */
    lws_sorted_usec_list_t sul;  /* next attempt, or the ready deadline */
    lws_sorted_usec_list_t resend_sul;  /* after a transient refusal */
    uint16_t resend_tries;
    uint16_t tries;
    unsigned conn;               /* serial of the current connection */
    int hello_pending, ready;
    int stopping;                /* closing for good: no reconnect */
    int close_code;              /* sent by the server, 0 if none */
    int token_refused;           /* the upgrade was answered 401 */
    struct http_req *token_check;    /* after a close 4401 (ws_check_token) */
    char lost_why[128];          /* why, for the retry after the check */
    struct ws_reasm *rx;         /* the message coming in */
    int too_big;                 /* it was over a limit: close 1009 */
};

static void ws_connect(lws_sorted_usec_list_t *sul);

static struct ws *ws_of(struct lws *wsi)
{
    struct wsi_owner *o = wsi_owner_of(wsi);
    return o ? lws_container_of(o, struct ws, owner) : NULL;
}

/* Size of a frame header: client frames carry a 4-byte mask. */
static uint64_t frame_overhead(size_t len, int masked)
{
    return 2u + (len > 125 ? 2u : 0u) + (len > 65535 ? 6u : 0u) + (masked ? 4u : 0u);
}

/* ---- connection lifetime ---- */

static void ws_token_checked(void *arg, const struct http_result *r)
{
    struct ws *t = arg;
    t->token_check = NULL;
    if (!r->error && r->status == 401) {
        core_fatal(t->env.core, 2, "the server rejected the session token (close 4401); log in again");
        return;
    }
    transport_retry_later(&t->env, t->srv, &t->tries, &t->sul, ws_connect, "websocket", t->lost_why);
}

/* Close 4401 means a refused token, an ended session, or a hello the
 * server did not have within its deadline: a poll of one event with the
 * token tells them apart (PROTOCOL.md, WebSocket close codes). */
static int ws_check_token(struct ws *t, const char *why)
{
    char path[700];
    if (!t->env.http)
        return -1;
    snprintf(t->lost_why, sizeof t->lost_why, "%s", why);
    snprintf(path, sizeof path, "%s/api/v1/events?after=%lld&wait=0&limit=1",
             servers_prefix(t->env.servers, t->env.prefix), (long long)core_cursor(t->env.core));
    struct http_call hc = {
        .method = "GET", .path = path, .token = t->env.token, .servers = t->env.servers,
        .timeout_s = t->env.timeout_s > 0 ? t->env.timeout_s : WS_READY_TIMEOUT_S,
    };
    t->token_check = http_request(t->env.http, &hc, ws_token_checked, t);
    return t->token_check ? 0 : -1;
}

/* The connection (or attempt) ended: schedule the next one. closing: we are
 * inside a callback that ends the wsi already. */
static void ws_lost(struct ws *t, const char *why, int closing)
{
    if (!t->attempt_live)
        return;
    t->attempt_live = 0;
    if (t->wsi) {
        wsi_owner_let_go(t->wsi, closing);
        t->wsi = NULL;
    }
    t->ready = t->hello_pending = t->too_big = 0;
    ws_reasm_reset(t->rx);
    if (t->stopping)
        return;
    if (t->close_code == WS_CLOSE_BAD_HELLO) {
        lws_sul_cancel(&t->sul);
        if (t->token_refused || ws_check_token(t, why) < 0)
            core_fatal(t->env.core, 2, "the server rejected the session token (close 4401); log in again");
        return;
    }
    if (t->refused && t->env.ws_refused && t->env.ws_refused(t->env.hook_arg, why)) {
        lws_sul_cancel(&t->sul);
        return;                 /* the app replaces us */
    }
    transport_retry_later(&t->env, t->srv, &t->tries, &t->sul, ws_connect, "websocket", why);
}

static void ws_gone(struct wsi_owner *o, struct lws *wsi)
{
    struct ws *t = lws_container_of(o, struct ws, owner);
    (void)wsi;
    t->wsi = NULL;
    ws_lost(t, "connection lost", 1);
}

static void ws_ready_deadline(lws_sorted_usec_list_t *sul)
{
    struct ws *t = lws_container_of(sul, struct ws, sul);
    ws_lost(t, "no answer from the server", 0);
}

/* Where this attempt goes: the list's current server, or env's address. */
static void ws_target(struct ws *t, struct lws_client_connect_info *i)
{
    t->srv = t->env.servers ? servers_current(t->env.servers) : NULL;
    i->address = t->srv ? t->srv->host : t->env.host;
    i->port = t->srv ? t->srv->port : t->env.port;
    i->ssl_connection = (t->srv ? t->srv->tls : t->env.tls) ? LCCSCF_USE_SSL : 0;
    snprintf(t->hostport, sizeof t->hostport, strchr(i->address, ':') ? "[%s]:%d" : "%s:%d",
             i->address, i->port);
    snprintf(t->path, sizeof t->path, "%s%s", servers_prefix(t->env.servers, t->env.prefix),
             PROTO_WS_PATH);
    i->path = t->path;
    i->host = t->hostport;
}

static void ws_connect(lws_sorted_usec_list_t *sul)
{
    struct ws *t = lws_container_of(sul, struct ws, sul);
    struct lws_client_connect_info i;
    memset(&i, 0, sizeof i);
    i.context = t->env.ctx;
    ws_target(t, &i);
    i.protocol = PROTO_WS_SUBPROTOCOL;
    i.local_protocol_name = WS_PROTOCOL_NAME;
    i.retry_and_idle_policy = t->env.ws_idle_policy ? t->env.ws_idle_policy : backoff_policy();
    i.opaque_user_data = &t->owner;
    t->close_code = t->token_refused = 0;
    t->handshake_sent = t->refused = 0;
    t->attempt_live = 1;
    lws_sul_schedule(t->env.ctx, 0, &t->sul, ws_ready_deadline,
                     (lws_usec_t)WS_READY_TIMEOUT_S * LWS_USEC_PER_SEC);
    core_count_request(t->env.core);
    /* lws 4.1's handshake is 210 bytes plus path and Host (measured) */
    core_count_bytes(t->env.core, 0, 210 + strlen(t->path) + strlen(t->hostport));
    struct lws *wsi = lws_client_connect_via_info(&i);
    if (!t->attempt_live)
        return;                 /* failed inside the call and already rescheduled */
    if (!wsi)
        ws_lost(t, "cannot start a connection", 1);
    else
        t->wsi = wsi;
}

/* ---- writing ---- */

static int ws_write_json(struct ws *t, json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s)
        return -1;
    size_t n = strlen(s);
    unsigned char *buf = malloc(LWS_PRE + n);
    if (!buf) {
        free(s);
        return -1;
    }
    memcpy(buf + LWS_PRE, s, n);
    free(s);
    int w = lws_write(t->wsi, buf + LWS_PRE, n, LWS_WRITE_TEXT);
    free(buf);
    core_count_bytes(t->env.core, 0, n + frame_overhead(n, 1));
    return w < 0 || (size_t)w != n ? -1 : 0;
}

static int ws_writeable(struct ws *t)
{
    if (t->too_big) {
        lws_close_reason(t->wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                         (unsigned char *)"message too big", 15);
        return -1;              /* lws sends the close frame; we reconnect */
    }
    if (t->stopping) {
        lws_close_reason(t->wsi, LWS_CLOSE_STATUS_NORMAL, (unsigned char *)"bye", 3);
        return -1;              /* lws sends the close frame */
    }
    if (t->hello_pending) {
        t->hello_pending = 0;
        return ws_write_json(t, json_pack("{s:s,s:s,s:I}", "op", "hello", "token", t->env.token,
                                          "after", (json_int_t)core_cursor(t->env.core)));
    }
    if (!t->ready)
        return 0;
    /* Several queued messages per WRITEABLE: one each would cost a loop
     * turn per message. Stop when lws had to keep part of a write. */
    for (int i = 0; i < WS_SENDS_PER_WRITE; i++) {
        const struct core_msg *m = core_outbox_take(t->env.core, t->conn);
        if (!m)
            return 0;
        if (ws_write_json(t, json_pack("{s:s,s:s,s:s,s:s}", "op", "send",
                                       m->to ? "to" : "room", m->to ? m->to : m->room,
                                       "body", m->body, "client_msg_id", m->client_msg_id)) < 0)
            return -1;
        if (lws_partial_buffered(t->wsi))
            break;
    }
    lws_callback_on_writable(t->wsi);   /* there may be more */
    return 0;
}

/* ---- reading ---- */

/* After a transient refusal: everything unacknowledged goes out again on
 * this connection (as on a new one: the server deduplicates by
 * client_msg_id). */
static void ws_resend(lws_sorted_usec_list_t *sul)
{
    struct ws *t = lws_container_of(sul, struct ws, resend_sul);
    if (!t->wsi || !t->ready)
        return;                 /* a new connection sends them anyway */
    t->conn = core_connection_serial(t->env.core);
    lws_callback_on_writable(t->wsi);
}

/* An error frame naming one of our messages refuses it for good, unless the
 * server only failed to store it (internal, busy, or the database out of
 * reach: store_unavailable); then it is sent again after a backoff. Others
 * are just reported. */
static void ws_on_error_frame(struct ws *t, json_t *root)
{
    const char *msg = NULL, *code = NULL, *cmid = NULL;
    proto_get_string(root, "message", &msg);
    proto_get_string(root, "code", &code);
    proto_get_string(root, "client_msg_id", &cmid);
    int transient = code && (strcmp(code, "internal") == 0 || strcmp(code, "busy") == 0 ||
                             strcmp(code, "store_unavailable") == 0);
    if (cmid && !transient && core_reject(t->env.core, cmid, msg ? msg : code) == 0)
        return;
    if (cmid && transient && lws_dll2_is_detached(&t->resend_sul.list)) {   /* not yet planned */
        unsigned ms = backoff_next(t->env.ctx, &t->resend_tries);
        lws_sul_schedule(t->env.ctx, 0, &t->resend_sul, ws_resend, (lws_usec_t)ms * 1000);
    }
    core_error(t->env.core, "server: %s", msg ? msg : code ? code : "unspecified error");
}

static void ws_on_message(struct ws *t, const char *buf, size_t len)
{
    const char *err = NULL, *op = NULL, *cmid = NULL;
    int64_t id = 0;
    json_t *root = proto_parse_object(buf, len, &err);
    if (!root || proto_get_string(root, "op", &op) < 0 || !op) {
        core_error(t->env.core, "websocket: ignored a malformed frame");
        json_decref(root);
        return;
    }
    if (strcmp(op, "ready") == 0) {
        lws_sul_cancel(&t->sul);
        t->ready = 1;
        t->tries = 0;
        core_set_state(t->env.core, CORE_CONNECTED, 0);
        lws_callback_on_writable(t->wsi);
    } else if (strcmp(op, "event") == 0) {
        if (core_deliver(t->env.core, json_object_get(root, "event")) < 0)
            core_error(t->env.core, "websocket: ignored a malformed event");
    } else if (strcmp(op, "ack") == 0) {
        proto_get_string(root, "client_msg_id", &cmid);
        proto_get_int(root, "id", &id, NULL);
        t->resend_tries = 0;
        core_ack(t->env.core, cmid, id);
    } else if (strcmp(op, "error") == 0) {
        ws_on_error_frame(t, root);
    } else if (strcmp(op, "presence") == 0 || strcmp(op, "typing") == 0 || strcmp(op, "read") == 0) {
        core_ephemeral(t->env.core, root);     /* malformed: ignored */
    }
    json_decref(root);
}

/* Never fails the receive callback: lws 4.1 then goes on parsing the rest
 * of the read into its own buffer and overruns it (heap corruption after a
 * 200,000-byte frame). An oversized message is dropped as it comes in and
 * the close 1009 goes out from WRITEABLE. */
static int ws_receive(struct ws *t, struct lws *wsi, const void *in, size_t len)
{
    if (t->too_big)
        return 0;
    if (ws_reasm_idle(t->rx))
        core_count_bytes(t->env.core, frame_overhead(len, 0), 0);
    switch (ws_reasm_add(t->rx, in, len, lws_is_final_fragment(wsi))) {
    case WS_REASM_MORE:
        break;
    case WS_REASM_WHOLE: {
        size_t n;
        const char *msg = ws_reasm_message(t->rx, &n);
        core_count_bytes(t->env.core, len, 0);
        ws_on_message(t, msg, n);
        return 0;
    }
    case WS_REASM_TOO_BIG:
    case WS_REASM_NO_MEMORY:
        t->too_big = 1;
        core_error(t->env.core, "websocket: message from server over %d bytes or %d pieces; "
                   "closing (1009) and reconnecting", WS_RX_CAP, WS_FRAGMENTS_MAX);
        lws_callback_on_writable(wsi);
        return 0;
    }
    core_count_bytes(t->env.core, len, 0);
    return 0;
}

static void ws_established(struct ws *t, struct lws *wsi)
{
    t->conn = core_connection_serial(t->env.core);
    t->hello_pending = 1;
    t->ready = t->too_big = 0;
    ws_reasm_reset(t->rx);
    core_count_bytes(t->env.core, http_response_header_bytes(wsi), 0);
    lws_callback_on_writable(wsi);
}

/* The attempt failed before the upgrade: an unreachable server, or an
 * answer other than 101 (401 means the same as close 4401). */
static void ws_connection_error(struct ws *t, struct lws *wsi, const char *in)
{
    char why[200];
    int status = (int)lws_http_client_http_response(wsi);
    if (status == 401) {
        t->close_code = WS_CLOSE_BAD_HELLO;
        t->token_refused = 1;
    }
    t->refused = transport_upgrade_refused(status, t->handshake_sent);
    if (status)
        snprintf(why, sizeof why, "upgrade refused with HTTP %d", status);
    else
        snprintf(why, sizeof why, "cannot connect: %s%s", in ? in : "unknown error",
                 t->handshake_sent ? " (closed during the handshake)" : "");
    ws_lost(t, why, 1);
}

static void ws_peer_close(struct ws *t, const unsigned char *in, size_t len)
{
    if (in && len >= 2)
        t->close_code = in[0] << 8 | in[1];
}

static int ws_cb(struct lws *wsi, enum lws_callback_reasons reason,
                 void *user, void *in, size_t len)
{
    struct ws *t = ws_of(wsi);
    char why[128];

    if (!t)   /* detached: let lws finish it off */
        return reason == LWS_CALLBACK_CLIENT_RECEIVE ||
               reason == LWS_CALLBACK_CLIENT_WRITEABLE ? -1 : 0;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        wsi_owner_release(wsi);     /* may precede t->wsi being set */
        ws_connection_error(t, wsi, in);
        return 0;
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
        t->handshake_sent = 1;      /* connected; the upgrade request goes out */
        return 0;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        ws_established(t, wsi);
        return 0;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return ws_writeable(t);
    case LWS_CALLBACK_CLIENT_RECEIVE:
        return ws_receive(t, wsi, in, len);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        ws_peer_close(t, in, len);
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
        wsi_owner_release(wsi);
        if (t->close_code)
            snprintf(why, sizeof why, "connection closed (code %d)", t->close_code);
        else
            snprintf(why, sizeof why, "connection closed");
        ws_lost(t, why, 1);
        return 0;
    default:
        break;
    }
    (void)user;
    return 0;
}

static const struct lws_protocols ws_protocol = {
    .name = WS_PROTOCOL_NAME,
    .callback = ws_cb,
    .rx_buffer_size = 4096,
};

/* ---- transport ops ---- */

static void *ws_create(const struct transport_env *env)
{
    struct ws *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->env = *env;
    t->owner.gone = ws_gone;
    t->rx = ws_reasm_new(WS_RX_CAP, WS_FRAGMENTS_MAX);
    if (!t->rx) {
        free(t);
        return NULL;
    }
    return t;
}

static void ws_destroy(void *v)
{
    struct ws *t = v;
    if (!t)
        return;
    lws_sul_cancel(&t->sul);
    lws_sul_cancel(&t->resend_sul);
    http_cancel(t->token_check);
    if (t->wsi)
        wsi_owner_detach(t->wsi);
    ws_reasm_free(t->rx);
    free(t);
}

static int ws_start(void *v)
{
    struct ws *t = v;
    core_set_state(t->env.core, CORE_CONNECTING, 0);
    lws_sul_schedule(t->env.ctx, 0, &t->sul, ws_connect, 1);
    return 0;
}

static void ws_outbox_changed(void *v)
{
    struct ws *t = v;
    if (t->wsi && t->ready)
        lws_callback_on_writable(t->wsi);
}

/* Sends close 1000 and waits for the server's answer. */
static int ws_stop(void *v)
{
    struct ws *t = v;
    lws_sul_cancel(&t->sul);
    lws_sul_cancel(&t->resend_sul);
    http_cancel(t->token_check);
    t->token_check = NULL;
    if (!t->wsi)
        return 0;
    if (!t->stopping) {
        t->stopping = 1;
        lws_callback_on_writable(t->wsi);
    }
    return 1;
}

const struct transport_ops transport_websocket = {
    .name = "websocket",
    .protocol = &ws_protocol,
    .create = ws_create,
    .destroy = ws_destroy,
    .start = ws_start,
    .outbox_changed = ws_outbox_changed,
    .stop = ws_stop,
};
