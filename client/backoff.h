/* backoff.h — the one reconnect policy every transport uses: exponential
 * delays with jitter from an lws_retry_bo_t table, never giving up; and a
 * jittered fixed delay for periodic probes (auto mode's WebSocket retry). */
#ifndef CHAT_BACKOFF_H
#define CHAT_BACKOFF_H

#include <libwebsockets.h>

const lws_retry_bo_t *backoff_policy(void);
/* Delay before attempt *tries + 1 (in ms, jitter included); bumps *tries.
 * Reset *tries to 0 after a success. */
unsigned backoff_next(struct lws_context *ctx, uint16_t *tries);
/* ms plus up to the same jitter, so clients that fell back together do not
 * all come back at the same moment. */
unsigned backoff_jittered(struct lws_context *ctx, unsigned ms);

#endif
