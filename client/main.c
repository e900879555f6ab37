/* main.c — bin/chat: command-line flags, the server URL list, the password
 * (from CHAT_PASSWORD or asked on /dev/tty, never a flag), lws logging, then
 * app_run with the terminal UI or, with --headless, the line front end.
 * Exit codes: 0 ok, 1 usage or other error, 2 authentication failed, 3
 * server unreachable at login, 4 left with messages or transfers not
 * delivered (app.c). */
#include "app.h"
#include "frontend.h"
#include "protocol.h"
#include "servers.h"
#include "transport.h"

#include <fcntl.h>
#include <getopt.h>
#include <libwebsockets.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define DEFAULT_SERVER   "http://127.0.0.1:8080"
#define LONG_POLL_WAIT_S 25
#define REQUEST_TIMEOUT_S 10     /* login, send, bank: connect to last byte */
#define REQUEST_TIMEOUT_MAX_S 300
#define WS_RETRY_S       30      /* auto: long polling this long, then websocket again */
#define WS_RETRY_MAX_S   86400

struct options {
    const char *server, *user, *transport, *ca_file;
    int do_register, headless, quiet, help;
    long interval_ms, ws_retry_s, timeout_s;
    struct servers *servers;
    char password[PROTO_PASSWORD_MAX + 2];
};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: chat --user NAME [--server URL[,URL...]] [--register]\n"
        "            [--transport short-poll|long-poll|websocket|sse|auto] [--interval-ms N]\n"
        "            [--ws-retry-s N] [--timeout-s N] [--quiet | --headless] [--ca FILE]\n"
        "  --server URLS      server address (default " DEFAULT_SERVER "); https:// is\n"
        "                     verified against the system CA store or --ca. Several\n"
        "                     comma-separated URLs (up to %d) are tried in turn: when\n"
        "                     one fails (login included), the client moves on to the\n"
        "                     next, with backoff, and resumes where it left off\n"
        "  --ca FILE          trust this CA certificate (PEM), e.g. certs/ca.pem from make certs\n"
        "  --user NAME        1-32 characters of a-z 0-9 _ -\n"
        "  --register         create the account first, then log in\n"
        "  --transport T      short-poll, long-poll, websocket, sse (Server-Sent Events)\n"
        "                     or auto (default websocket);\n"
        "                     auto uses websocket, falls back to long-poll when the\n"
        "                     upgrade is refused (e.g. by a proxy) and tries websocket\n"
        "                     again every --ws-retry-s seconds\n"
        "  --ws-retry-s N     auto: seconds on long-poll before trying websocket again\n"
        "                     (plus up to 30%% jitter), 1..%d (default %d)\n"
        "  --interval-ms N    short-poll period, 50..60000 (default 1000)\n"
        "  --timeout-s N      deadline of each login, send, bank and short-poll request,\n"
        "                     1..300 s (default %d); a long poll's is its hold + 10 s\n"
        "  --quiet            no terminal bell when an alert pops up\n"
        "  --headless         no UI: lines on stdin are messages; events on stdout as JSON\n"
        "Without --headless a full-screen UI opens; /help lists its commands.\n"
        "The password comes from CHAT_PASSWORD or is asked on the terminal.\n"
        "Exit codes: 0 ok, 1 usage/error, 2 authentication failed, 3 server unreachable,\n"
        "            4 left with messages or transfers not delivered.\n",
        SERVERS_MAX, WS_RETRY_MAX_S, WS_RETRY_S, REQUEST_TIMEOUT_S);
}

static const struct frontend_ops *frontend_of(const struct options *o)
{
    return o->headless ? &frontend_headless : &frontend_ui;
}

/* Errors before the core exists: JSON for tests in headless mode. */
static int fail(const struct options *o, int code, const char *msg)
{
    frontend_of(o)->print_error(msg);
    return code;
}

static int parse_flags(struct options *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        { "server", required_argument, NULL, 's' },
        { "user", required_argument, NULL, 'u' },
        { "register", no_argument, NULL, 'r' },
        { "transport", required_argument, NULL, 't' },
        { "interval-ms", required_argument, NULL, 'i' },
        { "ws-retry-s", required_argument, NULL, 'w' },
        { "timeout-s", required_argument, NULL, 'T' },
        { "headless", no_argument, NULL, 'H' },
        { "quiet", no_argument, NULL, 'q' },
        { "ca", required_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    char *end;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 's': o->server = optarg; break;
        case 'u': o->user = optarg; break;
        case 'r': o->do_register = 1; break;
        case 't': o->transport = optarg; break;
        case 'H': o->headless = 1; break;
        case 'q': o->quiet = 1; break;
        case 'c': o->ca_file = optarg; break;
        case 'h': o->help = 1; break;
        case 'i':
            o->interval_ms = strtol(optarg, &end, 10);
            if (*end || end == optarg)
                o->interval_ms = -1;
            break;
        case 'w':
            o->ws_retry_s = strtol(optarg, &end, 10);
            if (*end || end == optarg)
                o->ws_retry_s = -1;
            break;
        case 'T':
            o->timeout_s = strtol(optarg, &end, 10);
            if (*end || end == optarg)
                o->timeout_s = -1;
            break;
        default: return -1;
        }
    }
    return optind == argc ? 0 : -1;
}

/* Parses --server into the list of servers; NULL or why not (in err). */
static const char *parse_servers(struct options *o, struct app_config *cfg, char *err, size_t len)
{
    if (!(o->servers = servers_parse(o->server, err, len)))
        return err;
    if (o->ca_file && !servers_any_tls(o->servers))
        return "--ca is for https:// servers";
    cfg->servers = o->servers;
    cfg->ca_file = o->ca_file;
    return NULL;
}

/* --transport: a name, or "auto" (which starts on the WebSocket). */
static int parse_transport(const struct options *o, struct app_config *cfg)
{
    cfg->auto_transport = strcmp(o->transport, "auto") == 0;
    cfg->transport = cfg->auto_transport ? &transport_websocket : transport_find(o->transport);
    return cfg->transport ? 0 : -1;
}

/* Reads a line from /dev/tty with echo off. */
static int prompt_password(char *buf, size_t size)
{
    struct termios old, quiet;
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int echo_off = tcgetattr(fd, &old) == 0;
    if (echo_off) {
        quiet = old;
        quiet.c_lflag &= (tcflag_t)~ECHO;
        tcsetattr(fd, TCSAFLUSH, &quiet);
    }
    (void)!write(fd, "password: ", 10);
    size_t n = 0;
    char ch;
    while (read(fd, &ch, 1) == 1 && ch != '\n')
        if (n + 1 < size)
            buf[n++] = ch;
    buf[n] = '\0';
    if (echo_off)
        tcsetattr(fd, TCSAFLUSH, &old);
    (void)!write(fd, "\n", 1);
    close(fd);
    return 0;
}

static int get_password(struct options *o)
{
    const char *env = getenv("CHAT_PASSWORD");
    if (env) {
        if (strlen(env) >= sizeof o->password)
            return -1;
        snprintf(o->password, sizeof o->password, "%s", env);
        return 0;
    }
    return prompt_password(o->password, sizeof o->password);
}

/* Everything but the password; returns an exit code or -1 to go on. */
static int check_options(struct options *o, int argc, char **argv, struct app_config *cfg)
{
    const char *err;
    char why[300];
    if (parse_flags(o, argc, argv) < 0) {
        usage(stderr);
        return 1;
    }
    if (o->help) {
        usage(stdout);
        return 0;
    }
    if (!o->user)
        return fail(o, 1, "--user NAME is required");
    if (!proto_name_valid(o->user))
        return fail(o, 1, "user names are 1-32 characters of a-z 0-9 _ -");
    if (parse_transport(o, cfg) < 0)
        return fail(o, 1, "--transport must be short-poll, long-poll, websocket, sse or auto");
    if (o->interval_ms < 50 || o->interval_ms > 60000)
        return fail(o, 1, "--interval-ms must be between 50 and 60000");
    if (o->ws_retry_s < 1 || o->ws_retry_s > WS_RETRY_MAX_S)
        return fail(o, 1, "--ws-retry-s must be between 1 and 86400");
    if (o->timeout_s < 1 || o->timeout_s > REQUEST_TIMEOUT_MAX_S)
        return fail(o, 1, "--timeout-s must be between 1 and 300");
    if ((err = parse_servers(o, cfg, why, sizeof why)))
        return fail(o, 1, err);
    if (!o->headless && (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)))
        return fail(o, 1, "the UI needs a terminal on stdin and stdout; use --headless for pipes");
    cfg->frontend = frontend_of(o);
    cfg->quiet = o->quiet;
    cfg->user = o->user;
    cfg->do_register = o->do_register;
    cfg->interval_ms = (int)o->interval_ms;
    cfg->ws_retry_s = (int)o->ws_retry_s;
    cfg->timeout_s = (int)o->timeout_s;
    cfg->wait_s = LONG_POLL_WAIT_S;
    return -1;
}

/* lws errors as JSON lines so stderr stays parseable. */
static void log_emit(int level, const char *line)
{
    char buf[512];
    (void)level;
    snprintf(buf, sizeof buf, "lws: %s", line);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    json_t *o = json_pack("{s:s}", "log", buf);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (s)
        fprintf(stderr, "%s\n", s);
    free(s);
    json_decref(o);
}

/* After the options: the password, then the run. */
static int run(struct options *o, struct app_config *cfg)
{
    if (get_password(o) < 0)
        return fail(o, 1, "set CHAT_PASSWORD or run on a terminal to type the password");
    if (!proto_password_valid(o->password))
        return fail(o, o->do_register ? 1 : 2, "passwords are 8-128 bytes");
    cfg->password = o->password;
    return app_run(cfg);
}

int main(int argc, char **argv)
{
    struct options o = {
        .server = DEFAULT_SERVER, .transport = "websocket", .interval_ms = 1000,
        .ws_retry_s = WS_RETRY_S, .timeout_s = REQUEST_TIMEOUT_S,
    };
    struct app_config cfg;
    memset(&cfg, 0, sizeof cfg);
    lws_set_log_level(LLL_ERR, log_emit);
    int code = check_options(&o, argc, argv, &cfg);
    if (code < 0)
        code = run(&o, &cfg);
    sodium_memzero(o.password, sizeof o.password);
    servers_free(o.servers);
    return code;
}
