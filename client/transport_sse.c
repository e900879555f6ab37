/* transport_sse.c — Server-Sent Events: one GET /api/v1/stream?after=CURSOR
 * held open, its text/event-stream parsed with hard bounds (sse_parse.c):
 * `ready` says the stream is up (and its heartbeat), `chat` and `alert`
 * carry events for the core, `end` means the session ended (exit 2, as a
 * 401). The outbox goes out as POST /api/v1/messages (polling.c's sender,
 * one at a time, same client_msg_id on a retry). A stream that ends, fails,
 * answers anything but 200, breaks the format or stays silent for twice
 * its heartbeat is dropped and opened again after backoff_next(), from the
 * core's cursor, on the server list's next server. */
#include "backoff.h"
#include "core.h"
#include "http.h"
#include "polling.h"
#include "protocol.h"
#include "servers.h"
#include "sse_parse.h"
#include "transport.h"
#include "wsi_owner.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SSE_PROTOCOL_NAME  "chat-sse"
#define SSE_STREAM_PATH    "/api/v1/stream"
#define SSE_CAP            (PROTO_MAX_REQUEST_BYTES + 1024)  /* a line, a message */
#define SSE_READY_TIMEOUT_S 10       /* connect + head + ready */
#define SSE_SILENCE_DEFAULT_S 60     /* before ready names the heartbeat */

struct sse {
    struct transport_env env;
    struct wsi_owner owner;
    struct poller *sender;
    struct sse_parser *parser;
    const struct server_url *srv;    /* of the current attempt; NULL: env's address */
    char hostport[300];
    char path[600];
    char *auth;                      /* "Bearer TOKEN" */
    struct lws *wsi;
    int attempt_live, ready, status, broken;
    int silence_s;                   /* drop a stream quiet for this long */
    lws_sorted_usec_list_t sul;      /* next attempt, or the silence deadline */
    uint16_t tries;
};

static void sse_connect(lws_sorted_usec_list_t *sul);
static void sse_silent(lws_sorted_usec_list_t *sul);

static struct sse *sse_of(struct lws *wsi)
{
    struct wsi_owner *o = wsi_owner_of(wsi);
    return o ? lws_container_of(o, struct sse, owner) : NULL;
}

/* ---- connection lifetime ---- */

/* The stream (or attempt) ended: the next one after backoff. closing: we
 * are inside a callback that ends the wsi already. */
static void sse_lost(struct sse *t, const char *why, int closing)
{
    if (!t->attempt_live)
        return;
    t->attempt_live = 0;
    if (t->wsi) {
        wsi_owner_let_go(t->wsi, closing);
        t->wsi = NULL;
    }
    t->ready = 0;
    if (t->status == 401) {
        lws_sul_cancel(&t->sul);
        core_fatal(t->env.core, 2, "the server no longer accepts this session (401); log in again");
        return;
    }
    transport_retry_later(&t->env, t->srv, &t->tries, &t->sul, sse_connect, "sse", why);
}

static void sse_gone(struct wsi_owner *o, struct lws *wsi)
{
    struct sse *t = lws_container_of(o, struct sse, owner);
    (void)wsi;
    t->wsi = NULL;
    sse_lost(t, "connection lost", 1);
}

/* Heard from the server: the silence deadline starts again. */
static void sse_heard(struct sse *t)
{
    int s = t->ready ? t->silence_s : SSE_READY_TIMEOUT_S;
    lws_sul_schedule(t->env.ctx, 0, &t->sul, sse_silent, (lws_usec_t)s * LWS_USEC_PER_SEC);
}

static void sse_silent(lws_sorted_usec_list_t *sul)
{
    struct sse *t = lws_container_of(sul, struct sse, sul);
    sse_lost(t, t->ready ? "the stream went silent" : "no answer from the server", 0);
}

static void sse_target(struct sse *t, struct lws_client_connect_info *i)
{
    t->srv = t->env.servers ? servers_current(t->env.servers) : NULL;
    i->address = t->srv ? t->srv->host : t->env.host;
    i->port = t->srv ? t->srv->port : t->env.port;
    i->ssl_connection = LCCSCF_HTTP_NO_FOLLOW_REDIRECT |
                        ((t->srv ? t->srv->tls : t->env.tls) ? LCCSCF_USE_SSL : 0);
    snprintf(t->hostport, sizeof t->hostport, strchr(i->address, ':') ? "[%s]:%d" : "%s:%d",
             i->address, i->port);
    snprintf(t->path, sizeof t->path, "%s%s?after=%" PRId64, servers_prefix(t->env.servers, t->env.prefix),
             SSE_STREAM_PATH, core_cursor(t->env.core));
    i->path = t->path;
    i->host = t->hostport;
}

static void sse_connect(lws_sorted_usec_list_t *sul)
{
    struct sse *t = lws_container_of(sul, struct sse, sul);
    struct lws_client_connect_info i;
    memset(&i, 0, sizeof i);
    i.context = t->env.ctx;
    sse_target(t, &i);
    i.method = "GET";
    i.protocol = SSE_PROTOCOL_NAME;
    i.local_protocol_name = SSE_PROTOCOL_NAME;
    i.opaque_user_data = &t->owner;
    t->status = t->broken = t->ready = 0;
    t->attempt_live = 1;
    sse_parser_reset(t->parser);
    sse_heard(t);                    /* the ready deadline */
    core_count_request(t->env.core);
    core_count_bytes(t->env.core, 0, 120 + strlen(t->path) + strlen(t->hostport) + strlen(t->auth));
    struct lws *wsi = lws_client_connect_via_info(&i);
    if (!t->attempt_live)
        return;                      /* failed inside the call and already rescheduled */
    if (!wsi)
        sse_lost(t, "cannot start a connection", 1);
    else
        t->wsi = wsi;
}

/* ---- the stream's messages ---- */

static void sse_on_ready(struct sse *t, const char *data, size_t len)
{
    json_t *o = json_loadb(data, len, 0, NULL);
    json_int_t hb = json_integer_value(json_object_get(o, "heartbeat_s"));
    json_decref(o);
    /* twice the heartbeat, and some room for the loop and the network */
    t->silence_s = hb > 0 && hb <= 3600 ? (int)hb * 2 + 2 : SSE_SILENCE_DEFAULT_S;
    t->ready = 1;
    t->tries = 0;
    core_set_state(t->env.core, CORE_CONNECTED, 0);
}

static void sse_on_msg(void *arg, const char *event, const char *id, const char *data, size_t len)
{
    struct sse *t = arg;
    (void)id;                        /* the core's cursor is the resume point */
    if (t->broken)
        return;
    if (!strcmp(event, "ready")) {
        sse_on_ready(t, data, len);
    } else if (!strcmp(event, "presence") || !strcmp(event, "typing") || !strcmp(event, "read")) {
        const char *err;
        json_t *item = t->ready ? proto_parse_object(data, len, &err) : NULL;
        if (item)
            core_ephemeral(t->env.core, item);  /* malformed: ignored */
        json_decref(item);
    } else if (!strcmp(event, "chat") || !strcmp(event, "alert") || !strcmp(event, "member") ||
               !strcmp(event, "topic")) {
        const char *err;
        json_t *ev = t->ready ? proto_parse_object(data, len, &err) : NULL;
        if (!ev || core_deliver(t->env.core, ev) < 0)
            core_error(t->env.core, "sse: ignored a malformed event");
        json_decref(ev);
    } else if (!strcmp(event, "end")) {
        t->broken = 1;
        lws_sul_cancel(&t->sul);
        core_fatal(t->env.core, 2, "the server ended the session; log in again");
    }                                /* other events: not ours, ignored */
}

static void sse_on_comment(void *arg)
{
    (void)arg;                       /* a heartbeat: sse_receive heard it */
}

/* A piece of the body. Never fails the callback: a broken stream is
 * closed from the next turn (sse_lost with the wsi detached). */
static int sse_receive(struct sse *t, const void *in, size_t len)
{
    if (t->broken)
        return 0;
    core_count_bytes(t->env.core, len, 0);
    sse_heard(t);
    enum sse_result r = sse_parser_feed(t->parser, in, len);
    if (r != SSE_OK && !t->broken) {
        t->broken = 1;
        sse_lost(t, r == SSE_TOO_BIG ? "a line or message from the server over the limit"
                                     : "out of memory", 0);
    }
    return 0;
}

/* ---- lws callback ---- */

static int sse_established(struct sse *t, struct lws *wsi)
{
    char why[64];
    t->status = (int)lws_http_client_http_response(wsi);
    core_count_bytes(t->env.core, http_response_header_bytes(wsi), 0);
    char ct[64];
    if (lws_hdr_copy(wsi, ct, sizeof ct, WSI_TOKEN_HTTP_CONTENT_TYPE) < 0)
        ct[0] = '\0';
    if (t->status != 200 || strncmp(ct, "text/event-stream", 17) != 0) {
        snprintf(why, sizeof why, "stream refused with HTTP %d", t->status);
        sse_lost(t, why, 0);
        return 0;
    }
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    return 0;
}

static int sse_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct sse *t = sse_of(wsi);
    char buf[LWS_PRE + 4096], *p, why[160];
    int n;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        wsi_owner_release(wsi);      /* may precede t->wsi being set */
        if (t) {
            if (wsi)
                t->status = (int)lws_http_client_http_response(wsi);
            snprintf(why, sizeof why, "cannot connect: %s", in ? (const char *)in : "unknown error");
            sse_lost(t, why, 1);
        }
        return 0;
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
        unsigned char **q = in, *end = *q + len;
        if (!t)
            return -1;
        return lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION,
                                            (const unsigned char *)t->auth, (int)strlen(t->auth), q, end) ||
               lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_ACCEPT,
                                            (const unsigned char *)"text/event-stream", 17, q, end) ? -1 : 0;
    }
    case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP:
        return t ? sse_established(t, wsi) : -1;
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP:
        if (!t)
            return -1;
        p = buf + LWS_PRE;
        n = (int)sizeof buf - LWS_PRE;
        return lws_http_client_read(wsi, &p, &n) < 0 ? -1 : 0;
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP_READ:
        return t ? sse_receive(t, in, len) : -1;
    case LWS_CALLBACK_COMPLETED_CLIENT_HTTP:
        if (t)
            sse_lost(t, "the server ended the stream", 0);
        return 0;
    case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
        wsi_owner_release(wsi);
        if (t)
            sse_lost(t, "connection closed", 1);
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols sse_protocol = {
    .name = SSE_PROTOCOL_NAME,
    .callback = sse_cb,
};

/* ---- transport ops ---- */

static void sse_destroy(void *v);

static void *sse_create(const struct transport_env *env)
{
    struct sse *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->env = *env;
    t->owner.gone = sse_gone;
    t->silence_s = SSE_SILENCE_DEFAULT_S;
    size_t n = strlen(env->token ? env->token : "") + sizeof "Bearer ";
    t->auth = malloc(n);
    t->parser = sse_parser_new(SSE_CAP, sse_on_msg, sse_on_comment, t);
    t->sender = poller_new_sender(env);
    if (!t->auth || !t->parser || !t->sender) {
        sse_destroy(t);
        return NULL;
    }
    snprintf(t->auth, n, "Bearer %s", env->token ? env->token : "");
    return t;
}

static void sse_destroy(void *v)
{
    struct sse *t = v;
    if (!t)
        return;
    lws_sul_cancel(&t->sul);
    if (t->wsi)
        wsi_owner_detach(t->wsi);
    poller_free(t->sender);
    sse_parser_free(t->parser);
    if (t->auth) {
        lws_explicit_bzero(t->auth, strlen(t->auth));
        free(t->auth);
    }
    free(t);
}

static int sse_start(void *v)
{
    struct sse *t = v;
    core_set_state(t->env.core, CORE_CONNECTING, 0);
    lws_sul_schedule(t->env.ctx, 0, &t->sul, sse_connect, 1);
    return poller_start(t->sender);
}

static void sse_outbox_changed(void *v)
{
    struct sse *t = v;
    poller_outbox_changed(t->sender);
}

const struct transport_ops transport_sse = {
    .name = "sse",
    .protocol = &sse_protocol,
    .create = sse_create,
    .destroy = sse_destroy,
    .start = sse_start,
    .outbox_changed = sse_outbox_changed,
};
