/* test_ui_layout.c — the UI's screen arithmetic (client/ui_layout.c) and
 * text layout (client/ui_text.c): every size from 1x1 to 200x60 gives
 * rectangles inside the screen that never overlap, the input line always
 * on the last row; 60-column terminals keep chat and alerts; wrapping by
 * display width (CJK, emoji) never passes the row width; control characters
 * are made visible; the status words and the model's alert lines. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ui_format.h"
#include "ui_layout.h"
#include "ui_model.h"
#include "ui_text.h"

/* ---- layout ---- */

static const struct ui_rect *parts(const struct ui_layout *l, size_t *n)
{
    static struct ui_rect r[9];
    r[0] = l->chat_title; r[1] = l->chat; r[2] = l->alerts_title; r[3] = l->alerts;
    r[4] = l->separator; r[5] = l->status; r[6] = l->stats; r[7] = l->input;
    *n = 8;
    return r;
}

static int overlap(const struct ui_rect *a, const struct ui_rect *b)
{
    if (!a->h || !b->h)
        return 0;
    return a->x < b->x + b->w && b->x < a->x + a->w && a->y < b->y + b->h && b->y < a->y + a->h;
}

static void test_every_size(void **state)
{
    (void)state;
    for (int rows = 1; rows <= 60; rows++)
        for (int cols = 1; cols <= 200; cols++) {
            struct ui_layout l;
            size_t n;
            ui_layout_compute(rows, cols, &l);
            const struct ui_rect *r = parts(&l, &n);
            for (size_t i = 0; i < n; i++) {
                if (!r[i].h)
                    continue;
                if (r[i].y < 0 || r[i].x < 0 || r[i].y + r[i].h > rows || r[i].x + r[i].w > cols)
                    fail_msg("%dx%d: part %zu outside the screen", cols, rows, i);
                for (size_t j = i + 1; j < n; j++)
                    if (overlap(&r[i], &r[j]))
                        fail_msg("%dx%d: parts %zu and %zu overlap", cols, rows, i, j);
            }
            assert_int_equal(l.input.y, rows - 1);
            assert_int_equal(l.input.w, cols);
            if (rows >= 3)
                assert_true(l.chat.h >= 1);
            if (rows >= 5)
                assert_int_equal(l.stats.h, 1);
        }
}

static void test_sixty_columns(void **state)
{
    struct ui_layout l;
    (void)state;
    ui_layout_compute(24, 60, &l);
    assert_false(l.side_by_side);
    assert_int_equal(l.chat.w, 60);
    assert_int_equal(l.alerts.w, 60);
    assert_true(l.alerts.h >= 2);
    assert_true(l.chat.h >= 10);
    assert_int_equal(l.status.y, 21);
    assert_int_equal(l.stats.y, 22);
    assert_int_equal(l.input.y, 23);
    /* every row is used */
    assert_int_equal(l.chat_title.h + l.chat.h + l.alerts_title.h + l.alerts.h + 3, 24);
}

static void test_wide_side_by_side(void **state)
{
    struct ui_layout l;
    (void)state;
    ui_layout_compute(30, 120, &l);
    assert_true(l.side_by_side);
    assert_int_equal(l.chat.w + 1 + l.alerts.w, 120);
    assert_int_equal(l.separator.x, l.chat.w);
    assert_int_equal(l.alerts.x, l.chat.w + 1);
    assert_int_equal(l.alerts.h, l.chat.h);
    assert_true(l.alerts.w >= 30 && l.alerts.w <= 60);
    ui_layout_compute(30, UI_WIDE_COLS - 1, &l);
    assert_false(l.side_by_side);
}

static void test_tiny(void **state)
{
    struct ui_layout l;
    (void)state;
    ui_layout_compute(1, 10, &l);
    assert_int_equal(l.input.h, 1);
    assert_int_equal(l.chat.h + l.status.h + l.stats.h, 0);
    ui_layout_compute(2, 10, &l);
    assert_int_equal(l.status.y, 0);
    ui_layout_compute(0, 0, &l);
    assert_int_equal(l.input.h, 0);
}

static void test_popup(void **state)
{
    struct ui_layout l;
    struct ui_rect b;
    (void)state;
    ui_layout_compute(24, 60, &l);
    int cw = ui_layout_popup(&l, 30, 2, &b);
    assert_int_equal(cw, 30);
    assert_int_equal(b.w, 34);
    assert_int_equal(b.h, 4);
    assert_int_equal(b.y, l.chat.y);
    assert_true(b.x >= l.chat.x && b.x + b.w <= l.chat.x + l.chat.w);
    cw = ui_layout_popup(&l, 500, 100, &b);     /* too much: clipped to the pane */
    assert_true(b.x >= 0 && b.x + b.w <= 60);
    assert_int_equal(b.h, l.chat.h);
    assert_int_equal(cw, b.w - 4);
    ui_layout_compute(24, 30, &l);              /* narrow: the whole width, no sliver */
    cw = ui_layout_popup(&l, 24, 3, &b);
    assert_int_equal(b.x, l.chat.x);
    assert_int_equal(b.w, l.chat.w);
    assert_int_equal(cw, l.chat.w - 4);
    ui_layout_compute(5, 10, &l);               /* no room: no pop-up */
    assert_int_equal(ui_layout_popup(&l, 10, 1, &b), 0);
}

/* ---- text ---- */

static wchar_t *dec(const char *s, size_t *n)
{
    wchar_t *w = ui_text_from_utf8(s, strlen(s), UI_TEXT_MULTILINE, n);
    assert_non_null(w);
    return w;
}

static void test_sanitize(void **state)
{
    size_t n;
    (void)state;
    wchar_t *w = dec("a\x1b[2J\x07\x7f\tb", &n);
    assert_int_equal(wcscmp(w, L"a\x241b[2J\x2407\x2421 b"), 0);
    free(w);
    w = dec("\xc2\x9b" "31m \xe2\x80\xae" "x", &n);     /* C1 CSI, RLO */
    assert_int_equal(wcscmp(w, L"\xfffd" L"31m \xfffd" L"x"), 0);
    free(w);
    w = dec("bad \xff\xc3 \xed\xa0\x80 \xf4\x90\x80\x80 \xc0\xaf!", &n);
    for (size_t i = 0; i < n; i++)
        assert_true(w[i] == L'\xfffd' || (w[i] >= 0x20 && w[i] < 0x7f));
    assert_int_equal(w[n - 1], L'!');
    free(w);
    w = ui_text_from_utf8("one\ntwo\r\n", 9, 0, &n);    /* single-line: visible */
    assert_int_equal(wcscmp(w, L"one\x2424two\x240d\x2424"), 0);
    free(w);
    w = dec("one\r\ntwo", &n);
    assert_int_equal(wcscmp(w, L"one\ntwo"), 0);
    free(w);
    for (wchar_t c = 0; c < 0x3000; c++) {
        wchar_t s = ui_text_safe_char(c);
        if (c != L'\n')
            assert_true(s >= 0x20 && !(s >= 0x7f && s < 0xa0));
    }
}

static void test_utf8_roundtrip(void **state)
{
    const char *s = "ça va? 日本語 🎉 ok";
    size_t n;
    (void)state;
    wchar_t *w = dec(s, &n);
    char *back = ui_text_to_utf8(w, n);
    assert_string_equal(back, s);
    assert_int_equal(ui_text_width(w, n), 19);      /* 6 + 1 + 6 + 1 + 2 + 1 + 2 */
    free(back);
    free(w);
}

/* Every row fits its width; the rows put back together give the text
 * (minus the spaces at the breaks). */
static void check_wrap(const wchar_t *s, size_t n, int width)
{
    size_t pos = 0, len;
    wchar_t joined[512] = L"";
    int rows = 0;
    while (pos < n) {
        size_t next = ui_wrap_row(s, n, pos, width, &len);
        assert_true(next > pos);
        int w = ui_text_width(s + pos, len);
        if (w > width && len != 1)
            fail_msg("row of %d columns in %d", w, width);
        wcsncat(joined, s + pos, len);
        rows++;
        pos = next;
    }
    assert_int_equal(rows, ui_wrap_count(s, n, width, width));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] != L' ' && s[i] != L'\n') {
            while (joined[k] == L' ')
                k++;
            assert_int_equal(joined[k], s[i]);
            k++;
        }
}

static void test_wrap(void **state)
{
    size_t n, len;
    (void)state;
    wchar_t *w = dec("the quick brown fox", &n);
    size_t next = ui_wrap_row(w, n, 0, 10, &len);
    assert_int_equal(len, 9);                       /* "the quick" */
    assert_int_equal(next, 10);                     /* "brown fox" */
    next = ui_wrap_row(w, n, next, 10, &len);
    assert_int_equal(len, 9);
    assert_int_equal(next, n);
    free(w);

    w = dec("日本語のテキストを折り返す", &n);          /* 13 wide characters */
    next = ui_wrap_row(w, n, 0, 7, &len);
    assert_int_equal(len, 3);                       /* 6 columns; a 4th would be 8 */
    assert_int_equal(ui_wrap_count(w, n, 7, 7), 5);
    for (int width = 1; width < 30; width++)
        check_wrap(w, n, width);
    free(w);

    w = dec("averyveryverylongword and 🎉🎉🎉 emoji\nnew line", &n);
    for (int width = 1; width < 40; width++)
        check_wrap(w, n, width);
    next = ui_wrap_row(w, n, 0, 8, &len);
    assert_int_equal(len, 8);                       /* a word longer than the row */
    free(w);

    w = dec("", &n);
    assert_int_equal(ui_wrap_count(w, n, 10, 10), 1);
    free(w);
    w = dec("a\n\nb", &n);
    assert_int_equal(ui_wrap_count(w, n, 10, 10), 3);
    free(w);
}

/* ---- status words ---- */

static void test_format(void **state)
{
    char buf[256];
    struct core_stats st = { .requests = 12, .bytes_in = 3482, .bytes_out = 900, .events = 14,
                             .have_latency = 1, .latency_ms = 3, .latency_median_ms = 2 };
    (void)state;
    assert_string_equal(ui_fmt_bytes(912, buf, sizeof buf), "912 B");
    assert_string_equal(ui_fmt_bytes(3482, buf, sizeof buf), "3.4 KB");
    assert_string_equal(ui_fmt_bytes(5u << 20, buf, sizeof buf), "5.0 MB");
    assert_string_equal(ui_fmt_state(CORE_RECONNECTING, 2001, buf, sizeof buf), "reconnecting in 3 s");
    assert_string_equal(ui_fmt_state(CORE_RECONNECTING, 0, buf, sizeof buf), "reconnecting in 0 s");
    assert_string_equal(ui_fmt_state(CORE_CONNECTED, 0, buf, sizeof buf), "connected");
    assert_string_equal(ui_fmt_state(CORE_OFFLINE, 0, buf, sizeof buf), "offline");
    assert_string_equal(ui_fmt_stats(&st, 0, buf, sizeof buf),
        "since start: 12 requests · in 3.4 KB · out 900 B · 14 events · latency 3 ms (median 2 ms)");
    ui_fmt_stats(&st, 2, buf, sizeof buf);
    assert_string_equal(buf, "12 req ↓3.4 KB ↑900 B 14 ev · 3/2 ms");
    st.have_latency = 0;
    st.dropped = 2;
    assert_string_equal(ui_fmt_stats(&st, 0, buf, sizeof buf),
        "since start: 12 requests · in 3.4 KB · out 900 B · 14 events · 2 dropped · latency -");
    /* each level is shorter than the one before */
    st.have_latency = 1;
    size_t prev = 1000;
    for (int level = 0; level < UI_FMT_STATS_LEVELS; level++) {
        size_t n = strlen(ui_fmt_stats(&st, level, buf, sizeof buf));
        assert_true(n < prev);
        prev = n;
    }
}

/* ---- model ---- */

static void test_model_events(void **state)
{
    struct ui_model m;
    (void)state;
    ui_model_init(&m);
    json_t *ev = json_pack("{s:I,s:s,s:I,s:s,s:s,s:s}", "id", (json_int_t)1, "type", "chat",
                           "ts", (json_int_t)1000, "room", "general", "from", "alice", "body", "hi");
    const struct ui_line *l = ui_model_add_event(&m, ev, "alice");
    assert_int_equal(l->kind, UI_LINE_OWN);
    json_decref(ev);
    ev = json_pack("{s:I,s:s,s:I,s:s,s:s,s:s}", "id", (json_int_t)2, "type", "chat",
                   "ts", (json_int_t)1000, "room", "general", "from", "bob", "body", "\x1b[2Jx");
    l = ui_model_add_event(&m, ev, "alice");
    assert_int_equal(l->kind, UI_LINE_CHAT);
    assert_int_equal(wcscmp(l->text, L"\x241b[2Jx"), 0);
    json_decref(ev);

    ev = json_pack("{s:I,s:s,s:I,s:s,s:I,s:I,s:s,s:s,s:s}", "id", (json_int_t)3, "type", "alert",
                   "ts", (json_int_t)1000, "kind", "transfer.failed", "transfer_id", (json_int_t)7,
                   "amount_cents", (json_int_t)2500, "counterparty", "bob",
                   "body", "Your transfer of 25.00 to bob failed.", "reason", "insufficient_funds");
    l = ui_model_add_event(&m, ev, "alice");
    assert_int_equal(l->kind, UI_LINE_ALERT);
    assert_int_equal(l->alert, UI_ALERT_FAILED);
    assert_int_equal(wcscmp(l->who, L"failed"), 0);
    assert_int_equal(wcscmp(l->text, L"Your transfer of 25.00 to bob failed. (insufficient funds)"), 0);
    json_decref(ev);
    ev = json_pack("{s:I,s:s,s:I,s:s,s:I,s:I,s:s}", "id", (json_int_t)4, "type", "alert",
                   "ts", (json_int_t)1000, "kind", "transfer.received", "transfer_id", (json_int_t)8,
                   "amount_cents", (json_int_t)123456, "counterparty", "carol");
    l = ui_model_add_event(&m, ev, "alice");
    assert_int_equal(l->alert, UI_ALERT_RECEIVED);
    assert_int_equal(wcscmp(l->text, L"received 1,234.56 from carol"), 0);
    json_decref(ev);
    assert_int_equal(m.chat.len, 2);
    assert_int_equal(m.alerts.len, 2);
    ui_model_free(&m);
}

static void test_model_bounded(void **state)
{
    struct ui_model m;
    (void)state;
    ui_model_init(&m);
    for (int i = 0; i < UI_CHAT_KEEP + 100; i++) {
        char t[32];
        snprintf(t, sizeof t, "line %d", i);
        assert_non_null(ui_list_add(&m.chat, UI_LINE_NOTICE, 0, NULL, t));
    }
    assert_true(m.chat.len <= UI_CHAT_KEEP);
    assert_int_equal(m.chat.added, UI_CHAT_KEEP + 100);
    assert_int_equal(wcscmp(m.chat.v[m.chat.len - 1].text, L"line 5099"), 0);
    ui_model_free(&m);
}

int main(void)
{
    if (!setlocale(LC_ALL, "C.UTF-8"))
        setlocale(LC_ALL, "C.utf8");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_size),
        cmocka_unit_test(test_sixty_columns),
        cmocka_unit_test(test_wide_side_by_side),
        cmocka_unit_test(test_tiny),
        cmocka_unit_test(test_popup),
        cmocka_unit_test(test_sanitize),
        cmocka_unit_test(test_utf8_roundtrip),
        cmocka_unit_test(test_wrap),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_model_events),
        cmocka_unit_test(test_model_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
