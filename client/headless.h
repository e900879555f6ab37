/* headless.h — the line-oriented front end for scripts and tests: stdin
 * lines become messages, events go to stdout and status to stderr, one JSON
 * object per line. The output format is documented in headless.c. */
#ifndef CHAT_HEADLESS_H
#define CHAT_HEADLESS_H

#include <libwebsockets.h>

struct core;
struct cmd;

struct headless_env {
    struct core *core;          /* its callbacks are set to ours */
    struct lws_context *ctx;
    struct lws_vhost *vhost;    /* stdin is adopted here */
    const char *transport;      /* name, for the state lines */
    int auto_transport;         /* the app picks the transport (--transport auto) */
    const char *server;         /* URL of the server in use, for the state lines */
    void (*quit)(void *arg, int exit_code);
    /* Carries out a parsed line other than /quit (message, /transfer, ...). */
    void (*command)(void *arg, const struct cmd *c);
    /* Requests other than messages still in flight; quit waits for them. */
    int (*pending)(void *arg);
    void *arg;
};

struct headless;
/* Adopts stdin into the lws loop. NULL on failure. */
struct headless *headless_new(const struct headless_env *env);
void headless_free(struct headless *h);
/* The transport was switched: later state and stats lines carry name
 * (static storage) and, if is_auto, "auto":true. h may be NULL. */
void headless_set_transport(struct headless *h, const char *name, int is_auto);
/* Login succeeded: from now on /quit waits for the outbox, not the login.
 * h may be NULL. */
void headless_logged_in(struct headless *h);
/* The server in use changed: later state lines carry url (borrowed; it
 * must outlive h). h may be NULL. */
void headless_set_server(struct headless *h, const char *url);
/* One {"stats":{...}} line: the cost counters at exit. */
void headless_print_stats(struct headless *h);
/* Errors before the core exists (startup, usage) in the same format. */
void headless_print_error(const char *text);

/* The raw-file protocol stdin binds to; add it to the vhost. */
const struct lws_protocols *headless_protocol(void);

#endif
