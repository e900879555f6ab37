/* Unit tests for server/ws_frame.c's frame header: the feed and the
 * WebSocket writer frame events themselves (once for every subscriber, and
 * several packed into one write), so its headers must be exactly RFC 6455's
 * (5.2) for an unmasked final text frame, at each of the three length
 * encodings and their boundaries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ws_frame.h"

/* The payload length a receiver reads back from header h of n bytes. */
static uint64_t read_length(const unsigned char *h, size_t n)
{
    uint64_t len = h[1] & 0x7f;
    if (len == 126) {
        assert_int_equal(n, 4);
        return ((uint64_t)h[2] << 8) | h[3];
    }
    if (len == 127) {
        assert_int_equal(n, 10);
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | h[2 + i];
        return len;
    }
    assert_int_equal(n, 2);
    return len;
}

static void test_header_lengths(void **state)
{
    (void)state;
    static const struct { size_t len, hlen; } cases[] = {
        { 0, 2 }, { 1, 2 }, { 125, 2 },
        { 126, 4 }, { 127, 4 }, { 4096, 4 }, { 65535, 4 },
        { 65536, 10 }, { 1u << 20, 10 }, { (size_t)1 << 33, 10 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned char h[WS_HEADER_MAX];
        size_t n = ws_text_header(h, cases[i].len);
        assert_int_equal(n, cases[i].hlen);
        assert_int_equal(h[0], 0x81);            /* FIN, no RSV bits, text */
        assert_int_equal(h[1] & 0x80, 0);        /* server frames are not masked */
        assert_true(read_length(h, n) == cases[i].len);
    }
}

/* The shortest encoding only: 126 and 127 must not be used for lengths the
 * shorter form holds (a strict client closes with 1002). */
static void test_header_is_minimal(void **state)
{
    (void)state;
    unsigned char h[WS_HEADER_MAX];
    assert_int_equal(ws_text_header(h, 125), 2);
    assert_int_equal(h[1], 125);
    assert_int_equal(ws_text_header(h, 65535), 4);
    assert_int_equal(h[1], 126);
    assert_int_equal(ws_text_header(h, 65536), 10);
    assert_int_equal(h[1], 127);
    assert_int_equal(h[2] & 0x80, 0);            /* 64-bit length: top bit 0 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_lengths),
        cmocka_unit_test(test_header_is_minimal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
