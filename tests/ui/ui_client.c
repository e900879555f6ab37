/* ui_client.c — bin/chat in a tmux session for the UI tests (ui_client.h):
 * the client's path, its start command, and its clean exit. */
#include "ui_client.h"
#include "tmux.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char chat_bin[PATH_MAX];

void ui_setup(void)
{
    tmux_init();
    const char *bin = getenv("CHAT_BIN") ? getenv("CHAT_BIN") : "bin/chat";
    if (!realpath(bin, chat_bin))
        fail_msg("cannot find the client %s", bin);
}

void ui_teardown(void)
{
    tmux_cleanup();
    harness_cleanup();
}

void ui_password_of(const char *user, char *buf, size_t size)
{
    snprintf(buf, size, "%s-ui-test-password", user);
}

void ui_spawn(struct ui_client *c, const struct h_server *s, const char *user,
              const char *transport, int cols, int rows, const char *flags)
{
    ui_spawn_as(c, user, s, user, transport, cols, rows, flags);
}

void ui_spawn_as(struct ui_client *c, const char *session, const struct h_server *s, const char *user,
                 const char *transport, int cols, int rows, const char *flags)
{
    char cmd[8192], pw[64];
    const char *dir = h_tmpdir();
    snprintf(c->name, sizeof c->name, "%s", session);
    snprintf(c->user, sizeof c->user, "%s", user);
    snprintf(c->err, sizeof c->err, "%s/%s.err", dir, session);
    snprintf(c->status, sizeof c->status, "%s/%s.status", dir, session);
    ui_password_of(user, pw, sizeof pw);
    snprintf(cmd, sizeof cmd,
             "LANG=C.UTF-8 CHAT_PASSWORD='%s' timeout --foreground 300 '%s' --server %s "
             "--user %s --transport %s --interval-ms 100 %s 2>'%s'; "
             "echo $? >'%s.tmp' && mv '%s.tmp' '%s'",
             pw, chat_bin, s->url, user, transport, flags ? flags : "", c->err,
             c->status, c->status, c->status);
    tmux_new_session(c->name, cols, rows, cmd);
}

char *ui_read_stream(FILE *f)
{
    char *buf = calloc(1, 1 << 16);
    size_t n = buf ? fread(buf, 1, (1 << 16) - 1, f) : 0;
    (void)n;
    return buf;
}

char *ui_read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = ui_read_stream(f);
    fclose(f);
    return buf;
}

void ui_wait_exit_code(struct ui_client *c, int want)
{
    int64_t deadline = h_deadline(UI_WAIT_MS);
    char *status = NULL;
    while (!(status = ui_read_file(c->status)) && h_now_ms() < deadline)
        h_pump(40);
    char *err = ui_read_file(c->err);
    if (!status || atoi(status) != want) {
        char *screen = tmux_capture(c->name);
        fprintf(stderr, "---- %s screen ----\n%s\n---- %s stderr ----\n%s\n", c->name,
                screen ? screen : "(gone)", c->name, err ? err : "(none)");
        free(screen);
    }
    CHECK(status, "%s did not exit", c->name);
    CHECK(atoi(status) == want, "%s exited with status %d, want %d", c->name, atoi(status), want);
    CHECK(err && !strstr(err, "Sanitizer") && !strstr(err, "runtime error"),
          "%s: sanitizer report on stderr:\n%s", c->name, err ? err : "");
    char cost[64];
    snprintf(cost, sizeof cost, "chat: %s, ", c->user[0] ? c->user : c->name);
    CHECK(strstr(err, cost) && strstr(err, " requests · "),
          "%s: no cost line on stderr at exit:\n%s", c->name, err);
    free(status);
    free(err);
}

void ui_quit(struct ui_client *c)
{
    tmux_type(c->name, "/quit", 1);
    ui_wait_exit_code(c, 0);
}
