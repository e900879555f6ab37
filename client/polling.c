/* polling.c — GET /api/v1/events in a loop and POST /api/v1/messages for the
 * outbox, for the short- and long-poll transports. Each side has its own
 * backoff: a failed poll or send (no answer, 429, 5xx) is retried after
 * backoff_next(); the poll resumes from max(core cursor, last "next"), a send
 * repeats the same client_msg_id so the server stores it once. Requests go
 * to the server list's current server (http.c reports a failed one to the
 * list, so the retry goes to the next). */
#include "polling.h"
#include "backoff.h"
#include "core.h"
#include "http.h"
#include "protocol.h"
#include "servers.h"
#include "transport.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLL_LIMIT        PROTO_LIMIT_DEFAULT
#define SEND_TIMEOUT_S    10     /* sends and short polls */
#define HOLD_MARGIN_S     10     /* our timeout = hold + margin */

struct poller {
    struct transport_env env;
    int wait_s, interval_ms;
    int64_t next;                /* "next" of the last answer */
    int live;                    /* the last poll was answered */
    int sends_only;              /* no polls; the state is someone else's */

    struct http_req *poll_req;
    lws_sorted_usec_list_t poll_sul;
    uint16_t poll_tries;
    lws_usec_t poll_started;

    struct http_req *send_req;
    lws_sorted_usec_list_t send_sul;
    int send_waiting;            /* send_sul is armed */
    uint16_t send_tries;
    char send_id[PROTO_CLIENT_MSG_ID_MAX + 1];
};

static void poll_issue(struct poller *p);

/* A send's or short poll's deadline: --timeout-s, else our default. */
static int request_timeout(const struct poller *p)
{
    return p->env.timeout_s > 0 ? p->env.timeout_s : SEND_TIMEOUT_S;
}
static void send_kick(struct poller *p);

/* Reports a failure streak once, then says when the next try is. The
 * connection state follows the poll loop; a failed send only reports
 * "reconnecting" while polls still succeed. */
static unsigned failed(struct poller *p, uint16_t *tries, const char *why)
{
    if (*tries == 0 && why)
        core_error(p->env.core, "%s", why);
    unsigned ms = backoff_next(p->env.ctx, tries);
    if (!p->sends_only && (tries == &p->poll_tries || p->poll_tries == 0))
        core_set_state(p->env.core, CORE_RECONNECTING, ms);
    return ms;
}

static void arm(struct poller *p, lws_sorted_usec_list_t *sul, sul_cb_t cb, unsigned ms)
{
    lws_sul_schedule(p->env.ctx, 0, sul, cb, ms ? (lws_usec_t)ms * 1000 : 1);
}

/* A non-200 answer that is not worth retrying at once. */
static int fatal_status(struct poller *p, const struct http_result *r)
{
    if (r->status != 401)
        return 0;
    core_fatal(p->env.core, 2, "the server no longer accepts this session (401); log in again");
    return 1;
}

/* ---- events ---- */

static void poll_tick(lws_sorted_usec_list_t *sul)
{
    poll_issue(lws_container_of(sul, struct poller, poll_sul));
}

/* Protocol v1.1: the answer's "ephemeral":[items] (presence, typing, read), each
 * checked by the core; a malformed list is ignored, never fatal. */
static void poll_ephemeral(struct poller *p, const struct http_result *r)
{
    json_t *root, *item;
    size_t i;
    if (!memmem(r->body, r->len, "\"ephemeral\"", 11))
        return;
    root = json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, NULL);
    json_array_foreach(json_object_get(root, "ephemeral"), i, item)
        if (i < 1000)
            core_ephemeral(p->env.core, item);
    json_decref(root);
}

/* Delivers one page; returns the number of events or -1 if malformed. */
static int poll_page(struct poller *p, const struct http_result *r)
{
    json_t *events, *ev;
    int64_t next;
    const char *err;
    size_t i;
    if (proto_parse_events_response(r->body, r->len, &events, &next, &err) < 0)
        return -1;
    json_array_foreach(events, i, ev)
        core_deliver(p->env.core, ev);
    poll_ephemeral(p, r);
    if (next > p->next)
        p->next = next;
    int n = (int)json_array_size(events);
    json_decref(events);
    return n;
}

static void poll_failed(struct poller *p, const struct http_result *r, int malformed)
{
    char why[256], detail[160];
    if (r->error)
        snprintf(why, sizeof why, "polling failed: %s", r->error);
    else if (malformed)
        snprintf(why, sizeof why, "polling failed: malformed answer");
    else
        snprintf(why, sizeof why, "polling failed: %s", http_error_text(r, detail, sizeof detail));
    p->live = 0;
    arm(p, &p->poll_sul, poll_tick, failed(p, &p->poll_tries, why));
}

static void poll_done(void *arg, const struct http_result *r)
{
    struct poller *p = arg;
    p->poll_req = NULL;
    if (r->error || r->status != 200) {
        if (r->error || !fatal_status(p, r))
            poll_failed(p, r, 0);
        return;
    }
    int n = poll_page(p, r);
    if (n < 0) {
        poll_failed(p, r, 1);
        return;
    }
    p->poll_tries = 0;
    int was_live = p->live;
    p->live = 1;
    core_set_state(p->env.core, CORE_CONNECTED, 0);
    if (!was_live && p->wait_s) {       /* now hold: poll again at once */
        arm(p, &p->poll_sul, poll_tick, 0);
        return;
    }
    /* a full page means more is waiting; otherwise keep the period */
    int64_t spent_ms = (int64_t)(lws_now_usecs() - p->poll_started) / 1000;
    unsigned ms = n >= POLL_LIMIT || spent_ms >= p->interval_ms
                  ? 0 : (unsigned)(p->interval_ms - spent_ms);
    arm(p, &p->poll_sul, poll_tick, ms);
}

static void poll_issue(struct poller *p)
{
    char path[512];
    int64_t after = core_cursor(p->env.core);
    if (p->next > after)
        after = p->next;
    /* The first poll after (re)connecting answers at once, so "connected"
     * shows without waiting out a hold on a quiet feed. */
    int wait = p->live ? p->wait_s : 0;
    snprintf(path, sizeof path, "%s/api/v1/events?after=%" PRId64 "&wait=%d&limit=%d",
             servers_prefix(p->env.servers, p->env.prefix), after, wait, POLL_LIMIT);
    struct http_call call = {
        .method = "GET", .path = path, .token = p->env.token,
        .timeout_s = wait ? wait + HOLD_MARGIN_S : request_timeout(p),
        .servers = p->env.servers,
    };
    p->poll_started = lws_now_usecs();
    p->poll_req = http_request(p->env.http, &call, poll_done, p);
    if (!p->poll_req)
        arm(p, &p->poll_sul, poll_tick, failed(p, &p->poll_tries, "out of memory"));
}

/* ---- sending ---- */

static void send_tick(lws_sorted_usec_list_t *sul)
{
    struct poller *p = lws_container_of(sul, struct poller, send_sul);
    p->send_waiting = 0;
    send_kick(p);
}

static void send_retry(struct poller *p, const char *why)
{
    p->send_waiting = 1;
    arm(p, &p->send_sul, send_tick, failed(p, &p->send_tries, why));
}

/* The server answered but could not take the message now (a 5xx such as
 * 503 store_unavailable, or 429): it is reachable, so the connection state
 * stays as it is (transfers typed meanwhile are not refused as if it were
 * lost); the message stays queued and goes again after a backoff. */
static void send_retry_later(struct poller *p, const char *why)
{
    if (p->send_tries == 0)
        core_error(p->env.core, "%s", why);
    p->send_waiting = 1;
    arm(p, &p->send_sul, send_tick, backoff_next(p->env.ctx, &p->send_tries));
}

static void send_done(void *arg, const struct http_result *r)
{
    struct poller *p = arg;
    char why[256], detail[160];
    json_t *root;
    int64_t id = 0;
    p->send_req = NULL;
    if (r->error) {     /* the message stays queued: say so, not "failed" */
        snprintf(why, sizeof why, "message queued, not sent yet (%s); retrying", r->error);
        send_retry(p, why);
        return;
    }
    if (fatal_status(p, r))
        return;
    if (r->status >= 400 && r->status < 500 && r->status != 429) {
        /* the server will never take this message: say why and drop it */
        p->send_tries = 0;
        core_reject(p->env.core, p->send_id, http_error_text(r, detail, sizeof detail));
    } else if (r->status >= 200 && r->status < 300) {
        p->send_tries = 0;
        root = json_loadb(r->body, r->len, 0, NULL);
        proto_get_int(root, "id", &id, NULL);
        json_decref(root);
        if (p->poll_tries == 0 && !p->sends_only)   /* the poll loop owns the state */
            core_set_state(p->env.core, CORE_CONNECTED, 0);
        core_ack(p->env.core, p->send_id, id);
    } else {
        snprintf(why, sizeof why, "message queued, not sent yet (%s); retrying",
                 http_error_text(r, detail, sizeof detail));
        send_retry_later(p, why);
        return;
    }
    send_kick(p);
}

static char *send_body(const struct core_msg *m)
{
    json_t *o = json_pack("{s:s,s:s,s:s}", m->to ? "to" : "room", m->to ? m->to : m->room,
                          "body", m->body, "client_msg_id", m->client_msg_id);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

/* Sends the oldest unacknowledged message unless one is on its way. */
static void send_kick(struct poller *p)
{
    const struct core_msg *m = core_outbox_head(p->env.core);
    if (!m || p->send_req || p->send_waiting)
        return;
    char path[256], *body = send_body(m);
    if (!body) {
        send_retry(p, "out of memory");
        return;
    }
    snprintf(path, sizeof path, "%s/api/v1/messages", servers_prefix(p->env.servers, p->env.prefix));
    snprintf(p->send_id, sizeof p->send_id, "%s", m->client_msg_id);
    struct http_call call = {
        .method = "POST", .path = path, .body = body, .token = p->env.token,
        .timeout_s = request_timeout(p), .servers = p->env.servers,
    };
    core_outbox_sent(p->env.core, m->client_msg_id);
    p->send_req = http_request(p->env.http, &call, send_done, p);
    free(body);
    if (!p->send_req)
        send_retry(p, "out of memory");
}

/* ---- lifetime ---- */

struct poller *poller_new(const struct transport_env *env, int wait_s, int interval_ms)
{
    struct poller *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->env = *env;
    p->wait_s = wait_s;
    p->interval_ms = interval_ms;
    return p;
}

struct poller *poller_new_sender(const struct transport_env *env)
{
    struct poller *p = poller_new(env, 0, 0);
    if (p)
        p->sends_only = 1;
    return p;
}

void poller_free(struct poller *p)
{
    if (!p)
        return;
    lws_sul_cancel(&p->poll_sul);
    lws_sul_cancel(&p->send_sul);
    http_cancel(p->poll_req);
    http_cancel(p->send_req);
    free(p);
}

int poller_start(struct poller *p)
{
    if (!p->sends_only) {
        core_set_state(p->env.core, CORE_CONNECTING, 0);
        poll_issue(p);
    }
    send_kick(p);
    return 0;
}

void poller_outbox_changed(struct poller *p)
{
    send_kick(p);
}
