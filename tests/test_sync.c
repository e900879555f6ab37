/* test_sync.c — unit tests of client/sync.c that need no server: a room
 * name in a request path (a DM "@alice,bob" percent-encoded, so no proxy
 * or server reads the comma or the at sign as syntax; a public name as
 * it is). The calls themselves are tested against a real server in
 * tests/e2e/test_client_rooms.c and tests/ui/test_rooms_ui.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "sync.h"

static void test_room_names_in_paths(void **state)
{
    char out[PROTO_ROOM_REF_MAX * 3 + 1];
    (void)state;
    sync_path_name("rust", out, sizeof out);
    assert_string_equal(out, "rust");
    sync_path_name("@alice,bob", out, sizeof out);
    assert_string_equal(out, "%40alice%2Cbob");
    sync_path_name("@abcdefghijklmnopqrstuvwxyz012345,bcdefghijklmnopqrstuvwxyz0123456", out, sizeof out);
    assert_string_equal(out, "%40abcdefghijklmnopqrstuvwxyz012345%2Cbcdefghijklmnopqrstuvwxyz0123456");
    char small[8];
    sync_path_name("@alice,bob", small, sizeof small);    /* cut, never overrun */
    assert_true(strlen(small) < sizeof small);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_room_names_in_paths),
    };
    return cmocka_run_group_tests_name("sync", tests, NULL, NULL);
}
