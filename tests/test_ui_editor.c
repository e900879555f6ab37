/* test_ui_editor.c — the UI's input line (client/ui_editor.c): editing at
 * the cursor, readline-style erasing, the UTF-8 byte limit, history with the
 * draft kept, and horizontal scrolling by display width. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <locale.h>
#include <stdlib.h>
#include <string.h>

#include "ui_editor.h"

static void type(struct ui_editor *e, const wchar_t *s)
{
    for (; *s; s++)
        assert_int_equal(ui_editor_insert(e, *s), 0);
}

static void assert_line(const struct ui_editor *e, const wchar_t *want, size_t cur)
{
    if (wcscmp(e->buf, want) != 0)
        fail_msg("line is \"%ls\", expected \"%ls\"", e->buf, want);
    assert_int_equal(e->len, wcslen(want));
    assert_int_equal(e->cur, cur);
}

static char *take(struct ui_editor *e)
{
    return ui_editor_take(e);
}

static void test_insert_and_move(void **state)
{
    struct ui_editor e;
    (void)state;
    ui_editor_init(&e, 4096);
    type(&e, L"helo");
    ui_editor_left(&e);
    type(&e, L"l");
    assert_line(&e, L"hello", 4);
    ui_editor_home(&e);
    type(&e, L">");
    assert_line(&e, L">hello", 1);
    ui_editor_end(&e);
    ui_editor_right(&e);                /* at the end: stays */
    assert_line(&e, L">hello", 6);
    ui_editor_home(&e);
    ui_editor_left(&e);                 /* at the start: stays */
    ui_editor_delete(&e);
    assert_line(&e, L"hello", 0);
    ui_editor_backspace(&e);            /* nothing before the cursor */
    assert_line(&e, L"hello", 0);
    ui_editor_end(&e);
    ui_editor_backspace(&e);
    assert_line(&e, L"hell", 4);
    ui_editor_delete(&e);               /* nothing after */
    assert_line(&e, L"hell", 4);
    ui_editor_free(&e);
}

static void test_word_moves(void **state)
{
    struct ui_editor e;
    (void)state;
    ui_editor_init(&e, 4096);
    type(&e, L"one  two three");
    ui_editor_word_left(&e);
    assert_line(&e, L"one  two three", 9);
    ui_editor_word_left(&e);
    assert_line(&e, L"one  two three", 5);
    ui_editor_word_left(&e);
    ui_editor_word_left(&e);            /* at the start: stays */
    assert_line(&e, L"one  two three", 0);
    ui_editor_word_right(&e);
    assert_line(&e, L"one  two three", 3);
    ui_editor_word_right(&e);
    assert_line(&e, L"one  two three", 8);
    ui_editor_word_right(&e);
    ui_editor_word_right(&e);           /* at the end: stays */
    assert_line(&e, L"one  two three", 14);
    ui_editor_free(&e);
}

static void test_refuses_controls(void **state)
{
    struct ui_editor e;
    (void)state;
    ui_editor_init(&e, 4096);
    assert_int_equal(ui_editor_insert(&e, L'\n'), -1);
    assert_int_equal(ui_editor_insert(&e, 0x1b), -1);
    assert_int_equal(ui_editor_insert(&e, 0x7f), -1);
    assert_int_equal(ui_editor_insert(&e, 0x9b), -1);   /* C1 CSI */
    assert_int_equal(ui_editor_insert(&e, 0x202e), -1); /* bidi override */
    assert_int_equal(e.len, 0);
    ui_editor_free(&e);
}

static void test_kill(void **state)
{
    struct ui_editor e;
    (void)state;
    ui_editor_init(&e, 4096);
    type(&e, L"send some  money");
    ui_editor_kill_word(&e);
    assert_line(&e, L"send some  ", 11);
    ui_editor_kill_word(&e);            /* spaces, then the word */
    assert_line(&e, L"send ", 5);
    type(&e, L"it now");
    for (int i = 0; i < 4; i++)
        ui_editor_left(&e);
    ui_editor_kill_to_end(&e);
    assert_line(&e, L"send it", 7);
    ui_editor_left(&e);
    ui_editor_left(&e);
    ui_editor_kill_to_start(&e);
    assert_line(&e, L"it", 0);
    ui_editor_kill_word(&e);            /* at the start: nothing */
    assert_line(&e, L"it", 0);
    ui_editor_free(&e);
}

/* The limit is in UTF-8 bytes, as the protocol's body limit is. */
static void test_byte_limit(void **state)
{
    struct ui_editor e;
    (void)state;
    ui_editor_init(&e, 10);
    type(&e, L"日本語");                 /* 9 bytes */
    assert_int_equal(e.bytes, 9);
    assert_int_equal(ui_editor_insert(&e, L'é'), -1);   /* 2 more: 11 */
    assert_int_equal(ui_editor_insert(&e, L'a'), 0);
    assert_int_equal(ui_editor_insert(&e, L'a'), -1);
    ui_editor_backspace(&e);
    ui_editor_backspace(&e);
    assert_int_equal(e.bytes, 6);
    char *s = take(&e);
    assert_string_equal(s, "日本");
    free(s);
    assert_int_equal(e.bytes, 0);
    ui_editor_free(&e);
}

static void test_take_utf8_and_history(void **state)
{
    struct ui_editor e;
    (void)state;
    ui_editor_init(&e, 4096);
    assert_null(take(&e));              /* empty: nothing */
    type(&e, L"first");
    char *s = take(&e);
    assert_string_equal(s, "first");
    free(s);
    assert_line(&e, L"", 0);
    type(&e, L"ça va 🎉");
    s = take(&e);
    assert_string_equal(s, "ça va 🎉");
    free(s);
    type(&e, L"ça va 🎉");              /* a repeat is not stored twice */
    free(take(&e));
    assert_int_equal(e.hist_len, 2);

    type(&e, L"draft");
    ui_editor_history_prev(&e);
    assert_line(&e, L"ça va 🎉", 7);
    ui_editor_history_prev(&e);
    assert_line(&e, L"first", 5);
    ui_editor_history_prev(&e);         /* oldest: stays */
    assert_line(&e, L"first", 5);
    type(&e, L"!");                     /* editing a recalled line */
    ui_editor_history_next(&e);
    assert_line(&e, L"ça va 🎉", 7);
    ui_editor_history_next(&e);         /* back to the draft */
    assert_line(&e, L"draft", 5);
    ui_editor_history_next(&e);         /* past the end: stays */
    assert_line(&e, L"draft", 5);
    assert_int_equal(wcscmp(e.hist[0], L"first"), 0);   /* history unchanged */
    ui_editor_free(&e);
}

static void test_history_bounded(void **state)
{
    struct ui_editor e;
    (void)state;
    ui_editor_init(&e, 4096);
    for (int i = 0; i < UI_HISTORY_MAX + 10; i++) {
        wchar_t line[16];
        swprintf(line, 16, L"line %d", i);
        type(&e, line);
        free(take(&e));
    }
    assert_int_equal(e.hist_len, UI_HISTORY_MAX);
    assert_int_equal(wcscmp(e.hist[0], L"line 10"), 0);
    ui_editor_free(&e);
}

static void test_view_scrolls(void **state)
{
    struct ui_editor e;
    size_t first, count;
    int col;
    (void)state;
    ui_editor_init(&e, 4096);
    type(&e, L"abcdefghij");            /* 10 columns in a 6-column field */
    ui_editor_view(&e, 6, &first, &count, &col);
    assert_int_equal(first, 5);         /* "fghij" and the cursor */
    assert_int_equal(count, 5);
    assert_int_equal(col, 5);
    ui_editor_home(&e);
    ui_editor_view(&e, 6, &first, &count, &col);
    assert_int_equal(first, 0);
    assert_int_equal(count, 6);
    assert_int_equal(col, 0);
    ui_editor_end(&e);
    ui_editor_kill_to_start(&e);
    ui_editor_view(&e, 6, &first, &count, &col);
    assert_int_equal(first, 0);
    assert_int_equal(col, 0);
    ui_editor_free(&e);
}

/* Wide characters count two columns; the cursor column stays in the field. */
static void test_view_wide(void **state)
{
    struct ui_editor e;
    size_t first, count;
    int col;
    (void)state;
    ui_editor_init(&e, 4096);
    type(&e, L"日本語テキスト");          /* 7 characters, 14 columns */
    ui_editor_view(&e, 9, &first, &count, &col);
    assert_true(col < 9);
    assert_int_equal(col, 8);           /* 4 characters before the cursor */
    assert_int_equal(first, 3);
    for (int w = 1; w < 20; w++) {
        ui_editor_view(&e, w, &first, &count, &col);
        assert_true(col < w || (w == 1 && col == 0));
        assert_true(first <= e.cur);
    }
    ui_editor_free(&e);
}

/* The history of earlier runs comes first: Up finds the newest of it. */
static void test_history_push(void **state)
{
    struct ui_editor e;
    (void)state;
    ui_editor_init(&e, 4096);
    ui_editor_history_push(&e, "older");
    ui_editor_history_push(&e, "older");        /* a repeat: once */
    ui_editor_history_push(&e, "caf\xc3\xa9");
    assert_int_equal(e.hist_len, 2);
    type(&e, L"now");
    free(take(&e));
    ui_editor_history_prev(&e);
    assert_line(&e, L"now", 3);
    ui_editor_history_prev(&e);
    assert_line(&e, L"caf\u00e9", 4);
    ui_editor_history_prev(&e);
    assert_line(&e, L"older", 5);
    ui_editor_free(&e);
}

int main(void)
{
    if (!setlocale(LC_ALL, "C.UTF-8"))
        setlocale(LC_ALL, "C.utf8");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_and_move),
        cmocka_unit_test(test_word_moves),
        cmocka_unit_test(test_refuses_controls),
        cmocka_unit_test(test_kill),
        cmocka_unit_test(test_byte_limit),
        cmocka_unit_test(test_take_utf8_and_history),
        cmocka_unit_test(test_history_push),
        cmocka_unit_test(test_history_bounded),
        cmocka_unit_test(test_view_scrolls),
        cmocka_unit_test(test_view_wide),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
