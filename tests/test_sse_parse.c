/* test_sse_parse.c — the SSE transport's bounded event-stream parser
 * (client/sse_parse.c): messages as the WHATWG rules define them, whatever
 * the line ends and however the bytes are cut, and its caps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sse_parse.h"

/* What the callbacks saw, as text: "event|id|data;" per message, "#" per comment. */
struct seen {
    char text[4096];
    size_t len;
};

static void on_msg(void *arg, const char *event, const char *id, const char *data, size_t len)
{
    struct seen *s = arg;
    assert_int_equal(strlen(data), len);            /* NUL-terminated, no NUL inside here */
    int n = snprintf(s->text + s->len, sizeof s->text - s->len, "%s|%s|%s;", event, id, data);
    s->len += (size_t)n;
}

static void on_comment(void *arg)
{
    struct seen *s = arg;
    s->text[s->len++] = '#';
    s->text[s->len] = '\0';
}

/* Parses text whole, then one byte at a time and cut at every place: the
 * same messages every time. Returns the whole run's result. */
static enum sse_result parse_all_ways(const char *text, size_t cap, const char *expect)
{
    size_t n = strlen(text);
    struct seen whole = { .len = 0 };
    struct sse_parser *p = sse_parser_new(cap, on_msg, on_comment, &whole);
    assert_non_null(p);
    enum sse_result r = sse_parser_feed(p, text, n);
    if (expect)
        assert_string_equal(whole.text, expect);
    for (size_t cut = 0; r == SSE_OK && cut <= n; cut++) {
        struct seen part = { .len = 0 };
        struct sse_parser *q = sse_parser_new(cap, on_msg, on_comment, &part);
        assert_int_equal(sse_parser_feed(q, text, cut), SSE_OK);
        assert_int_equal(sse_parser_feed(q, text + cut, n - cut), SSE_OK);
        assert_string_equal(part.text, whole.text);
        sse_parser_free(q);
    }
    sse_parser_free(p);
    return r;
}

static void test_messages(void **state)
{
    (void)state;
    assert_int_equal(parse_all_ways("retry: 2000\nevent: ready\ndata: {\"a\":1}\n\n"
                                    "id: 7\nevent: chat\ndata: {\"id\":7}\n\n", 1024,
                                    "ready||{\"a\":1};chat|7|{\"id\":7};"), SSE_OK);
    /* CRLF, CR and LF line ends; data lines joined with LF; no space after
     * the colon; a field with no colon; unknown fields ignored */
    assert_int_equal(parse_all_ways("data:a\r\ndata: b\rdata\nfoo: bar\r\n\r\n", 1024, "message||a\nb\n;"),
                     SSE_OK);
    /* comments, and a message with no data is not dispatched */
    assert_int_equal(parse_all_ways(": ping\n\nevent: x\nid: 3\n\n:\n", 1024, "##"), SSE_OK);
    /* an unfinished message is not dispatched */
    assert_int_equal(parse_all_ways("data: half\n", 1024, ""), SSE_OK);
}

static void test_retry(void **state)
{
    (void)state;
    struct seen s = { .len = 0 };
    struct sse_parser *p = sse_parser_new(64, on_msg, on_comment, &s);
    sse_parser_feed(p, "retry: 1500\n", 12);
    assert_int_equal(sse_parser_retry_ms(p), 1500);
    sse_parser_feed(p, "retry: 15x\nretry: 99999999999\nretry:\n", 37);
    assert_int_equal(sse_parser_retry_ms(p), 1500);       /* invalid ones are ignored */
    sse_parser_free(p);
}

static void test_caps(void **state)
{
    (void)state;
    char big[200];
    struct seen s = { .len = 0 };
    /* a line over the cap, even with no line end ever */
    memset(big, 'x', sizeof big);
    struct sse_parser *p = sse_parser_new(100, on_msg, on_comment, &s);
    assert_int_equal(sse_parser_feed(p, big, sizeof big), SSE_TOO_BIG);
    /* data over the cap across many short lines */
    sse_parser_reset(p);
    enum sse_result r = SSE_OK;
    for (int i = 0; i < 100 && r == SSE_OK; i++)
        r = sse_parser_feed(p, "data: 0123456789\n", 17);
    assert_int_equal(r, SSE_TOO_BIG);
    /* exactly the cap fits */
    sse_parser_reset(p);
    snprintf(big, sizeof big, "data: %0100d\n\n", 0);
    assert_int_equal(sse_parser_feed(p, big, strlen(big)), SSE_TOO_BIG);  /* the line is 106 */
    sse_parser_free(p);
    p = sse_parser_new(106, on_msg, on_comment, &s);
    assert_int_equal(sse_parser_feed(p, big, strlen(big)), SSE_OK);
    assert_int_equal(s.len, strlen("message||;") + 100);
    /* an event name or id over its own cap; a NUL in an id */
    sse_parser_reset(p);
    assert_int_equal(sse_parser_feed(p, "event: 0123456789012345678901234567890123\n", 42), SSE_TOO_BIG);
    sse_parser_reset(p);
    assert_int_equal(sse_parser_feed(p, "id: 1\0002\n", 8), SSE_TOO_BIG);
    sse_parser_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_retry),
        cmocka_unit_test(test_caps),
    };
    return cmocka_run_group_tests_name("sse_parse", tests, NULL, NULL);
}
