/* transport.c — the table of transports, looked up by name. */
#include "transport.h"

#include <string.h>

static const struct transport_ops *const transports[] = {
    &transport_short_poll,
    &transport_long_poll,
    &transport_websocket,
};

const struct transport_ops *transport_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof transports / sizeof transports[0]; i++)
        if (strcmp(transports[i]->name, name) == 0)
            return transports[i];
    return NULL;
}
