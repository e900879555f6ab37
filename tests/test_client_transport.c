/* test_client_transport.c — unit tests of what the client's transports
 * share as pure logic (client/transport.c): the transport table and which
 * ends of a WebSocket handshake count as a refused upgrade (auto mode then
 * falls back to long polling) rather than a failing server. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "transport.h"

static void test_find(void **state)
{
    (void)state;
    assert_ptr_equal(transport_find("websocket"), &transport_websocket);
    assert_ptr_equal(transport_find("long-poll"), &transport_long_poll);
    assert_ptr_equal(transport_find("short-poll"), &transport_short_poll);
    assert_null(transport_find("auto"));       /* a mode of the app, not a transport */
    assert_null(transport_find(NULL));
}

static void test_refusals(void **state)
{
    (void)state;
    /* a proxy that will not upgrade */
    static const int refused[] = { 200, 302, 400, 403, 404, 405, 426, 501, 505 };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        assert_true(transport_upgrade_refused(refused[i], 1));
    /* closed after our request went out, without an answer */
    assert_true(transport_upgrade_refused(0, 1));
}

static void test_not_refusals(void **state)
{
    (void)state;
    assert_false(transport_upgrade_refused(101, 1));   /* upgraded */
    assert_false(transport_upgrade_refused(0, 0));     /* never connected: server down */
    assert_false(transport_upgrade_refused(401, 1));   /* bad session */
    assert_false(transport_upgrade_refused(408, 1));
    assert_false(transport_upgrade_refused(429, 1));   /* too many connections */
    assert_false(transport_upgrade_refused(500, 1));   /* the server is failing */
    assert_false(transport_upgrade_refused(502, 1));
    assert_false(transport_upgrade_refused(503, 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_not_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
