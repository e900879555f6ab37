/* Unit tests for shared/money.c: strict amount parsing and formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "money.h"

static void test_parse_good(void **state)
{
    (void)state;
    struct { const char *in; int64_t cents; } ok[] = {
        { "25", 2500 }, { "25.00", 2500 }, { "25.5", 2550 }, { "25.05", 2505 },
        { "0.01", 1 }, { ".50", -1 }, { "1,000.00", 100000 }, { "1,000,000", 100000000 },
        { "999999.99", 99999999 }, { "007", 700 },
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t c = 0;
        int rc = money_parse(ok[i].in, &c);
        if (ok[i].cents < 0) {
            assert_int_equal(rc, -1);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(c, ok[i].cents);
    }
}

static void test_parse_bad(void **state)
{
    (void)state;
    const char *bad[] = {
        "", "0", "0.00", "-5", "+5", "25.555", "25.", "1e3", "25,00", "1,00.00",
        "10,0000", ",100", "25 ", " 25", "abc", "25.5x", "1,000,000.01", "1000000.01",
        "99999999999999999999", "0x10", "25..0", "1,,000", NULL,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t c = 12345;
        assert_int_equal(money_parse(bad[i], &c), -1);
        assert_int_equal(c, 12345);     /* untouched on failure */
    }
}

static void test_format(void **state)
{
    (void)state;
    char buf[32];
    assert_string_equal(money_format(0, buf, sizeof buf), "0.00");
    assert_string_equal(money_format(5, buf, sizeof buf), "0.05");
    assert_string_equal(money_format(2500, buf, sizeof buf), "25.00");
    assert_string_equal(money_format(100000, buf, sizeof buf), "1,000.00");
    assert_string_equal(money_format(123456789, buf, sizeof buf), "1,234,567.89");
    assert_string_equal(money_format(-2550, buf, sizeof buf), "-25.50");
    assert_string_equal(money_format(INT64_MIN, buf, sizeof buf), "-92,233,720,368,547,758.08");
}

static void test_round_trip(void **state)
{
    (void)state;
    char buf[32];
    for (int64_t c = 1; c <= MONEY_MAX_CENTS; c = c * 7 + 3) {
        int64_t back = 0;
        assert_int_equal(money_parse(money_format(c, buf, sizeof buf), &back), 0);
        assert_int_equal(back, c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests_name("money", tests, NULL, NULL);
}
