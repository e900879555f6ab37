/* frontend.h — the front-end interface (like transport.h: a struct of
 * function pointers per front end, one file each): headless.c (JSON lines
 * for scripts and tests) and ui.c (the full-screen terminal UI). A front end
 * shows what the app tells it (events, acks, errors, notices, the connection
 * state, the transport and server in use) and reads the user's input,
 * handing the app each command and the wish to quit. What quitting means
 * (waiting for acks up to a grace, the exit code) is decided in app.c only;
 * the core's callbacks are the app's, which passes them on. */
#ifndef CHAT_FRONTEND_H
#define CHAT_FRONTEND_H

#include "core.h"

#include <libwebsockets.h>

struct cmd;

/* Everything a front end needs; all pointers are borrowed and outlive it. */
struct frontend_env {
    struct core *core;          /* read only: outbox length, cost counters */
    struct lws_context *ctx;
    struct lws_vhost *vhost;    /* its input (stdin, the terminal) is adopted here */
    const char *user;
    const char *transport_name; /* the transport in use (static storage) */
    int auto_transport;         /* the app picks the transport (--transport auto) */
    const char *server_url;     /* the server in use */
    int several_servers;        /* more than one --server URL: it may change */
    int quiet;                  /* no bell on alerts */
    /* A parsed line other than /quit and /help (message, /transfer, ...). */
    void (*command)(void *arg, const struct cmd *c);
    /* The user asked to leave (/quit, end of input, Ctrl-C). */
    void (*quit_asked)(void *arg);
    /* The input is gone for good (the terminal closed): leave now. */
    void (*input_gone)(void *arg);
    /* Protocol v1.1: the room model (roomlist.h), the front end's to read
     * and to switch (roomlist_switch...); after a switch it calls room_shown.
     * page_wanted: the user scrolled past the oldest line of room; typing:
     * the user is typing a message (the app sends at most one in 3 s). */
    struct roomlist *rooms;
    void (*room_shown)(void *arg);
    void (*page_wanted)(void *arg, const char *room);
    void (*typing)(void *arg);
    void *arg;
};

/* How the run ended, for the front end's last words. */
struct frontend_exit {
    int code;                   /* the process's exit code */
    int logged_in;              /* the cost counters mean something */
};

struct frontend_ops {
    const char *name;
    const char *input;          /* what it reads, for messages: "stdin", "terminal" */
    /* The raw-file protocol its input binds to; add it to the vhost. */
    const struct lws_protocols *protocol;
    /* A person reads it: when the client goes offline it stays on screen
     * until asked to quit, instead of exiting. */
    int interactive;
    /* Takes over the input (and the terminal). NULL on failure, the
     * reason already reported. */
    void *(*create)(const struct frontend_env *env);
    /* Gives the input (and the terminal) back, then says its last words. */
    void (*destroy)(void *fe, const struct frontend_exit *how);
    /* The core's callbacks, passed on (core.h says what each means). */
    void (*show_event)(void *fe, const json_t *event);
    void (*show_state)(void *fe, enum core_state state, unsigned retry_ms);
    void (*show_ack)(void *fe, const char *client_msg_id, int64_t id);
    /* Optional: a message typed is queued under this client_msg_id (shown
     * at once, marked as sending, until show_ack with the same id). */
    void (*show_sending)(void *fe, const char *client_msg_id, const char *body);
    /* Optional: that message was refused for good (show_error said why). */
    void (*show_rejected)(void *fe, const char *client_msg_id);
    void (*show_error)(void *fe, const char *text);
    void (*show_notice)(void *fe, const char *text, const json_t *data);
    /* The transport was switched; name is static storage. */
    void (*show_transport)(void *fe, const char *name, int is_auto);
    /* Optional: the login succeeded; states before it are the login's own. */
    void (*show_logged_in)(void *fe);
    /* The server in use changed; url outlives the front end. */
    void (*show_server)(void *fe, const char *url);
    /* Optional: the app is leaving once what is queued is sent. */
    void (*show_quitting)(void *fe);
    /* The grace ran out with this many messages unacknowledged; the app
     * leaves next. */
    void (*show_grace_over)(void *fe, size_t unacked);
    /* Optional (v1.1): an ephemeral item (presence, typing), already in
     * the room model; a page of older events of room (start: the newest
     * of a room just joined), oldest first; the room model changed. */
    void (*show_ephemeral)(void *fe, const json_t *item);
    void (*show_history)(void *fe, const char *room, const json_t *events, int more, int start);
    void (*show_rooms)(void *fe);
    /* Optional: the terminal changed size (SIGWINCH). */
    void (*resize)(void *fe);
    /* An error without an instance (usage, setup) in this front end's format. */
    void (*print_error)(const char *text);
};

extern const struct frontend_ops frontend_headless;
extern const struct frontend_ops frontend_ui;

#endif
