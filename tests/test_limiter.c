/* Unit tests for server/limiter.c's policies, on an injected clock: the
 * message token bucket (how long a sender over the rate waits, and the
 * Retry-After it is told). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "limiter.h"

static struct limiter *limiter_at(double msg_rate, double login_rate_per_min)
{
    struct limiter_config c = { .max_connections = 100, .max_connections_per_ip = 10 };
    c.rate[LIMIT_MESSAGES] = msg_rate;
    c.burst[LIMIT_MESSAGES] = 2 * msg_rate;
    c.rate[LIMIT_LOGIN_ADDR] = 3 * login_rate_per_min / 60.0;
    c.burst[LIMIT_LOGIN_ADDR] = 3 * login_rate_per_min;
    struct limiter *l = limiter_new(&c);
    assert_non_null(l);
    return l;
}

/* At 20/s with bursts of 40 the 41st message waits 50 ms, not a second. */
static void test_message_wait_is_the_buckets(void **state)
{
    (void)state;
    struct limiter *l = limiter_at(20, 10);
    int64_t t = 1000000;
    for (int i = 0; i < 40; i++)
        assert_int_equal(limiter_take_ms(l, LIMIT_MESSAGES, "alice", t), 0);
    assert_int_equal(limiter_take_ms(l, LIMIT_MESSAGES, "alice", t), 50);
    assert_int_equal(limiter_take_ms(l, LIMIT_MESSAGES, "alice", t + 20), 30);
    assert_int_equal(limiter_take_ms(l, LIMIT_MESSAGES, "alice", t + 50), 0);
    assert_int_equal(limiter_take_ms(l, LIMIT_MESSAGES, "bob", t + 50), 0);
    limiter_free(l);
}

/* Retry-After is the bucket's wait rounded up to whole seconds. */
static void test_retry_after_rounds_up(void **state)
{
    (void)state;
    struct limiter *l = limiter_at(0.5, 10);        /* a token every 2 s, burst 1 */
    int64_t t = 1000000;
    int retry = 0;
    assert_int_equal(limiter_take(l, LIMIT_MESSAGES, "alice", t, &retry), 1);
    assert_int_equal(limiter_take(l, LIMIT_MESSAGES, "alice", t, &retry), 0);
    assert_int_equal(retry, 2);
    assert_int_equal(limiter_take(l, LIMIT_MESSAGES, "alice", t + 1500, &retry), 0);
    assert_int_equal(retry, 1);                     /* 500 ms left: 1 s, never 0 */
    assert_int_equal(limiter_take(l, LIMIT_MESSAGES, "alice", t + 2000, &retry), 1);
    limiter_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_message_wait_is_the_buckets),
        cmocka_unit_test(test_retry_after_rounds_up),
    };
    return cmocka_run_group_tests_name("limiter", tests, NULL, NULL);
}
