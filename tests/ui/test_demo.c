/* test_demo.c — `make demo` as a user meets it on an 80x24 terminal:
 * scripts/demo.sh run in a tmux session of that size (outside any tmux, so
 * it opens and attaches its own session, on a private socket in the test's
 * TMUX_TMPDIR), with its own session name and data directory.
 *
 * - the log pane shows, readable at 80x24, how to leave and the exact
 *   command that starts the server again (a fixed port, the same database);
 *   the server killed, the hints say it is not running, and started again
 *   with the command shown, both clients are connected again;
 * - /quit in both clients ends the demo: the script exits 0, its tmux
 *   session is gone, and no chatd is left on its database (neither the one
 *   it started nor the one started by hand);
 * - run inside tmux, the demo is a new window of that session (no nested
 *   tmux, whose prefix key would be taken): its hints say that closing the
 *   window ends it, and closing it ends it, with no chatd left;
 * - without a terminal nothing is started: it says the demo needs a
 *   terminal, exits 1, and the commands it prints work (the server started
 *   as printed, a client run as printed gets connected); nor does
 *   scripts/cluster.sh demo, which prints how to start a cluster by hand.
 * Whatever fails, teardown kills the demo's tmux server and every chatd on
 * its database. */
#include "../e2e/harness.h"
#include "tmux.h"
#include "ui_client.h"

#include <ctype.h>
#include <dirent.h>
#include <limits.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WAIT_MS 30000
#define SESSION "chat-demo-test"

static char top[PATH_MAX], chatd_bin[PATH_MAX], chat_bin[PATH_MAX], demo_dir[PATH_MAX];

static int setup(void **state)
{
    (void)state;
    tmux_init();
    const char *chatd = getenv("CHATD_BIN") ? getenv("CHATD_BIN") : "bin/chatd";
    const char *chat = getenv("CHAT_BIN") ? getenv("CHAT_BIN") : "bin/chat";
    if (!realpath(chatd, chatd_bin) || !realpath(chat, chat_bin) || !realpath(".", top))
        fail_msg("cannot find %s or %s", chatd, chat);
    snprintf(demo_dir, sizeof demo_dir, "%s/demo", h_tmpdir());
    return 0;
}

/* The PIDs of the chatd processes on the demo's database (at most max). */
static int demo_servers(pid_t *pids, int max)
{
    char needle[PATH_MAX + 16], path[300], cmd[4096];
    snprintf(needle, sizeof needle, "--db %s/chat.db", demo_dir);
    int n = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d)) && n < max) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(cmd, 1, sizeof cmd - 1, f);
        fclose(f);
        for (size_t i = 0; i < len; i++)
            if (cmd[i] == '\0')
                cmd[i] = ' ';
        cmd[len] = '\0';
        if (strstr(cmd, "chatd") && strstr(cmd, needle))
            pids[n++] = (pid_t)atoi(e->d_name);
    }
    if (d)
        closedir(d);
    return n;
}

/* The demo's own tmux server (the default socket in TMUX_TMPDIR). */
static int demo_tmux(const char *args)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "tmux %s >/dev/null 2>&1", args);
    return system(cmd);
}

/* The demo's log pane, wrapped lines joined (capture-pane -J). */
static char *demo_log_pane(void)
{
    FILE *p = popen("tmux capture-pane -p -J -t '=" SESSION ":.2' 2>/dev/null", "r");
    if (!p)
        return NULL;
    char *buf = ui_read_stream(p);
    pclose(p);
    return buf;
}

static int teardown(void **state)
{
    (void)state;
    pid_t pids[16];
    tmux_cleanup();
    demo_tmux("kill-server");
    int n = demo_servers(pids, 16);
    for (int i = 0; i < n; i++)
        kill(pids[i], SIGKILL);
    harness_cleanup();
    return 0;
}

/* The environment the demo runs in: our binaries, a private HOME, no TMUX
 * (the pane's: the demo must behave as in a plain terminal). */
static void demo_env(char *buf, size_t size)
{
    snprintf(buf, size,
             "cd '%s' && unset TMUX && export LANG=C.UTF-8 HOME='%s' CHATD_BIN='%s' "
             "CHAT_BIN='%s' DEMO_SESSION=" SESSION " DEMO_DIR='%s'",
             top, h_tmpdir(), chatd_bin, chat_bin, demo_dir);
}

/* The row of screen that contains needle, trimmed (into buf). */
static const char *row_with(const char *screen, const char *needle, char *buf, size_t size)
{
    for (int i = 0; i < screen_rows(screen); i++) {
        screen_row(screen, i, buf, size);
        if (strstr(buf, needle)) {
            char *s = buf;
            while (*s == ' ')
                s++;
            memmove(buf, s, strlen(s) + 1);
            size_t n = strlen(buf);
            while (n && buf[n - 1] == ' ')
                buf[--n] = '\0';
            return buf;
        }
    }
    return NULL;
}

/* Both clients' status bars say connected. */
static int both_connected(const char *screen, void *arg)
{
    (void)arg;
    return count_of(screen, " connected") == 2;
}

/* Alice's status bar (the active pane) says connected. */
static int alice_connected(const char *screen, void *arg)
{
    (void)arg;
    return count_of(screen, " connected") == 1;
}

/* Neither client is connected and the hints say the server is gone. */
static int server_down(const char *screen, void *arg)
{
    (void)arg;
    return count_of(screen, " connected") == 0 && strstr(screen, "chatd: not running");
}

static int pid_shown(const char *screen)
{
    const char *p = strstr(screen, "chatd: pid ");
    return p ? atoi(p + strlen("chatd: pid ")) : 0;
}

/* The server's PID shown is a new one. */
static int new_pid_shown(const char *screen, void *arg)
{
    int pid = pid_shown(screen);
    return pid > 0 && pid != *(int *)arg;
}

static void test_demo_restart_and_leave(void **state)
{
    (void)state;
    char env[24576], cmd[40960], status[PATH_MAX + 16], row[1024], want[PATH_MAX + 32];
    demo_env(env, sizeof env);
    snprintf(status, sizeof status, "%s/demo.status", h_tmpdir());
    snprintf(cmd, sizeof cmd, "%s && scripts/demo.sh websocket; echo $? >'%s.tmp'; mv '%s.tmp' '%s'; sleep 60",
             env, status, status, status);
    tmux_new_session("term", 80, 24, cmd);
    const char *off[] = { "set-option", "-g", "status", "off", NULL };  /* a bare 80x24 terminal */
    tmux_run(NULL, off);

    char *screen = tmux_wait_until("term", both_connected, NULL, "both clients connected",
                                   h_deadline(WAIT_MS));
    free(screen);
    screen = tmux_wait_for("term", "to start it again, run:", h_deadline(WAIT_MS));
    CHECK(strstr(screen, "leave: /quit in both clients, or Ctrl-b d (detach) ends the demo"),
          "how to leave is not readable at 80x24:\n%s", screen);
    /* The command as one line, however the pane wrapped it. */
    char *log_pane = demo_log_pane();
    const char *restart = log_pane ? row_with(log_pane, " --port ", row, sizeof row) : NULL;
    CHECK(restart, "no restart command in the log pane:\n%s", screen);
    free(log_pane);
    snprintf(want, sizeof want, "%s --port ", chatd_bin);
    CHECK(strncmp(restart, want, strlen(want)) == 0 && atoi(restart + strlen(want)) > 0,
          "the restart command does not name chatd and a fixed port: %s", restart);
    snprintf(want, sizeof want, " --db %s/chat.db", demo_dir);
    CHECK(strstr(restart, want), "the restart command does not name the demo's database: %s",
          restart);
    int pid = pid_shown(screen);
    pid_t running[4];
    CHECK(pid > 0 && demo_servers(running, 4) == 1 && running[0] == pid,
          "the PID shown (%d) is not the server's:\n%s", pid, screen);
    free(screen);

    /* Kill it as the hint says, then start it again with the command shown. */
    CHECK(kill(pid, SIGTERM) == 0, "kill %d failed", pid);
    free(tmux_wait_until("term", server_down, NULL, "clients and hints saying the server is down",
                         h_deadline(WAIT_MS)));
    tmux_new_session("restart", 80, 24, restart);
    free(tmux_wait_until("term", new_pid_shown, &pid, "the new server's PID in the hints",
                         h_deadline(WAIT_MS)));
    free(tmux_wait_until("term", both_connected, NULL, "both clients connected again",
                         h_deadline(WAIT_MS)));

    /* /quit in each client's pane ends the demo: bob's (pane 1) first, as
     * alice's pane 0 keeps its number when bob's closes. */
    CHECK(demo_tmux("send-keys -t '=" SESSION ":.1' -l /quit") == 0 &&
          demo_tmux("send-keys -t '=" SESSION ":.1' Enter") == 0 &&
          demo_tmux("send-keys -t '=" SESSION ":.0' -l /quit") == 0 &&
          demo_tmux("send-keys -t '=" SESSION ":.0' Enter") == 0,
          "cannot type /quit in the clients");
    int64_t deadline = h_deadline(WAIT_MS);
    char *rc = NULL;
    while (!(rc = ui_read_file(status)) && h_now_ms() < deadline)
        h_pump(100);
    screen = tmux_capture("term");
    CHECK(rc, "the demo did not end after /quit in both clients:\n%s", screen ? screen : "");
    CHECK(atoi(rc) == 0, "the demo exited %d:\n%s", atoi(rc), screen ? screen : "");
    CHECK(screen && strstr(screen, "demo over: server stopped"), "no goodbye:\n%s",
          screen ? screen : "");
    CHECK(demo_tmux("has-session -t '=" SESSION "'") != 0, "the demo's tmux session is left");
    deadline = h_deadline(10000);
    while (demo_servers(running, 4) > 0 && h_now_ms() < deadline)
        h_pump(100);
    CHECK(demo_servers(running, 4) == 0, "chatd %d is left running", (int)running[0]);
    free(rc);
    free(screen);
}

/* The demo's window inside the test's own tmux session "term". */
static char *capture_window_pane(int pane)
{
    char target[64], *out = NULL;
    snprintf(target, sizeof target, "=term:chat-demo.%d", pane);
    const char *args[] = { "capture-pane", "-p", "-t", target, NULL };
    if (tmux_run(&out, args) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

static void test_demo_inside_tmux(void **state)
{
    (void)state;
    char env[24576], cmd[40960], status[PATH_MAX + 16];
    demo_env(env, sizeof env);
    snprintf(status, sizeof status, "%s/demo.status", h_tmpdir());
    /* TMUX stays set: the demo runs in a pane of the session "term". */
    snprintf(cmd, sizeof cmd, "outer=\"$TMUX\"; %s && export TMUX=\"$outer\" && scripts/demo.sh; "
             "echo $? >'%s.tmp'; mv '%s.tmp' '%s'; sleep 60", env, status, status, status);
    tmux_new_session("term", 80, 24, cmd);

    int64_t deadline = h_deadline(WAIT_MS);
    const char *list[] = { "list-windows", "-t", "=term:", "-F", "#{window_name} #{window_panes}", NULL };
    char *windows = NULL, *log = NULL;
    while (h_now_ms() < deadline) {
        free(windows);
        tmux_run(&windows, list);
        if (windows && strstr(windows, "chat-demo 3\n"))
            break;
        h_pump(100);
    }
    free(windows);
    while (h_now_ms() < deadline) {
        free(log);
        log = capture_window_pane(2);
        if (log && strstr(log, "to start it again, run:"))
            break;
        h_pump(100);
    }
    CHECK(log && strstr(log, "leave: /quit in both clients, or Ctrl-b & (closes this window)"),
          "no demo window with the right way to leave:\n%s", log ? log : "(none)");
    free(log);
    free(tmux_wait_until("term", alice_connected, NULL, "alice connected",
                         h_deadline(WAIT_MS)));

    const char *kill_window[] = { "kill-window", "-t", "=term:chat-demo", NULL };
    CHECK(tmux_run(NULL, kill_window) == 0, "cannot close the demo's window");
    deadline = h_deadline(WAIT_MS);
    char *rc = NULL;
    while (!(rc = ui_read_file(status)) && h_now_ms() < deadline)
        h_pump(100);
    CHECK(rc && atoi(rc) == 0, "the demo did not end when its window was closed");
    pid_t running[4];
    deadline = h_deadline(10000);
    while (demo_servers(running, 4) > 0 && h_now_ms() < deadline)
        h_pump(100);
    CHECK(demo_servers(running, 4) == 0, "chatd %d is left running", (int)running[0]);
    free(rc);
}

static void test_no_terminal(void **state)
{
    (void)state;
    char env[24576], cmd[32768], line[2048], server[2048] = "", alice[2048] = "";
    demo_env(env, sizeof env);
    snprintf(cmd, sizeof cmd, "%s && scripts/demo.sh </dev/null 2>&1; echo \"rc=$?\"", env);
    FILE *p = popen(cmd, "r");
    CHECK(p, "popen failed");
    char out[16384] = "";
    while (fgets(line, sizeof line, p)) {
        strncat(out, line, sizeof out - strlen(out) - 1);
        if (strncmp(line, "    ", 4) == 0) {
            line[strcspn(line, "\n")] = '\0';
            if (!*server)
                snprintf(server, sizeof server, "%s", line + 4);
            else if (!*alice)
                snprintf(alice, sizeof alice, "%s", line + 4);
        }
    }
    pclose(p);
    CHECK(strstr(out, "The demo needs a terminal") && strstr(out, "nothing was started"),
          "it does not say it needs a terminal:\n%s", out);
    CHECK(strstr(out, "rc=1"), "it did not exit 1:\n%s", out);
    pid_t running[4];
    CHECK(demo_servers(running, 4) == 0, "a server was started without a terminal");
    CHECK(strstr(server, "chatd --port ") && strstr(alice, "--user alice"),
          "no server and client commands:\n%s", out);

    /* The commands work as printed. */
    tmux_new_session("server", 80, 24, server);
    char with_home[8192];
    snprintf(with_home, sizeof with_home, "HOME='%s' %s", h_tmpdir(), alice);
    tmux_new_session("alice", 80, 24, with_home);
    free(tmux_wait_for("alice", " connected", h_deadline(WAIT_MS)));

    /* make demo-cluster likewise starts nothing (no PostgreSQL, no HAProxy). */
    snprintf(cmd, sizeof cmd, "%s && scripts/cluster.sh demo </dev/null 2>&1; echo \"rc=$?\"", env);
    p = popen(cmd, "r");
    CHECK(p, "popen failed");
    out[0] = '\0';
    while (fgets(line, sizeof line, p))
        strncat(out, line, sizeof out - strlen(out) - 1);
    pclose(p);
    CHECK(strstr(out, "The cluster demo needs a terminal") && strstr(out, "nothing was started") &&
          strstr(out, "scripts/cluster.sh start DIR") && strstr(out, "rc=1") &&
          !strstr(out, "starting PostgreSQL"),
          "make demo-cluster without a terminal:\n%s", out);
}

int main(void)
{
    if (!setlocale(LC_ALL, "C.UTF-8"))
        setlocale(LC_ALL, "C.utf8");
    if (getenv("UI_TEST_FILTER"))
        cmocka_set_test_filter(getenv("UI_TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_demo_restart_and_leave, setup, teardown),
        cmocka_unit_test_setup_teardown(test_demo_inside_tmux, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_terminal, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
