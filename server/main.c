/* main.c — chatd: flags, the lws context (HTTP + WebSocket on one port),
 * the event loop and the end of its every turn (the group commit, then the
 * WebSocket writer: turn_end), the modules' start and stop in order, and a
 * graceful shutdown on SIGINT/SIGTERM.
 *
 * The loop is libuv's (epoll), which lws joins as a "foreign" loop through
 * its libuv plugin (Debian: libwebsockets-evlib-uv). lws' own loop calls
 * poll() over every connection at every wake-up: with 19,000 idle
 * connections that was half of the server's time and a probe's p99 of tens
 * to hundreds of ms. Owning the loop also lets us run it one turn at a time
 * (UV_RUN_ONCE) for the shutdown drain, as lws_service() did. */
#include "dispatch.h"
#include "auth.h"
#include "feed.h"
#include "presence.h"
#include "http_reject.h"
#include "limiter.h"
#include "pwhash.h"
#include "rooms.h"
#include "server.h"
#include "store.h"
#include "sweep.h"
#include "transfers.h"
#include "ws_out.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define SHUTDOWN_GRACE_US (2 * LWS_USEC_PER_SEC)

/* The only process-wide state: which signal asked us to stop. */
static volatile sig_atomic_t stop_signal;

/* Signals arrive through the loop (uv_signal: a self-pipe), so the turn
 * that sees one returns and the main loop below stops. */
static void on_signal(uv_signal_t *h, int sig)
{
    (void)h;
    stop_signal = sig;
}

struct loop {
    uv_loop_t   uv;
    uv_signal_t sig[2];         /* SIGINT, SIGTERM */
    uv_check_t  turn_end;       /* runs turn_end() after each turn's I/O */
    int         turn_end_on;
    /* the store's asynchronous connection (store.h), PostgreSQL only */
    struct store *store;        /* NULL: not watched */
    uv_timer_t  store_tick;     /* store_io_service every STORE_IO_TICK_MS */
    uv_poll_t  *store_poll;     /* its socket, while it has one */
    int         store_fd, store_want;
    struct lws_context *ctx;    /* told after the store's completions */
};

/* Integer flags: name, where it goes, allowed range, help. */
struct int_flag {
    const char *name;
    size_t offset;              /* of the int in struct server_config */
    int lo, hi;
    const char *help;
};

#define CFG(field) offsetof(struct server_config, field)
static const struct int_flag int_flags[] = {
    { "port", CFG(port), 0, 65535, "port, 0 picks a free one (default 8080)" },
    { "long-poll-max-s", CFG(long_poll_max_s), 1, 300, "longest hold of a long poll (default 25)" },
    { "long-poll-pace-ms", CFG(long_poll_pace_ms), 0, 10000, "a session's long polls are answered at most this often (default 3; 0: at once)" },
    { "transfer-delay-ms", CFG(transfer_delay_ms), 0, 60000, "time of each transfer step (default 1500)" },
    { "max-connections", CFG(max_connections), 16, 1000000, "open connections in all (default 20000)" },
    { "max-connections-per-ip", CFG(max_connections_per_ip), 1, 1000000, "per client address (default 256)" },
    { "max-long-polls", CFG(max_long_polls), 1, 1000000, "long polls held at once (default 20000)" },
    { "max-request-bytes", CFG(max_request_bytes), 1024, PROTO_MAX_REQUEST_BYTES, "HTTP body / WS message (default 65536)" },
    { "msg-rate", CFG(msg_rate), 1, 100000, "messages per second per user, burst twice that (default 20)" },
    { "login-rate", CFG(login_rate), 1, 10000, "failed logins per user and address before growing delays; login tries per address 3x a minute (default 10)" },
    { "header-timeout-s", CFG(header_timeout_s), 1, 300, "time to send the request headers (default 10)" },
    { "request-timeout-s", CFG(request_timeout_s), 1, 300, "time to send a request's body after its headers (default 15)" },
    { "idle-timeout-s", CFG(idle_timeout_s), 1, 3600, "idle keep-alive HTTP connection (default 5)" },
    { "heartbeat-s", CFG(heartbeat_s), 2, 3600, "WS ping when quiet; hang up after twice (default 20)" },
    { "session-ttl-s", CFG(token_ttl_s), 1, 90 * 86400, "a login lasts at most this (default 86400)" },
    { "session-idle-s", CFG(session_idle_s), 1, 90 * 86400, "a login unused this long ends (default 3600)" },
    { "presence-grace-ms", CFG(presence_grace_ms), 100, 600000, "a user goes offline this long after their last connection ends (default 10000)" },
    { "presence-poll-ms", CFG(presence_poll_ms), 100, 600000, "a poll keeps its user online this long (default 10000)" },
    { "presence-lease-ms", CFG(presence_lease_ms), 600, 600000, "PostgreSQL: an instance's presence lease, renewed every sixth of it; a dead instance's users go offline within it plus that sixth (default 30000)" },
};
#define N_INT_FLAGS (sizeof int_flags / sizeof int_flags[0])

static void usage(FILE *out)
{
    fprintf(out, "usage: chatd [flags]\n"
                 "  --host ADDR                  IPv4 or IPv6 address to listen on, only that one\n"
                 "                               (default 127.0.0.1; 0.0.0.0 or :: for all)\n"
                 "  --db PATH|URL                SQLite database file, created if missing (default\n"
                 "                               db/chat.db), or postgresql://USER@HOST:PORT/DB, which\n"
                 "                               several chatd instances may share\n"
                 "  --instance NAME              this instance's name in /healthz (default HOST:PORT)\n"
                 "  --tls-cert FILE --tls-key FILE  serve https:// and wss:// (TLS 1.2+) with this PEM\n"
                 "                               certificate chain and key\n"
                 "  --allow-origin ORIGIN        a browser Origin allowed to open a WebSocket (repeatable;\n"
                 "                               default none; clients that send no Origin are allowed)\n"
                 "  --trusted-proxy ADDR         a balancer's numeric IPv4 or IPv6 address (repeatable, up\n"
                 "                               to 8): a request from it is the client's named last in\n"
                 "                               X-Forwarded-For (default none: the TCP peer, always)\n"
                 "  --pwhash-cost interactive|min  argon2id cost of new password hashes (default\n"
                 "                               interactive: 64 MiB, t=2); min, libsodium's least, is\n"
                 "                               for tests only: never in production\n");
    for (size_t i = 0; i < N_INT_FLAGS; i++)
        fprintf(out, "  --%-26s %s, %d-%d\n", int_flags[i].name, int_flags[i].help,
                int_flags[i].lo, int_flags[i].hi);
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

/* 4 for an IPv4 address, 6 for IPv6, 0 for anything else (a name). */
static int host_family(const char *host)
{
    unsigned char a[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, host, a) == 1)
        return 4;
    return inet_pton(AF_INET6, host, a) == 1 ? 6 : 0;
}

static int parse_flag(int idx, const char *arg, struct server_config *cfg)
{
    if (idx == N_INT_FLAGS) {
        /* lws would also take an interface name, and with IPv6 on it
         * binds an IPv4 address as [::], every address (lws 4.1.6
         * lws_interface_to_sa): only numeric addresses, see server_context. */
        if (!host_family(arg)) {
            fprintf(stderr, "chatd: --host must be an IPv4 or IPv6 address (0.0.0.0 or :: for all)\n");
            return -1;
        }
        cfg->host = arg;
    }
    else if (idx == N_INT_FLAGS + 1)
        cfg->db_path = arg;
    else if (idx == N_INT_FLAGS + 2) {
        usage(stdout);
        exit(0);
    } else if (idx == N_INT_FLAGS + 4) {
        cfg->tls_cert = arg;
    } else if (idx == N_INT_FLAGS + 5) {
        cfg->tls_key = arg;
    } else if (idx == N_INT_FLAGS + 6) {
        if (strlen(arg) > 64) {
            fprintf(stderr, "chatd: --instance is at most 64 characters\n");
            return -1;
        }
        cfg->instance = arg;
    } else if (idx == N_INT_FLAGS + 3) {
        if (cfg->n_allow_origins == (int)(sizeof cfg->allow_origins / sizeof cfg->allow_origins[0])) {
            fprintf(stderr, "chatd: too many --allow-origin\n");
            return -1;
        }
        cfg->allow_origins[cfg->n_allow_origins++] = arg;
    } else if (idx == N_INT_FLAGS + 7) {
        if (!host_family(arg)) {
            fprintf(stderr, "chatd: --trusted-proxy must be a numeric IPv4 or IPv6 address, not %s\n", arg);
            return -1;
        }
        if (cfg->n_trusted_proxies == (int)(sizeof cfg->trusted_proxies / sizeof cfg->trusted_proxies[0])) {
            fprintf(stderr, "chatd: at most %d --trusted-proxy\n", (int)(sizeof cfg->trusted_proxies / sizeof cfg->trusted_proxies[0]));
            return -1;
        }
        cfg->trusted_proxies[cfg->n_trusted_proxies++] = arg;
    } else if (idx == N_INT_FLAGS + 8) {
        enum pwhash_cost cost;
        if (pwhash_cost_parse(arg, &cost) < 0) {
            fprintf(stderr, "chatd: --pwhash-cost must be interactive or min\n");
            return -1;
        }
        cfg->pwhash_cost = (int)cost;
    } else {
        const struct int_flag *f = &int_flags[idx];
        if (parse_int(arg, f->lo, f->hi, (int *)((char *)cfg + f->offset)) < 0) {
            fprintf(stderr, "chatd: --%s must be an integer from %d to %d\n", f->name, f->lo, f->hi);
            return -1;
        }
    }
    return 0;
}

static int parse_flags(int argc, char **argv, struct server_config *cfg)
{
    struct option opts[N_INT_FLAGS + 10];
    for (size_t i = 0; i < N_INT_FLAGS; i++)
        opts[i] = (struct option){ int_flags[i].name, required_argument, 0, (int)i };
    opts[N_INT_FLAGS] = (struct option){ "host", required_argument, 0, N_INT_FLAGS };
    opts[N_INT_FLAGS + 1] = (struct option){ "db", required_argument, 0, N_INT_FLAGS + 1 };
    opts[N_INT_FLAGS + 2] = (struct option){ "help", no_argument, 0, N_INT_FLAGS + 2 };
    opts[N_INT_FLAGS + 3] = (struct option){ "allow-origin", required_argument, 0, N_INT_FLAGS + 3 };
    opts[N_INT_FLAGS + 4] = (struct option){ "tls-cert", required_argument, 0, N_INT_FLAGS + 4 };
    opts[N_INT_FLAGS + 5] = (struct option){ "tls-key", required_argument, 0, N_INT_FLAGS + 5 };
    opts[N_INT_FLAGS + 6] = (struct option){ "instance", required_argument, 0, N_INT_FLAGS + 6 };
    opts[N_INT_FLAGS + 7] = (struct option){ "trusted-proxy", required_argument, 0, N_INT_FLAGS + 7 };
    opts[N_INT_FLAGS + 8] = (struct option){ "pwhash-cost", required_argument, 0, N_INT_FLAGS + 8 };
    opts[N_INT_FLAGS + 9] = (struct option){ 0, 0, 0, 0 };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
        if (c == '?' || c == ':' || parse_flag(c, optarg, cfg) < 0) {
            usage(stderr);
            return -1;
        }
    if (optind < argc || !cfg->tls_cert != !cfg->tls_key) {
        if (optind >= argc)
            fprintf(stderr, "chatd: --tls-cert and --tls-key go together\n");
        usage(stderr);
        return -1;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    /* rx_buffer_size: lws allocates it for every WebSocket at its
     * handshake, idle or not, so it is small: a short chat frame fits, and a
     * longer one comes in pieces that ws_api.c reassembles anyway (1024
     * cost every idle WebSocket 0.5 KB more, tests/bench/README.md).
     * tx_packet_size: lws 4.1 hands the socket at most this much of a write
     * (else rx_buffer_size) and sends the rest a piece per POLLOUT, so a
     * packed write (ws_out.c) or an answer of 16 KiB would go out in 1 KiB
     * pieces, a loop turn each; nothing is allocated for it. */
    { PROTO_WS_SUBPROTOCOL, server_callback, sizeof(struct session), 512, 0, NULL, 128 * 1024 },
    /* what lws' HTTP parser gives up on: a JSON 400 and a close */
    { HTTP_REJECT_PROTOCOL, http_reject_callback, 0, 0, 0, NULL, 0 },
    { NULL, NULL, 0, 0, 0, NULL, 0 }
};

/* WebSocket heartbeats are the sweep's (sweep.c: ping after --heartbeat-s
 * quiet, hang up after as long again without an answer). lws' own
 * (retry_and_idle_policy) are a timer per connection in its one sorted
 * list, re-armed at every pong; a hang-up of 0 turns them off. (Without a
 * policy lws would still arm its 300/310 s default on every WebSocket.) */
static const lws_retry_bo_t no_lws_heartbeat = { .secs_since_valid_hangup = 0 };

static struct lws_context *server_context(struct server *srv, uv_loop_t *loop)
{
    struct lws_context_creation_info info;
    void *foreign_loops[1] = { loop };
    memset(&info, 0, sizeof info);
    info.port = srv->cfg.port;
    info.iface = srv->cfg.host;
    info.protocols = protocols;
    info.user = srv;
    info.vhost_name = "chatd";
    /* No VALIDATE_UTF8: ws_api.c checks text and close reasons itself, so it
     * can answer 1007 (lws' own check hangs up without a close frame). */
    info.options = LWS_SERVER_OPTION_LIBUV;
    /* With IPv6 enabled, lws 4.1 parses an IPv4 --host into the wrong
     * bytes of its sockaddr_in6 and listens on [::], every address of the
     * machine. An IPv4 socket binds exactly the address asked for; an IPv6
     * address is parsed right (:: is every address, IPv4 included). */
    if (host_family(srv->cfg.host) == 4)
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    /* A request lws cannot parse as HTTP (unknown method, garbage, CONNECT)
     * goes to http_reject.c, the vhost's "raw" protocol, instead of lws'
     * HTML 403 (http_reject.c says which; valid HTTP never takes this way). */
    info.options |= LWS_SERVER_OPTION_FALLBACK_TO_APPLY_LISTEN_ACCEPT_CONFIG;
    info.pvo = &http_reject_pvo;
    info.foreign_loops = foreign_loops;
    info.pcontext = &srv->ctx;          /* NULLed by lws once it is freed */
    if (srv->cfg.tls_cert) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = srv->cfg.tls_cert;
        info.ssl_private_key_filepath = srv->cfg.tls_key;
        /* TLS 1.2 and 1.3 only */
        info.ssl_options_set = SSL_OP_NO_SSLv2 | SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1;
        /* HTTP/1.1 only: over HTTP/2, browsers open wss:// as an RFC 8441
         * extended CONNECT, which lws 4.1 fails (ERR_HTTP2_PROTOCOL_ERROR,
         * then Chromium's fallback to HTTP/1.1 only after ~5 s) */
        info.alpn = "http/1.1";
    }
    info.retry_and_idle_policy = &no_lws_heartbeat;
    /* cut clients that trickle their headers (slowloris) */
    info.timeout_secs_ah_idle = (unsigned)srv->cfg.header_timeout_s;
    info.keepalive_timeout = srv->cfg.idle_timeout_s;
    /* A parked long poll gives its header buffer back (route_events), but
     * room for one each costs nothing until used. */
    info.max_http_header_pool2 = (unsigned)srv->cfg.max_long_polls + 1024;
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
static void server_drain(struct server *srv, struct loop *lp)
{
    struct shutdown_timer t = { .expired = 0 };
    srv->stopping = 1;
    lws_sul_schedule(srv->ctx, 0, &t.sul, shutdown_expired, SHUTDOWN_GRACE_US);
    feed_wake_all(srv);
    while ((srv->subscribers.count || srv->responding) && !t.expired)
        uv_run(&lp->uv, UV_RUN_ONCE);
    lws_sul_cancel(&t.sul);
}

/* lws closes its libuv handles asynchronously: its context is freed by a
 * second lws_context_destroy once the loop has run their close callbacks
 * (minimal-http-server-eventlib-foreign does the same). */
static void server_context_destroy(struct server *srv, struct loop *lp)
{
    /* from here a second signal kills, as it would without a handler */
    for (int i = 0; i < 2; i++)
        uv_signal_stop(&lp->sig[i]);
    lws_context_destroy(srv->ctx);
    for (int i = 0; i < 1000 && uv_run(&lp->uv, UV_RUN_NOWAIT); i++)
        ;
    if (srv->ctx)
        lws_context_destroy(srv->ctx);
}

static void close_handle(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* The end of every loop turn (a libuv check handle: it runs right after the
 * turn's I/O callbacks). First the group commit of the turn's chat sends
 * (feed.c), then one write per WebSocket of what it has (ws_out.c): its
 * acks, which the commit has just made true, and every new event. */
static void turn_end(uv_check_t *h)
{
    struct server *srv = h->data;
    feed_flush(srv);
    ws_out_turn_end(srv);
}

static int turn_end_start(struct loop *lp, struct server *srv)
{
    if (uv_check_init(&lp->uv, &lp->turn_end) != 0)
        return -1;
    lp->turn_end.data = srv;
    lp->turn_end_on = 1;
    return uv_check_start(&lp->turn_end, turn_end);
}

/* Closed by the loop's last runs (server_context_destroy, loop_close). */
static void turn_end_stop(struct loop *lp)
{
    if (!lp->turn_end_on)
        return;
    uv_check_stop(&lp->turn_end);
    uv_close((uv_handle_t *)&lp->turn_end, NULL);
    lp->turn_end_on = 0;
}

/* ---- the store's asynchronous connection, watched by this loop ---- */

static void store_poll_closed(uv_handle_t *h)
{
    free(h);
}

/* The store is about to close the socket (store_io_on_close): stop
 * watching it first, as its number may come back with the next one. */
static void store_unwatch(void *arg)
{
    struct loop *lp = arg;
    if (lp->store_poll)
        uv_close((uv_handle_t *)lp->store_poll, store_poll_closed);
    lp->store_poll = NULL;
}

static void store_service(struct loop *lp);

static void on_store_poll(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    store_service(h->data);
}

static void on_store_tick(uv_timer_t *t)
{
    store_service(t->data);
}

/* Watches the descriptor for what the store wants now. */
static void store_rewatch(struct loop *lp)
{
    int fd = store_io_fd(lp->store), want = store_io_want(lp->store);
    if (lp->store_poll && (fd != lp->store_fd || want == 0))
        store_unwatch(lp);
    lp->store_fd = fd;
    if (fd < 0 || want == 0)
        return;
    if (!lp->store_poll) {
        lp->store_poll = calloc(1, sizeof *lp->store_poll);
        if (!lp->store_poll || uv_poll_init(&lp->uv, lp->store_poll, fd) != 0) {
            free(lp->store_poll);
            lp->store_poll = NULL;
            return;                     /* the tick services it */
        }
        lp->store_poll->data = lp;
        lp->store_want = -1;
    }
    if (want != lp->store_want) {
        int ev = ((want & STORE_IO_READ) ? UV_READABLE : 0) |
                 ((want & STORE_IO_WRITE) ? UV_WRITABLE : 0);
        if (uv_poll_start(lp->store_poll, ev, on_store_poll) == 0)
            lp->store_want = want;
    }
}

/* The store's completions run here, outside any lws callback, and may
 * schedule lws timers (a transfer's next step, a retry): lws 4.1 on libuv
 * arms its timer for the earliest one only when it services, so it is
 * woken to look (without this, a step scheduled from a completion could
 * wait for unrelated traffic: test_bank's WebSocket kill-and-restart case
 * stalled on PostgreSQL). */
static void store_service(struct loop *lp)
{
    store_io_service(lp->store);
    store_rewatch(lp);
    if (lp->ctx)
        lws_cancel_service(lp->ctx);
}

/* The store's completions come through its descriptor (PostgreSQL's
 * asynchronous connection, connected now so /healthz can tell when the
 * database is out of reach; SQLite's writer thread's eventfd) and the tick
 * (the age bound). */
static void store_watch_start(struct loop *lp, struct store *st)
{
    lp->store = NULL;
    lp->store_poll = NULL;
    if (uv_timer_init(&lp->uv, &lp->store_tick) != 0)
        return;
    lp->store = st;
    lp->store_fd = -1;
    lp->store_tick.data = lp;
    store_io_on_close(st, store_unwatch, lp);
    uv_timer_start(&lp->store_tick, on_store_tick, STORE_IO_TICK_MS, STORE_IO_TICK_MS);
    store_service(lp);
}

static void store_watch_stop(struct loop *lp)
{
    if (!lp->store)
        return;
    store_io_on_close(lp->store, NULL, NULL);
    store_unwatch(lp);
    uv_timer_stop(&lp->store_tick);
    uv_close((uv_handle_t *)&lp->store_tick, NULL);
    lp->store = NULL;
    lp->ctx = NULL;
}

static int loop_open(struct loop *lp)
{
    static const int which[2] = { SIGINT, SIGTERM };
    lp->turn_end_on = 0;
    lp->store = NULL;
    lp->store_poll = NULL;
    if (uv_loop_init(&lp->uv) != 0)
        return -1;
    for (int i = 0; i < 2; i++)
        if (uv_signal_init(&lp->uv, &lp->sig[i]) != 0 ||
            uv_signal_start(&lp->sig[i], on_signal, which[i]) != 0)
            return -1;
    return 0;
}

/* Closes whatever handle is left (ours; lws' if it failed to) and the loop. */
static void loop_close(struct loop *lp)
{
    uv_walk(&lp->uv, close_handle, NULL);
    uv_run(&lp->uv, UV_RUN_DEFAULT);
    if (uv_loop_close(&lp->uv) != 0)
        fprintf(stderr, "chatd: event loop still busy at exit\n");
}

static struct limiter *server_limiter(const struct server_config *cfg)
{
    struct limiter_config lc = {
        .max_connections = (unsigned)cfg->max_connections,
        .max_connections_per_ip = (unsigned)cfg->max_connections_per_ip,
    };
    lc.rate[LIMIT_MESSAGES] = cfg->msg_rate;
    lc.burst[LIMIT_MESSAGES] = 2.0 * cfg->msg_rate;
    lc.login_free_failures = (unsigned)cfg->login_rate;
    lc.rate[LIMIT_LOGIN_ADDR] = 3 * cfg->login_rate / 60.0;
    lc.burst[LIMIT_LOGIN_ADDR] = 3 * cfg->login_rate;
    return limiter_new(&lc);
}

static int server_run(struct server *srv, struct loop *lp)
{
    srv->limiter = server_limiter(&srv->cfg);
    if (!srv->limiter)
        return 1;
    srv->loop = &lp->uv;
    srv->ctx = server_context(srv, &lp->uv);
    if (!srv->ctx) {
        fprintf(stderr, "chatd: cannot listen on %s:%d\n", srv->cfg.host, srv->cfg.port);
        limiter_free(srv->limiter);
        return 1;
    }
    srv->pwhash = pwhash_pool_new(srv->ctx, 2, 64, (enum pwhash_cost)srv->cfg.pwhash_cost);
    srv->transfers = transfers_new(srv, srv->cfg.transfer_delay_ms);
    srv->sweep = sweep_new(srv->ctx, srv);
    if (!srv->pwhash || !srv->transfers || !srv->sweep || auth_start(srv) < 0 ||
        transfers_resume(srv->transfers) < 0) {
        fprintf(stderr, "chatd: cannot start password hashing workers or the bank\n");
        sweep_free(srv->sweep);
        srv->sweep = NULL;
        auth_stop(srv);
        transfers_free(srv->transfers);
        pwhash_pool_free(srv->pwhash);
        server_context_destroy(srv, lp);
        limiter_free(srv->limiter);
        return 1;
    }
    /* Timers set outside the loop (resumed transfers) are only seen once
     * the loop wakes: wake it now rather than at the first connection. */
    ws_out_start(srv);
    feed_start(srv, turn_end_start(lp, srv) == 0);
    lp->ctx = srv->ctx;
    store_watch_start(lp, srv->store);
    lws_cancel_service(srv->ctx);
    struct lws_vhost *vh = lws_get_vhost_by_name(srv->ctx, "chatd");
    int port = vh ? lws_get_vhost_listen_port(vh) : srv->cfg.port;
    int v6 = host_family(srv->cfg.host) == 6;
    char where[80];                     /* HOST:PORT, an IPv6 host in brackets */
    snprintf(where, sizeof where, v6 ? "[%s]:%d" : "%s:%d", srv->cfg.host, port);
    snprintf(srv->instance, sizeof srv->instance, "%s", srv->cfg.instance ? srv->cfg.instance : where);
    presence_start(srv);
    printf("listening on %s://%s\n", srv->cfg.tls_cert ? "https" : "http", where);
    fflush(stdout);
    while (!stop_signal)
        uv_run(&lp->uv, UV_RUN_ONCE);
    sweep_free(srv->sweep);            /* every deadline is off from here */
    srv->sweep = NULL;
    server_drain(srv, lp);
    presence_stop(srv);
    turn_end_stop(lp);
    feed_stop(srv);
    store_watch_stop(lp);
    ws_out_stop(srv);
    transfers_free(srv->transfers);    /* unfinished ones resume at the next start */
    pwhash_pool_stop(srv->pwhash);
    server_context_destroy(srv, lp);
    auth_stop(srv);                    /* after the last connection closed */
    pwhash_pool_free(srv->pwhash);
    limiter_free(srv->limiter);
    return 0;
}

int main(int argc, char **argv)
{
    struct server srv;
    char err[256] = "";
    memset(&srv, 0, sizeof srv);
    srv.cfg = (struct server_config){
        .host = "127.0.0.1", .port = 8080, .db_path = "db/chat.db",
        .long_poll_max_s = 25, .long_poll_pace_ms = 3, .heartbeat_s = 20, .hello_timeout_s = 5,
        .token_ttl_s = 24 * 3600, .session_idle_s = 3600, .transfer_delay_ms = 1500,
        .max_connections = 20000, .max_connections_per_ip = 256, .max_long_polls = 20000,
        .max_request_bytes = PROTO_MAX_REQUEST_BYTES, .msg_rate = 20, .login_rate = 10,
        .header_timeout_s = 10, .request_timeout_s = 15, .idle_timeout_s = 5,
    };
    if (parse_flags(argc, argv, &srv.cfg) < 0)
        return 2;
    if (srv.cfg.pwhash_cost == PWHASH_COST_MIN)
        fprintf(stderr, "chatd: WARNING: --pwhash-cost min: new passwords get libsodium's least "
                        "argon2id cost, cheap to crack from a stolen database "
                        "(tests only: never in production)\n");
    if (sodium_init() < 0) {
        fprintf(stderr, "chatd: libsodium failed to initialise\n");
        return 1;
    }
    struct loop loop;
    if (loop_open(&loop) < 0) {
        fprintf(stderr, "chatd: cannot set up the event loop\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    lws_set_log_level(LLL_ERR, NULL);
    srv.store = store_open(srv.cfg.db_path, err, sizeof err);
    if (!srv.store) {
        /* a URL may hold a password: name only the kind of store */
        fprintf(stderr, "chatd: cannot open database %s: %s\n",
                strstr(srv.cfg.db_path, "://") ? "(PostgreSQL URL)" : srv.cfg.db_path, err);
        loop_close(&loop);
        return 1;
    }
    srv.feed = feed_new(srv.store);
    srv.rooms = rooms_new();      /* after the feed's newest id: rooms_apply_member is idempotent */
    if (srv.rooms && rooms_load(srv.rooms, srv.store) != STORE_OK) {
        fprintf(stderr, "chatd: cannot read the rooms' members\n");
        rooms_free(srv.rooms);
        srv.rooms = NULL;
    }
    srv.ws_out = ws_out_new();
    srv.presence = presence_new(&srv, srv.cfg.presence_grace_ms, srv.cfg.presence_poll_ms,
                                srv.cfg.presence_lease_ms);
    int rc = srv.feed && srv.rooms && srv.ws_out && srv.presence ? server_run(&srv, &loop) : 1;
    feed_free(srv.feed);
    rooms_free(srv.rooms);
    store_free(srv.store);
    presence_free(srv.presence);
    loop_close(&loop);
    ws_out_free(srv.ws_out);
    return rc;
}
