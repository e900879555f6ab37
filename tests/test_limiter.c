/* Unit tests for server/limiter.c's policies, on an injected clock: the
 * message token bucket (how long a sender over the rate waits, and the
 * Retry-After it is told), and login throttling (a guesser is delayed more
 * and more, the owner at another address never; the per-address bucket
 * stops one address rotating user names; memory stays bounded). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>

#include "limiter.h"

static struct limiter *limiter_at(double msg_rate, double login_rate_per_min)
{
    struct limiter_config c = { .max_connections = 100, .max_connections_per_ip = 10 };
    c.rate[LIMIT_MESSAGES] = msg_rate;
    c.burst[LIMIT_MESSAGES] = 2 * msg_rate;
    c.rate[LIMIT_LOGIN_ADDR] = 3 * login_rate_per_min / 60.0;
    c.burst[LIMIT_LOGIN_ADDR] = 3 * login_rate_per_min;
    c.login_free_failures = (unsigned)login_rate_per_min;
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

static void fail_n(struct limiter *l, const char *user, const char *addr, int n, int64_t t)
{
    for (int i = 0; i < n; i++) {
        assert_int_equal(limiter_login_wait_ms(l, user, addr, t), 0);
        limiter_login_failed(l, user, addr, t);
    }
}

/* Ten failures from A: A waits 2 s, then 4, 8, ... never more than 15 min;
 * B, which never failed, is not delayed at all. */
static void test_login_delays_grow_per_address(void **state)
{
    (void)state;
    struct limiter *l = limiter_at(20, 10);
    int64_t t = 1000000;
    fail_n(l, "alice", "10.0.0.1", 10, t);
    assert_int_equal(limiter_login_wait_ms(l, "alice", "10.0.0.1", t), 2000);
    assert_int_equal(limiter_login_wait_ms(l, "alice", "10.0.0.2", t), 0);
    assert_int_equal(limiter_login_wait_ms(l, "bob", "10.0.0.1", t), 0);
    int64_t expect = 2000;
    for (int i = 0; i < 12; i++) {          /* a guess as soon as allowed */
        t += expect;
        assert_int_equal(limiter_login_wait_ms(l, "alice", "10.0.0.1", t), 0);
        limiter_login_failed(l, "alice", "10.0.0.1", t);
        expect = expect * 2 > LOGIN_DELAY_MAX_MS ? LOGIN_DELAY_MAX_MS : expect * 2;
        assert_int_equal(limiter_login_wait_ms(l, "alice", "10.0.0.1", t), expect);
        assert_int_equal(limiter_login_wait_ms(l, "alice", "10.0.0.2", t), 0);
    }
    limiter_free(l);
}

/* A success from the address, or an hour without failures, starts over. */
static void test_login_delay_resets(void **state)
{
    (void)state;
    struct limiter *l = limiter_at(20, 10);
    int64_t t = 1000000;
    fail_n(l, "alice", "10.0.0.1", 10, t);
    limiter_login_succeeded(l, "alice", "10.0.0.1");
    fail_n(l, "alice", "10.0.0.1", 10, t);
    assert_int_equal(limiter_login_wait_ms(l, "alice", "10.0.0.1", t), 2000);
    fail_n(l, "alice", "10.0.0.1", 10, t + 60 * 60 * 1000);
    limiter_free(l);
}

/* Many addresses guessing one password: past 10x the per-pair allowance
 * every address that failed waits, a clean address still does not. */
static void test_login_distributed_guessing(void **state)
{
    (void)state;
    struct limiter *l = limiter_at(20, 10);
    int64_t t = 1000000;
    char addr[32];
    for (int i = 0; i < LOGIN_USER_FACTOR * 10; i++) {
        snprintf(addr, sizeof addr, "10.1.%d.%d", i / 256, i % 256);
        fail_n(l, "alice", addr, 1, t);
    }
    assert_int_equal(limiter_login_wait_ms(l, "alice", "10.1.0.0", t), 2000);
    assert_int_equal(limiter_login_wait_ms(l, "alice", "10.1.0.7", t + 500), 1500);
    assert_int_equal(limiter_login_wait_ms(l, "alice", "192.168.1.1", t), 0);
    assert_int_equal(limiter_login_wait_ms(l, "bob", "10.1.0.0", t), 0);
    limiter_free(l);
}

/* One address rotating user names meets the per-address bucket: 30 tries a
 * minute at --login-rate 10, then one every 2 s. */
static void test_login_address_bucket(void **state)
{
    (void)state;
    struct limiter *l = limiter_at(20, 10);
    int64_t t = 1000000;
    int retry = 0;
    for (int i = 0; i < 30; i++)
        assert_int_equal(limiter_take(l, LIMIT_LOGIN_ADDR, "10.0.0.1", t, &retry), 1);
    assert_int_equal(limiter_take(l, LIMIT_LOGIN_ADDR, "10.0.0.1", t, &retry), 0);
    assert_int_equal(retry, 2);
    assert_int_equal(limiter_take(l, LIMIT_LOGIN_ADDR, "10.0.0.2", t, &retry), 1);
    limiter_free(l);
}

/* Failures under a million names from a million addresses leave at most
 * the table's bound behind; once forgotten they are swept to make room. */
/* Rate buckets: a full table is swept at most once per gap, and a key
 * that finds no room meanwhile is refused (never an unbounded table). */
static void test_rate_table_bounded(void **state)
{
    (void)state;
    struct limiter *l = limiter_at(20, 10);
    int64_t t = 1000000;
    char key[32];
    for (int i = 0; i < 70000; i++) {
        snprintf(key, sizeof key, "u%d", i);
        for (int k = 0; k < 45; k++)          /* past the burst: the bucket stays */
            if (limiter_take_ms(l, LIMIT_MESSAGES, key, t) > 0)
                break;
        if (i == 0)
            assert_true(limiter_take_ms(l, LIMIT_MESSAGES, key, t) > 0);
    }
    assert_true(limiter_sweeps(l) <= 1);
    assert_true(limiter_take_ms(l, LIMIT_MESSAGES, "newcomer", t) > 0);   /* no room: refused */
    t += LIMITER_SWEEP_GAP_MS + 60 * 1000;                               /* all refilled */
    assert_int_equal(limiter_take_ms(l, LIMIT_MESSAGES, "newcomer", t), 0);
    assert_true(limiter_sweeps(l) >= 1);
    limiter_free(l);
}

static void test_login_memory_bounded(void **state)
{
    (void)state;
    struct limiter *l = limiter_at(20, 10);
    int64_t t = 1000000;
    char user[32], addr[32];
    for (int i = 0; i < 100000; i++) {
        snprintf(user, sizeof user, "u%d", i);
        snprintf(addr, sizeof addr, "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
        limiter_login_failed(l, user, addr, t);
    }
    assert_true(limiter_login_records(l) <= 65536);
    /* 34,464 failures found the table full at one instant: one sweep, not
     * one walk of 65,536 records per failure (a cheap way to slow chatd). */
    assert_true(limiter_sweeps(l) <= 1);
    t += 60 * 60 * 1000;
    fail_n(l, "alice", "10.0.0.1", 10, t);          /* room again: counted */
    assert_int_equal(limiter_login_wait_ms(l, "alice", "10.0.0.1", t), 2000);
    assert_true(limiter_login_records(l) <= 3);
    limiter_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_message_wait_is_the_buckets),
        cmocka_unit_test(test_retry_after_rounds_up),
        cmocka_unit_test(test_login_delays_grow_per_address),
        cmocka_unit_test(test_login_delay_resets),
        cmocka_unit_test(test_login_distributed_guessing),
        cmocka_unit_test(test_login_address_bucket),
        cmocka_unit_test(test_login_memory_bounded),
        cmocka_unit_test(test_rate_table_bounded),
    };
    return cmocka_run_group_tests_name("limiter", tests, NULL, NULL);
}
