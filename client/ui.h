/* ui.h — the full-screen ncurses front end (bin/chat without --headless):
 * chat pane, alerts pane, pop-up alerts, input line with history, status bar
 * with the connection state and the transport's live cost. It renders the
 * core's state and calls back into the app for commands; no protocol here.
 *
 * The terminal is read through the lws loop: fd 0 is adopted as a raw file
 * and keys are taken with get_wch() in no-delay mode when it is readable.
 * Resizes arrive as SIGWINCH through the app's signalfd (ui_resize). */
#ifndef CHAT_UI_H
#define CHAT_UI_H

#include <libwebsockets.h>

struct core;
struct cmd;

struct ui_env {
    struct core *core;          /* its callbacks are set to ours */
    struct lws_context *ctx;
    struct lws_vhost *vhost;    /* the terminal is adopted here */
    const char *user;
    const char *transport;      /* name shown in the status bar (copied) */
    const char *server;         /* URL shown in the status bar, or NULL (borrowed) */
    int quiet;                  /* no bell on alerts */
    void (*quit)(void *arg, int exit_code);
    /* Carries out a parsed line other than /quit and /help. */
    void (*command)(void *arg, const struct cmd *c);
    /* Requests other than messages still in flight; quit waits for them. */
    int (*pending)(void *arg);
    void *arg;
};

struct ui;
/* Takes over the terminal. NULL (terminal untouched, reason on stderr) if
 * stdin/stdout are not a terminal or curses cannot start. */
struct ui *ui_new(const struct ui_env *env);
/* Gives the terminal back; then, if logged in, prints the cost counters
 * and, when exit_code is not 0, the last error, on stderr. */
void ui_free(struct ui *u, int exit_code);
/* The transport was switched: name is copied ("long-poll", "auto: long-poll"). */
void ui_set_transport(struct ui *u, const char *name);
/* The server in use changed (url borrowed; it must outlive u). Shown only
 * if the UI was started with a server. u may be NULL. */
void ui_set_server(struct ui *u, const char *url);
/* The terminal changed size (SIGWINCH). */
void ui_resize(struct ui *u);

/* The raw-file protocol the terminal binds to; add it to the vhost. */
const struct lws_protocols *ui_protocol(void);

#endif
