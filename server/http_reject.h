/* http_reject.h — the raw protocol lws falls back to when its HTTP parser
 * gives up on a connection (http_reject.c). */
#ifndef CHAT_HTTP_REJECT_H
#define CHAT_HTTP_REJECT_H

#include <libwebsockets.h>

#define HTTP_REJECT_PROTOCOL "chatd-http-reject"

int http_reject_callback(struct lws *wsi, enum lws_callback_reasons reason,
                         void *user, void *in, size_t len);

/* For the vhost's info.pvo: names HTTP_REJECT_PROTOCOL the vhost's "raw"
 * protocol, the one lws_http_to_fallback binds. */
extern const struct lws_protocol_vhost_options http_reject_pvo;

#endif
