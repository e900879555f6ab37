/* test_ui_model.c — the UI's pure bookkeeping beyond layout: what the
 * pop-up's "(+N more)" counts (client/ui_popup.c), Tab completion
 * (client/ui_complete.c), the date line when the day changes between two
 * chat lines (client/ui_model.c, with fabricated timestamps). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wchar.h>

#include "ui_complete.h"
#include "ui_editor.h"
#include "ui_format.h"
#include "ui_model.h"
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

/* ---- Tab completion ---- */

static void type(struct ui_editor *e, const wchar_t *s)
{
    for (; *s; s++)
        assert_int_equal(ui_editor_insert(e, *s), 0);
}

static void assert_line(const struct ui_editor *e, const wchar_t *want)
{
    if (wcscmp(e->buf, want) != 0)
        fail_msg("line \"%ls\", want \"%ls\"", e->buf, want);
    assert_int_equal(e->cur, e->len);
}

static void test_complete(void **state)
{
    static const char *const cmds[] = { "/transfer", "/transport", "/balance", "/help" };
    static const char *const names[] = { "bob", "bea", "carol", "bob" };
    struct ui_editor e;
    struct ui_complete c = { 0 };
    (void)state;
    ui_editor_init(&e, 4096);
    type(&e, L"/tr");
    assert_int_equal(ui_complete_word_kind(&e), 1);
    assert_int_equal(ui_complete_tab(&c, &e, cmds, 4), 0);
    assert_line(&e, L"/transfer ");
    assert_int_equal(ui_complete_tab(&c, &e, NULL, 0), 0);    /* Tab again: the next */
    assert_line(&e, L"/transport ");
    assert_int_equal(ui_complete_tab(&c, &e, NULL, 0), 0);    /* and round */
    assert_line(&e, L"/transfer ");
    ui_complete_reset(&c);
    type(&e, L"B");                                             /* any case */
    assert_int_equal(ui_complete_word_kind(&e), 0);
    assert_int_equal(ui_complete_tab(&c, &e, names, 4), 0);
    assert_line(&e, L"/transfer bob ");
    assert_int_equal(ui_complete_tab(&c, &e, NULL, 0), 0);
    assert_line(&e, L"/transfer bea ");
    assert_int_equal(ui_complete_tab(&c, &e, NULL, 0), 0);    /* bob once only */
    assert_line(&e, L"/transfer bob ");
    ui_complete_reset(&c);
    ui_editor_kill_to_start(&e);
    type(&e, L"car");                                           /* addressing */
    assert_int_equal(ui_complete_tab(&c, &e, names, 4), 0);
    assert_line(&e, L"carol: ");
    ui_complete_reset(&c);
    type(&e, L"zz");                                            /* nothing: unchanged */
    assert_int_equal(ui_complete_tab(&c, &e, names, 4), -1);
    assert_line(&e, L"carol: zz");
    ui_complete_reset(&c);
    type(&e, L" ");                                             /* no word */
    assert_int_equal(ui_complete_word_kind(&e), -1);
    assert_int_equal(ui_complete_tab(&c, &e, names, 4), -1);
    assert_line(&e, L"carol: zz ");
    ui_complete_reset(&c);
    ui_editor_free(&e);
}

/* ---- the date line ---- */

#define DAY_MS (24LL * 3600 * 1000)
#define DEC_2_2026_MS 1796169600000LL   /* Wed 2 Dec 2026 00:00 UTC */

static void add_chat(struct ui_model *m, int64_t id, int64_t ts, const char *body)
{
    json_t *ev = json_pack("{s:I,s:s,s:I,s:s,s:s,s:s}", "id", (json_int_t)id, "type", "chat",
                           "ts", (json_int_t)ts, "room", "general", "from", "bob", "body", body);
    assert_non_null(ui_model_add_event(m, ev, "alice"));
    json_decref(ev);
}

static void test_day_changes(void **state)
{
    struct ui_model m;
    char buf[64];
    (void)state;
    assert_string_equal(ui_fmt_day(DEC_2_2026_MS + 3600 * 1000, buf, sizeof buf),
                        "── Wed 2 Dec 2026 ──");
    ui_model_init(&m);
    add_chat(&m, 1, DEC_2_2026_MS + 10 * 3600 * 1000, "morning");
    add_chat(&m, 2, DEC_2_2026_MS + DAY_MS - 60 * 1000, "late");          /* same day */
    add_chat(&m, 3, DEC_2_2026_MS + DAY_MS + 60 * 1000, "after midnight");
    add_chat(&m, 4, DEC_2_2026_MS + DAY_MS + 120 * 1000, "same night");
    add_chat(&m, 5, DEC_2_2026_MS + 9 * DAY_MS, "a week later");
    assert_int_equal(m.chat.len, 7);
    static const wchar_t *const want[] = {
        L"morning", L"late", L"── Thu 3 Dec 2026 ──", L"after midnight", L"same night",
        L"── Fri 11 Dec 2026 ──", L"a week later",
    };
    for (size_t i = 0; i < 7; i++) {
        if (wcscmp(m.chat.v[i].text, want[i]) != 0)
            fail_msg("line %zu: \"%ls\", want \"%ls\"", i, m.chat.v[i].text, want[i]);
        assert_int_equal(m.chat.v[i].kind == UI_LINE_DAY, want[i][0] == L'─');
    }
    /* a line without a time (0) neither makes nor breaks a day */
    assert_non_null(ui_list_add(&m.chat, UI_LINE_NOTICE, 0, NULL, "no time"));
    add_chat(&m, 6, DEC_2_2026_MS + 9 * DAY_MS + 1000, "still friday");
    assert_int_equal(m.chat.len, 9);
    /* alerts have no date lines: the pane is narrow and each has its time */
    ui_model_free(&m);
}

/* v1.1: an older page goes above what is shown, without the lines the
 * list has already; member and topic events read as sentences. */
static void test_older_page_goes_above(void **state)
{
    struct ui_model m;
    (void)state;
    setlocale(LC_ALL, "C.UTF-8");
    ui_model_init(&m);
    json_t *newer = json_pack("{s:I,s:s,s:I,s:s,s:s,s:s}", "id", 50, "type", "chat", "ts", 1000,
                              "room", "rust", "from", "bob", "body", "newest");
    json_t *page = json_pack("[{s:I,s:s,s:I,s:s,s:s,s:s},{s:I,s:s,s:I,s:s,s:s,s:s},"
                             "{s:I,s:s,s:I,s:s,s:s,s:s}]",
                             "id", 10, "type", "member", "ts", 900, "room", "rust", "user", "carol", "action", "join",
                             "id", 20, "type", "topic", "ts", 900, "room", "rust", "from", "carol", "topic", "Ownership",
                             "id", 50, "type", "chat", "ts", 1000, "room", "rust", "from", "bob", "body", "newest");
    ui_model_add_event(&m, newer, "alice");
    assert_int_equal(ui_list_prepend_events(&m.chat, page, "alice"), 2);
    assert_int_equal(m.chat.len, 3);
    assert_int_equal(m.chat.v[0].id, 10);
    assert_non_null(wcsstr(m.chat.v[0].text, L"carol joined rust"));
    assert_non_null(wcsstr(m.chat.v[1].text, L"carol set the topic: Ownership"));
    assert_int_equal(m.chat.v[2].id, 50);
    assert_int_equal(ui_list_prepend_events(&m.chat, page, "alice"), 0);   /* once */
    json_decref(newer);
    json_decref(page);
    ui_model_free(&m);
}

int main(void)
{
    if (!setlocale(LC_ALL, "C.UTF-8"))
        setlocale(LC_ALL, "C.utf8");
    setenv("TZ", "UTC", 1);             /* days change at UTC midnight here */
    tzset();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_popup_more_counts_unseen_only),
        cmocka_unit_test(test_complete),
        cmocka_unit_test(test_older_page_goes_above),
        cmocka_unit_test(test_day_changes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
