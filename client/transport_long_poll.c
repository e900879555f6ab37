/* transport_long_poll.c — long polling: GET /api/v1/events?wait=W, which the
 * server holds until there is an event or W seconds pass, re-issued as soon
 * as it answers; POST to send. Our own request deadline is W + 10 s so the
 * server, not we, ends an idle hold. */
#include "polling.h"
#include "transport.h"

static void *lp_create(const struct transport_env *env)
{
    return poller_new(env, env->wait_s > 0 ? env->wait_s : 25, 0);
}

static void lp_destroy(void *t)
{
    poller_free(t);
}

static int lp_start(void *t)
{
    return poller_start(t);
}

static void lp_outbox_changed(void *t)
{
    poller_outbox_changed(t);
}

const struct transport_ops transport_long_poll = {
    .name = "long-poll",
    .create = lp_create,
    .destroy = lp_destroy,
    .start = lp_start,
    .outbox_changed = lp_outbox_changed,
};
