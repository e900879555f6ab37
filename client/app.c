/* app.c — wiring of one run. The lws context's user pointer is the app;
 * protocols[0] is the wsi lifecycle protocol, then HTTP requests, stdin (for
 * headless mode or the terminal UI), signals and every transport's own
 * protocol (WebSocket), so the transport can be switched at run time.
 * Order of events: login (auth.c), then the transport starts; messages typed
 * meanwhile wait in the outbox. Nothing is freed from inside a callback:
 * quitting only sets a flag, and the loop in app_run tears everything down
 * afterwards; a transport switch is carried out on the next loop pass.
 *
 * Switching transports keeps the core, so its cursor and outbox: the new
 * transport resumes after the last event shown (the core drops anything at
 * or below it) and sends again whatever is unacknowledged, with the same
 * client_msg_id for the server to dedupe. The old transport is told to stop
 * (a WebSocket sends its close frame) and destroyed once it has, or after
 * APP_GOODBYE_MS. */
#include "app.h"
#include "auth.h"
#include "bank.h"
#include "commands.h"
#include "core.h"
#include "headless.h"
#include "http.h"
#include "protocol.h"
#include "transport.h"
#include "ui.h"
#include "wsi_owner.h"

#include <libwebsockets.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define APP_PROTOCOLS_MAX 10
#define APP_RETIRE_POLL_MS 20
#define APP_GOODBYE_MS    500     /* patience for an orderly close */

struct app {
    const struct app_config *cfg;
    struct lws_protocols protocols[APP_PROTOCOLS_MAX];
    struct lws_context *ctx;
    struct core *core;
    struct http *http;
    struct auth *auth;
    struct bank *bank;           /* once logged in */
    struct headless *headless;   /* one front end: headless or ui */
    struct ui *ui;
    const struct transport_ops *ops;     /* the current transport */
    void *transport;
    const struct transport_ops *old_ops; /* one saying goodbye after a switch */
    void *old_transport;
    lws_usec_t old_deadline;
    lws_sorted_usec_list_t sul_retire;
    const struct transport_ops *switch_to;
    lws_sorted_usec_list_t sul_switch;
    struct transport_env env;
    char token[257];
    int logged_in;
    int done, exit_code;
    lws_sorted_usec_list_t sul_goodbye;
    int goodbye_over;
};

static void app_quit(void *arg, int exit_code)
{
    struct app *a = arg;
    if (a->done)
        return;
    a->done = 1;
    a->exit_code = exit_code;
    lws_cancel_service(a->ctx);
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
        ui_resize(a->ui);
    else
        app_quit(a, 128 + (int)si.ssi_signo);
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

static void outbox_changed(void *arg)
{
    struct app *a = arg;
    if (a->transport && a->ops->outbox_changed)
        a->ops->outbox_changed(a->transport);
}

static void logged_in(void *arg, int exit_code, const char *token)
{
    struct app *a = arg;
    const struct transport_ops *ops = a->ops;
    if (exit_code != AUTH_EXIT_OK) {
        app_quit(a, exit_code);
        return;
    }
    snprintf(a->token, sizeof a->token, "%s", token);
    a->logged_in = 1;
    a->env = (struct transport_env){
        .ctx = a->ctx, .host = a->cfg->host, .port = a->cfg->port, .tls = a->cfg->tls,
        .prefix = a->cfg->prefix, .token = a->token, .core = a->core,
        .http = a->http, .interval_ms = a->cfg->interval_ms, .wait_s = a->cfg->wait_s,
    };
    struct bank_env be = {
        .ctx = a->ctx, .http = a->http, .core = a->core,
        .prefix = a->cfg->prefix, .token = a->token,
    };
    a->bank = bank_new(&be);
    a->transport = ops->create(&a->env);
    if (!a->bank || !a->transport || ops->start(a->transport) < 0) {
        core_error(a->core, "cannot start the %s transport", ops->name);
        app_quit(a, 1);
    }
}

static int start_login(struct app *a)
{
    struct auth_request req = {
        .ctx = a->ctx, .http = a->http, .core = a->core, .prefix = a->cfg->prefix,
        .user = a->cfg->user, .password = a->cfg->password,
        .do_register = a->cfg->do_register,
    };
    a->auth = auth_start(&req, logged_in, a);
    return a->auth ? 0 : -1;
}

/* ---- switching transports ---- */

static void retire_finish(struct app *a)
{
    lws_sul_cancel(&a->sul_retire);
    if (a->old_transport)
        a->old_ops->destroy(a->old_transport);
    a->old_transport = NULL;
    a->old_ops = NULL;
}

static void retire_check(lws_sorted_usec_list_t *sul)
{
    struct app *a = lws_container_of(sul, struct app, sul_retire);
    if (!a->old_transport || lws_now_usecs() >= a->old_deadline ||
        !a->old_ops->stop(a->old_transport)) {
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
    if (a->ops->stop && a->ops->stop(a->transport)) {
        a->old_ops = a->ops;
        a->old_transport = a->transport;
        a->old_deadline = lws_now_usecs() + (lws_usec_t)APP_GOODBYE_MS * 1000;
        lws_sul_schedule(a->ctx, 0, &a->sul_retire, retire_check,
                         (lws_usec_t)APP_RETIRE_POLL_MS * 1000);
    } else {
        a->ops->destroy(a->transport);
    }
    a->transport = NULL;
}

static void frontend_set_transport(struct app *a, const char *name)
{
    headless_set_transport(a->headless, name);
    ui_set_transport(a->ui, name);
}

static void switch_now(lws_sorted_usec_list_t *sul)
{
    struct app *a = lws_container_of(sul, struct app, sul_switch);
    const struct transport_ops *ops = a->switch_to;
    a->switch_to = NULL;
    if (!ops || a->done)
        return;
    if (ops == a->ops) {
        core_notice(a->core, NULL, "already using %s", ops->name);
        return;
    }
    retire_current(a);          /* uses a->ops: the old one */
    a->ops = ops;
    frontend_set_transport(a, ops->name);
    if (!a->logged_in) {        /* logged_in() starts the chosen one */
        core_notice(a->core, NULL, "will use %s once logged in", ops->name);
        return;
    }
    json_t *data = json_pack("{s:s,s:I}", "transport", ops->name,
                             "after", (json_int_t)core_cursor(a->core));
    core_notice(a->core, data, "switched to %s; resuming after event %lld", ops->name,
                (long long)core_cursor(a->core));
    json_decref(data);
    a->transport = ops->create(&a->env);
    if (!a->transport || ops->start(a->transport) < 0) {
        core_error(a->core, "cannot start the %s transport", ops->name);
        app_quit(a, 1);
    }
}

/* ---- what the front end asks for ---- */

static void app_command(void *arg, const struct cmd *c)
{
    struct app *a = arg;
    switch (c->kind) {
    case CMD_MESSAGE:
        core_send(a->core, PROTO_DEFAULT_ROOM, c->text);
        break;
    case CMD_TRANSFER:
    case CMD_BALANCE:
        if (!a->bank)
            core_error(a->core, "not logged in yet; try again in a moment");
        else if (c->kind == CMD_TRANSFER)
            bank_transfer(a->bank, c->to, c->amount_cents);
        else
            bank_balance(a->bank);
        break;
    case CMD_TRANSPORT:
        /* not from inside the front end's callback: on the next loop pass */
        a->switch_to = transport_find(c->transport);
        lws_sul_schedule(a->ctx, 0, &a->sul_switch, switch_now, 1);
        break;
    default:
        break;
    }
}

static int app_pending(void *arg)
{
    struct app *a = arg;
    return bank_pending(a->bank);
}

/* ---- setup and teardown ---- */

static struct lws_context *make_context(struct app *a)
{
    struct lws_context_creation_info info;
    const struct lws_protocols *list[] = {
        wsi_owner_protocol(),       /* must stay first */
        http_protocol(),
        headless_protocol(),
        ui_protocol(),
        &signal_protocol,
        transport_short_poll.protocol,
        transport_long_poll.protocol,
        transport_websocket.protocol,
    };
    size_t n = 0;
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        if (list[i])
            a->protocols[n++] = *list[i];
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = a->protocols;
    if (a->cfg->tls) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.client_ssl_ca_filepath = a->cfg->ca_file;   /* NULL: the system store */
    }
    info.user = a;
    /* lws's own response timeout must not cut a long-poll hold first */
    info.timeout_secs = (unsigned)(a->cfg->wait_s + 30);
    return lws_create_context(&info);
}

static int app_init(struct app *a)
{
    struct lws_vhost *vh;
    a->core = core_new(NULL);
    if (!a->core || !(a->ctx = make_context(a)) ||
        !(vh = lws_get_vhost_by_name(a->ctx, "default")))
        return -1;
    a->http = http_new(a->ctx, a->cfg->host, a->cfg->port, a->core);
    if (a->http)
        http_set_tls(a->http, a->cfg->tls);
    if (!a->http)
        return -1;
    if (a->cfg->headless) {
        struct headless_env he = {
            .core = a->core, .ctx = a->ctx, .vhost = vh,
            .transport = a->ops->name, .quit = app_quit,
            .command = app_command, .pending = app_pending, .arg = a,
        };
        if (!(a->headless = headless_new(&he)))
            return -1;
    } else {
        struct ui_env ue = {
            .core = a->core, .ctx = a->ctx, .vhost = vh, .user = a->cfg->user,
            .transport = a->ops->name, .quiet = a->cfg->quiet, .quit = app_quit,
            .command = app_command, .pending = app_pending, .arg = a,
        };
        if (!(a->ui = ui_new(&ue)))
            return -1;
    }
    if (signals_adopt(vh, !a->cfg->headless) < 0)
        return -1;
    core_set_outbox_hook(a->core, outbox_changed, a);
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
    const struct transport_ops *ops = a->ops;
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
    if (a->headless && a->logged_in)
        headless_print_stats(a->headless);
    lws_sul_cancel(&a->sul_switch);
    retire_finish(a);
    if (a->transport)
        a->ops->destroy(a->transport);
    auth_free(a->auth);
    bank_free(a->bank);
    headless_free(a->headless);
    ui_free(a->ui, a->exit_code);
    http_free(a->http);
    if (a->ctx)
        lws_context_destroy(a->ctx);
    core_free(a->core);
    sodium_memzero(a->token, sizeof a->token);
    free(a);
}

int app_run(const struct app_config *cfg)
{
    struct app *a = calloc(1, sizeof *a);
    if (!a) {
        headless_print_error("out of memory");
        return 1;
    }
    a->cfg = cfg;
    a->ops = cfg->transport;
    int init_failed = app_init(a) < 0;
    if (init_failed) {
        if (cfg->headless)
            headless_print_error("cannot set up the client (lws context, stdin or signals)");
        a->exit_code = 1;
        a->done = 1;
    }
    while (!a->done && lws_service(a->ctx, 0) >= 0)
        ;
    app_goodbye(a);
    int code = a->exit_code;
    app_teardown(a);
    if (init_failed && !cfg->headless)  /* the terminal is ours again */
        fprintf(stderr, "chat: cannot set up the client (lws context, terminal or signals)\n");
    return code;
}
