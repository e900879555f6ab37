/* clients.c — the simulated users: one lws context holding every client,
 * each client being the real thing (a core, an http, a transport from
 * libclient.a) with bench callbacks. Messages carry "bench:PHASE:SEQ:" and
 * padding; the send time of each sequence number is kept (CLOCK_MONOTONIC,
 * taken when the message is handed to core_send) and every receipt is
 * checked against a per-client bitmap, so a duplicate or a loss is seen
 * whatever the core does. */
#include "bench.h"
#include "login.h"
#include "http.h"
#include "protocol.h"
#include "transport.h"
#include "wsi_owner.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <libwebsockets.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <uv.h>

#define BENCH_ROOM        "general"     /* every user is in it (protocol v1.1) */
#define BENCH_PASSWORD    "bench-password-0123"
#define LOGINS_IN_FLIGHT  4
#define TICK_US           100000   /* conditions are also checked after every event */

/* ---- the protocol table, wrapped for socket-level accounting ---- */

static lws_callback_function *orig_owner, *orig_http, *orig_ws, *orig_sse;

static int wrap_owner(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                      void *in, size_t len)
{
    if (reason == LWS_CALLBACK_WSI_DESTROY)
        wire_destroyed(wsi);
    return orig_owner(wsi, reason, user, in, len);
}

static int wrap_http(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                     void *in, size_t len)
{
    wire_observe(wsi, (int)reason);
    return orig_http(wsi, reason, user, in, len);
}

static int wrap_ws(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                   void *in, size_t len)
{
    wire_observe(wsi, (int)reason);
    return orig_ws(wsi, reason, user, in, len);
}

static int wrap_sse(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                    void *in, size_t len)
{
    wire_observe(wsi, (int)reason);
    return orig_sse(wsi, reason, user, in, len);
}

static struct lws_protocols protocols[6];
static const struct lws_protocols timer_protocol;
static int rate_timer_adopt(struct lws_context *ctx);
static void rate_timer_closed(void);
static lws_sorted_usec_list_t tick_sul;
static struct lws_context *tick_ctx;
static uv_loop_t bench_loop;        /* one context at a time per process */
static int bench_uv;                /* the context runs on bench_loop */

/* libuv for holding many idle connections, where lws' poll() loop is the
 * bottleneck; lws' poll() otherwise: for the few busy connections of the
 * other modes it costs the generator less (libuv's uv_poll re-registers a
 * socket with epoll at every change: a new long-poll connection per
 * request costs ~0.4 ms more latency through it), and it keeps their
 * figures comparable with the earlier ones. */
int bench_loop_is_uv(const struct bench_opts *o)
{
    /* thousands of sockets: poll() over all of them each turn would make the
     * generator, not the server, the limit */
    return o->loop_uv > 0 || (o->loop_uv < 0 && (o->mode == MODE_IDLE || o->mode == MODE_FANOUT || o->mode == MODE_ROOMS) &&
                              !o->probe_child);
}

static void close_handle(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void bench_loop_close(void)
{
    uv_walk(&bench_loop, close_handle, NULL);
    uv_run(&bench_loop, UV_RUN_DEFAULT);
    uv_loop_close(&bench_loop);
}

static void tick(lws_sorted_usec_list_t *sul)
{
    lws_sul_schedule(tick_ctx, 0, sul, tick, TICK_US);
}

int bench_ctx_create(struct bench *b, long max_conns)
{
    struct lws_context_creation_info info;
    (void)max_conns;
    wire_init();
    protocols[0] = *wsi_owner_protocol();
    orig_owner = protocols[0].callback;
    protocols[0].callback = wrap_owner;
    protocols[1] = *http_protocol();
    orig_http = protocols[1].callback;
    protocols[1].callback = wrap_http;
    protocols[2] = *transport_websocket.protocol;
    orig_ws = protocols[2].callback;
    protocols[2].callback = wrap_ws;
    protocols[3] = *transport_sse.protocol;
    orig_sse = protocols[3].callback;
    protocols[3].callback = wrap_sse;
    protocols[4] = timer_protocol;
    memset(&protocols[5], 0, sizeof protocols[5]);

    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.user = b;
    /* as the client does: lws' own timeout must not cut a long-poll hold */
    info.timeout_secs = (unsigned)(b->wait_s + 30);
    /* Holding many connections, the generator runs lws on a libuv (epoll)
     * loop, as chatd does: with lws' poll() loop, each wake-up of a
     * generator holding 19,000 sockets was a ~10 ms poll() in the kernel,
     * which (PREEMPT_NONE kernel) the probe sharing its CPU had to wait for,
     * whatever its priority. */
    void *foreign_loops[1] = { &bench_loop };
    bench_uv = bench_loop_is_uv(b->o);
    if (bench_uv) {
        if (uv_loop_init(&bench_loop) != 0)
            return -1;
        info.options = LWS_SERVER_OPTION_LIBUV;
        info.foreign_loops = foreign_loops;
        info.pcontext = &b->ctx;
    }
    lws_set_log_level(b->verbose ? LLL_ERR | LLL_WARN : LLL_ERR, NULL);
    b->ctx = lws_create_context(&info);
    if (!b->ctx) {
        if (bench_uv)
            bench_loop_close();
        return -1;
    }
    tick_ctx = b->ctx;
    lws_sul_schedule(b->ctx, 0, &tick_sul, tick, TICK_US);
    return rate_timer_adopt(b->ctx);
}

void bench_ctx_destroy(struct bench *b)
{
    if (!b->ctx)
        return;
    lws_sul_cancel(&tick_sul);
    bench_rate_stop(b);
    bench_probe_stop(b);
    /* lws closes its libuv handles asynchronously: a second destroy frees
     * the context once the loop has run their close callbacks */
    lws_context_destroy(b->ctx);
    if (bench_uv) {
        for (int i = 0; i < 1000 && uv_run(&bench_loop, UV_RUN_NOWAIT); i++)
            ;
        if (b->ctx)
            lws_context_destroy(b->ctx);
        bench_loop_close();
    }
    b->ctx = NULL;
    rate_timer_closed();
    wire_free();
}

static lws_sorted_usec_list_t deadline_sul;

static void deadline_cb(lws_sorted_usec_list_t *sul)
{
    (void)sul;              /* only wakes the loop */
}

int bench_run_until(struct bench *b, int (*done)(struct bench *b), double timeout_s)
{
    int64_t deadline = mono_ns() + (int64_t)(timeout_s * 1e9);
    int rc = 0;
    lws_sul_schedule(b->ctx, 0, &deadline_sul, deadline_cb, (lws_usec_t)(timeout_s * 1e6) + 1);
    for (;;) {
        if (done && done(b)) {
            rc = 1;
            break;
        }
        if (mono_ns() >= deadline)
            break;
        if (bench_uv)
            uv_run(&bench_loop, UV_RUN_ONCE);
        else if (lws_service(b->ctx, 0) < 0)
            break;
    }
    lws_sul_cancel(&deadline_sul);
    return rc;
}

void bench_sleep(struct bench *b, double s)
{
    bench_run_until(b, NULL, s);
}

/* ---- core callbacks ---- */

static void note_error(struct bench *b, struct bclient *c, const char *text)
{
    b->errors++;
    if (c)
        c->errors++;
    if (!b->first_error[0])
        snprintf(b->first_error, sizeof b->first_error, "%s", text);
    if (b->verbose)
        fprintf(stderr, "chat-bench: client %d: %s\n", c ? c->idx : -1, text);
}

static int seen_grow(struct bclient *c, uint64_t seq)
{
    size_t need = (size_t)(seq / 8) + 1;
    if (need <= c->seen_bytes)
        return 0;
    size_t cap = c->seen_bytes ? c->seen_bytes * 2 : 256;
    while (cap < need)
        cap *= 2;
    uint8_t *p = realloc(c->seen, cap);
    if (!p)
        return -1;
    memset(p + c->seen_bytes, 0, cap - c->seen_bytes);
    c->seen = p;
    c->seen_bytes = cap;
    return 0;
}

static void on_event(void *arg, const json_t *event)
{
    struct bclient *c = arg;
    struct bench *b = c->b;
    const char *body = NULL;
    int phase;
    unsigned long long seq;
    int64_t now = mono_ns();
    if (proto_get_string(event, "body", &body) < 0 || !body ||
        sscanf(body, "bench:%d:%llu:", &phase, &seq) != 2 || seq >= b->next_seq ||
        phase != b->seq_phase[seq]) {
        b->foreign++;
        return;
    }
    if (seen_grow(c, seq) < 0) {
        note_error(b, c, "out of memory");
        return;
    }
    const char *room = NULL;
    /* rooms-fanout: a client is in general and, if it has one, its room */
    if (proto_get_string(event, "room", &room) == 0 && room && strcmp(room, BENCH_ROOM) != 0 &&
        (!c->room[0] || strcmp(room, c->room) != 0)) {
        b->leaks++;
        note_error(b, c, "a message of another room was delivered");
        return;
    }
    uint8_t bit = (uint8_t)(1u << (seq % 8));
    if (c->seen[seq / 8] & bit) {
        b->ph_dups[phase]++;
        return;
    }
    c->seen[seq / 8] |= bit;
    c->recv++;
    b->ph_deliv[phase]++;
    b->ph_last_deliv[phase] = now;
    if (phase == b->record_phase)
        samples_add(&b->lat, now - b->sent_ns[seq]);
}

static void on_state(void *arg, enum core_state state, unsigned retry_ms)
{
    struct bclient *c = arg;
    (void)retry_ms;
    c->state = state;
    if (state == CORE_CONNECTED)
        c->connected = 1;
}

static void on_ack(void *arg, const char *client_msg_id, int64_t id)
{
    struct bclient *c = arg;
    struct bench *b = c->b;
    int64_t now = mono_ns();
    (void)client_msg_id;
    (void)id;
    if (c->ack_len) {       /* acks come in sending order on every transport */
        uint64_t seq = c->ackq[c->ack_head];
        c->ack_head = (c->ack_head + 1) % c->ack_cap;
        c->ack_len--;
        if (b->seq_phase[seq] == b->record_phase)
            samples_add(&b->ack_lat, now - b->sent_ns[seq]);
    }
    b->acks++;
    b->last_ack_ns = now;
    if (b->refill_window && now < b->refill_until_ns)
        while (core_outbox_len(c->core) < (size_t)b->refill_window)
            bench_send(b, c);
}

static void on_error(void *arg, const char *text)
{
    struct bclient *c = arg;
    note_error(c->b, c, text);
}

static void login_error(void *arg, const char *text)
{
    struct buser *u = arg;
    fprintf(stderr, "chat-bench: login %s: %s\n", u->name, text);
}

/* ---- logins ---- */

static int login_register;

static void login_done(void *arg, int exit_code, const char *token)
{
    struct buser *u = arg;
    u->done = 1;
    u->code = exit_code;
    if (exit_code == LOGIN_EXIT_OK && token)
        snprintf(u->token, sizeof u->token, "%s", token);
}

static int logins_pump(struct bench *b)
{
    int in_flight = 0, done = 0;
    for (int i = 0; i < b->n_users; i++) {
        struct buser *u = &b->users[i];
        if (u->done)
            done++;
        else if (u->started)
            in_flight++;
    }
    for (int i = 0; i < b->n_users && in_flight < LOGINS_IN_FLIGHT; i++) {
        struct buser *u = &b->users[i];
        if (u->started)
            continue;
        struct login_request req = {
            .ctx = b->ctx, .http = u->http, .core = u->core, .prefix = b->prefix,
            .user = u->name, .password = BENCH_PASSWORD, .do_register = login_register,
        };
        u->started = 1;
        u->login = login_start(&req, login_done, u);
        if (!u->login) {
            u->done = 1;
            u->code = 1;
            done++;
        } else {
            in_flight++;
        }
    }
    return done == b->n_users;
}

int bench_login(struct bench *b, int n, const char *tag, int register_first)
{
    b->users = calloc((size_t)n, sizeof *b->users);
    if (!b->users)
        return -1;
    b->n_users = n;
    login_register = register_first;
    for (int i = 0; i < n; i++) {
        struct buser *u = &b->users[i];
        struct core_callbacks cb = { .on_error = login_error, .arg = u };
        snprintf(u->name, sizeof u->name, "%su%d", tag, i);
        u->core = core_new(&cb);
        u->http = u->core ? http_new(b->ctx, b->host, b->port, u->core) : NULL;
        if (!u->http)
            return -1;
    }
    /* argon2id on the server: about 0.1 s a hash, two workers (0.5-1 s with
     * the machine busy) */
    bench_run_until(b, logins_pump, 60.0 + n * 1.0);
    int ok = 0;
    for (int i = 0; i < n; i++) {
        ok += b->users[i].code == LOGIN_EXIT_OK && b->users[i].done;
        login_free(b->users[i].login);
        b->users[i].login = NULL;
    }
    if (ok != n) {
        fprintf(stderr, "chat-bench: only %d of %d users logged in\n", ok, n);
        return -1;
    }
    return 0;
}

void bench_users_free(struct bench *b)
{
    for (int i = 0; i < b->n_users; i++) {
        login_free(b->users[i].login);
        http_free(b->users[i].http);
        core_free(b->users[i].core);
        memset(b->users[i].token, 0, sizeof b->users[i].token);
    }
    free(b->users);
    b->users = NULL;
    b->n_users = 0;
}

/* ---- the sync message: every later event has a higher id ---- */

struct sync_wait {
    int done;
    int64_t id;
};

static void sync_done(void *arg, const struct http_result *r)
{
    struct sync_wait *w = arg;
    w->done = 1;
    if (!r->error && r->status == 201) {
        json_t *root = json_loadb(r->body, r->len, 0, NULL);
        proto_get_int(root, "id", &w->id, NULL);
        json_decref(root);
    }
}

static struct sync_wait *sync_cur;
static int sync_finished(struct bench *b)
{
    (void)b;
    return sync_cur->done;
}

int64_t bench_sync_id(struct bench *b)
{
    char path[300];
    static struct sync_wait w;      /* outlives us if the request does */
    w.done = 0;
    w.id = 0;
    snprintf(path, sizeof path, "%s/api/v1/messages", b->prefix);
    struct http_call call = {
        .method = "POST", .path = path, .token = b->users[0].token, .timeout_s = 10,
        .body = "{\"room\":\"" BENCH_ROOM "\",\"body\":\"bench-sync\"}",
    };
    if (!http_request(b->users[0].http, &call, sync_done, &w))
        return -1;
    sync_cur = &w;
    bench_run_until(b, sync_finished, 15);
    if (!w.done)     /* the request is still open: abandon it with the http */
        return -1;
    return w.id > 0 ? w.id : -1;
}

/* ---- clients ---- */

static void outbox_hook(void *arg)
{
    struct bclient *c = arg;
    if (c->t && c->started && c->ops->outbox_changed)
        c->ops->outbox_changed(c->t);
}

/* The bench's WebSockets send no pings of their own: lws 4.1 keeps each
 * connection's ping timer in one sorted list per thread, and re-inserting
 * one walks the list, so 10,000 connections opened together re-arm 20,000
 * timers over 10,000 entries 30 s later (ping, then pong): measured, that
 * burst took 26-66 % of the generator's CPU in the second fan-out phase.
 * A real client holds one connection. chatd's own pings keep them alive. */
static const uint32_t bench_retry_ms[] = { 250, 500, 1000 };
static const lws_retry_bo_t bench_ws_policy = {
    .retry_ms_table = bench_retry_ms,
    .retry_ms_table_count = LWS_ARRAY_SIZE(bench_retry_ms),
    .conceal_count = LWS_RETRY_CONCEAL_ALWAYS,
};

struct bclient *bench_client_new(struct bench *b, struct buser *u, const struct transport_ops *ops,
                                 int role, int64_t start_after)
{
    struct bclient *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (b->n_clients % 1024 == 0) {
        struct bclient **p = realloc(b->clients, ((size_t)b->n_clients + 1024) * sizeof *p);
        if (!p) {
            free(c);
            return NULL;
        }
        b->clients = p;
    }
    c->b = b;
    c->idx = b->n_clients;
    c->role = role;
    c->user = u;
    c->ops = ops;
    struct core_callbacks cb = {
        .on_event = on_event, .on_state = on_state, .on_ack = on_ack,
        .on_error = on_error, .arg = c,
    };
    c->core = core_new(&cb);
    c->http = c->core ? http_new(b->ctx, b->host, b->port, c->core) : NULL;
    if (!c->http) {
        core_free(c->core);
        free(c);
        return NULL;
    }
    core_set_outbox_hook(c->core, outbox_hook, c);
    if (start_after > 0) {
        /* resume after the sync message, as a client with that cursor would */
        json_t *ev = json_pack("{s:I,s:s}", "id", (json_int_t)start_after, "type", "sync");
        core_deliver(c->core, ev);
        json_decref(ev);
    }
    struct transport_env env = {
        .ctx = b->ctx, .host = b->host, .port = b->port, .prefix = b->prefix,
        .token = u->token, .core = c->core, .http = c->http,
        .interval_ms = b->interval_ms, .wait_s = b->wait_s,
        .ws_idle_policy = &bench_ws_policy,
    };
    c->t = ops->create(&env);
    if (!c->t) {
        http_free(c->http);
        core_free(c->core);
        free(c);
        return NULL;
    }
    b->clients[b->n_clients++] = c;
    return c;
}

int bench_client_start(struct bclient *c)
{
    c->started = 1;
    return c->ops->start(c->t);
}

static int all_stopped(struct bench *b)
{
    int busy = 0;
    for (int i = 0; i < b->n_clients; i++) {
        struct bclient *c = b->clients[i];
        if (!c->stopped && c->t && c->ops->stop && c->ops->stop(c->t))
            busy++;
        else
            c->stopped = 1;
    }
    return busy == 0;
}

void bench_clients_free(struct bench *b)
{
    bench_rate_stop(b);
    /* orderly goodbye: WebSockets send close 1000 and wait for the answer */
    bench_run_until(b, all_stopped, 2.0 + b->n_clients / 20000.0);
    for (int i = 0; i < b->n_clients; i++) {
        struct bclient *c = b->clients[i];
        c->ops->destroy(c->t);
        http_free(c->http);
        core_free(c->core);
        free(c->seen);
        free(c->ackq);
        free(c);
    }
    free(b->clients);
    b->clients = NULL;
    b->n_clients = 0;
    bench_sleep(b, 0.1);        /* lws closes what was detached */
}

/* ---- sending ---- */

static int seq_reserve(struct bench *b, uint64_t seq)
{
    if (seq < b->seq_cap)
        return 0;
    size_t cap = b->seq_cap ? b->seq_cap * 2 : 65536;
    while (cap <= seq)
        cap *= 2;
    int64_t *t = realloc(b->sent_ns, cap * sizeof *t);
    if (!t)
        return -1;
    b->sent_ns = t;
    uint8_t *p = realloc(b->seq_phase, cap);
    if (!p)
        return -1;
    b->seq_phase = p;
    b->seq_cap = cap;
    return 0;
}

static int ackq_push(struct bclient *c, uint64_t seq)
{
    if (c->ack_len == c->ack_cap) {
        size_t cap = c->ack_cap ? c->ack_cap * 2 : 64;
        uint64_t *q = malloc(cap * sizeof *q);
        if (!q)
            return -1;
        for (size_t i = 0; i < c->ack_len; i++)
            q[i] = c->ackq[(c->ack_head + i) % c->ack_cap];
        free(c->ackq);
        c->ackq = q;
        c->ack_cap = cap;
        c->ack_head = 0;
    }
    c->ackq[(c->ack_head + c->ack_len) % c->ack_cap] = seq;
    c->ack_len++;
    return 0;
}

uint64_t bench_send(struct bench *b, struct bclient *c)
{
    char body[PROTO_BODY_MAX + 1];
    uint64_t seq = b->next_seq;
    int phase = b->phase;
    if (seq_reserve(b, seq) < 0 || ackq_push(c, seq) < 0) {
        note_error(b, c, "out of memory");
        return seq;
    }
    int n = snprintf(body, sizeof body, "bench:%d:%" PRIu64 ":", phase, seq);
    snprintf(body + n, sizeof body - (size_t)n, "%s", b->body_pad + (n < (int)strlen(b->body_pad) ? n : (int)strlen(b->body_pad)));
    b->next_seq++;
    b->seq_phase[seq] = (uint8_t)phase;
    int64_t now = mono_ns();
    b->sent_ns[seq] = now;
    if (!b->ph_sent[phase])
        b->ph_first_send[phase] = now;
    b->ph_sent[phase]++;
    c->sent++;
    if (!core_send(c->core, c->room[0] ? c->room : BENCH_ROOM, body)) {
        c->ack_len--;
        note_error(b, c, "core_send refused a message");
    }
    return seq;
}

void bench_phase_begin(struct bench *b, int phase, int record)
{
    b->phase = phase;
    b->ph_sent[phase] = b->ph_deliv[phase] = b->ph_dups[phase] = 0;
    b->ph_first_send[phase] = b->ph_last_deliv[phase] = 0;
    if (record) {
        b->record_phase = phase;
        b->lat.n = 0;
        b->ack_lat.n = 0;
    }
}

/* ---- paced sending ---- */

/* Paced by a timerfd in the loop, not by an lws timer: lws polls with a
 * timeout in whole milliseconds, so a timer due in less than 1 ms makes it
 * spin, and sending every millisecond would turn the generator into a busy
 * loop (stealing the server's CPU when they share one). Each expiry sends
 * whatever has come due since the start. */
static struct {
    struct bench *b;
    struct bclient **senders;
    int n, rr, active;
    double rate;
    uint64_t total, done;
    int64_t t0;
    int fd;
} rp = { .fd = -1 };

static void rate_arm(int64_t period_ns)
{
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    its.it_interval.tv_sec = period_ns / 1000000000;
    its.it_interval.tv_nsec = period_ns % 1000000000;
    its.it_value = its.it_interval;
    if (rp.fd >= 0)
        timerfd_settime(rp.fd, 0, &its, NULL);
}

static void rate_tick(void)
{
    int64_t now = mono_ns();
    uint64_t due = (uint64_t)((double)(now - rp.t0) * rp.rate / 1e9) + 1;
    if (due > rp.total)
        due = rp.total;
    while (rp.done < due) {
        bench_send(rp.b, rp.senders[rp.rr]);
        rp.rr = (rp.rr + 1) % rp.n;
        rp.done++;
    }
    if (rp.done >= rp.total) {
        rp.active = 0;
        rate_arm(0);
    }
}

static int timer_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                    void *in, size_t len)
{
    uint64_t expirations;
    (void)user;
    (void)in;
    (void)len;
    if (reason == LWS_CALLBACK_RAW_RX_FILE &&
        read(lws_get_socket_fd(wsi), &expirations, sizeof expirations) == sizeof expirations &&
        rp.active)
        rate_tick();
    return 0;
}

static const struct lws_protocols timer_protocol = {
    .name = "bench-timer",
    .callback = timer_cb,
};

static int rate_timer_adopt(struct lws_context *ctx)
{
    struct lws_vhost *vh = lws_get_vhost_by_name(ctx, "default");
    lws_sock_file_fd_type fd;
    rp.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (!vh || rp.fd < 0)
        return -1;
    fd.filefd = rp.fd;
    /* lws owns the fd from here on and closes it with the context */
    if (!lws_adopt_descriptor_vhost(vh, LWS_ADOPT_RAW_FILE_DESC, fd, timer_protocol.name, NULL)) {
        rp.fd = -1;
        return -1;
    }
    return 0;
}

static void rate_timer_closed(void)
{
    rp.fd = -1;                 /* lws closed it with the context */
    rp.active = 0;
}

void bench_rate_start(struct bench *b, struct bclient **senders, int n, double rate, uint64_t total)
{
    bench_rate_stop(b);
    rp.b = b;
    rp.senders = senders;
    rp.n = n;
    rp.rr = 0;
    rp.rate = rate;
    rp.total = total;
    rp.done = 0;
    rp.t0 = mono_ns();
    rp.active = 1;
    rate_tick();
    if (rp.active) {
        int64_t period = (int64_t)(1e9 / rate);
        rate_arm(period > 1000000 ? period : 1000000);
    }
}

int bench_rate_done(struct bench *b)
{
    (void)b;
    return !rp.active;
}

void bench_rate_stop(struct bench *b)
{
    (void)b;
    rate_arm(0);
    rp.active = 0;
}

/* ---- the probe: one HTTP round trip at a time, on the client's http.c ---- */

static struct {
    struct bench *b;
    struct http *http;
    char path[300];
    char token[160];
    int64_t period_us;
    int64_t started;
    struct http_req *req;
    int active;
    lws_sorted_usec_list_t sul;
} pr;

static void probe_done(void *arg, const struct http_result *r)
{
    (void)arg;
    pr.req = NULL;
    if (r->error || r->status != 200)
        pr.b->probe_fail++;
    else
        samples_add(&pr.b->probe_lat, mono_ns() - pr.started);
}

static void probe_tick(lws_sorted_usec_list_t *sul)
{
    (void)sul;
    if (!pr.active)
        return;
    lws_sul_schedule(pr.b->ctx, 0, &pr.sul, probe_tick, pr.period_us);
    if (pr.req) {
        pr.b->probe_skipped++;
        return;
    }
    struct http_call call = { .method = "GET", .path = pr.path, .token = pr.token, .timeout_s = 10 };
    pr.started = mono_ns();
    pr.req = http_request(pr.http, &call, probe_done, NULL);
    if (!pr.req)
        pr.b->probe_fail++;
}

int bench_probe_start(struct bench *b, const char *token, int64_t after, double hz)
{
    bench_probe_stop(b);
    memset(&pr, 0, sizeof pr);
    pr.b = b;
    pr.http = http_new(b->ctx, b->host, b->port, NULL);
    if (!pr.http)
        return -1;
    snprintf(pr.path, sizeof pr.path, "%s/api/v1/events?after=%" PRId64 "&wait=0&limit=1",
             b->prefix, after);
    snprintf(pr.token, sizeof pr.token, "%s", token);
    pr.period_us = (int64_t)(1e6 / hz);
    pr.active = 1;
    b->probe_lat.n = 0;
    b->probe_fail = b->probe_skipped = 0;
    lws_sul_schedule(b->ctx, 0, &pr.sul, probe_tick, 1);
    return 0;
}

void bench_probe_stop(struct bench *b)
{
    (void)b;
    if (!pr.active && !pr.http)
        return;
    pr.active = 0;
    if (pr.b && pr.b->ctx)
        lws_sul_cancel(&pr.sul);
    http_free(pr.http);         /* cancels a request still open */
    pr.http = NULL;
    pr.req = NULL;
}

/* ---- counters ---- */

void bench_stats_snapshot(struct bench *b)
{
    for (int i = 0; i < b->n_clients; i++)
        core_get_stats(b->clients[i]->core, &b->clients[i]->base);
}

void bench_stats_delta(struct bench *b, int role, struct core_stats *sum)
{
    memset(sum, 0, sizeof *sum);
    for (int i = 0; i < b->n_clients; i++) {
        struct bclient *c = b->clients[i];
        struct core_stats now;
        if (role >= 0 && c->role != role)
            continue;
        core_get_stats(c->core, &now);
        sum->requests += now.requests - c->base.requests;
        sum->bytes_in += now.bytes_in - c->base.bytes_in;
        sum->bytes_out += now.bytes_out - c->base.bytes_out;
        sum->events += now.events - c->base.events;
        sum->dropped += now.dropped - c->base.dropped;
    }
}

uint64_t bench_core_dropped(struct bench *b)
{
    uint64_t n = 0;
    for (int i = 0; i < b->n_clients; i++) {
        struct core_stats now;
        core_get_stats(b->clients[i]->core, &now);
        n += now.dropped;
    }
    return n;
}

/* ---- exact header sizes, on a plain blocking socket ---- */

int bench_probe_headers(struct bench *b, const char *token, int64_t after, int wait_s,
                        int *req_bytes, int *resp_header_bytes, int *resp_body_bytes,
                        char *head, size_t head_len)
{
    char req[1024], resp[65536], portstr[16];
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    snprintf(portstr, sizeof portstr, "%d", b->port);
    if (getaddrinfo(b->host, portstr, &hints, &ai) != 0)
        return -1;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = { .tv_sec = wait_s + 5 };
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
        connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    int n = snprintf(req, sizeof req,
                     "GET %s/api/v1/events?after=%" PRId64 "&wait=%d&limit=1 HTTP/1.1\r\n"
                     "Host: %s:%d\r\nAuthorization: Bearer %s\r\n\r\n",
                     b->prefix, after, wait_s, b->host, b->port, token);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    *req_bytes = n;
    size_t got = 0;
    long body_len = -1;
    char *end = NULL;
    while (got < sizeof resp - 1) {
        ssize_t r = read(fd, resp + got, sizeof resp - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
        resp[got] = '\0';
        if (!end && (end = strstr(resp, "\r\n\r\n"))) {
            const char *cl = strcasestr(resp, "\r\ncontent-length:");
            body_len = cl && cl < end ? atol(cl + 17) : -1;
        }
        if (end && body_len >= 0 && got >= (size_t)(end + 4 - resp) + (size_t)body_len)
            break;
    }
    close(fd);
    if (!end)
        return -1;
    *resp_header_bytes = (int)(end + 4 - resp);
    *resp_body_bytes = (int)(got - (size_t)*resp_header_bytes);
    snprintf(head, head_len, "%.*s", *resp_header_bytes, resp);
    return 0;
}
