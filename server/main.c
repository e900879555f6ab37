/* main.c — chatd: flags, the lws context (HTTP + WebSocket on one port),
 * the service loop and a graceful shutdown on SIGINT/SIGTERM. */
#include "server.h"
#include "pwhash.h"
#include "transfers.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHUTDOWN_GRACE_US (2 * LWS_USEC_PER_SEC)

/* The only process-wide state: which signal asked us to stop. */
static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

static void usage(FILE *out)
{
    fprintf(out,
        "usage: chatd [--host ADDR] [--port N] [--db PATH] [--long-poll-max-s S]\n"
        "             [--transfer-delay-ms MS]\n"
        "  --host ADDR          address to listen on (default 127.0.0.1)\n"
        "  --port N             port, 0 picks a free one (default 8080)\n"
        "  --db PATH            SQLite database, created if missing (default db/chat.db)\n"
        "  --long-poll-max-s S  longest a long poll is held, 1-300 (default 25)\n"
        "  --transfer-delay-ms MS  time each transfer step takes, 0-60000 (default 1500)\n");
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_flags(int argc, char **argv, struct server_config *cfg)
{
    static const struct option opts[] = {
        { "host", required_argument, 0, 'h' },
        { "port", required_argument, 0, 'p' },
        { "db", required_argument, 0, 'd' },
        { "long-poll-max-s", required_argument, 0, 'l' },
        { "transfer-delay-ms", required_argument, 0, 't' },
        { "help", no_argument, 0, 'H' },
        { 0, 0, 0, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'h': cfg->host = optarg; break;
        case 'd': cfg->db_path = optarg; break;
        case 'p': bad = parse_int(optarg, 0, 65535, &cfg->port); break;
        case 'l': bad = parse_int(optarg, 1, 300, &cfg->long_poll_max_s); break;
        case 't': bad = parse_int(optarg, 0, 60000, &cfg->transfer_delay_ms); break;
        case 'H': usage(stdout); exit(0);
        default: bad = 1;
        }
        if (bad) {
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return -1;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    { PROTO_WS_SUBPROTOCOL, server_callback, sizeof(struct session), 4096, 0, NULL, 0 },
    { NULL, NULL, 0, 0, 0, NULL, 0 }
};

static struct lws_context *server_context(struct server *srv, lws_retry_bo_t *idle)
{
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    idle->secs_since_valid_ping = (uint16_t)srv->cfg.heartbeat_s;
    idle->secs_since_valid_hangup = (uint16_t)(srv->cfg.heartbeat_s * 2);
    info.port = srv->cfg.port;
    info.iface = srv->cfg.host;
    info.protocols = protocols;
    info.user = srv;
    info.vhost_name = "chatd";
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
    info.retry_and_idle_policy = idle;
    info.timeout_secs_ah_idle = 10;   /* cut clients that trickle their headers */
    info.max_http_header_pool = 1024; /* a parked long poll keeps its header buffer */
    return lws_create_context(&info);
}

struct shutdown_timer {
    lws_sorted_usec_list_t sul;
    int expired;
};

static void shutdown_expired(lws_sorted_usec_list_t *sul)
{
    lws_container_of(sul, struct shutdown_timer, sul)->expired = 1;
}

/* Answers parked long polls, closes WebSockets with 1001, and gives them a
 * short grace period to drain before the context is destroyed. */
static void server_drain(struct server *srv)
{
    struct shutdown_timer t = { .expired = 0 };
    srv->stopping = 1;
    lws_sul_schedule(srv->ctx, 0, &t.sul, shutdown_expired, SHUTDOWN_GRACE_US);
    feed_wake_all(srv);
    while ((srv->subscribers.count || srv->responding) && !t.expired)
        if (lws_service(srv->ctx, 0) < 0)
            break;
    lws_sul_cancel(&t.sul);
}

static int server_run(struct server *srv)
{
    lws_retry_bo_t idle = { 0 };
    srv->ctx = server_context(srv, &idle);
    if (!srv->ctx) {
        fprintf(stderr, "chatd: cannot listen on %s:%d\n", srv->cfg.host, srv->cfg.port);
        return 1;
    }
    srv->pwhash = pwhash_pool_new(srv->ctx, 2, 64);
    srv->transfers = transfers_new(srv, srv->cfg.transfer_delay_ms);
    if (!srv->pwhash || !srv->transfers || transfers_resume(srv->transfers) < 0) {
        fprintf(stderr, "chatd: cannot start password hashing workers or the bank\n");
        transfers_free(srv->transfers);
        pwhash_pool_free(srv->pwhash);
        lws_context_destroy(srv->ctx);
        return 1;
    }
    /* Timers set outside the loop (resumed transfers) are only seen once
     * the loop wakes: wake it now rather than at the first connection. */
    lws_cancel_service(srv->ctx);
    struct lws_vhost *vh = lws_get_vhost_by_name(srv->ctx, "chatd");
    printf("listening on http://%s:%d\n", srv->cfg.host, vh ? lws_get_vhost_listen_port(vh) : srv->cfg.port);
    fflush(stdout);
    while (!stop_signal)
        if (lws_service(srv->ctx, 0) < 0)
            break;
    server_drain(srv);
    transfers_free(srv->transfers);    /* unfinished ones resume at the next start */
    pwhash_pool_stop(srv->pwhash);
    lws_context_destroy(srv->ctx);
    pwhash_pool_free(srv->pwhash);
    return 0;
}

int main(int argc, char **argv)
{
    struct server srv;
    char err[256] = "";
    memset(&srv, 0, sizeof srv);
    srv.cfg = (struct server_config){
        .host = "127.0.0.1", .port = 8080, .db_path = "db/chat.db",
        .long_poll_max_s = 25, .heartbeat_s = 20, .hello_timeout_s = 5,
        .token_ttl_s = 24 * 3600, .transfer_delay_ms = 1500,
    };
    if (parse_flags(argc, argv, &srv.cfg) < 0)
        return 2;
    if (sodium_init() < 0) {
        fprintf(stderr, "chatd: libsodium failed to initialise\n");
        return 1;
    }
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    lws_set_log_level(LLL_ERR, NULL);
    srv.store = store_open(srv.cfg.db_path, err, sizeof err);
    if (!srv.store) {
        fprintf(stderr, "chatd: cannot open database %s: %s\n", srv.cfg.db_path, err);
        return 1;
    }
    int rc = server_run(&srv);
    store_free(srv.store);
    return rc;
}
