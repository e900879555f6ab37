/* Unit tests for server/forwarded.c: which peers are trusted proxies, and
 * which X-Forwarded-For entry names the client (the last, canonical, or
 * none when it is no numeric address). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "forwarded.h"

static void test_trusted(void **state)
{
    (void)state;
    const char *p[] = { "127.0.0.1", "2001:db8::1" };
    assert_true(fwd_trusted(p, 2, "127.0.0.1"));
    assert_true(fwd_trusted(p, 2, "::ffff:127.0.0.1"));        /* dual-stack socket */
    assert_true(fwd_trusted(p, 2, "2001:db8:0::1"));
    assert_false(fwd_trusted(p, 2, "127.0.0.2"));
    assert_false(fwd_trusted(p, 2, "2001:db8::2"));
    assert_false(fwd_trusted(p, 2, "?"));
    assert_false(fwd_trusted(p, 0, "127.0.0.1"));
}

static void expect_entry(const char *xff, const char *want)
{
    char out[FWD_ADDR_MAX] = "unchanged";
    int rc = fwd_last_entry(xff, out, sizeof out);
    if (!want) {
        assert_int_equal(rc, -1);
        return;
    }
    assert_int_equal(rc, 0);
    assert_string_equal(out, want);
}

static void test_last_entry(void **state)
{
    (void)state;
    expect_entry("198.51.100.7", "198.51.100.7");
    expect_entry("198.51.100.20, 198.51.100.21", "198.51.100.21");
    expect_entry("198.51.100.20,198.51.100.21  ", "198.51.100.21");
    expect_entry("junk 198.51.100.21", "198.51.100.21");       /* lines joined by a space */
    expect_entry("2001:DB8:0:0::7", "2001:db8::7");             /* one spelling per address */
    expect_entry("::ffff:198.51.100.9", "198.51.100.9");
    expect_entry("198.51.100.20, not-an-address", NULL);
    expect_entry("198.51.100.300", NULL);
    expect_entry("198.51.100.20,", NULL);
    expect_entry("[2001:db8::7]", NULL);
    expect_entry("198.51.100.7:5555", NULL);
    expect_entry("", NULL);
    expect_entry("   ", NULL);
    char longer[200];
    memset(longer, '1', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    expect_entry(longer, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trusted),
        cmocka_unit_test(test_last_entry),
    };
    return cmocka_run_group_tests_name("forwarded", tests, NULL, NULL);
}
