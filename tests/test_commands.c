/* test_commands.c — unit tests of client/commands.c, what a typed line
 * means: the error a user gets for an unknown or unsupported command (irssi
 * habits like /me and /nick), upper-case user names, amounts exactly as
 * /help describes them, and lines of only spaces, which are never sent. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "commands.h"

static void parse(const char *line, struct cmd *c)
{
    cmd_parse(line, c);
}

static void expect_error(const char *line, const char *needle)
{
    struct cmd c;
    parse(line, &c);
    if (c.kind != CMD_INVALID || !c.error || !strstr(c.error, needle))
        fail_msg("\"%s\": expected an error containing \"%s\", got kind %d, \"%s\"", line, needle,
                 (int)c.kind, c.kind == CMD_INVALID && c.error ? c.error : "");
}

static void test_unknown_commands_are_named(void **state)
{
    (void)state;
    expect_error("/foo bar", "unknown command /foo (try /help)");
    expect_error("/foo", "unknown command /foo (try /help)");
    expect_error("/balance now", "/balance takes no arguments");
}

static void test_irc_commands_say_not_supported(void **state)
{
    (void)state;
    expect_error("/me waves", "/me is not supported");
    expect_error("/nick carol", "/nick is not supported");
}

static void test_upper_case_names_say_lowercase(void **state)
{
    (void)state;
    expect_error("/transfer BOB 1", "lowercase");
    expect_error("/transfer Bob 1", "/transfer bob 1");
}

static void test_amounts_as_help_says(void **state)
{
    static const struct { const char *in; int64_t cents; } ok[] = {
        { "25", 2500 }, { "25.0", 2500 }, { "25.00", 2500 }, { "0.01", 1 }, { "1000", 100000 },
    };
    struct cmd c;
    (void)state;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char line[64];
        snprintf(line, sizeof line, "/transfer bob %s", ok[i].in);
        parse(line, &c);
        assert_int_equal(c.kind, CMD_TRANSFER);
        assert_int_equal(c.amount_cents, ok[i].cents);
        assert_string_equal(c.to, "bob");
    }
    expect_error("/transfer bob 1,000", "amount");
    expect_error("/transfer bob 1,000.00", "amount");
}

static void test_blank_lines_are_not_messages(void **state)
{
    struct cmd c;
    (void)state;
    parse("   ", &c);
    assert_int_equal(c.kind, CMD_EMPTY);
    parse(" \t ", &c);
    assert_int_equal(c.kind, CMD_EMPTY);
    parse("  hi", &c);
    assert_int_equal(c.kind, CMD_MESSAGE);
    assert_string_equal(c.text, "  hi");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_commands_are_named),
        cmocka_unit_test(test_irc_commands_say_not_supported),
        cmocka_unit_test(test_upper_case_names_say_lowercase),
        cmocka_unit_test(test_amounts_as_help_says),
        cmocka_unit_test(test_blank_lines_are_not_messages),
    };
    return cmocka_run_group_tests_name("commands", tests, NULL, NULL);
}
