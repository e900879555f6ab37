/* transport.c — the table of transports, looked up by name, and what the
 * transports share that is pure logic. */
#include "transport.h"

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
