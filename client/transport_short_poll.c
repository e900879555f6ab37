/* transport_short_poll.c — short polling: GET /api/v1/events?wait=0 every
 * --interval-ms (at once again after a full page), POST to send. The cost is
 * one request per period whether or not anything happened, and up to one
 * period of delay. */
#include "polling.h"
#include "transport.h"

static void *sp_create(const struct transport_env *env)
{
    return poller_new(env, 0, env->interval_ms);
}

static void sp_destroy(void *t)
{
    poller_free(t);
}

static int sp_start(void *t)
{
    return poller_start(t);
}

static void sp_outbox_changed(void *t)
{
    poller_outbox_changed(t);
}

const struct transport_ops transport_short_poll = {
    .name = "short-poll",
    .create = sp_create,
    .destroy = sp_destroy,
    .start = sp_start,
    .outbox_changed = sp_outbox_changed,
};
