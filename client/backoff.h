/* backoff.h — the one reconnect policy every transport uses: exponential
 * delays with jitter from an lws_retry_bo_t table, never giving up. */
#ifndef CHAT_BACKOFF_H
#define CHAT_BACKOFF_H

#include <libwebsockets.h>

const lws_retry_bo_t *backoff_policy(void);
/* Delay before attempt *tries + 1 (in ms, jitter included); bumps *tries.
 * Reset *tries to 0 after a success. */
unsigned backoff_next(struct lws_context *ctx, uint16_t *tries);

#endif
