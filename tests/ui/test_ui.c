/* test_ui.c — the terminal UI end to end: real bin/chatd and bin/chat (no
 * --headless) in tmux, driven with send-keys and read with capture-pane.
 *
 * - two UI clients chat and each screen shows the other's message;
 * - a transfer pops up on both screens, shows in both alerts panes (one
 *   row per transfer, in its latest state), rings
 *   the bell for the receiver and not for the --quiet sender, and Esc
 *   closes the pop-up; a transfer is sent only after "y" to
 *   "send 25.00 to bob? y/n", anything else cancels it; /balance answers in
 *   words, never JSON;
 * - colour (captured with capture-pane -e): alerts by state, pending and
 *   processing yellow, completed green; the status badge green when
 *   connected, and "websocket · connected" with one space;
 * - pop-ups at 30 columns leave no chat letters beside the box, and
 *   "(+N more)" does not count alerts already shown;
 * - keys: Alt-b/Alt-f move by words and insert nothing, Tab inserts no
 *   blank, Tab completes commands (/tr -> /transfer) and names seen in the
 *   chat (bo -> bob, "bob: " at the start of the line);
 * - /transport switches websocket -> long-poll -> short-poll -> websocket
 *   while messages keep coming: each shows exactly once;
 * - resizing (80x24 -> 60x20 -> 120x40) keeps the input line, the draft
 *   being typed and the last message on screen, no row wider than the pane;
 * - UTF-8 (accents, CJK, emoji) shows intact, typed and received, and long
 *   CJK text wraps by display width;
 * - a message full of escape sequences, a bell and C1 controls is shown
 *   as visible symbols: the screen is not cleared, the title not set, no bell;
 * - a message typed and /quit given while the login is still under way: the
 *   client waits for the login, sends the message, then exits 0 (the quit
 *   policy of app.c, the same as headless mode's);
 * - the server killed: a transfer typed twice is refused twice and never
 *   paid, a message is reported queued, /quit says it was not delivered and
 *   waits for a second /quit, which exits 4;
 * - your own message typed with the server gone shows at once marked
 *   "(sending…)", then once, unmarked, when the server has stored it;
 * - wrong input gets the right word: an unknown command is named, /nick is
 *   not supported, BOB is said to be bob, blanks are not sent, a line past
 *   4,096 bytes says so;
 * - the input history is kept between runs: lines sent come back with Up
 *   after a restart (not the y/n of a transfer, not /quit), in a 0600 file
 *   under $XDG_STATE_HOME (a temp dir: tests never touch the user's home).
 * Every client is then quit with /quit and must exit 0 with a clean stderr
 * (no sanitizer report) ending in its cost line. */
#include "../e2e/harness.h"
#include "tmux.h"
#include "ui_client.h"

#include <arpa/inet.h>
#include <limits.h>
#include <locale.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wchar.h>

#define WAIT_MS UI_WAIT_MS

static int setup(void **state)
{
    (void)state;
    ui_setup();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ui_teardown();
    return 0;
}

/* A new user: ui_spawn with --register and any extra flags. */
static void ui_start(struct ui_client *c, const struct h_server *s, const char *user,
                         const char *transport, int cols, int rows, const char *extra)
{
    char flags[512];
    snprintf(flags, sizeof flags, "--register %s", extra ? extra : "");
    ui_spawn(c, s, user, transport, cols, rows, flags);
}

/* The status bar says the transport runs. A long poll on an empty feed
 * says "connecting" until its first answer (up to 25 s), so for it being
 * logged in ("logging in" has become "connecting") is enough: the transport
 * is started and its first poll is waiting. */
/* needle as a whole word: followed by a blank or the end of its row. */
static int has_word(const char *screen, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *p = screen; (p = strstr(p, needle)); p += n)
        if (p[n] == ' ' || p[n] == '\n' || p[n] == '\0')
            return 1;
    return 0;
}

static int connected(const char *screen, void *arg)
{
    char needle[64];
    snprintf(needle, sizeof needle, "%s · connected", (const char *)arg);
    if (has_word(screen, needle))
        return 1;
    snprintf(needle, sizeof needle, "%s · connecting", (const char *)arg);
    return strcmp(arg, "long-poll") == 0 && has_word(screen, needle);
}

static char *wait_connected(struct ui_client *c, const char *transport)
{
    char what[96];
    snprintf(what, sizeof what, "\"%s · connected\" in the status bar", transport);
    return tmux_wait_until(c->name, connected, (void *)transport, what, h_deadline(WAIT_MS));
}

static void ui_wait_exit(struct ui_client *c)
{
    ui_wait_exit_code(c, 0);
}

/* A scripted user who posts over plain HTTP. */
static void h_http_user(const struct h_server *s, const char *user, char token[80])
{
    char pw[64];
    ui_password_of(user, pw, sizeof pw);
    int st = h_http_register(s->port, user, pw);
    CHECK(st == 201, "register %s: %d", user, st);
    st = h_http_login(s->port, user, pw, token);
    CHECK(st == 200, "login %s: %d", user, st);
}

static void post(const struct h_server *s, const char *token, const char *body)
{
    int st = h_http_post_message(s->port, token, "general", body, NULL, NULL);
    CHECK(st == 201, "posting \"%s\": %d", body, st);
}

/* Every row of a capture fits in cols display columns. */
static void check_widths(const char *screen, int cols)
{
    char row[4096];
    wchar_t w[4096];
    for (int i = 0; i < screen_rows(screen); i++) {
        screen_row(screen, i, row, sizeof row);
        size_t n = mbstowcs(w, row, 4096);
        CHECK(n != (size_t)-1, "row %d is not valid UTF-8: %s", i, row);
        int width = wcswidth(w, n);
        CHECK(width >= 0 && width <= cols, "row %d is %d columns wide in %d:\n%s", i, width,
              cols, screen);
    }
}

/* ---- two users chat ---- */

static void test_two_clients_chat(void **state)
{
    struct h_server s;
    struct ui_client alice, bob;
    (void)state;
    h_server_start(&s, NULL, NULL);
    ui_start(&alice, &s, "alice", "websocket", 80, 24, NULL);
    ui_start(&bob, &s, "bob", "long-poll", 80, 24, NULL);
    free(wait_connected(&alice, "websocket"));
    free(wait_connected(&bob, "long-poll"));

    tmux_type("alice", "hello from alice", 1);
    free(tmux_wait_for("bob", "alice: hello from alice", h_deadline(WAIT_MS)));
    free(tmux_wait_for("alice", "alice: hello from alice", h_deadline(WAIT_MS)));
    tmux_type("bob", "hi alice, bob here", 1);
    char *a = tmux_wait_for("alice", "bob: hi alice, bob here", h_deadline(WAIT_MS));
    CHECK(count_of(a, "hello from alice") == 1, "alice's message shown twice:\n%s", a);
    free(a);
    char *b = tmux_wait_for("bob", "bob: hi alice, bob here", h_deadline(WAIT_MS));
    CHECK(count_of(b, "hello from alice") == 1, "alice's message twice on bob's screen:\n%s", b);
    free(b);
    ui_quit(&alice);
    ui_quit(&bob);
    h_server_stop(&s);
}

/* ---- a transfer pops up ---- */

static int bell_rung(const char *name)
{
    char *f = tmux_format(name, "#{window_bell_flag}");
    int rung = f && strcmp(f, "1") == 0;
    free(f);
    return rung;
}

static int no_popup(const char *screen, void *arg)
{
    (void)arg;
    return !strstr(screen, "alert: transfer");
}

static void test_transfer_alerts(void **state)
{
    struct h_server s;
    struct ui_client alice, bob;
    (void)state;
    h_server_start(&s, NULL, NULL);
    ui_start(&alice, &s, "alice", "websocket", 100, 30, "--quiet");
    ui_start(&bob, &s, "bob", "long-poll", 80, 24, NULL);
    free(wait_connected(&alice, "websocket"));
    free(wait_connected(&bob, "long-poll"));
    CHECK(!bell_rung("bob") && !bell_rung("alice"), "a bell before any alert");

    tmux_type("alice", "/transfer bob 25.00", 1);
    /* money leaves only once confirmed */
    free(tmux_wait_for("alice", "send 25.00 to bob? y/n", h_deadline(WAIT_MS)));
    tmux_type("alice", "y", 0);
    /* the receiver: pop-up (shown for 6 s), alerts pane, bell */
    char *b = tmux_wait_for("bob", "alert: transfer received", h_deadline(WAIT_MS));
    CHECK(strstr(b, "alerts (1)") && strstr(b, " received "), "no alert line on bob's screen:\n%s", b);
    CHECK(strstr(b, "25.00"), "the amount is not shown:\n%s", b);
    free(b);
    CHECK(bell_rung("bob"), "no bell on bob's terminal for the alert");
    /* the sender: pop-ups until completed, no bell with --quiet */
    char *a = tmux_wait_for("alice", " completed ", h_deadline(WAIT_MS));
    CHECK(strstr(a, "alert: transfer"), "no pop-up on alice's screen:\n%s", a);
    /* one row per transfer, showing its latest state */
    CHECK(strstr(a, "alerts (1)") && !strstr(a, " pending ") && !strstr(a, " processing "),
          "not one row for the transfer in its latest state:\n%s", a);
    free(a);
    CHECK(!bell_rung("alice"), "--quiet rang the bell");
    /* Esc closes the pop-up, and what it covered shows again */
    tmux_key("bob", "Escape");
    free(tmux_wait_until("bob", no_popup, NULL, "the pop-up gone after Esc", h_deadline(WAIT_MS)));
    tmux_key("alice", "Escape");
    a = tmux_wait_until("alice", no_popup, NULL, "the pop-up gone after Esc", h_deadline(WAIT_MS));
    CHECK(strstr(a, "transfer #1 of 25.00 to bob accepted"), "no notice of the transfer:\n%s", a);
    free(a);
    /* anything but y cancels, and nothing is paid */
    tmux_type("bob", "/transfer alice 5", 1);
    free(tmux_wait_for("bob", "send 5.00 to alice? y/n", h_deadline(WAIT_MS)));
    tmux_type("bob", "n", 0);
    free(tmux_wait_for("bob", "transfer cancelled", h_deadline(WAIT_MS)));
    /* a result asked for shows in words */
    tmux_type("bob", "/balance", 1);
    b = tmux_wait_for("bob", "balance: 1,025.00", h_deadline(WAIT_MS));
    CHECK(!strstr(b, "{\""), "raw JSON on the screen:\n%s", b);
    free(b);
    ui_quit(&alice);
    ui_quit(&bob);
    h_server_stop(&s);
}

/* ---- colour ---- */

#define SGR_GREEN  32
#define SGR_YELLOW 33
#define SGR_BG_GREEN 42

static void check_colour(const char *name, const char *needle, size_t skip, int fg, int bg)
{
    char *esc = tmux_capture_escapes(name);
    struct sgr_cell c;
    CHECK(esc && sgr_at(esc, needle, skip, &c) == 0, "%s: \"%s\" not on the screen:\n%s", name,
          needle, esc ? esc : "");
    if (fg && c.fg != fg)
        fail_msg("%s: \"%s\" has colour %d, not %d:\n%s", name, needle, c.fg, fg, esc);
    if (bg && c.bg != bg)
        fail_msg("%s: \"%s\" has background %d, not %d:\n%s", name, needle, c.bg, bg, esc);
    free(esc);
}

/* Alerts are coloured by state (pending and processing yellow, completed
 * green), the status badge by the connection (green when connected), and
 * the badge reads "websocket · connected" with one space. */
static void test_colours(void **state)
{
    struct h_server s;
    struct ui_client alice;
    char token[80], *screen;
    (void)state;
    static const char *const slow_bank[] = { "--transfer-delay-ms", "2500", NULL };
    h_server_start(&s, NULL, slow_bank);
    h_http_user(&s, "bob", token);
    ui_start(&alice, &s, "alice", "websocket", 100, 30, "--quiet");
    free(wait_connected(&alice, "websocket"));
    check_colour("alice", "connected ", 0, 0, SGR_BG_GREEN);
    tmux_type("alice", "/transfer bob 25.00", 1);
    free(tmux_wait_for("alice", "send 25.00 to bob? y/n", h_deadline(WAIT_MS)));
    tmux_type("alice", "y", 0);
    /* one row per transfer, in its state's colour as the state changes */
    free(tmux_wait_for("alice", "pending We received", h_deadline(WAIT_MS)));
    check_colour("alice", "pending We received", 0, SGR_YELLOW, 0);
    screen = tmux_wait_for("alice", "completed Your transfer", h_deadline(WAIT_MS));
    /* pending and processing popped up before: not "more" */
    CHECK(!strstr(screen, "(+2 more"), "alerts already shown counted as more:\n%s", screen);
    free(screen);
    tmux_key("alice", "Escape");
    free(tmux_wait_until("alice", no_popup, NULL, "the pop-up gone after Esc", h_deadline(WAIT_MS)));
    check_colour("alice", "completed Your transfer", 0, SGR_GREEN, 0);
    screen = tmux_capture("alice");
    CHECK(screen && strstr(screen, "alice · websocket · connected "), "the status bar:\n%s", screen);
    free(screen);
    ui_quit(&alice);
    h_server_stop(&s);
}

/* ---- pop-ups in narrow panes ---- */

/* Only blanks beside a box-drawing span from its first left edge (`l`) to
 * its last right edge (`r`); 0 if not. */
static int blank_beside(const char *row, const char *l, const char *r)
{
    const char *a = strstr(row, l), *b = NULL;
    for (const char *p = row; (p = strstr(p, r)); p += strlen(r))
        b = p;
    if (!a || !b)
        return 0;
    for (const char *p = row; p < a; p++)
        if (*p != ' ')
            return 0;
    for (const char *p = b + strlen(r); *p; p++)
        if (*p != ' ')
            return 0;
    return 1;
}

/* The pop-up is on screen and no text is left beside its box. */
static int popup_clean(const char *screen, void *arg)
{
    char row[1024];
    int top = -1, bottom = -1;
    (void)arg;
    for (int i = 0; i < screen_rows(screen); i++) {
        screen_row(screen, i, row, sizeof row);
        if (top < 0 && strstr(row, "┌"))
            top = i;
        if (top >= 0 && strstr(row, "└")) {
            bottom = i;
            break;
        }
    }
    if (top < 0 || bottom < 0 || !strstr(screen, "alert: transfer"))
        return 0;
    for (int i = top; i <= bottom; i++) {
        screen_row(screen, i, row, sizeof row);
        const char *l = i == top ? "┌" : i == bottom ? "└" : "│";
        const char *r = i == top ? "┐" : i == bottom ? "┘" : "│";
        if (!blank_beside(row, l, r))
            return 0;
    }
    return 1;
}

/* In a 30-column terminal full of chat text, a pop-up leaves no letters
 * of the chat beside its box. */
static void test_popup_narrow(void **state)
{
    struct h_server s;
    struct ui_client ann;
    char token[80];
    (void)state;
    h_server_start(&s, NULL, NULL);
    h_http_user(&s, "bob", token);
    ui_start(&ann, &s, "ann", "websocket", 30, 24, "--quiet");
    free(wait_connected(&ann, "websocket"));
    for (int i = 0; i < 12; i++)
        post(&s, token, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    post(&s, token, "filler-end");
    free(tmux_wait_for("ann", "filler-end", h_deadline(WAIT_MS)));
    tmux_type("ann", "/transfer bob 1", 1);
    free(tmux_wait_for("ann", "y/n", h_deadline(WAIT_MS)));
    tmux_type("ann", "y", 0);
    free(tmux_wait_until("ann", popup_clean, NULL, "a pop-up with nothing beside it",
                         h_deadline(WAIT_MS)));
    ui_quit(&ann);
    h_server_stop(&s);
}

/* ---- keys: Tab completes, Alt-b/Alt-f move by words ---- */

/* The input line (the last row) is exactly want. */
static int input_is(const char *screen, void *arg)
{
    char last[1024];
    screen_row(screen, screen_rows(screen) - 1, last, sizeof last);
    size_t n = strlen(last);
    while (n && last[n - 1] == ' ')
        last[--n] = '\0';
    return strcmp(last, arg) == 0;
}

static void wait_input(const char *name, const char *want)
{
    char what[256];
    snprintf(what, sizeof what, "the input line \"%s\"", want);
    free(tmux_wait_until(name, input_is, (void *)want, what, h_deadline(WAIT_MS)));
}

static void test_keys(void **state)
{
    struct h_server s;
    struct ui_client alice;
    char token[80];
    (void)state;
    h_server_start(&s, NULL, NULL);
    h_http_user(&s, "bob", token);
    ui_start(&alice, &s, "alice", "websocket", 80, 24, NULL);
    free(wait_connected(&alice, "websocket"));
    post(&s, token, "hi from bob");
    free(tmux_wait_for("alice", "bob: hi from bob", h_deadline(WAIT_MS)));
    /* Alt-b: a word back, inserts nothing; Alt-f: a word forward */
    tmux_type("alice", "hello world", 0);
    tmux_key("alice", "M-b");
    tmux_type("alice", "X", 0);
    wait_input("alice", "> hello Xworld");
    tmux_key("alice", "M-b");
    tmux_key("alice", "M-b");
    tmux_type("alice", "Y", 0);
    wait_input("alice", "> Yhello Xworld");
    tmux_key("alice", "M-f");
    tmux_type("alice", "Z", 0);
    wait_input("alice", "> YhelloZ Xworld");
    tmux_key("alice", "C-u");
    tmux_key("alice", "C-k");
    wait_input("alice", ">");
    /* Tab with nothing to complete inserts no blank */
    tmux_type("alice", "zz", 0);
    tmux_key("alice", "Tab");
    tmux_type("alice", "y", 0);
    wait_input("alice", "> zzy");
    tmux_key("alice", "C-u");
    /* commands, then user names seen in the chat */
    tmux_type("alice", "/tr", 0);
    tmux_key("alice", "Tab");
    tmux_type("alice", "bo", 0);
    tmux_key("alice", "Tab");
    tmux_type("alice", "1", 0);
    wait_input("alice", "> /transfer bob 1");
    tmux_key("alice", "C-u");
    tmux_type("alice", "bo", 0);
    tmux_key("alice", "Tab");
    tmux_type("alice", "hi", 0);
    wait_input("alice", "> bob: hi");
    tmux_key("alice", "C-u");
    ui_quit(&alice);
    h_server_stop(&s);
}

/* ---- scrolling, the alerts pane, /stats ---- */

static int has_no(const char *screen, void *arg)
{
    return !strstr(screen, arg);
}

static void wait_gone(const char *name, const char *needle)
{
    char what[256];
    snprintf(what, sizeof what, "\"%s\" gone from the screen", needle);
    free(tmux_wait_until(name, has_no, (void *)needle, what, h_deadline(WAIT_MS)));
}

/* PgUp scrolls back; Alt-End, Ctrl-End and End on an empty line come back
 * to the newest line; Alt-PgUp/Alt-PgDn scroll the alerts pane; /stats
 * hides and shows the cost line. */
static void test_scroll_and_stats(void **state)
{
    struct h_server s;
    struct ui_client alice;
    char token[80];
    (void)state;
    static const char *const quick_bank[] = { "--transfer-delay-ms", "200", NULL };
    h_server_start(&s, NULL, quick_bank);
    h_http_user(&s, "bob", token);
    ui_start(&alice, &s, "alice", "websocket", 60, 24, "--quiet");
    free(wait_connected(&alice, "websocket"));
    for (int i = 1; i <= 30; i++) {
        char m[32];
        snprintf(m, sizeof m, "line-%02d-scroll", i);
        post(&s, token, m);
    }
    free(tmux_wait_for("alice", "line-30-scroll", h_deadline(WAIT_MS)));
    const char *back[] = { "M-End", "C-End", "End" };
    for (size_t k = 0; k < 3; k++) {
        tmux_key("alice", "PageUp");
        free(tmux_wait_for("alice", "scrolled back", h_deadline(WAIT_MS)));
        wait_gone("alice", "line-30-scroll");
        tmux_key("alice", back[k]);
        wait_gone("alice", "scrolled back");
        free(tmux_wait_for("alice", "line-30-scroll", h_deadline(WAIT_MS)));
    }
    /* five transfers, a row each, fill more than the alerts pane */
    static const char *const amounts[] = { "1.01", "1.02", "1.03", "1.04", "1.05" };
    char line[64], done[64];
    for (int i = 0; i < 5; i++) {
        snprintf(line, sizeof line, "/transfer bob %s", amounts[i]);
        tmux_type("alice", line, 1);
        free(tmux_wait_for("alice", "y/n", h_deadline(WAIT_MS)));
        tmux_type("alice", "y", 0);
        snprintf(done, sizeof done, "transfer of %s to bob is complete", amounts[i]);
        free(tmux_wait_for("alice", done, h_deadline(WAIT_MS)));
    }
    tmux_key("alice", "Escape");
    free(tmux_wait_until("alice", no_popup, NULL, "the pop-up gone after Esc", h_deadline(WAIT_MS)));
    char *screen = tmux_capture("alice");
    CHECK(screen && !strstr(screen, "transfer of 1.01"), "the oldest alert shows:\n%s", screen);
    free(screen);
    tmux_key("alice", "M-PageUp");
    screen = tmux_wait_for("alice", "transfer of 1.01", h_deadline(WAIT_MS));
    CHECK(strstr(screen, "Alt-PgDn"), "no hint to scroll the alerts back:\n%s", screen);
    free(screen);
    tmux_key("alice", "M-PageDown");
    free(tmux_wait_for("alice", "completed Your transfer", h_deadline(WAIT_MS)));
    wait_gone("alice", "Alt-PgDn");
    /* /stats */
    free(tmux_wait_for("alice", " req ", h_deadline(WAIT_MS)));
    tmux_type("alice", "/stats", 1);
    free(tmux_wait_for("alice", "cost line hidden", h_deadline(WAIT_MS)));
    wait_gone("alice", " req ");
    tmux_type("alice", "/stats", 1);
    free(tmux_wait_for("alice", " req ", h_deadline(WAIT_MS)));
    ui_quit(&alice);
    h_server_stop(&s);
}

/* ---- /transport while messages keep coming ---- */

static char *wait_marker(const char *name, int i)
{
    char m[32];
    snprintf(m, sizeof m, "m%02d-switch", i);
    return tmux_wait_for(name, m, h_deadline(WAIT_MS));
}

static void post_marker(const struct h_server *s, const char *token, int i)
{
    char m[32];
    snprintf(m, sizeof m, "m%02d-switch", i);
    post(s, token, m);
}

static void test_transport_switch(void **state)
{
    struct h_server s;
    struct ui_client alice;
    char token[80];
    static const char *const order[] = { "long-poll", "short-poll", "websocket" };
    (void)state;
    h_server_start(&s, NULL, NULL);
    h_http_user(&s, "bob", token);
    ui_start(&alice, &s, "alice", "websocket", 100, 50, NULL);
    free(wait_connected(&alice, "websocket"));
    int n = 0;
    for (int i = 0; i < 3; i++)
        post_marker(&s, token, ++n);
    free(wait_marker("alice", n));
    for (size_t k = 0; k < 3; k++) {
        char cmd[64], own[32], done[64];
        snprintf(cmd, sizeof cmd, "/transport %s", order[k]);
        tmux_type("alice", cmd, 1);
        snprintf(own, sizeof own, "own-%zu-switch", k);
        tmux_type("alice", own, 1);         /* sent while switching */
        for (int i = 0; i < 3; i++)         /* and others' messages racing it */
            post_marker(&s, token, ++n);
        snprintf(done, sizeof done, "switched to %s", order[k]);
        free(tmux_wait_for("alice", done, h_deadline(WAIT_MS)));
        free(wait_connected(&alice, order[k]));
        free(wait_marker("alice", n));
        free(tmux_wait_for("alice", own, h_deadline(WAIT_MS)));
    }
    char *screen = tmux_capture("alice");
    CHECK(screen, "alice's session is gone");
    for (int i = 1; i <= n; i++) {
        char m[32];
        snprintf(m, sizeof m, "m%02d-switch", i);
        CHECK(count_of(screen, m) == 1, "%s shown %d times:\n%s", m, count_of(screen, m), screen);
    }
    for (int k = 0; k < 3; k++) {
        char own[32];
        snprintf(own, sizeof own, "own-%d-switch", k);
        CHECK(count_of(screen, own) == 1, "%s shown %d times:\n%s", own, count_of(screen, own), screen);
    }
    char events[32];
    snprintf(events, sizeof events, " %d events", n + 3);
    CHECK(strstr(screen, events), "the cost line does not count%s:\n%s", events, screen);
    free(screen);
    ui_quit(&alice);
    h_server_stop(&s);
}

/* ---- resizing and a narrow terminal ---- */

struct layout_want {
    const char *last_message;
    const char *input;          /* the last row starts with this */
    int cols;
    int side_by_side;
};

static int layout_ok(const char *screen, void *arg)
{
    const struct layout_want *w = arg;
    char last[1024], first[1024];
    int rows = screen_rows(screen);
    screen_row(screen, rows - 1, last, sizeof last);
    screen_row(screen, 0, first, sizeof first);
    return strncmp(last, w->input, strlen(w->input)) == 0 && strstr(screen, w->last_message) &&
           strstr(screen, "alice · long-poll") &&
           (!w->side_by_side || strstr(first, "alerts ("));
}

static void test_resize_and_narrow(void **state)
{
    struct h_server s;
    struct ui_client alice;
    char token[80];
    (void)state;
    h_server_start(&s, NULL, NULL);
    h_http_user(&s, "bob", token);
    ui_start(&alice, &s, "alice", "long-poll", 80, 24, NULL);
    free(wait_connected(&alice, "long-poll"));
    post(&s, token, "first message");
    post(&s, token, "the last message is long: the quick brown fox jumps over the lazy dog "
                    "and keeps running until farewell-end");
    free(tmux_wait_for("alice", "farewell-end", h_deadline(WAIT_MS)));
    tmux_type("alice", "draft-text", 0);
    struct layout_want want = { "farewell-end", "> draft-text", 60, 0 };
    free(tmux_wait_until("alice", layout_ok, &want, "the 80x24 layout", h_deadline(WAIT_MS)));

    tmux_resize("alice", 60, 20);
    char *screen = tmux_wait_until("alice", layout_ok, &want, "the 60x20 layout", h_deadline(WAIT_MS));
    check_widths(screen, 60);
    CHECK(screen_rows(screen) == 20, "60x20: %d rows", screen_rows(screen));
    free(screen);

    tmux_resize("alice", 120, 40);
    want.cols = 120;
    want.side_by_side = 1;
    screen = tmux_wait_until("alice", layout_ok, &want, "the 120x40 layout", h_deadline(WAIT_MS));
    check_widths(screen, 120);
    free(screen);

    tmux_resize("alice", 60, 12);           /* small: input and last message still there */
    tmux_key("alice", "Enter");             /* the draft is sent */
    want.last_message = "alice: draft-text";
    want.input = ">";                       /* capture-pane drops trailing spaces */
    want.side_by_side = 0;
    screen = tmux_wait_until("alice", layout_ok, &want, "the 60x12 layout", h_deadline(WAIT_MS));
    check_widths(screen, 60);
    free(screen);
    ui_quit(&alice);
    h_server_stop(&s);
}

/* ---- UTF-8 ---- */

static void strip_spaces(char *s)
{
    char *d = s;
    for (; *s; s++)
        if (*s != ' ' && *s != '\n')
            *d++ = *s;
    *d = '\0';
}

static void test_utf8(void **state)
{
    struct h_server s;
    struct ui_client alice;
    char token[80];
    static const char *mixed = "héllo wörld — ça marche ✓ 日本語テキスト 🎉 ok";
    static const char *cjk = "日本語のテキストは画面の幅で折り返されなければならない。"
                             "漢字も仮名も二桁の幅を持つ。終わり";
    (void)state;
    h_server_start(&s, NULL, NULL);
    h_http_user(&s, "bob", token);
    ui_start(&alice, &s, "alice", "websocket", 60, 20, NULL);
    free(wait_connected(&alice, "websocket"));
    post(&s, token, mixed);
    post(&s, token, cjk);
    char *screen = tmux_wait_for("alice", "終わり", h_deadline(WAIT_MS));
    CHECK(strstr(screen, mixed), "the mixed UTF-8 message is not intact:\n%s", screen);
    check_widths(screen, 60);
    strip_spaces(screen);
    CHECK(strstr(screen, cjk), "the wrapped CJK message is not intact:\n%s", screen);
    free(screen);
    tmux_type("alice", "typed: ça 日本 🎉 ok", 1);
    free(tmux_wait_for("alice", "alice: typed: ça 日本 🎉 ok", h_deadline(WAIT_MS)));
    ui_quit(&alice);
    h_server_stop(&s);
}

/* ---- escape sequences are shown, not obeyed ---- */

static void test_escapes_harmless(void **state)
{
    struct h_server s;
    struct ui_client alice;
    char token[80];
    (void)state;
    h_server_start(&s, NULL, NULL);
    h_http_user(&s, "bob", token);
    ui_start(&alice, &s, "alice", "websocket", 80, 24, NULL);
    free(wait_connected(&alice, "websocket"));
    char *title0 = tmux_format("alice", "#{pane_title}");
    post(&s, token, "canary-before");
    free(tmux_wait_for("alice", "canary-before", h_deadline(WAIT_MS)));
    post(&s, token, "evil\x1b[2J\x1b[H\x1b]2;pwned\x07\x1b[31mRED\x1b[0m bell\x07 "
                    "c1:\xc2\x9b" "31m rlo:\xe2\x80\xae" "abc del:\x7f end");
    post(&s, token, "canary-after");
    char *screen = tmux_wait_for("alice", "canary-after", h_deadline(WAIT_MS));
    CHECK(strstr(screen, "canary-before"), "the screen was cleared:\n%s", screen);
    CHECK(strstr(screen, "evil␛[2J␛[H␛]2;pwned␇␛[31mRED␛[0m bell␇"),
          "escape sequences not shown as symbols:\n%s", screen);
    CHECK(strstr(screen, "c1:\xef\xbf\xbd" "31m rlo:\xef\xbf\xbd" "abc del:␡ end"),
          "C1/bidi/DEL not neutralised:\n%s", screen);
    free(screen);
    char *title = tmux_format("alice", "#{pane_title}");
    CHECK(title && !strstr(title, "pwned"), "the message set the title: %s", title ? title : "");
    CHECK(!title0 || strcmp(title, title0) == 0, "the title changed: %s -> %s", title0, title);
    free(title);
    free(title0);
    CHECK(!bell_rung("alice"), "a bell character in a message rang the bell");
    ui_quit(&alice);
    h_server_stop(&s);
}

/* ---- /quit while logging in ---- */

/* A server that takes connections and never answers: a socket listening
 * on 127.0.0.1 that nobody accepts on. Closing it resets them all. */
static int silent_listener(int *port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0, "socket");
    CHECK(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(fd, 16) == 0 &&
          getsockname(fd, (struct sockaddr *)&sa, &len) == 0, "listening");
    *port = ntohs(sa.sin_port);
    return fd;
}

static int has_body(const json_t *events, const char *body)
{
    size_t i;
    const json_t *ev;
    json_array_foreach(events, i, ev) {
        const char *b = json_string_value(json_object_get(ev, "body"));
        if (b && strcmp(b, body) == 0)
            return 1;
    }
    return 0;
}

/* The login goes first to a server that does not answer; meanwhile a
 * message is typed and /quit given. The UI used to leave at once, the
 * message lost; it must wait for the login (which moves on to the real
 * server once the silent one hangs up), send the message, then exit 0. */
static void test_quit_while_logging_in(void **state)
{
    struct h_server s, both;
    struct ui_client alice;
    char token[80];
    int silent_port;
    (void)state;
    h_server_start(&s, NULL, NULL);
    int silent = silent_listener(&silent_port);
    both = s;
    int n = snprintf(both.url, sizeof both.url, "http://127.0.0.1:%d,%s", silent_port, s.url);
    CHECK(n < (int)sizeof both.url, "the two URLs do not fit");
    ui_start(&alice, &both, "alice", "websocket", 80, 24, NULL);
    free(tmux_wait_for("alice", "logging in", h_deadline(WAIT_MS)));
    tmux_type("alice", "typed while logging in", 1);
    tmux_type("alice", "/quit", 1);
    free(tmux_wait_for("alice", "leaving once queued messages are sent", h_deadline(WAIT_MS)));
    close(silent);              /* the login moves on to the real server */
    ui_wait_exit(&alice);
    h_http_user(&s, "bob", token);
    json_t *events = h_http_get_events(s.port, token, 0);
    CHECK(has_body(events, "typed while logging in"),
          "the message typed before the login was lost: %s",
          json_dumps(events, JSON_COMPACT));
    json_decref(events);
    h_server_stop(&s);
}

/* ---- the server gone: money and quitting ---- */

static int two_refusals(const char *screen, void *arg)
{
    (void)arg;
    return count_of(screen, "transfer not sent") == 2;
}

static json_int_t balance_of(const struct h_server *s, const char *token)
{
    struct h_http_resp r;
    h_http_call(s->port, "GET", "/api/v1/account", token, NULL, 0, &r);
    json_int_t cents = json_integer_value(json_object_get(r.json, "balance_cents"));
    CHECK(r.status == 200, "GET /api/v1/account: %d", r.status);
    h_http_resp_free(&r);
    return cents;
}

/* The server is killed under a long-polling client. A transfer typed twice
 * is refused twice and never paid; a message is queued, and says so (not
 * "sending failed"); /quit says on screen that it was not delivered and
 * waits; a second /quit leaves with exit status 4. */
static void test_offline_money_and_quit(void **state)
{
    struct h_server s;
    struct ui_client alice;
    char bob[80], alice_tok[80], pw[64];
    (void)state;
    h_server_start(&s, NULL, NULL);
    h_http_user(&s, "bob", bob);
    ui_start(&alice, &s, "alice", "long-poll", 80, 24, NULL);
    free(wait_connected(&alice, "long-poll"));
    h_server_kill(&s);
    free(tmux_wait_for("alice", "reconnecting", h_deadline(WAIT_MS)));
    tmux_type("alice", "/transfer bob 10", 1);
    tmux_type("alice", "/transfer bob 10", 1);
    free(tmux_wait_until("alice", two_refusals, NULL, "two \"transfer not sent\" lines",
                         h_deadline(WAIT_MS)));
    tmux_type("alice", "typed while the server is gone", 1);
    char *a = tmux_wait_for("alice", "queued", h_deadline(WAIT_MS));
    CHECK(!strstr(a, "sending failed"), "a queued message reported as failed:\n%s", a);
    free(a);
    tmux_type("alice", "/quit", 1);
    a = tmux_wait_for("alice", "/quit again", h_deadline(WAIT_MS));
    CHECK(strstr(a, "1 message"), "the count of undelivered messages is not shown:\n%s", a);
    free(a);
    CHECK(tmux_session_alive("alice"), "the client left without a second /quit");
    tmux_type("alice", "/quit", 1);
    ui_wait_exit_code(&alice, 4);
    h_server_start_same_port(&s);
    ui_password_of("alice", pw, sizeof pw);
    CHECK(h_http_login(s.port, "alice", pw, alice_tok) == 200, "login alice");
    CHECK(balance_of(&s, alice_tok) == 100000 && balance_of(&s, bob) == 100000,
          "a transfer typed offline was paid after the restart");
    h_server_stop(&s);
}

/* ---- your own message at once ---- */

static int sent_once(const char *screen, void *arg)
{
    return count_of(screen, (const char *)arg) == 1 && !strstr(screen, "(sending");
}

/* With the server gone, a message typed shows at once, marked as sending;
 * once the server is back and has stored it, the mark goes and the line
 * shows once (the echo does not add a second one). */
static void test_own_message_at_once(void **state)
{
    struct h_server s;
    struct ui_client alice;
    (void)state;
    h_server_start(&s, NULL, NULL);
    ui_start(&alice, &s, "alice", "websocket", 80, 24, NULL);
    free(wait_connected(&alice, "websocket"));
    h_server_kill(&s);
    free(tmux_wait_for("alice", "reconnecting", h_deadline(WAIT_MS)));
    tmux_type("alice", "typed-while-away", 1);
    free(tmux_wait_for("alice", "alice: typed-while-away (sending", h_deadline(WAIT_MS)));
    h_server_start_same_port(&s);
    free(tmux_wait_until("alice", sent_once, "alice: typed-while-away",
                         "the line shown once, without the sending mark", h_deadline(WAIT_MS)));
    ui_quit(&alice);
    h_server_stop(&s);
}

/* ---- wrong input gets the right word ---- */

static size_t chat_events_from(const struct h_server *s, const char *token, const char *from)
{
    size_t i, n = 0;
    const json_t *ev;
    json_t *events = h_http_get_events(s->port, token, 0);
    json_array_foreach(events, i, ev) {
        const char *f = json_string_value(json_object_get(ev, "from"));
        const char *t = json_string_value(json_object_get(ev, "type"));
        n += f && t && strcmp(t, "chat") == 0 && strcmp(f, from) == 0;
    }
    json_decref(events);
    return n;
}

/* 1 once token's feed holds a chat event with this body (long polls of
 * 1 s, so it waits for the event rather than sleep), 0 at deadline. The
 * client shows its own line before the server has stored it. */
static int chat_stored(const struct h_server *s, const char *token, const char *body, int64_t deadline)
{
    int64_t after = 0;
    char path[96];
    while (h_now_ms() < deadline) {
        struct h_http_resp r;
        snprintf(path, sizeof path, "/api/v1/events?after=%lld&wait=1", (long long)after);
        h_http_call(s->port, "GET", path, token, NULL, 0, &r);
        size_t i;
        const json_t *ev;
        int found = 0;
        json_array_foreach(json_object_get(r.json, "events"), i, ev) {
            const char *b = json_string_value(json_object_get(ev, "body"));
            found |= b && strcmp(b, body) == 0;
        }
        if (r.status == 200)
            after = json_integer_value(json_object_get(r.json, "next"));
        h_http_resp_free(&r);
        if (found)
            return 1;
    }
    return 0;
}

/* An unknown command is named, an upper-case user name says names are
 * lowercase, a line of only spaces is not sent, and a line past 4,096
 * bytes says where the limit is instead of being cut silently. */
static void test_wrong_input_says_why(void **state)
{
    struct h_server s;
    struct ui_client alice;
    char bob[80];
    (void)state;
    h_server_start(&s, NULL, NULL);
    h_http_user(&s, "bob", bob);
    ui_start(&alice, &s, "alice", "websocket", 100, 30, NULL);
    free(wait_connected(&alice, "websocket"));
    tmux_type("alice", "/foo bar", 1);
    free(tmux_wait_for("alice", "unknown command /foo (try /help)", h_deadline(WAIT_MS)));
    tmux_type("alice", "/nick carol", 1);
    free(tmux_wait_for("alice", "/nick is not supported", h_deadline(WAIT_MS)));
    tmux_type("alice", "/transfer BOB 1", 1);
    free(tmux_wait_for("alice", "user names are lowercase: /transfer bob 1", h_deadline(WAIT_MS)));
    tmux_type("alice", "     ", 1);
    tmux_type("alice", "after-the-blanks", 1);
    free(tmux_wait_for("alice", "alice: after-the-blanks", h_deadline(WAIT_MS)));
    CHECK(chat_stored(&s, bob, "after-the-blanks", h_deadline(WAIT_MS)), "the line after the blanks was not stored");
    CHECK(chat_events_from(&s, bob, "alice") == 1, "a line of only spaces was sent");
    char *big = malloc(4200);
    memset(big, 'x', 4199);
    big[4199] = '\0';
    tmux_type("alice", big, 0);
    free(big);
    free(tmux_wait_for("alice", "4,096 bytes", h_deadline(WAIT_MS)));
    tmux_key("alice", "C-u");
    ui_quit(&alice);
    h_server_stop(&s);
}

/* ---- input history kept between runs ---- */

/* Lines sent in one run come back with Up in the next, newest first: the
 * chat line and the /transfer command, not the "n" answering its
 * question nor /quit (Up and Enter must not leave); the file in
 * $XDG_STATE_HOME/chat/ is the user's only (0600 in a 0700 directory). */
static void test_history_between_runs(void **state)
{
    struct h_server s;
    struct ui_client alice;
    char token[80], path[700];
    struct stat st;
    (void)state;
    h_server_start(&s, NULL, NULL);
    h_http_user(&s, "bob", token);
    ui_start(&alice, &s, "alice", "websocket", 80, 24, NULL);
    free(wait_connected(&alice, "websocket"));
    tmux_type("alice", "first line", 1);
    tmux_type("alice", "/transfer bob 1", 1);
    free(tmux_wait_for("alice", "send 1.00 to bob? y/n", h_deadline(WAIT_MS)));
    tmux_type("alice", "n", 0);
    free(tmux_wait_for("alice", "transfer cancelled", h_deadline(WAIT_MS)));
    tmux_type("alice", "second line", 1);
    free(tmux_wait_for("alice", "alice: second line", h_deadline(WAIT_MS)));
    ui_quit(&alice);
    int64_t deadline = h_deadline(WAIT_MS);
    while (tmux_session_alive("alice") && h_now_ms() < deadline)
        h_pump(40);
    CHECK(!tmux_session_alive("alice"), "alice's tmux session did not end");

    snprintf(path, sizeof path, "%s/chat/history-alice", getenv("XDG_STATE_HOME"));
    char *text = ui_read_file(path);
    CHECK(text && strcmp(text, "first line\n/transfer bob 1\nsecond line\n") == 0,
          "the history file holds:\n%s", text ? text : "(no file)");
    free(text);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "history file mode %o",
          (unsigned)(st.st_mode & 0777));
    *strrchr(path, '/') = '\0';
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0700, "history dir mode %o",
          (unsigned)(st.st_mode & 0777));

    ui_spawn(&alice, &s, "alice", "websocket", 80, 24, "");
    free(wait_connected(&alice, "websocket"));
    tmux_key("alice", "Up");
    wait_input("alice", "> second line");
    tmux_key("alice", "Up");
    wait_input("alice", "> /transfer bob 1");
    tmux_key("alice", "Up");
    wait_input("alice", "> first line");
    tmux_key("alice", "C-u");
    ui_quit(&alice);
    h_server_stop(&s);
}

/* Banking habits in the UI: /balance, then a transfer over the balance is
 * refused by the client at once (nothing reaches the server); one within
 * it is paid, the new balance follows, and /transfers lists it in its
 * latest state. */
static void test_balance_and_transfers_list(void **state)
{
    struct h_server s;
    struct ui_client alice;
    char token[80];
    (void)state;
    static const char *const quick_bank[] = { "--transfer-delay-ms", "200", NULL };
    h_server_start(&s, NULL, quick_bank);
    h_http_user(&s, "bob", token);
    ui_start(&alice, &s, "alice", "websocket", 100, 30, "--quiet");
    free(wait_connected(&alice, "websocket"));
    tmux_type("alice", "/balance", 1);
    free(tmux_wait_for("alice", "1,000.00", h_deadline(WAIT_MS)));
    tmux_type("alice", "/transfer bob 2000", 1);
    free(tmux_wait_for("alice", "send 2,000.00 to bob? y/n", h_deadline(WAIT_MS)));
    tmux_type("alice", "y", 0);
    free(tmux_wait_for("alice", "insufficient funds: 2,000.00 is more than your balance",
                       h_deadline(WAIT_MS)));
    tmux_type("alice", "/transfer bob 5", 1);
    free(tmux_wait_for("alice", "send 5.00 to bob? y/n", h_deadline(WAIT_MS)));
    tmux_type("alice", "y", 0);
    free(tmux_wait_for("alice", "transfer of 5.00 to bob is complete", h_deadline(WAIT_MS)));
    free(tmux_wait_for("alice", "balance: 995.00", h_deadline(WAIT_MS)));
    tmux_type("alice", "/transfers", 1);
    char *screen = tmux_wait_for("alice", "#1 sent 5.00 to bob: completed", h_deadline(WAIT_MS));
    CHECK(!strstr(screen, "#2 "), "a second transfer reached the server:\n%s", screen);
    free(screen);
    ui_quit(&alice);
    h_server_stop(&s);
}

int main(void)
{
    if (!setlocale(LC_ALL, "C.UTF-8"))
        setlocale(LC_ALL, "C.utf8");
    if (getenv("UI_TEST_FILTER"))       /* e.g. UI_TEST_FILTER='*utf8*' */
        cmocka_set_test_filter(getenv("UI_TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_two_clients_chat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer_alerts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_colours, setup, teardown),
        cmocka_unit_test_setup_teardown(test_popup_narrow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scroll_and_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transport_switch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resize_and_narrow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escapes_harmless, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quit_while_logging_in, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offline_money_and_quit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_input_says_why, setup, teardown),
        cmocka_unit_test_setup_teardown(test_own_message_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_between_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_balance_and_transfers_list, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
