/* test_ui_model.c — the UI's pure bookkeeping beyond layout: what the
 * pop-up's "(+N more)" counts (client/ui_popup.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ui_popup.h"

/* ---- the pop-up's "more" ---- */

static void test_popup_more_counts_unseen_only(void **state)
{
    struct ui_popup p = { 0 };
    (void)state;
    ui_popup_alert(&p, 1);              /* pending, drawn */
    ui_popup_drawn(&p);
    ui_popup_alert(&p, 2);              /* processing, drawn */
    ui_popup_drawn(&p);
    ui_popup_alert(&p, 3);              /* completed: the others were seen */
    ui_popup_drawn(&p);
    assert_int_equal(p.unseen, 0);
    assert_int_equal(p.seq, 3);
    ui_popup_alert(&p, 4);              /* a burst of three before a frame */
    ui_popup_alert(&p, 5);
    ui_popup_alert(&p, 6);
    ui_popup_drawn(&p);
    assert_int_equal(p.unseen, 2);
    ui_popup_close(&p);
    assert_false(p.on);
    ui_popup_alert(&p, 7);              /* a fresh pop-up starts from none */
    assert_int_equal(p.unseen, 0);
    ui_popup_drawn(&p);                 /* drawn twice changes nothing */
    ui_popup_drawn(&p);
    assert_int_equal(p.unseen, 0);
}

int main(void)
{
    if (!setlocale(LC_ALL, "C.UTF-8"))
        setlocale(LC_ALL, "C.utf8");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_popup_more_counts_unseen_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
