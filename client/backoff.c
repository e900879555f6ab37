/* backoff.c — retry table: 250 ms doubling to 8 s, plus up to 30% jitter so
 * that clients cut off together do not come back together. The idle policy
 * makes a quiet WebSocket ping after 30 s and hang up after 70 s. */
#include "backoff.h"

static const uint32_t delays_ms[] = { 250, 500, 1000, 2000, 4000, 8000 };

static const lws_retry_bo_t policy = {
    .retry_ms_table          = delays_ms,
    .retry_ms_table_count    = LWS_ARRAY_SIZE(delays_ms),
    .conceal_count           = LWS_RETRY_CONCEAL_ALWAYS,
    .secs_since_valid_ping   = 30,
    .secs_since_valid_hangup = 70,
    .jitter_percent          = 30,
};

const lws_retry_bo_t *backoff_policy(void)
{
    return &policy;
}

unsigned backoff_next(struct lws_context *ctx, uint16_t *tries)
{
    char conceal;
    return lws_retry_get_delay_ms(ctx, &policy, tries, &conceal);
}

unsigned backoff_jittered(struct lws_context *ctx, unsigned ms)
{
    const uint32_t table[] = { ms };
    const lws_retry_bo_t once = {
        .retry_ms_table = table,
        .retry_ms_table_count = 1,
        .conceal_count = LWS_RETRY_CONCEAL_ALWAYS,
        .jitter_percent = policy.jitter_percent,
    };
    uint16_t tries = 0;
    char conceal;
    return lws_retry_get_delay_ms(ctx, &once, &tries, &conceal);
}
