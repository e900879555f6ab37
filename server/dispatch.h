/* dispatch.h — chatd's one lws protocol callback (server.c), which main.c
 * names in its protocol table. server.h is the shared types, not this. */
#ifndef CHAT_DISPATCH_H
#define CHAT_DISPATCH_H

#include <libwebsockets.h>

int server_callback(struct lws *wsi, enum lws_callback_reasons reason,
                    void *user, void *in, size_t len);

#endif
