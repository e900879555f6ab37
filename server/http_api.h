/* http_api.h — the JSON HTTP API (http_api.c): what the protocol callback
 * (server.c) hands it of each HTTP request. */
#ifndef CHAT_HTTP_API_H
#define CHAT_HTTP_API_H

#include "server.h"

int http_on_request(struct session *s, const char *uri);
int http_on_body(struct session *s, const void *in, size_t len);
int http_on_body_done(struct session *s);
int http_on_writeable(struct session *s);
void http_on_closed(struct session *s);
/* A login's or registration's password hash is done (pwhash.c). */
void http_on_hash_done(struct session *s, struct pwhash_job *job);

#endif
