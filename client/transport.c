/* transport.c — the table of transports, looked up by name, and what the
 * transports share that is pure logic. */
#include "transport.h"

#include "backoff.h"
#include "core.h"
#include "servers.h"

#include <string.h>

static const struct transport_ops *const transports[] = {
    &transport_short_poll,
    &transport_long_poll,
    &transport_websocket,
    &transport_sse,
};

const struct transport_ops *transport_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof transports / sizeof transports[0]; i++)
        if (strcmp(transports[i]->name, name) == 0)
            return transports[i];
    return NULL;
}

int transport_upgrade_refused(int status, int sent)
{
    if (status == 0)
        return sent;
    if (status == 101 || status == 401 || status == 408 || status == 429)
        return 0;
    if (status >= 500)
        return status == 501 || status == 505;
    return 1;
}

void transport_retry_later(const struct transport_env *env, const struct server_url *srv,
                           uint16_t *tries, lws_sorted_usec_list_t *sul, sul_cb_t cb,
                           const char *name, const char *why)
{
    if (env->servers)
        servers_failed(env->servers, srv);
    if (*tries == 0)
        core_error(env->core, "%s: %s", name, why);
    unsigned ms = backoff_next(env->ctx, tries);
    core_set_state(env->core, CORE_RECONNECTING, ms);
    lws_sul_schedule(env->ctx, 0, sul, cb, (lws_usec_t)ms * 1000);
}
