/* test_ui_alerts.c — unit tests of client/ui_model.c's alerts: one row per
 * transfer that shows its latest state (not one row per step), and a
 * failure's reason in words, never a raw code like (insufficient_funds);
 * your own line shown at once as sending, then once when stored. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <locale.h>
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

static void add_own_chat(struct ui_model *m, int64_t id, const char *body, int added)
{
    json_t *ev = json_pack("{s:I,s:s,s:I,s:s,s:s,s:s}", "id", (json_int_t)id, "type", "chat",
                           "ts", (json_int_t)1000, "room", "general", "from", "alice", "body", body);
    const struct ui_line *l = ui_model_add_event(m, ev, "alice");
    json_decref(ev);
    assert_int_equal(l != NULL, added);
}

/* Typed, then acknowledged, then echoed; and typed, echoed, then
 * acknowledged: one unmarked line each time. */
static void test_own_line_at_once_then_once(void **state)
{
    struct ui_model m;
    (void)state;
    ui_model_init(&m);
    assert_non_null(ui_model_add_sending(&m, "aa", "alice", "first", 1));
    assert_true(row_has(&m.chat.v[0], L"first (sending"));
    assert_int_equal(ui_model_acked(&m, "aa", 5), 1);
    assert_false(row_has(&m.chat.v[0], L"sending"));
    assert_int_equal(wcscmp(m.chat.v[0].text, L"first"), 0);
    add_own_chat(&m, 5, "first", 0);
    assert_int_equal(m.chat.len, 1);

    assert_non_null(ui_model_add_sending(&m, "bb", "alice", "second", 2));
    add_own_chat(&m, 6, "second", 1);
    assert_int_equal(ui_model_acked(&m, "bb", 6), 1);
    assert_int_equal(m.chat.len, 2);
    assert_int_equal(wcscmp(m.chat.v[1].text, L"second"), 0);
    ui_model_free(&m);
}

/* Refused for good: the line says it was not sent, and stays. */
static void test_own_line_refused(void **state)
{
    struct ui_model m;
    (void)state;
    ui_model_init(&m);
    assert_non_null(ui_model_add_sending(&m, "cc", "alice", "third", 1));
    assert_int_equal(ui_model_refused(&m, "cc"), 1);
    assert_int_equal(wcscmp(m.chat.v[0].text, L"third (not sent)"), 0);
    assert_int_equal(ui_model_acked(&m, "cc", 9), 0);
    ui_model_free(&m);
}

int main(void)
{
    if (!setlocale(LC_ALL, "C.UTF-8"))      /* wcwidth() judges what is printable */
        setlocale(LC_ALL, "C.utf8");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_row_per_transfer),
        cmocka_unit_test(test_failure_reason_in_words),
        cmocka_unit_test(test_own_line_at_once_then_once),
        cmocka_unit_test(test_own_line_refused),
    };
    return cmocka_run_group_tests_name("ui_alerts", tests, NULL, NULL);
}
