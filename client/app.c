/* app.c — wiring of one run. The lws context's user pointer is the app;
 * protocols[0] is the wsi lifecycle protocol, then HTTP requests, the front
 * end's input (stdin or the terminal), signals and every transport's own
 * protocol (WebSocket), so the transport can be switched at run time.
 * Order of events: login (login.c), then the v1.1 start (sync.c: the cursor
 * from after=latest, the rooms, the newest history of the room on screen,
 * delivered through the core; another room's comes when first shown),
 * then the transport starts from that cursor; messages
 * typed meanwhile wait in the outbox. Nothing is freed from inside a callback:
 * leaving only sets a flag, and the loop in app_run tears everything down
 * afterwards; a transport switch is carried out on the next loop pass.
 *
 * The front end (frontend.h: headless.c or ui.c) is one ops table and its
 * state; the core's callbacks are the app's, passed on to it. Quitting is
 * decided here, once for both: the first request to quit (/quit, end of
 * input, Ctrl-C) waits for the login, then until every message is
 * acknowledged and every bank request answered, at most APP_QUIT_GRACE_MS.
 * Drained, it exits 0. When the grace runs out with messages or transfers
 * undelivered, the front end is told how many (show_grace_over); a script's
 * run (headless) then ends with APP_EXIT_UNDELIVERED (4), an interactive
 * one stays on screen, still trying, until a second request to quit. A
 * second request, one while offline, or the terminal closing leaves at
 * once: the core's exit code once offline, else 4 if anything is
 * undelivered (the front end told how many first), else 0. Going offline
 * (the client gave up) ends a run nobody watches at once with the core's
 * exit code; an interactive front end stays until asked to quit. SIGINT,
 * SIGTERM and SIGHUP leave at once with 128 + the signal.
 *
 * Money: the bank exists from the start; a transfer or /balance asked for
 * before the login is held by bank.c (its idempotency key drawn when it
 * was asked for) and sent once logged in. After the login, a transfer asked
 * for while the connection is lost (reconnecting or offline) is refused,
 * never queued: paid minutes later it would surprise the user, and typed
 * again because nothing seemed to happen it would be paid twice. A
 * transfer already under way when the connection drops keeps its key
 * through every retry (bank.c). A transfer completed or received during
 * the run fetches the new balance (shown as a notice after the alert);
 * bank.c refuses a transfer over a balance it knows. /transfers lists the
 * transfers the feed has told of (transfer_log.c).
 *
 * Switching transports keeps the core, so its cursor and outbox: the new
 * transport resumes after the last event shown (the core drops anything at
 * or below it) and sends again whatever is unacknowledged, with the same
 * client_msg_id for the server to dedupe. The old transport is told to stop
 * (a WebSocket sends its close frame) and destroyed once it has, or after
 * APP_GOODBYE_MS.
 *
 * Auto mode (--transport auto, or /transport auto) uses that same switch:
 * it starts on the WebSocket; when the upgrade is refused (the transport
 * asks ws_refused) it switches to long polling and, cfg->ws_retry_s later,
 * back to the WebSocket, and so on until the WebSocket holds.
 *
 * Failover: every request and connection goes to the current server of
 * cfg->servers and a failed server moves the list on (http.c, the
 * WebSocket); the app only tells the front end which server is in use. */
#include "app.h"
#include "login.h"
#include "backoff.h"
#include "bank.h"
#include "commands.h"
#include "core.h"
#include "frontend.h"
#include "http.h"
#include "protocol.h"
#include "roomlist.h"
#include "servers.h"
#include "sync.h"
#include "transfer_log.h"
#include "transport.h"
#include "wsi_owner.h"

#include <libwebsockets.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define APP_PROTOCOLS_MAX 10
#define APP_RETIRE_POLL_MS 20
#define APP_GOODBYE_MS    500     /* patience for an orderly close */
#define APP_QUIT_GRACE_MS 5000    /* for the outbox and the bank after /quit */
#define APP_EXIT_UNDELIVERED 4    /* left with messages or transfers undelivered */
#define APP_ALERT_FRESH_MS 60000  /* an alert older than the login by more is history */
#define APP_TRANSFERS_LISTED 10   /* rows /transfers shows */
#define APP_READ_DEBOUNCE_MS 1000 /* a read marker waits for the view to settle */
#define APP_HELD_MAX 8            /* room commands held until the start is over */

struct app {
    const struct app_config *cfg;
    struct lws_protocols protocols[APP_PROTOCOLS_MAX];
    struct lws_context *ctx;
    struct core *core;
    struct http *http;
    struct login *login;
    struct bank *bank;
    struct transfer_log *tlog;   /* for /transfers, from the feed's alerts */
    struct roomlist *rooms;         /* joined rooms, unread, presence, typing */
    struct sync *sync;           /* the v1.1 calls: start, history, rooms */
    int in_history;              /* delivering the start's history */
    int started;                 /* the start is over: the transport may run */
    /* Room commands typed before the start is over, done once it is. */
    struct held_cmd { struct cmd c; char text[PROTO_TOPIC_MAX + 1]; } held[APP_HELD_MAX];
    size_t n_held;
    lws_sorted_usec_list_t sul_read;
    const struct frontend_ops *frontend_ops;
    void *frontend;
    const struct transport_ops *transport_ops;     /* the current transport */
    void *transport;
    const struct transport_ops *old_transport_ops; /* one saying goodbye after a switch */
    void *old_transport;
    lws_usec_t old_deadline;
    lws_sorted_usec_list_t sul_retire;
    const struct transport_ops *switch_to;
    lws_sorted_usec_list_t sul_switch;
    int auto_mode;               /* the app picks websocket or long-poll */
    lws_sorted_usec_list_t sul_ws_retry;
    struct transport_env env;
    char token[257];
    int logged_in;
    int64_t login_ms;            /* wall clock at the login */
    int offline;                 /* the core gave up (CORE_OFFLINE) */
    int quitting;                /* asked to quit: leaving once drained */
    lws_sorted_usec_list_t sul_quit_grace;
    int done, exit_code;
    lws_sorted_usec_list_t sul_goodbye;
    int goodbye_over;
};

/* Ends the run: the loop in app_run stops and tears everything down. */
static void app_leave(struct app *a, int exit_code)
{
    if (a->done)
        return;
    a->done = 1;
    a->exit_code = exit_code;
    lws_sul_cancel(&a->sul_quit_grace);
    lws_cancel_service(a->ctx);
}

/* ---- quitting: the one policy for every front end ---- */

/* Messages not acknowledged and transfers not answered. */
static size_t undelivered(const struct app *a)
{
    return core_outbox_len(a->core) + (size_t)bank_transfers_pending(a->bank);
}

static int exit_code_now(const struct app *a)
{
    if (a->offline && core_exit_code(a->core))
        return core_exit_code(a->core);
    return undelivered(a) ? APP_EXIT_UNDELIVERED : 0;
}

/* Leaves at once, telling the front end first what is left behind. */
static void leave_now(struct app *a)
{
    size_t n = undelivered(a);
    if (n && !a->done)
        a->frontend_ops->show_grace_over(a->frontend, n);
    app_leave(a, exit_code_now(a));
}

/* Quitting, logged in and nothing left to send or hear back: go. */
static void quit_if_drained(struct app *a)
{
    if (a->quitting && a->logged_in && core_outbox_len(a->core) == 0 &&
        bank_pending(a->bank) == 0)
        app_leave(a, 0);
}

static void quit_grace_over(lws_sorted_usec_list_t *sul)
{
    struct app *a = lws_container_of(sul, struct app, sul_quit_grace);
    size_t n = undelivered(a);
    if (n && a->frontend_ops->interactive) {
        a->frontend_ops->show_grace_over(a->frontend, n);   /* stays: a second /quit leaves */
        return;
    }
    leave_now(a);
}

/* The grace starts once we are logged in; until then a failed login
 * decides the exit code. */
static void quit_drain_begin(struct app *a)
{
    lws_sul_schedule(a->ctx, 0, &a->sul_quit_grace, quit_grace_over,
                     (lws_usec_t)APP_QUIT_GRACE_MS * 1000);
    quit_if_drained(a);
}

static void quit_asked(void *arg)
{
    struct app *a = arg;
    if (a->done)
        return;
    if (a->quitting || a->offline) {
        leave_now(a);
        return;
    }
    a->quitting = 1;
    if (a->frontend_ops->show_quitting)
        a->frontend_ops->show_quitting(a->frontend);
    if (a->logged_in)
        quit_drain_begin(a);
}

static void input_gone(void *arg)
{
    leave_now(arg);
}

/* ---- the core's callbacks: shown by the front end, watched for quitting ---- */

/* A transfer completed or received moved the balance: fetch the new one,
 * so it shows next to the alert (history older than the run is skipped). */
static void balance_after_alert(struct app *a, const json_t *event)
{
    const char *type = json_string_value(json_object_get(event, "type"));
    const char *kind = json_string_value(json_object_get(event, "kind"));
    json_int_t ts = json_integer_value(json_object_get(event, "ts"));
    if (!a->logged_in || !type || !kind || strcmp(type, "alert") ||
        (strcmp(kind, "transfer.completed") && strcmp(kind, "transfer.received")) ||
        ts < a->login_ms - APP_ALERT_FRESH_MS)
        return;
    bank_balance_refresh(a->bank);
}

static void read_due(lws_sorted_usec_list_t *sul)
{
    struct app *a = lws_container_of(sul, struct app, sul_read);
    if (a->sync)
        sync_read(a->sync);
}

/* The room shown got newer events, or another room is shown: its read
 * marker goes to the server once the view settles. */
static void room_seen(void *arg)
{
    struct app *a = arg;
    lws_sul_schedule(a->ctx, 0, &a->sul_read, read_due, (lws_usec_t)APP_READ_DEBOUNCE_MS * 1000);
}

static void on_event(void *arg, const json_t *event)
{
    struct app *a = arg;
    const struct room *rm = roomlist_on_event(a->rooms, event, a->in_history);
    a->frontend_ops->show_event(a->frontend, event);
    if (rm && rm == roomlist_current(a->rooms))
        room_seen(a);
    transfer_log_add(a->tlog, event);
    balance_after_alert(a, event);
}

static void on_state(void *arg, enum core_state s, unsigned retry_ms)
{
    struct app *a = arg;
    a->frontend_ops->show_state(a->frontend, s, retry_ms);
    if (s != CORE_OFFLINE)
        return;
    a->offline = 1;
    if (a->quitting || !a->frontend_ops->interactive)
        leave_now(a);
}

static void on_ack(void *arg, const char *client_msg_id, int64_t id)
{
    struct app *a = arg;
    a->frontend_ops->show_ack(a->frontend, client_msg_id, id);
    quit_if_drained(a);
}

static void on_error(void *arg, const char *text)
{
    struct app *a = arg;
    a->frontend_ops->show_error(a->frontend, text);
    quit_if_drained(a);     /* a refused message leaves the outbox too */
}

static void on_reject(void *arg, const char *client_msg_id, const char *why)
{
    struct app *a = arg;
    (void)why;              /* on_error has shown it */
    if (a->frontend_ops->show_rejected)
        a->frontend_ops->show_rejected(a->frontend, client_msg_id);
}

static void on_notice(void *arg, const char *text, const json_t *data)
{
    struct app *a = arg;
    a->frontend_ops->show_notice(a->frontend, text, data);
    quit_if_drained(a);     /* a bank answer */
}

static int64_t wall_ms(void);

static void on_ephemeral(void *arg, const json_t *item)
{
    struct app *a = arg;
    struct proto_ephemeral e;
    if (proto_parse_ephemeral(item, &e) < 0)
        return;
    if (e.kind == PROTO_EPH_PRESENCE)
        roomlist_on_presence(a->rooms, e.user, e.online);
    else if (e.kind == PROTO_EPH_READ)
        roomlist_on_read(a->rooms, e.room, e.read_id);
    else
        roomlist_on_typing(a->rooms, e.room, e.user, wall_ms());
    if (a->frontend_ops->show_ephemeral)
        a->frontend_ops->show_ephemeral(a->frontend, item);
}

/* ---- signals: a signalfd read through the loop ---- */

static int signal_cb(struct lws *wsi, enum lws_callback_reasons reason,
                     void *user, void *in, size_t len)
{
    struct app *a = lws_context_user(lws_get_context(wsi));
    struct signalfd_siginfo si;
    (void)user;
    (void)in;
    (void)len;
    if (reason != LWS_CALLBACK_RAW_RX_FILE)
        return 0;
    if (read(lws_get_socket_fd(wsi), &si, sizeof si) != (ssize_t)sizeof si)
        return 0;
    if (si.ssi_signo == SIGWINCH)
        a->frontend_ops->resize(a->frontend);
    else
        app_leave(a, 128 + (int)si.ssi_signo);
    return 0;
}

static const struct lws_protocols signal_protocol = {
    .name = "chat-signal",
    .callback = signal_cb,
};

static int signals_adopt(struct lws_vhost *vh, int resize)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    if (resize)
        sigaddset(&mask, SIGWINCH);
    signal(SIGPIPE, SIG_IGN);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
        return -1;
    lws_sock_file_fd_type fd;
    fd.filefd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd.filefd < 0)
        return -1;
    /* on failure lws closes the fd itself */
    return lws_adopt_descriptor_vhost(vh, LWS_ADOPT_RAW_FILE_DESC, fd,
                                      signal_protocol.name, NULL) ? 0 : -1;
}

/* ---- login, then the transport ---- */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int app_ws_refused(void *arg, const char *why);

static void outbox_changed(void *arg)
{
    struct app *a = arg;
    if (a->transport && a->transport_ops->outbox_changed)
        a->transport_ops->outbox_changed(a->transport);
}

/* The start's history (the room on screen's newest) goes through the
 * core like the feed, so it is shown once, in order; a page, or a room's
 * first page when first shown, is older than what the feed showed there
 * and goes to the front end as it is. */
static void sync_history(void *arg, const char *room, const json_t *events, int more, int start)
{
    struct app *a = arg;
    size_t i;
    json_t *ev;
    if (room) {
        if (a->frontend_ops->show_history)
            a->frontend_ops->show_history(a->frontend, room, events, more, start);
        return;
    }
    a->in_history = 1;
    json_array_foreach(events, i, ev)
        core_deliver(a->core, ev);
    a->in_history = 0;
}

/* The room shown may be shown for the first time (a switch, a join): its
 * newest page, once. */
static void sync_changed(void *arg)
{
    struct app *a = arg;
    if (a->sync && a->started)
        sync_view(a->sync);
    if (a->frontend_ops->show_rooms)
        a->frontend_ops->show_rooms(a->frontend);
}

static void held_run(struct app *a);

/* The start is over: the feed goes on after the cursor (0: from the
 * beginning, as v1 did, when the server has no v1.1 start). */
static void sync_started(void *arg, int64_t cursor)
{
    struct app *a = arg;
    const struct transport_ops *ops = a->transport_ops;
    a->started = 1;
    core_set_cursor(a->core, cursor);
    sync_changed(a);
    room_seen(a);
    held_run(a);
    if (a->transport || a->done)
        return;                 /* switched meanwhile: switch_now started it */
    a->transport = ops->create(&a->env);
    if (!a->transport || ops->start(a->transport) < 0) {
        app_leave(a, 1);        /* first: a quit under way would take the error for drained */
        core_error(a->core, "cannot start the %s transport", ops->name);
    }
}

static void logged_in(void *arg, int exit_code, const char *token)
{
    struct app *a = arg;
    if (exit_code != LOGIN_EXIT_OK) {
        app_leave(a, exit_code);
        return;
    }
    snprintf(a->token, sizeof a->token, "%s", token);
    a->logged_in = 1;
    a->login_ms = wall_ms();
    if (a->frontend_ops->show_logged_in)
        a->frontend_ops->show_logged_in(a->frontend);
    a->env = (struct transport_env){
        .ctx = a->ctx, .servers = a->cfg->servers, .prefix = "", .token = a->token,
        .core = a->core, .http = a->http, .interval_ms = a->cfg->interval_ms,
        .wait_s = a->cfg->wait_s, .timeout_s = a->cfg->timeout_s,
        .ws_refused = app_ws_refused, .hook_arg = a,
    };
    bank_start(a->bank);
    if (a->quitting)            /* asked before the login was done */
        quit_drain_begin(a);
    struct sync_env se = {
        .http = a->http, .core = a->core, .rooms = a->rooms, .servers = a->cfg->servers,
        .token = a->token, .timeout_s = a->cfg->timeout_s, .started = sync_started,
        .history = sync_history, .changed = sync_changed, .arg = a,
    };
    if (!(a->sync = sync_new(&se))) {
        sync_started(a, 0);
        return;
    }
    sync_start(a->sync);        /* then sync_started starts the transport */
}

static int start_login(struct app *a)
{
    struct login_request req = {
        .ctx = a->ctx, .http = a->http, .core = a->core, .prefix = "",
        .servers = a->cfg->servers, .user = a->cfg->user, .password = a->cfg->password,
        .do_register = a->cfg->do_register, .timeout_s = a->cfg->timeout_s,
    };
    a->login = login_start(&req, logged_in, a);
    return a->login ? 0 : -1;
}

/* ---- switching transports ---- */

static void retire_finish(struct app *a)
{
    lws_sul_cancel(&a->sul_retire);
    if (a->old_transport)
        a->old_transport_ops->destroy(a->old_transport);
    a->old_transport = NULL;
    a->old_transport_ops = NULL;
}

static void retire_check(lws_sorted_usec_list_t *sul)
{
    struct app *a = lws_container_of(sul, struct app, sul_retire);
    if (!a->old_transport || lws_now_usecs() >= a->old_deadline ||
        !a->old_transport_ops->stop(a->old_transport)) {
        retire_finish(a);
        return;
    }
    lws_sul_schedule(a->ctx, 0, &a->sul_retire, retire_check,
                     (lws_usec_t)APP_RETIRE_POLL_MS * 1000);
}

/* Lets the current transport go: at once, or after its goodbye. */
static void retire_current(struct app *a)
{
    retire_finish(a);           /* an earlier one still closing: enough */
    if (!a->transport)
        return;
    if (a->transport_ops->stop && a->transport_ops->stop(a->transport)) {
        a->old_transport_ops = a->transport_ops;
        a->old_transport = a->transport;
        a->old_deadline = lws_now_usecs() + (lws_usec_t)APP_GOODBYE_MS * 1000;
        lws_sul_schedule(a->ctx, 0, &a->sul_retire, retire_check,
                         (lws_usec_t)APP_RETIRE_POLL_MS * 1000);
    } else {
        a->transport_ops->destroy(a->transport);
    }
    a->transport = NULL;
}

static void show_transport(struct app *a)
{
    a->frontend_ops->show_transport(a->frontend, a->transport_ops->name, a->auto_mode);
}

static void switch_now(lws_sorted_usec_list_t *sul)
{
    struct app *a = lws_container_of(sul, struct app, sul_switch);
    const struct transport_ops *ops = a->switch_to;
    a->switch_to = NULL;
    if (!ops || a->done)
        return;
    if (ops == a->transport_ops) {
        show_transport(a);      /* auto mode may have changed */
        core_notice(a->core, NULL, "%susing %s", a->auto_mode ? "auto: " : "already ", ops->name);
        return;
    }
    retire_current(a);          /* uses a->transport_ops: the old one */
    a->transport_ops = ops;
    show_transport(a);
    if (!a->logged_in || !a->started) {     /* sync_started() starts the chosen one */
        core_notice(a->core, NULL, "will use %s once %s", ops->name,
                    a->logged_in ? "the rooms and their history are loaded" : "logged in");
        return;
    }
    json_t *data = json_pack("{s:s,s:I,s:b}", "transport", ops->name,
                             "after", (json_int_t)core_cursor(a->core), "auto", a->auto_mode);
    core_notice(a->core, data, "switched to %s; resuming after event %lld", ops->name,
                (long long)core_cursor(a->core));
    json_decref(data);
    a->transport = ops->create(&a->env);
    if (!a->transport || ops->start(a->transport) < 0) {
        core_error(a->core, "cannot start the %s transport", ops->name);
        app_leave(a, 1);
    }
}

/* Switches on the next loop pass (never from inside a callback). */
static void request_switch(struct app *a, const struct transport_ops *ops)
{
    a->switch_to = ops;
    lws_sul_schedule(a->ctx, 0, &a->sul_switch, switch_now, 1);
}

/* ---- auto mode ---- */

static void ws_retry_due(lws_sorted_usec_list_t *sul)
{
    struct app *a = lws_container_of(sul, struct app, sul_ws_retry);
    if (!a->auto_mode || a->transport_ops == &transport_websocket || a->done)
        return;
    core_notice(a->core, NULL, "auto: trying websocket again");
    request_switch(a, &transport_websocket);
}

/* The WebSocket transport met a refused upgrade: in auto mode, go on with
 * long polling and come back later. */
static int app_ws_refused(void *arg, const char *why)
{
    struct app *a = arg;
    if (!a->auto_mode || a->transport_ops != &transport_websocket || a->done)
        return 0;
    unsigned ms = backoff_jittered(a->ctx, (unsigned)a->cfg->ws_retry_s * 1000u);
    core_notice(a->core, NULL, "auto: websocket refused (%s); using long-poll, "
                "trying websocket again in %.1f s", why, ms / 1000.0);
    request_switch(a, &transport_long_poll);
    lws_sul_schedule(a->ctx, 0, &a->sul_ws_retry, ws_retry_due, (lws_usec_t)ms * 1000);
    return 1;
}

/* /transport NAME: a named transport ends auto mode, "auto" starts it. */
static void choose_transport(struct app *a, const char *name)
{
    const struct transport_ops *ops = transport_find(name);
    lws_sul_cancel(&a->sul_ws_retry);
    a->auto_mode = !ops;
    request_switch(a, ops ? ops : &transport_websocket);
}

/* ---- the server in use ---- */

static void server_changed(void *arg, const struct server_url *now,
                           const struct server_url *before)
{
    struct app *a = arg;
    a->frontend_ops->show_server(a->frontend, now->url);
    json_t *data = json_pack("{s:s,s:s}", "server", now->url, "previous", before->url);
    core_notice(a->core, data, "server %s failed; trying %s", before->url, now->url);
    json_decref(data);
}

/* ---- what the front end asks for ---- */

/* /transfers: a notice with them all as data, then one line each. */
static void list_transfers(struct app *a)
{
    char line[160];
    json_t *rows = transfer_log_recent(a->tlog, APP_TRANSFERS_LISTED);
    json_t *data = json_pack("{s:O}", "transfers", rows);
    size_t i, n = json_array_size(rows);
    const json_t *row;
    if (n == 0)
        core_notice(a->core, data, "no transfers yet%s", a->logged_in ? "" : " (not logged in yet)");
    else
        core_notice(a->core, data, "your last %zu transfer(s), newest first:", n);
    json_array_foreach(rows, i, row) {
        transfer_log_row_text(row, line, sizeof line);
        core_notice(a->core, NULL, "%s", line);
    }
    json_decref(data);
    json_decref(rows);
}

/* Logged in, and the transport has lost the server (or given up). */
static int connection_lost(const struct app *a)
{
    enum core_state s = core_state(a->core);
    return a->logged_in && (s == CORE_RECONNECTING || s == CORE_OFFLINE);
}

static void show_sending(struct app *a, const char *id, const char *body)
{
    if (id && a->frontend_ops->show_sending)
        a->frontend_ops->show_sending(a->frontend, id, body);
}

/* A room word typed: "@bob" is the DM with bob, "" the room shown. */
static int room_named(struct app *a, const char *word, char *out)
{
    const struct room *cur = roomlist_current(a->rooms);
    if (!word[0])
        snprintf(out, PROTO_ROOM_REF_MAX + 1, "%s", cur ? cur->name : PROTO_DEFAULT_ROOM);
    else if (word[0] == '@' && !strchr(word, ',')) {
        if (proto_dm_name(roomlist_self(a->rooms), word + 1, out, PROTO_ROOM_REF_MAX + 1) < 0) {
            core_error(a->core, "no direct conversation with yourself");
            return -1;
        }
    } else
        snprintf(out, PROTO_ROOM_REF_MAX + 1, "%s", word);
    return 0;
}

static void room_command(struct app *a, const struct cmd *c)
{
    char room[PROTO_ROOM_REF_MAX + 1];
    const struct room *rm;
    if (room_named(a, c->room, room) < 0)
        return;
    rm = roomlist_find(a->rooms, room);
    if (!a->sync && c->kind != CMD_TOPIC) {
        core_error(a->core, "the server has no rooms (v1) or cannot be reached");
        return;
    }
    switch (c->kind) {
    case CMD_JOIN:
        if (proto_room_is_direct(room)) {       /* a DM is made by its first message */
            if (roomlist_add(a->rooms, room))
                roomlist_switch_name(a->rooms, room);
            sync_changed(a);
            room_seen(a);
        } else {
            sync_join(a->sync, room);
        }
        break;
    case CMD_PART:
        if (strcmp(room, PROTO_DEFAULT_ROOM) == 0)
            core_error(a->core, "general cannot be left");
        else if (!rm)
            core_error(a->core, "you are not in %s", room);
        else if (proto_room_is_direct(room)) {  /* a DM cannot be left: closed here */
            roomlist_remove(a->rooms, room);
            sync_changed(a);
        } else
            sync_part(a->sync, room);
        break;
    case CMD_WHO:
        sync_who(a->sync, room);
        break;
    case CMD_TOPIC:
        if (!rm)
            core_error(a->core, "you are not in %s", room);
        else if (!c->text)
            core_notice(a->core, NULL, "topic of %s: %s", rm->name, rm->topic[0] ? rm->topic : "(none)");
        else if (!a->sync)
            core_error(a->core, "the server has no rooms (v1) or cannot be reached");
        else
            sync_topic(a->sync, rm->name, c->text);
        break;
    default:
        break;
    }
}

/* Typed before the rooms are loaded: done once they are (held_run). */
static void hold_command(struct app *a, const struct cmd *c)
{
    struct held_cmd *h;
    if (a->n_held == APP_HELD_MAX) {
        core_error(a->core, "too many room commands before the rooms are loaded; try again in a moment");
        return;
    }
    h = &a->held[a->n_held++];
    h->c = *c;
    snprintf(h->text, sizeof h->text, "%s", c->text ? c->text : "");
    h->c.text = c->text ? h->text : NULL;
    h->c.error = NULL;
}

static void app_command(void *arg, const struct cmd *c);

static void held_run(struct app *a)
{
    for (size_t i = 0; i < a->n_held; i++)
        app_command(a, &a->held[i].c);
    a->n_held = 0;
}

/* A line typed: to the room shown (a DM: to its other user). */
static void send_line(struct app *a, const char *text)
{
    const struct room *rm = roomlist_current(a->rooms);
    const char *id = rm && rm->peer[0] ? core_send_to(a->core, rm->peer, text)
                                       : core_send(a->core, rm ? rm->name : PROTO_DEFAULT_ROOM, text);
    show_sending(a, id, text);
}

static void app_command(void *arg, const struct cmd *c)
{
    struct app *a = arg;
    switch (c->kind) {
    case CMD_MESSAGE:
        send_line(a, c->text);
        break;
    case CMD_MSG: {
        char dm[PROTO_ROOM_REF_MAX + 1];
        if (proto_dm_name(roomlist_self(a->rooms), c->to, dm, sizeof dm) < 0) {
            core_error(a->core, "no direct messages to yourself");
            break;
        }
        roomlist_add(a->rooms, dm);
        sync_changed(a);
        const struct room *cur = roomlist_current(a->rooms);
        const char *id = core_send_to(a->core, c->to, c->text);
        if (cur && strcmp(cur->name, dm) == 0) {
            show_sending(a, id, c->text);       /* shown where it goes */
        } else if (id) {                        /* the DM is not shown: say where it went */
            json_t *data = json_pack("{s:s,s:s}", "sending", id, "room", dm);
            core_notice(a->core, data, "to %s: %s", c->to, c->text);
            json_decref(data);
        }
        break;
    }
    case CMD_ROOMS:
    case CMD_JOIN:
    case CMD_PART:
    case CMD_WHO:
    case CMD_TOPIC:
        if (!a->started)
            hold_command(a, c);
        else if (c->kind != CMD_ROOMS)
            room_command(a, c);
        else if (a->sync)
            sync_list(a->sync);
        else
            core_error(a->core, "the server has no rooms (v1) or cannot be reached");
        break;
    case CMD_TRANSFER:
        if (connection_lost(a))
            core_error(a->core, "transfer not sent: the server cannot be reached; nothing "
                       "will be paid. Type it again once connected");
        else
            bank_transfer(a->bank, c->to, c->amount_cents);
        break;
    case CMD_BALANCE:
        bank_balance(a->bank);
        break;
    case CMD_TRANSFERS:
        list_transfers(a);
        break;
    case CMD_TRANSPORT:
        choose_transport(a, c->transport);
        break;
    default:
        break;
    }
}

/* ---- setup and teardown ---- */

static struct lws_context *make_context(struct app *a)
{
    struct lws_context_creation_info info;
    const struct lws_protocols *list[] = {
        wsi_owner_protocol(),       /* must stay first */
        http_protocol(),
        a->frontend_ops->protocol,
        &signal_protocol,
        transport_short_poll.protocol,
        transport_long_poll.protocol,
        transport_websocket.protocol,
        transport_sse.protocol,
    };
    size_t n = 0;
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        if (list[i])
            a->protocols[n++] = *list[i];
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = a->protocols;
    if (servers_any_tls(a->cfg->servers)) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.client_ssl_ca_filepath = a->cfg->ca_file;   /* NULL: the system store */
    }
    info.user = a;
    /* lws's own response timeout must not cut a long-poll hold first */
    info.timeout_secs = (unsigned)(a->cfg->wait_s + 30);
    return lws_create_context(&info);
}

/* The front end shows another room: who is online there, and its read
 * marker once the view settles. */
static void room_switched(void *arg)
{
    struct app *a = arg;
    const struct room *rm = roomlist_current(a->rooms);
    if (a->sync && a->started && rm && !rm->peer[0])
        sync_presence(a->sync, rm->name);
    if (a->sync && a->started)
        sync_view(a->sync);
    room_seen(a);
}

/* The user scrolled past the top of room's history. */
static void page_wanted(void *arg, const char *room)
{
    struct app *a = arg;
    if (a->sync)
        sync_page(a->sync, room);
}

/* The user types in the room shown. */
static void typing_now(void *arg)
{
    struct app *a = arg;
    if (a->sync && a->started)
        sync_typing(a->sync, wall_ms());
}

static int frontend_create(struct app *a, struct lws_vhost *vh)
{
    struct frontend_env env = {
        .core = a->core, .ctx = a->ctx, .vhost = vh, .user = a->cfg->user,
        .transport_name = a->transport_ops->name, .auto_transport = a->auto_mode,
        .server_url = servers_current(a->cfg->servers)->url,
        .several_servers = servers_count(a->cfg->servers) > 1,
        .quiet = a->cfg->quiet, .command = app_command, .quit_asked = quit_asked,
        .input_gone = input_gone, .rooms = a->rooms, .room_shown = room_switched,
        .page_wanted = page_wanted, .typing = typing_now, .arg = a,
    };
    a->frontend = a->frontend_ops->create(&env);
    return a->frontend ? 0 : -1;
}

static int app_init(struct app *a)
{
    struct lws_vhost *vh;
    const struct server_url *first = servers_get(a->cfg->servers, 0);
    a->core = core_new(NULL);
    a->rooms = roomlist_new(a->cfg->user);
    if (!a->core || !a->rooms || !(a->ctx = make_context(a)) ||
        !(vh = lws_get_vhost_by_name(a->ctx, "default")))
        return -1;
    a->http = http_new(a->ctx, first->host, first->port, a->core);
    if (a->http)
        http_set_tls(a->http, first->tls);
    struct bank_env be = {
        .ctx = a->ctx, .http = a->http, .core = a->core,
        .prefix = "", .token = a->token, .servers = a->cfg->servers,
        .timeout_s = a->cfg->timeout_s,
    };
    if (!a->http || !(a->bank = bank_new(&be)) || !(a->tlog = transfer_log_new()) ||
        frontend_create(a, vh) < 0)
        return -1;
    struct core_callbacks cb = {
        .on_event = on_event, .on_state = on_state, .on_ack = on_ack,
        .on_error = on_error, .on_notice = on_notice, .on_reject = on_reject,
        .on_ephemeral = on_ephemeral, .arg = a,
    };
    core_set_callbacks(a->core, &cb);
    if (signals_adopt(vh, a->frontend_ops->resize != NULL) < 0)
        return -1;
    core_set_outbox_hook(a->core, outbox_changed, a);
    servers_set_hook(a->cfg->servers, server_changed, a);
    return start_login(a);
}

static void goodbye_over(lws_sorted_usec_list_t *sul)
{
    struct app *a = lws_container_of(sul, struct app, sul_goodbye);
    a->goodbye_over = 1;
    lws_cancel_service(a->ctx);     /* else lws_service keeps polling */
}

/* Lets the transport say goodbye (e.g. a WebSocket close), briefly. */
static void app_goodbye(struct app *a)
{
    const struct transport_ops *ops = a->transport_ops;
    retire_finish(a);
    if (!a->transport || !ops->stop)
        return;
    lws_sul_schedule(a->ctx, 0, &a->sul_goodbye, goodbye_over,
                     (lws_usec_t)APP_GOODBYE_MS * 1000);
    while (ops->stop(a->transport) && !a->goodbye_over && lws_service(a->ctx, 0) >= 0)
        ;
    lws_sul_cancel(&a->sul_goodbye);
}

static void app_teardown(struct app *a)
{
    lws_sul_cancel(&a->sul_switch);
    lws_sul_cancel(&a->sul_ws_retry);
    lws_sul_cancel(&a->sul_quit_grace);
    lws_sul_cancel(&a->sul_read);
    servers_set_hook(a->cfg->servers, NULL, NULL);
    if (a->core)
        core_set_callbacks(a->core, NULL);
    if (a->frontend) {
        struct frontend_exit how = { .code = a->exit_code, .logged_in = a->logged_in };
        a->frontend_ops->destroy(a->frontend, &how);
    }
    retire_finish(a);
    if (a->transport)
        a->transport_ops->destroy(a->transport);
    login_free(a->login);
    sync_free(a->sync);
    bank_free(a->bank);
    transfer_log_free(a->tlog);
    http_free(a->http);
    if (a->ctx)
        lws_context_destroy(a->ctx);
    core_free(a->core);
    roomlist_free(a->rooms);
    sodium_memzero(a->token, sizeof a->token);
    free(a);
}

int app_run(const struct app_config *cfg)
{
    struct app *a = calloc(1, sizeof *a);
    if (!a) {
        cfg->frontend->print_error("out of memory");
        return 1;
    }
    a->cfg = cfg;
    a->frontend_ops = cfg->frontend;
    a->transport_ops = cfg->auto_transport ? &transport_websocket : cfg->transport;
    a->auto_mode = cfg->auto_transport;
    int init_failed = app_init(a) < 0;
    if (init_failed) {
        a->exit_code = 1;
        a->done = 1;
    }
    while (!a->done && lws_service(a->ctx, 0) >= 0)
        ;
    app_goodbye(a);
    int code = a->exit_code;
    app_teardown(a);
    if (init_failed) {          /* after teardown: the terminal is ours again */
        char msg[96];
        snprintf(msg, sizeof msg, "cannot set up the client (lws context, %s or signals)",
                 cfg->frontend->input);
        cfg->frontend->print_error(msg);
    }
    return code;
}
