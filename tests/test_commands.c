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

/* v1.1: /join #rust and /join rust are the same room; /part and /who
 * default to the room shown; /msg keeps the text after the name as typed. */
static void test_room_commands_as_irssi_users_type_them(void **state)
{
    struct cmd c;
    (void)state;
    parse("/join #rust", &c);
    assert_int_equal(c.kind, CMD_JOIN);
    assert_string_equal(c.room, "rust");
    parse("/j rust", &c);
    assert_int_equal(c.kind, CMD_JOIN);
    assert_string_equal(c.room, "rust");
    parse("/join @bob", &c);
    assert_int_equal(c.kind, CMD_JOIN);
    assert_string_equal(c.room, "@bob");
    parse("/part", &c);
    assert_int_equal(c.kind, CMD_PART);
    assert_string_equal(c.room, "");
    parse("/part rust", &c);
    assert_string_equal(c.room, "rust");
    parse("/who", &c);
    assert_int_equal(c.kind, CMD_WHO);
    assert_string_equal(c.room, "");
    parse("/rooms", &c);
    assert_int_equal(c.kind, CMD_ROOMS);
    parse("/msg bob  hello  there ", &c);
    assert_int_equal(c.kind, CMD_MSG);
    assert_string_equal(c.to, "bob");
    assert_string_equal(c.text, " hello  there ");
    parse("/topic", &c);
    assert_int_equal(c.kind, CMD_TOPIC);
    assert_null(c.text);
    parse("/topic Ownership, borrowing", &c);
    assert_int_equal(c.kind, CMD_TOPIC);
    assert_string_equal(c.text, "Ownership, borrowing");
}

static void test_room_commands_refuse_what_cannot_be_sent(void **state)
{
    char topic[300];
    (void)state;
    expect_error("/join", "usage: /join NAME");
    expect_error("/join Rust", "usage: /join NAME");
    expect_error("/join a b", "usage: /join NAME");
    expect_error("/join @bob,alice", "usage: /join NAME");     /* DM names are sorted */
    expect_error("/join 123456789012345678901234567890123", "usage: /join NAME");
    expect_error("/msg bob", "usage: /msg USER TEXT");
    expect_error("/msg Bob hi", "lowercase");
    expect_error("/topic bad\x01", "");
    memset(topic, 'x', sizeof topic - 1);
    topic[sizeof topic - 1] = '\0';
    memcpy(topic, "/topic ", 7);
    expect_error(topic, "at most 256 bytes");
    expect_error("/topic a\tb", "control characters");
    expect_error("/who x y", "usage: /who");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_commands_are_named),
        cmocka_unit_test(test_irc_commands_say_not_supported),
        cmocka_unit_test(test_upper_case_names_say_lowercase),
        cmocka_unit_test(test_amounts_as_help_says),
        cmocka_unit_test(test_blank_lines_are_not_messages),
        cmocka_unit_test(test_room_commands_as_irssi_users_type_them),
        cmocka_unit_test(test_room_commands_refuse_what_cannot_be_sent),
    };
    return cmocka_run_group_tests_name("commands", tests, NULL, NULL);
}
