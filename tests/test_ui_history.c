/* test_ui_history.c — the input history kept between runs
 * (client/ui_history.c): where it lives (XDG_STATE_HOME, else
 * ~/.local/state; directory 0700, file 0600), a round trip through the
 * file, the bound on load and while appending, and a damaged file (control
 * characters, invalid UTF-8, a NUL, an over-long line, no final newline)
 * that costs its bad lines only and never reaches the screen; no place
 * for the file is a reason, not a crash. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ui_history.h"

struct fixture {
    char dir[64];
    char path[128];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/test-ui-history-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/history", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    fclose(fp);
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char *buf = calloc(1, 1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

static struct ui_history *open_ok(const char *path, size_t keep)
{
    char err[256] = "";
    struct ui_history *h = ui_history_open(path, keep, err, sizeof err);
    if (!h)
        fail_msg("ui_history_open: %s", err);
    return h;
}

static void add_ok(struct ui_history *h, const char *line, int want)
{
    char err[256] = "";
    int r = ui_history_add(h, line, err, sizeof err);
    if (r != want)
        fail_msg("ui_history_add(\"%s\") = %d, want %d (%s)", line, r, want, err);
}

/* Lines sent in one run are there, in order, in the next; the file is
 * 0600 and holds one line per entry. */
static void test_round_trip(void **state)
{
    struct fixture *f = *state;
    struct ui_history *h = open_ok(f->path, 10);
    assert_int_equal(ui_history_len(h), 0);
    add_ok(h, "hello bob", 0);
    add_ok(h, "/transfer bob 10", 0);
    add_ok(h, "/transfer bob 10", 1);       /* the same again: once */
    add_ok(h, "café 日本 🙂", 0);
    ui_history_free(h);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char *text = slurp(f->path);
    assert_string_equal(text, "hello bob\n/transfer bob 10\ncafé 日本 🙂\n");
    free(text);
    h = open_ok(f->path, 10);
    assert_int_equal(ui_history_len(h), 3);
    assert_string_equal(ui_history_line(h, 0), "hello bob");
    assert_string_equal(ui_history_line(h, 2), "café 日本 🙂");
    ui_history_free(h);
}

/* The newest `keep` lines only, on load (the file is cut down too) and
 * while appending (the file never grows past twice the bound). */
static void test_bounded(void **state)
{
    struct fixture *f = *state;
    FILE *fp = fopen(f->path, "w");
    for (int i = 0; i < 1000; i++)
        fprintf(fp, "line %d\n", i);
    fclose(fp);
    struct ui_history *h = open_ok(f->path, 5);
    assert_int_equal(ui_history_len(h), 5);
    assert_string_equal(ui_history_line(h, 0), "line 995");
    assert_string_equal(ui_history_line(h, 4), "line 999");
    char *text = slurp(f->path);
    assert_string_equal(text, "line 995\nline 996\nline 997\nline 998\nline 999\n");
    free(text);
    char line[32];
    for (int i = 0; i < 100; i++) {
        snprintf(line, sizeof line, "new %d", i);
        add_ok(h, line, 0);
        text = slurp(f->path);
        int lines = 0;
        for (char *p = text; *p; p++)
            lines += *p == '\n';
        assert_true(lines <= 10);
        free(text);
    }
    assert_int_equal(ui_history_len(h), 5);
    assert_string_equal(ui_history_line(h, 4), "new 99");
    ui_history_free(h);
    h = open_ok(f->path, 5);
    assert_string_equal(ui_history_line(h, 0), "new 95");
    assert_string_equal(ui_history_line(h, 4), "new 99");
    ui_history_free(h);
}

/* A damaged file: its good lines are read, the bad ones dropped and the
 * file rewritten clean (so an append never joins a torn last line). */
static void test_corrupt_file(void **state)
{
    struct fixture *f = *state;
    static char data[3 * 4096 + 256];
    size_t n = 0;
    n += (size_t)sprintf(data + n, "good one\n");
    n += (size_t)sprintf(data + n, "esc \033[2J clears\n");
    n += (size_t)sprintf(data + n, "bad \xff\xfe utf8\n");
    n += (size_t)sprintf(data + n, "overlong \xc0\xaf slash\n");
    n += (size_t)sprintf(data + n, "c1 \xc2\x9b csi\n");
    memcpy(data + n, "nul \0 inside\n", 13);
    n += 13;
    memset(data + n, 'x', 5000);        /* longer than any message */
    n += 5000;
    data[n++] = '\n';
    n += (size_t)sprintf(data + n, "   \n\ngood two\ntorn");
    write_file(f->path, data, n);
    chmod(f->path, 0644);
    struct ui_history *h = open_ok(f->path, 50);
    assert_int_equal(ui_history_len(h), 3);
    assert_string_equal(ui_history_line(h, 0), "good one");
    assert_string_equal(ui_history_line(h, 1), "good two");
    assert_string_equal(ui_history_line(h, 2), "torn");
    add_ok(h, "after", 0);
    ui_history_free(h);
    char *text = slurp(f->path);
    assert_string_equal(text, "good one\ngood two\ntorn\nafter\n");
    free(text);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);     /* made private again */
}

/* Lines that would break the file or a terminal are never written. */
static void test_bad_lines_not_written(void **state)
{
    struct fixture *f = *state;
    struct ui_history *h = open_ok(f->path, 10);
    add_ok(h, "two\nlines", 1);
    add_ok(h, "bell \a", 1);
    add_ok(h, "bad \xff", 1);
    add_ok(h, "", 1);
    add_ok(h, "    ", 1);
    char *big = malloc(UI_HISTORY_LINE_MAX + 2);
    memset(big, 'y', UI_HISTORY_LINE_MAX + 1);
    big[UI_HISTORY_LINE_MAX + 1] = '\0';
    add_ok(h, big, 1);
    big[UI_HISTORY_LINE_MAX] = '\0';    /* exactly the limit: kept */
    add_ok(h, big, 0);
    free(big);
    assert_int_equal(ui_history_len(h), 1);
    ui_history_free(h);
}

/* $XDG_STATE_HOME/chat/history-<user>, else ~/.local/state/chat/, the
 * directories made 0700; nowhere to put it is an error, not a crash. */
static void test_path(void **state)
{
    struct fixture *f = *state;
    char err[256], want[256], xdg[128];
    snprintf(xdg, sizeof xdg, "%s/state", f->dir);
    setenv("XDG_STATE_HOME", xdg, 1);
    char *p = ui_history_path("alice", err, sizeof err);
    snprintf(want, sizeof want, "%s/chat/history-alice", xdg);
    assert_non_null(p);
    assert_string_equal(p, want);
    free(p);
    struct stat st;
    snprintf(want, sizeof want, "%s/chat", xdg);
    assert_int_equal(stat(want, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    setenv("XDG_STATE_HOME", "relative/ignored", 1);
    setenv("HOME", f->dir, 1);
    p = ui_history_path("bob", err, sizeof err);
    snprintf(want, sizeof want, "%s/.local/state/chat/history-bob", f->dir);
    assert_non_null(p);
    assert_string_equal(p, want);
    free(p);
    assert_null(ui_history_path("../etc", err, sizeof err));
    unsetenv("XDG_STATE_HOME");
    unsetenv("HOME");
    assert_null(ui_history_path("bob", err, sizeof err));
    assert_non_null(strstr(err, "HOME"));
}

/* No place for the file (here its directory is a plain file, which
 * stops root too): no history, a reason, no crash. */
static void test_unwritable(void **state)
{
    struct fixture *f = *state;
    char err[256] = "", path[160], xdg[128];
    snprintf(path, sizeof path, "%s/plain", f->dir);
    write_file(path, "x", 1);
    snprintf(path, sizeof path, "%s/plain/history", f->dir);
    assert_null(ui_history_open(path, 10, err, sizeof err));
    assert_non_null(strstr(err, "cannot open"));
    snprintf(xdg, sizeof xdg, "%s/plain", f->dir);
    setenv("XDG_STATE_HOME", xdg, 1);
    assert_null(ui_history_path("alice", err, sizeof err));
    assert_non_null(strstr(err, "cannot create"));
    unsetenv("XDG_STATE_HOME");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_lines_not_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unwritable, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
