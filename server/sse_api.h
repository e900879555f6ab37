/* sse_api.h — the Server-Sent Events transport (sse_api.c): GET
 * /api/v1/stream, handed over by http_api.c's router once the request is
 * authenticated, then driven by server.c's HTTP callbacks. */
#ifndef CHAT_SSE_API_H
#define CHAT_SSE_API_H

#include "server.h"

#define SSE_PATH     "/api/v1/stream"
#define SSE_RETRY_MS 2000          /* the retry: hint, the browser's reconnect delay */

/* Turns the authenticated request s into an event stream. query is the
 * request's query string (only after=ID), read with the Last-Event-ID
 * header before s's HTTP state is given up. 0: the stream is on (answered
 * from the next WRITEABLE); else an HTTP status to answer with *code and
 * *msg, and s is still an ordinary HTTP request. */
unsigned sse_start(struct session *s, const char *query, const char **code, const char **msg);
/* s is an event stream: its HTTP callbacks go to sse_on_reason. */
int sse_is_stream(const struct session *s);
/* An HTTP callback reason (WRITEABLE, CLOSED_HTTP...) of a stream. */
int sse_on_reason(struct session *s, enum lws_callback_reasons reason);

#endif
