/* ui_client.h — bin/chat in a tmux session, for the UI tests: where its
 * stderr and exit status go, how it starts (a given user, transport and
 * terminal size) and how a test waits for it to exit cleanly. One copy of
 * what every UI test file needs around tmux.h. */
#ifndef UI_CLIENT_H
#define UI_CLIENT_H

#include "../e2e/harness.h"

#include <stddef.h>
#include <stdio.h>

#define UI_WAIT_MS 20000

struct ui_client {
    char name[32];              /* tmux session name (the user name, by default) */
    char user[32];              /* who it logs in as */
    char err[512], status[512]; /* files in the harness's temp dir */
};

/* tmux_init() and finds the client (CHAT_BIN, else bin/chat); fails the
 * test if it is not there. */
void ui_setup(void);
/* tmux_cleanup() and harness_cleanup(). */
void ui_teardown(void);

/* The password the UI tests give user. */
void ui_password_of(const char *user, char *buf, size_t size);

/* bin/chat for user in a cols x rows tmux session, with flags (e.g.
 * "--register"); stderr and the exit status go to c->err and c->status. */
void ui_spawn(struct ui_client *c, const struct h_server *s, const char *user,
              const char *transport, int cols, int rows, const char *flags);
/* The same in a tmux session named session (a second client of one user). */
void ui_spawn_as(struct ui_client *c, const char *session, const struct h_server *s, const char *user,
                 const char *transport, int cols, int rows, const char *flags);

/* What a stream holds, its first 64 KiB (malloc'd, NUL-terminated), or NULL. */
char *ui_read_stream(FILE *f);
/* The first 64 KiB of a file (malloc'd, NUL-terminated), or NULL. */
char *ui_read_file(const char *path);

/* Waits (UI_WAIT_MS) for the client to exit: status `want`, no sanitizer
 * report, and the cost line on stderr; prints the screen and stderr first
 * when the status is not the one wanted. */
void ui_wait_exit_code(struct ui_client *c, int want);
/* /quit, then ui_wait_exit_code(c, 0). */
void ui_quit(struct ui_client *c);

#endif
