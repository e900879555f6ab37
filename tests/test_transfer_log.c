/* test_transfer_log.c — unit tests of client/transfer_log.c, what
 * /transfers lists: one row per transfer in its latest state, the newest transfer
 * first (a statement's order, not the last update's),
 * sent and received told apart, a failure's reason in words. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "transfer_log.h"

static void alert(struct transfer_log *l, const char *kind, json_int_t tid, const char *who,
                  const char *reason)
{
    json_t *ev = json_pack("{s:I,s:s,s:s,s:I,s:s,s:I}", "id", tid * 10, "type", "alert",
                           "kind", kind, "transfer_id", tid, "counterparty", who,
                           "amount_cents", (json_int_t)2500);
    if (reason)
        json_object_set_new(ev, "reason", json_string(reason));
    transfer_log_add(l, ev);
    json_decref(ev);
}

static void test_latest_state_newest_first(void **state)
{
    char line[160];
    (void)state;
    struct transfer_log *l = transfer_log_new();
    alert(l, "transfer.pending", 1, "bob", NULL);
    alert(l, "transfer.received", 2, "carol", NULL);
    alert(l, "transfer.processing", 1, "bob", NULL);
    alert(l, "transfer.completed", 1, "bob", NULL);
    alert(l, "transfer.pending", 3, "bob", NULL);
    alert(l, "transfer.failed", 3, "bob", "insufficient_funds");
    json_t *rows = transfer_log_recent(l, 10);
    assert_int_equal(json_array_size(rows), 3);
    transfer_log_row_text(json_array_get(rows, 0), line, sizeof line);
    assert_string_equal(line, "#3 sent 25.00 to bob: failed (insufficient funds)");
    transfer_log_row_text(json_array_get(rows, 1), line, sizeof line);
    assert_string_equal(line, "#2 received 25.00 from carol: completed");
    transfer_log_row_text(json_array_get(rows, 2), line, sizeof line);
    assert_string_equal(line, "#1 sent 25.00 to bob: completed");
    json_decref(rows);
    rows = transfer_log_recent(l, 1);
    assert_int_equal(json_array_size(rows), 1);
    json_decref(rows);
    transfer_log_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_latest_state_newest_first),
    };
    return cmocka_run_group_tests_name("transfer_log", tests, NULL, NULL);
}
