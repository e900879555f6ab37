/* ws_beat.c — the heartbeat of an authenticated WebSocket, on the sweep's
 * queues (sweep.h). Its link (ws_state.hb) comes from ws_api.c's hello
 * deadline and moves between two queues:
 *
 *   quiet    by the last frame or pong heard: a ping is due --heartbeat-s
 *            after it
 *   pinged   by the ping: hang up --heartbeat-s after it (2 x in all)
 *
 * Pings are sent in batches of at most ws_ping_budget() per sweep, so that
 * connections opened together (a restart: everyone reconnects) do not all
 * ping at once every heartbeat; a late ping only delays its hang-up, which
 * counts from the ping. */
#include "ws_beat.h"
#include "audit.h"
#include "limiter.h"
#include "server.h"
#include "sweep.h"

#define PING_BUDGET_MIN 64       /* pings per sweep at least */
#define SWEEP_EVERY_MS  20       /* how often the sweep may come (sweep.c) */

static void ws_quiet_due(struct server *srv, struct sweep_link *l);
static void ws_pinged_due(struct server *srv, struct sweep_link *l);
static unsigned ws_ping_budget(struct server *srv);

static const struct sweep_kind quiet_kind = { .due = ws_quiet_due, .budget = ws_ping_budget };
static const struct sweep_kind pinged_kind = { .due = ws_pinged_due };

static int64_t heartbeat_ms(const struct server *srv)
{
    return (int64_t)srv->cfg.heartbeat_s * 1000;
}

static struct sweep_queue *quiet_q(struct server *srv)
{
    return sweep_queue(srv->sweep, &quiet_kind, heartbeat_ms(srv));
}

static struct sweep_queue *pinged_q(struct server *srv)
{
    return sweep_queue(srv->sweep, &pinged_kind, heartbeat_ms(srv));
}

/* Enough pings per sweep to keep up with twice the steady rate (every
 * connection once per heartbeat) when sweeping every SWEEP_EVERY_MS. */
static unsigned ws_ping_budget(struct server *srv)
{
    size_t n = sweep_count(quiet_q(srv)) + sweep_count(pinged_q(srv));
    size_t b = (size_t)((double)n * 2 * SWEEP_EVERY_MS / (double)heartbeat_ms(srv)) + 1;
    return b < PING_BUDGET_MIN ? PING_BUDGET_MIN : (unsigned)b;
}

/* quiet for a heartbeat: ping */
static void ws_quiet_due(struct server *srv, struct sweep_link *l)
{
    struct session *s = lws_container_of(l, struct session, u.ws.hb);
    sweep_join(pinged_q(srv), l, sweep_mono_ms());
    s->u.ws.ping_due = 1;
    lws_callback_on_writable(s->wsi);
}

/* no answer for another heartbeat: hang up, as lws' validity check did */
static void ws_pinged_due(struct server *srv, struct sweep_link *l)
{
    (void)srv;
    struct session *s = lws_container_of(l, struct session, u.ws.hb);
    sweep_leave(l);
    audit("ws.silent", "user=%s addr=%s", s->user[0] ? s->user : "-", limiter_conn_addr(s->wsi));
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_WS_PONG_CHECK_GET_PONG, LWS_TO_KILL_ASYNC);
}

void ws_beat_authed(struct session *s)
{
    sweep_join(quiet_q(s->srv), &s->u.ws.hb, sweep_mono_ms());
}

void ws_beat_heard(struct session *s)
{
    struct server *srv = s->srv;
    struct sweep_queue *quiet = quiet_q(srv);
    struct sweep_link *l = &s->u.ws.hb;
    if (!sweep_in(quiet, l) && !sweep_in(pinged_q(srv), l))
        return;                     /* hello pending, or being closed */
    int64_t now = sweep_mono_ms();
    if (sweep_in(quiet, l) && l->since_ms == now)
        return;
    sweep_join(quiet, l, now);
}

void ws_beat_closed(struct session *s)
{
    sweep_leave(&s->u.ws.hb);
    s->u.ws.ping_due = 0;
}
