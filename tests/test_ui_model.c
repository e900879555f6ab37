/* test_ui_model.c — unit tests of client/ui_model.c's alerts: one row per
 * transfer that shows its latest state (not one row per step), and a
 * failure's reason in words, never a raw code like (insufficient_funds). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "ui_model.h"

static void add_alert(struct ui_model *m, int64_t id, const char *kind, int64_t tid,
                      const char *body, const char *reason)
{
    json_t *ev = json_pack("{s:I,s:s,s:I,s:s,s:I,s:s,s:I}", "id", (json_int_t)id, "type", "alert",
                           "ts", (json_int_t)1000, "kind", kind, "transfer_id", (json_int_t)tid,
                           "counterparty", "bob", "amount_cents", (json_int_t)2500);
    if (body)
        json_object_set_new(ev, "body", json_string(body));
    if (reason)
        json_object_set_new(ev, "reason", json_string(reason));
    assert_non_null(ui_model_add_event(m, ev, "alice"));
    json_decref(ev);
}

static int row_has(const struct ui_line *l, const wchar_t *needle)
{
    return wcsstr(l->text, needle) != NULL;
}

static void test_one_row_per_transfer(void **state)
{
    struct ui_model m;
    (void)state;
    ui_model_init(&m);
    add_alert(&m, 1, "transfer.pending", 7, NULL, NULL);
    add_alert(&m, 2, "transfer.pending", 8, NULL, NULL);
    add_alert(&m, 3, "transfer.processing", 7, NULL, NULL);
    add_alert(&m, 4, "transfer.completed", 7, NULL, NULL);
    assert_int_equal(m.alerts.len, 2);
    assert_int_equal(m.alerts.v[0].transfer_id, 8);
    assert_int_equal(m.alerts.v[1].transfer_id, 7);
    assert_int_equal(m.alerts.v[1].alert, UI_ALERT_COMPLETED);
    assert_true(row_has(&m.alerts.v[1], L"completed"));
    ui_model_free(&m);
}

static void test_failure_reason_in_words(void **state)
{
    struct ui_model m;
    (void)state;
    ui_model_init(&m);
    add_alert(&m, 1, "transfer.failed", 3,
              "Your transfer of 25.00 to bob failed: insufficient funds.", "insufficient_funds");
    add_alert(&m, 2, "transfer.failed", 4, NULL, "insufficient_funds");
    assert_int_equal(m.alerts.len, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_false(row_has(&m.alerts.v[i], L"insufficient_funds"));
        assert_true(row_has(&m.alerts.v[i], L"insufficient funds"));
    }
    ui_model_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_row_per_transfer),
        cmocka_unit_test(test_failure_reason_in_words),
    };
    return cmocka_run_group_tests_name("ui_model", tests, NULL, NULL);
}
