/* ws_api.h — the WebSocket endpoint (ws_api.c): what the protocol callback
 * (server.c) hands it, from the upgrade to the close. */
#ifndef CHAT_WS_API_H
#define CHAT_WS_API_H

#include "server.h"

/* Before the upgrade, still in HTTP: 0 lets it go on. */
int ws_on_confirm_upgrade(struct lws *wsi, const char *upgrade);
int ws_on_filter(struct lws *wsi);
int ws_on_established(struct session *s);
int ws_on_receive(struct session *s, const void *in, size_t len);
int ws_on_peer_close(struct session *s, const unsigned char *in, size_t len);
int ws_on_writeable(struct session *s);
void ws_on_closed(struct session *s);

#endif
