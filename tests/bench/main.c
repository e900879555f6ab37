/* main.c — chat-bench: flags and the scenarios.
 *
 *   standard  N users on one transport (or each in turn), every user sends
 *             at its share of --rate for --duration; every user receives
 *             every message. Latency, requests, bytes, server CPU and RSS.
 *   --idle-connections N   N idle WebSockets or parked long polls; server
 *             memory per connection and a probe's round trips meanwhile.
 *   --fanout N             N subscribers, one sender at --rate: deliveries/s.
 *   --sends                senders keeping --window messages unacknowledged:
 *             persisted (acknowledged, then delivered) sends per second.
 *
 * By default it starts bin/chatd itself (fresh database per run, in a
 * private network namespace when root), with limits raised for a load test;
 * --server URL targets a running server instead. */
#include "bench.h"
#include "protocol.h"
#include "transport.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PH_WARMUP 1
#define PH_MEASURE 2

static const char *all_transports[3] = { "websocket", "long-poll", "short-poll" };

static int transport_index(const char *name)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(name, all_transports[i]) == 0)
            return i;
    return -1;
}

static void usage(FILE *out)
{
    fprintf(out,
"usage: chat-bench [flags] [-- chatd flags]\n"
"scenario (default: standard)\n"
"  --transport T         websocket, long-poll, short-poll or all (default all)\n"
"  --users N             simulated users, each sends and receives (default 10)\n"
"  --rate R              messages per second, all senders together (default 1000)\n"
"  --duration S          measured sending time (default 10)\n"
"  --warmup S            unmeasured sending first (default 1)\n"
"  --idle S              idle window after the load: requests/s when idle (default 5)\n"
"  --drain S             longest wait for the last deliveries (default 10 + 3 intervals)\n"
"  --interval-ms N       short-poll period (default 1000, as bin/chat)\n"
"  --wait-s N            long-poll hold asked (default 25, as bin/chat)\n"
"  --body-bytes N        message body size (default 32)\n"
"  --runs N              repeat, report medians and ranges (default 1)\n"
"capacity modes\n"
"  --idle-connections N  N idle connections of --transport (websocket or long-poll)\n"
"  --fanout N            N subscribers of one room, one sender at --rate\n"
"  --sends               --users senders with --window unacked messages each\n"
"  --logins K            distinct users behind the connections (default 8)\n"
"  --window W            sends mode: unacknowledged messages per sender (default 64)\n"
"  --probe-hz HZ         probe round trips per second (default 50)\n"
"  --probe-s S           probe time (default 10)\n"
"  --settle-s S          after opening the idle connections, wait this long before\n"
"                        measuring (default 2): time for other generators, aimed at\n"
"                        other instances, to open all theirs too\n"
"machine\n"
"  --cpus P              none, same (server+generator on CPU 0), split (server 0,\n"
"                        generator 1) or SERVER:GENERATOR cpu lists, e.g. 0:1 (default none)\n"
"  --netns auto|on|off   private network namespace for chatd and us (root; default auto)\n"
"  --loop auto|poll|uv   the generator's event loop: lws' poll() or libuv (epoll);\n"
"                        auto: uv for --idle-connections and --fanout, else poll\n"
"                        (default auto)\n"
"  --server URL          use a running server (http://host:port[/prefix]); no namespace\n"
"  --server-pid PID      its pid, for CPU and RSS readings\n"
"  --chatd PATH          server binary (default: chatd beside chat-bench)\n"
"  --db-dir DIR          where the temporary database goes (default: --out)\n"
"output\n"
"  --out DIR             results directory (default build/bench)\n"
"  --name NAME           file name stem (default: the mode)\n"
"  --no-plot             no gnuplot PNG\n"
"  --assert              exit 1 unless everything sent was delivered exactly once\n"
"                        and the results file has every field\n"
"  --smoke               a few seconds, 3 users, each transport, --assert, no plot\n"
"  --verify FILE         check a results JSON file as --assert does\n"
"  --verbose\n");
}

static int parse_num(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_server_url(struct bench *b, const char *url)
{
    const char *p = url;
    if (strncmp(p, "http://", 7) != 0)
        return -1;
    p += 7;
    const char *slash = strchr(p, '/');
    size_t hostport_len = slash ? (size_t)(slash - p) : strlen(p);
    char hp[200];
    if (hostport_len >= sizeof hp)
        return -1;
    memcpy(hp, p, hostport_len);
    hp[hostport_len] = '\0';
    snprintf(b->prefix, sizeof b->prefix, "%s", slash ? slash : "");
    size_t pl = strlen(b->prefix);
    while (pl && b->prefix[pl - 1] == '/')
        b->prefix[--pl] = '\0';
    char *colon = hp[0] == '[' ? strstr(hp, "]:") : strrchr(hp, ':');
    if (hp[0] == '[') {
        if (!colon)
            return -1;
        *colon = '\0';
        snprintf(b->host, sizeof b->host, "%s", hp + 1);
        b->port = atoi(colon + 2);
    } else if (colon) {
        *colon = '\0';
        snprintf(b->host, sizeof b->host, "%s", hp);
        b->port = atoi(colon + 1);
    } else {
        snprintf(b->host, sizeof b->host, "%s", hp);
        b->port = 80;
    }
    return b->port > 0 && b->port < 65536 ? 0 : -1;
}

/* ---- the run context shared by the modes ---- */

struct env {
    struct bench_opts *o;
    struct report *rep;
    struct placement pl;
    int started;                /* we start chatd */
    char chatd[PATH_MAX];
    char db_dir[PATH_MAX];
    char url_host[256], url_prefix[256];
    int url_port;
    long nofile;
    int netns;
    struct result *cur;         /* the row being measured */
};

struct run {
    struct bench b;
    struct server_proc sp;
    pid_t spid;
    char tag[24];
};

static char *flag_dup(const char *fmt, long v)
{
    char buf[64];
    snprintf(buf, sizeof buf, fmt, v);
    return strdup(buf);
}

/* The bench's chatd flags: limits out of the way of a load test. */
static int chatd_flags(const struct env *e, long conns, int wait_s, char **argv, char *text, size_t tlen)
{
    int n = 0;
    long maxc = conns + 4096 > 20000 ? conns + 4096 : 20000;
    if (maxc > 1000000)
        maxc = 1000000;
    long lp = conns + 1024 > 20000 ? conns + 1024 : 20000;
    if (lp > 1000000)
        lp = 1000000;
    argv[n++] = strdup("--msg-rate");
    argv[n++] = strdup("100000");
    argv[n++] = strdup("--login-rate");
    argv[n++] = strdup("10000");
    argv[n++] = strdup("--max-connections");
    argv[n++] = flag_dup("%ld", maxc);
    argv[n++] = strdup("--max-connections-per-ip");
    argv[n++] = flag_dup("%ld", maxc);
    argv[n++] = strdup("--max-long-polls");
    argv[n++] = flag_dup("%ld", lp);
    if (wait_s > 25) {
        argv[n++] = strdup("--long-poll-max-s");
        argv[n++] = flag_dup("%ld", wait_s);
    }
    for (int i = 0; i < e->o->n_chatd_args; i++)
        argv[n++] = strdup(e->o->chatd_args[i]);
    size_t used = 0;
    text[0] = '\0';
    for (int i = 0; i < n && used + 2 < tlen; i++)
        used += (size_t)snprintf(text + used, tlen - used, "%s%s", i ? " " : "", argv[i]);
    return n;
}

static void free_argv(char **argv, int n)
{
    for (int i = 0; i < n; i++)
        free(argv[i]);
}

/* Starts (or targets) the server, creates the lws context, logs users in. */
static int run_open(struct env *e, struct run *r, const char *transport, long conns,
                    int n_users, int wait_s)
{
    struct bench *b = &r->b;
    memset(r, 0, sizeof *r);
    r->sp.pid = -1;
    r->spid = -1;
    b->o = e->o;
    b->verbose = e->o->verbose;
    b->wait_s = wait_s;
    b->interval_ms = e->o->interval_ms;
    int bb = e->o->body_bytes;
    memset(b->body_pad, 'x', (size_t)bb);
    b->body_pad[bb] = '\0';
    if (e->cur)
        e->cur->fsync_ms = e->started ? fsync_probe_ms(e->db_dir, 50) : NAN;
    if (e->started) {
        char *argv[64], log[PATH_MAX + 64];
        int n = chatd_flags(e, conns, wait_s, argv, e->rep->chatd_flags, sizeof e->rep->chatd_flags);
        snprintf(log, sizeof log, "%s/chatd-%s.log", e->o->out_dir, transport);
        int rc = server_start(&r->sp, e->chatd, e->db_dir, log, argv, n, &e->pl);
        free_argv(argv, n);
        if (rc < 0)
            return -1;
        r->spid = r->sp.pid;
        snprintf(b->host, sizeof b->host, "127.0.0.1");
        b->port = r->sp.port;
        b->prefix[0] = '\0';
    } else {
        snprintf(b->host, sizeof b->host, "%s", e->url_host);
        b->port = e->url_port;
        snprintf(b->prefix, sizeof b->prefix, "%s", e->url_prefix);
        r->spid = e->o->server_pid > 0 ? (pid_t)e->o->server_pid : -1;
    }
    placement_observe(&e->pl, r->spid);
    if (e->cur) {
        snprintf(e->cur->server_cpus, sizeof e->cur->server_cpus, "%s", e->pl.server_cpus);
        snprintf(e->cur->generator_cpus, sizeof e->cur->generator_cpus, "%s", e->pl.generator_cpus);
    }
    if (bench_ctx_create(b, conns) < 0) {
        fprintf(stderr, "chat-bench: cannot create the lws context\n");
        return -1;
    }
    /* unique names, so a shared server can be used again */
    unsigned char rnd[4];
    randombytes_buf(rnd, sizeof rnd);
    snprintf(r->tag, sizeof r->tag, "b%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
    if (bench_login(b, n_users, r->tag, 1) < 0)
        return -1;
    return 0;
}

static int run_close(struct run *r)
{
    struct bench *b = &r->b;
    int status = 0;
    if (b->ctx) {
        bench_clients_free(b);
        bench_users_free(b);
        bench_ctx_destroy(b);
    }
    if (r->sp.pid > 0)
        status = server_stop(&r->sp);
    samples_free(&b->lat);
    samples_free(&b->ack_lat);
    samples_free(&b->probe_lat);
    free(b->sent_ns);
    free(b->seq_phase);
    return status;
}

static void fill_common(struct env *e, struct result *res, const char *transport, int mode, int run)
{
    res->mode = mode;
    snprintf(res->transport, sizeof res->transport, "%s", transport);
    snprintf(res->placement, sizeof res->placement, "%s", e->pl.spec);
    snprintf(res->server_cpus, sizeof res->server_cpus, "%s", e->pl.server_cpus);
    snprintf(res->generator_cpus, sizeof res->generator_cpus, "%s", e->pl.generator_cpus);
    snprintf(res->generator_loop, sizeof res->generator_loop, "%s",
             bench_loop_is_uv(e->o) ? "uv" : "poll");
    res->run = run;
    res->runs = 1;
    e->cur = res;
    res->interval_ms = e->o->interval_ms;
    res->body_bytes = e->o->body_bytes;
    /* not measured unless a mode fills them */
    double *nan_fields[] = {
        &res->p50, &res->p90, &res->p99, &res->max, &res->mean, &res->req_per_delivery,
        &res->events_per_poll, &res->idle_req_per_s, &res->idle_bytes_per_s,
        &res->core_bytes_per_delivery, &res->wire_bytes_per_delivery, &res->core_vs_wire,
        &res->segs_per_delivery, &res->lo_bytes_per_delivery, &res->server_cpu_s,
        &res->server_cpu_us_per_delivery, &res->generator_cpu_s, &res->server_kb_per_conn,
        &res->generator_kb_per_conn, &res->probe_p50, &res->probe_p99, &res->probe_max,
        &res->probe0_p50, &res->probe0_p99, &res->deliveries_per_s, &res->offered_per_s,
        &res->acks_per_s, &res->ack_p50, &res->ack_p99, &res->delivered_ratio, &res->window_s,
    };
    for (size_t i = 0; i < sizeof nan_fields / sizeof nan_fields[0]; i++)
        *nan_fields[i] = NAN;
    res->server_rss_start_kb = res->server_peak_rss_kb = -1;
    res->server_rss_before_kb = res->server_rss_after_kb = -1;
    res->resp_header_bytes = res->req_header_bytes = -1;
}

static void fill_latency(struct result *res, struct samples *s)
{
    samples_sort(s);
    res->p50 = samples_pct_ms(s, 50);
    res->p90 = samples_pct_ms(s, 90);
    res->p99 = samples_pct_ms(s, 99);
    res->max = samples_max_ms(s);
    res->mean = samples_mean_ms(s);
}

/* ---- a measurement window: server /proc, our CPU, wire, lo ---- */

struct window {
    int64_t t0, t1;
    struct proc_sample s0, s1;
    double g0, g1;
    uint64_t lo_b0, lo_p0, lo_b1, lo_p1;
    int have_proc, have_lo;
    struct wire_totals wire;
    struct core_stats core;
};

static void window_begin(struct run *r, struct window *w)
{
    memset(w, 0, sizeof *w);
    bench_stats_snapshot(&r->b);
    wire_window_start();
    if (r->spid > 0) {
        proc_reset_hwm(r->spid);
        w->have_proc = proc_read(r->spid, &w->s0) == 0;
    }
    w->have_lo = netdev_lo(&w->lo_b0, &w->lo_p0) == 0;
    w->g0 = self_cpu_s();
    w->t0 = mono_ns();
}

static void window_end(struct run *r, struct window *w)
{
    w->t1 = mono_ns();
    w->g1 = self_cpu_s();
    if (w->have_proc)
        w->have_proc = proc_read(r->spid, &w->s1) == 0;
    if (w->have_lo)
        w->have_lo = netdev_lo(&w->lo_b1, &w->lo_p1) == 0;
    wire_window_end(&w->wire);
    bench_stats_delta(&r->b, -1, &w->core);
}

static void fill_window(struct result *res, const struct window *w, uint64_t delivered, int netns)
{
    res->window_s = (double)(w->t1 - w->t0) / 1e9;
    res->generator_cpu_s = w->g1 - w->g0;
    if (w->have_proc) {
        res->server_cpu_s = w->s1.cpu_s - w->s0.cpu_s;
        res->server_rss_start_kb = w->s0.rss_kb;
        res->server_peak_rss_kb = w->s1.hwm_kb;
        if (delivered)
            res->server_cpu_us_per_delivery = res->server_cpu_s * 1e6 / (double)delivered;
    }
    res->requests = w->core.requests;
    res->core_bytes_in = w->core.bytes_in;
    res->core_bytes_out = w->core.bytes_out;
    res->wire_bytes_in = w->wire.bytes_in;
    res->wire_bytes_out = w->wire.bytes_out;
    res->wire_unmeasured = wire_unmeasured();
    uint64_t wire = w->wire.bytes_in + w->wire.bytes_out;
    uint64_t core = w->core.bytes_in + w->core.bytes_out;
    if (delivered) {
        res->req_per_delivery = (double)w->core.requests / (double)delivered;
        res->core_bytes_per_delivery = (double)core / (double)delivered;
        res->wire_bytes_per_delivery = (double)wire / (double)delivered;
        res->segs_per_delivery = (double)(w->wire.segs_in + w->wire.segs_out) / (double)delivered;
        if (netns && w->have_lo)
            res->lo_bytes_per_delivery = (double)(w->lo_b1 - w->lo_b0) / (double)delivered;
    }
    if (wire)
        res->core_vs_wire = (double)core / (double)wire;
}

/* ---- waiting conditions ---- */

static int all_warm(struct bench *b)
{
    return b->ph_deliv[PH_WARMUP] >= b->ph_sent[PH_WARMUP] * (uint64_t)b->n_receivers &&
           bench_rate_done(b);
}

static int all_delivered(struct bench *b)
{
    return b->ph_deliv[PH_MEASURE] >= b->ph_sent[PH_MEASURE] * (uint64_t)b->n_receivers &&
           bench_rate_done(b);
}

static int all_acked_delivered(struct bench *b)
{
    return all_delivered(b) && b->acks >= b->ph_sent[PH_MEASURE] + b->ph_sent[PH_WARMUP];
}

static int rate_finished(struct bench *b)
{
    return bench_rate_done(b);
}

static double drain_s(const struct bench_opts *o)
{
    return o->drain_s > 0 ? o->drain_s : 10.0 + 3.0 * o->interval_ms / 1000.0;
}

/* Warm-up: a few messages from everyone, until every client has them all. */
static int warm_up(struct bench *b, struct bclient **senders, int n, double rate, double secs)
{
    uint64_t total = (uint64_t)(rate * secs);
    if (total < (uint64_t)n)
        total = (uint64_t)n;
    bench_phase_begin(b, PH_WARMUP, 0);
    bench_rate_start(b, senders, n, rate, total);
    int ok = bench_run_until(b, all_warm, secs + drain_s(b->o) + 30);
    if (!ok)
        fprintf(stderr, "chat-bench: warm-up incomplete: %llu of %llu deliveries (%s)\n",
                (unsigned long long)b->ph_deliv[PH_WARMUP],
                (unsigned long long)(b->ph_sent[PH_WARMUP] * (uint64_t)b->n_receivers),
                b->first_error[0] ? b->first_error : "no error reported");
    return ok ? 0 : -1;
}

static void fill_delivery(struct result *res, struct bench *b)
{
    res->sent = b->ph_sent[PH_MEASURE];
    res->receivers = b->n_receivers;
    res->expected = res->sent * (uint64_t)b->n_receivers;
    res->delivered = b->ph_deliv[PH_MEASURE];
    res->duplicates = b->ph_dups[PH_WARMUP] + b->ph_dups[PH_MEASURE];
    res->delivered_ratio = res->expected ? (double)res->delivered / (double)res->expected : NAN;
    res->errors = b->errors;
    res->clients = b->n_clients;
}

/* ---- standard ---- */

static int run_standard(struct env *e, const char *tname, int run_no)
{
    const struct bench_opts *o = e->o;
    const struct transport_ops *ops = transport_find(tname);
    struct run r;
    struct bench *b = &r.b;
    int n = o->users, rc = -1;
    struct result *res = report_add(e->rep);
    if (!res)
        return -1;
    fill_common(e, res, tname, MODE_STANDARD, run_no);
    res->users = n;
    res->rate = o->rate;
    res->duration_s = o->duration_s;
    res->idle_s = o->idle_s;
    res->wait_s = o->wait_s;
    fprintf(stderr, "chat-bench: %s, run %d: %d users, %.0f msgs/s for %.1f s\n",
            tname, run_no, n, o->rate, o->duration_s);
    if (run_open(e, &r, tname, n + 64, n, o->wait_s) < 0)
        goto out;
    int64_t sync = bench_sync_id(b);
    if (sync < 0) {
        fprintf(stderr, "chat-bench: cannot post the sync message\n");
        goto out;
    }
    struct bclient **cl = calloc((size_t)n, sizeof *cl);
    for (int i = 0; i < n; i++) {
        cl[i] = bench_client_new(b, &b->users[i], ops, ROLE_PEER, sync);
        if (!cl[i] || bench_client_start(cl[i]) < 0) {
            free(cl);
            goto out;
        }
    }
    b->n_receivers = n;
    if (warm_up(b, cl, n, o->rate, o->warmup_s) < 0) {
        free(cl);
        goto out;
    }
    int req = 0, hdr = 0, body = 0;
    char head[1024];
    if (bench_probe_headers(b, b->users[0].token, sync, 0, &req, &hdr, &body,
                            head, sizeof head) == 0 && strncmp(head, "HTTP/1.1 200", 12) == 0) {
        res->req_header_bytes = req;
        res->resp_header_bytes = hdr;
        if (o->verbose)
            fprintf(stderr, "response head (%d bytes):\n%s", hdr, head);
    }

    struct window w;
    window_begin(&r, &w);
    bench_phase_begin(b, PH_MEASURE, 1);
    uint64_t total = (uint64_t)llround(o->rate * o->duration_s);
    bench_rate_start(b, cl, n, o->rate, total);
    bench_run_until(b, rate_finished, o->duration_s * 1.5 + 10);
    if (!bench_run_until(b, all_delivered, drain_s(o)))
        fprintf(stderr, "chat-bench: %s: %llu of %llu deliveries after the drain time\n", tname,
                (unsigned long long)b->ph_deliv[PH_MEASURE],
                (unsigned long long)(b->ph_sent[PH_MEASURE] * (uint64_t)n));
    window_end(&r, &w);
    fill_delivery(res, b);
    fill_window(res, &w, res->delivered, e->netns);
    res->core_dropped = w.core.dropped;
    fill_latency(res, &b->lat);
    if (strcmp(tname, "websocket") != 0) {
        uint64_t polls = w.core.requests > res->sent ? w.core.requests - res->sent : 0;
        if (polls)
            res->events_per_poll = (double)w.core.events / (double)polls;
    }
    struct samples *pool = &e->rep->lat[transport_index(tname)];
    for (size_t i = 0; i < b->lat.n; i++)
        samples_add(pool, b->lat.v[i]);

    /* idle: nothing is sent; what does staying connected cost? */
    if (o->idle_s > 0) {
        struct window iw;
        /* let the answers to the last deliveries and the polls they
         * trigger go out first: they belong to the load, not to idling */
        bench_sleep(b, o->idle_s < 1 ? o->idle_s : 1);
        window_begin(&r, &iw);
        bench_sleep(b, o->idle_s);
        window_end(&r, &iw);
        double secs = (double)(iw.t1 - iw.t0) / 1e9;
        res->idle_req_per_s = (double)iw.core.requests / secs / n;
        res->idle_bytes_per_s = (double)(iw.wire.bytes_in + iw.wire.bytes_out) / secs / n;
    }
    free(cl);
    rc = 0;
out:
    if (rc < 0 && !res->errors)
        res->errors = b->errors ? b->errors : 1;
    int st = run_close(&r);
    if (st != 0 && e->started)
        fprintf(stderr, "chat-bench: chatd exited with status %d\n", st);
    return rc;
}

/* ---- connection ramps for the capacity modes ---- */

struct ramp {
    int asked, started;
    int first;                  /* index of the first ramped client */
    int ws;
};
static struct ramp ramp;

static int ramp_step(struct bench *b)
{
    /* WebSockets: at most 200 handshakes in flight (the server closes a
     * socket that has not said hello within 5 s); long polls: 200 a step */
    int ready = 0;
    if (ramp.ws) {
        for (int i = ramp.first; i < ramp.first + ramp.started; i++)
            ready += b->clients[i]->connected;
    } else {
        ready = ramp.started;
    }
    int room = 200 - (ramp.started - ready);
    while (room-- > 0 && ramp.started < ramp.asked) {
        bench_client_start(b->clients[ramp.first + ramp.started]);
        ramp.started++;
    }
    if (ramp.ws)
        return ready == ramp.asked;
    return ramp.started == ramp.asked;
}

static unsigned stable_open;
static int64_t stable_since;
static unsigned open_goal;

static int conns_settled(struct bench *b)
{
    (void)b;
    unsigned open = wire_open_connections();
    int64_t now = mono_ns();
    if (open != stable_open) {
        stable_open = open;
        stable_since = now;
    }
    return open >= open_goal && now - stable_since > 1000000000LL;
}

/* Creates and opens n clients of ops over the logged-in users [1..K). */
static int open_many(struct env *e, struct bench *b, const struct transport_ops *ops, int n,
                     int role, int64_t sync, int *opened)
{
    int k = b->n_users - 1;
    ramp.first = b->n_clients;
    for (int i = 0; i < n; i++)
        if (!bench_client_new(b, &b->users[1 + i % k], ops, role, sync)) {
            fprintf(stderr, "chat-bench: cannot create client %d\n", i);
            return -1;
        }
    ramp.asked = n;
    ramp.started = 0;
    ramp.ws = ops == &transport_websocket;
    double limit = 60 + n / 100.0;
    int64_t t0 = mono_ns();
    if (!bench_run_until(b, ramp_step, limit))
        fprintf(stderr, "chat-bench: only %d of %d connections ready after %.0f s (%s)\n",
                ramp.started, n, limit, b->first_error[0] ? b->first_error : "no error");
    /* long polls: wait until every request is out and nothing moves for 1 s */
    open_goal = (unsigned)n;
    stable_open = 0;
    stable_since = mono_ns();
    bench_run_until(b, conns_settled, ramp.ws ? 2.0 : 60.0 + n / 200.0);
    int ready = 0;
    for (int i = ramp.first; i < ramp.first + n; i++)
        ready += ramp.ws ? b->clients[i]->connected : 1;
    *opened = ramp.ws ? ready : (int)(wire_open_connections() < (unsigned)n ? wire_open_connections() : (unsigned)n);
    fprintf(stderr, "chat-bench: %d of %d %s connections open after %.1f s\n", *opened, n,
            ops->name, (double)(mono_ns() - t0) / 1e9);
    (void)e;
    return 0;
}

/* ---- the probe process ----
 * The probe runs in a process of its own with a small lws context: the
 * generator's loop polls every socket it holds (lws uses poll()), which at
 * tens of thousands of connections would slow the probe's own round trips
 * and be mistaken for the server's. It shares the generator's CPU, where
 * that loop keeps the CPU busy (14 s of 20 with 19,000 WebSockets answering
 * the server's pings), so the probe also runs at a real-time priority
 * (SCHED_FIFO 1, else nice -10, if we may): it then waits for the server,
 * not for the generator. Which one it got is reported. */

static const char *probe_prioritize(void)
{
    struct sched_param sp = { .sched_priority = 1 };
    if (sched_setscheduler(0, SCHED_FIFO, &sp) == 0)
        return "SCHED_FIFO";
    if (setpriority(PRIO_PROCESS, 0, -10) == 0)
        return "nice -10";
    return "normal";
}

static int probe_child_main(const struct bench_opts *o)
{
    struct bench b;
    char token[160];
    memset(&b, 0, sizeof b);
    b.o = o;
    b.wait_s = 25;
    if (!fgets(token, sizeof token, stdin))
        return 1;
    token[strcspn(token, "\r\n")] = '\0';
    if (parse_server_url(&b, o->server_url) < 0 || bench_ctx_create(&b, 16) < 0)
        return 1;
    const char *sched = probe_prioritize();
    bench_probe_start(&b, token, o->probe_after, o->probe_hz);
    bench_sleep(&b, o->probe_s);
    bench_probe_stop(&b);
    samples_sort(&b.probe_lat);
    printf("%zu %llu %llu %.6f %.6f %.6f %s\n", b.probe_lat.n, (unsigned long long)b.probe_fail,
           (unsigned long long)b.probe_skipped, samples_pct_ms(&b.probe_lat, 50),
           samples_pct_ms(&b.probe_lat, 99), samples_max_ms(&b.probe_lat),
           strcmp(sched, "nice -10") == 0 ? "nice" : sched);
    fflush(stdout);
    bench_ctx_destroy(&b);
    samples_free(&b.probe_lat);
    memset(token, 0, sizeof token);
    return 0;
}

struct probe_out {
    size_t n;
    unsigned long long fail, skipped;
    double p50, p99, max;
    char sched[16];
};

/* Runs the probe process for secs while our loop keeps our connections served. */
static int probe_run(struct run *r, const char *token, int64_t after, double hz, double secs,
                     struct probe_out *po)
{
    struct bench *b = &r->b;
    char url[600], hzs[32], ss[32], afters[32];
    int in[2], out[2];
    memset(po, 0, sizeof *po);
    po->p50 = po->p99 = po->max = NAN;
    if (pipe2(in, O_CLOEXEC) < 0)
        return -1;
    if (pipe2(out, O_CLOEXEC) < 0) {
        close(in[0]);
        close(in[1]);
        return -1;
    }
    snprintf(url, sizeof url, "http://%s:%d%s", b->host, b->port, b->prefix);
    snprintf(hzs, sizeof hzs, "%g", hz);
    snprintf(ss, sizeof ss, "%g", secs);
    snprintf(afters, sizeof afters, "%lld", (long long)after);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        char *argv[] = { "chat-bench", "--probe-child", "--server", url, "--probe-after", afters,
                         "--probe-hz", hzs, "--probe-s", ss, NULL };
        execv("/proc/self/exe", argv);     /* us, even if rebuilt meanwhile */
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    if (pid < 0) {
        close(in[1]);
        close(out[0]);
        return -1;
    }
    dprintf(in[1], "%s\n", token);
    close(in[1]);
    bench_sleep(b, secs + 0.3);
    char line[256] = "";
    size_t got = 0;
    int64_t deadline = mono_ns() + 15 * 1000000000LL;
    while (got < sizeof line - 1 && !memchr(line, '\n', got) && mono_ns() < deadline) {
        struct pollfd p = { .fd = out[0], .events = POLLIN };
        if (poll(&p, 1, 50) <= 0) {
            bench_sleep(b, 0.01);
            continue;
        }
        ssize_t k = read(out[0], line + got, sizeof line - 1 - got);
        if (k <= 0)
            break;
        got += (size_t)k;
        line[got] = '\0';
    }
    close(out[0]);
    int status;
    waitpid(pid, &status, 0);
    if (sscanf(line, "%zu %llu %llu %lf %lf %lf %15s", &po->n, &po->fail, &po->skipped, &po->p50,
               &po->p99, &po->max, po->sched) != 7)
        return -1;
    if (strcmp(po->sched, "nice") == 0)
        snprintf(po->sched, sizeof po->sched, "nice -10");
    return 0;
}

/* ---- idle connections ---- */

static int run_idle(struct env *e, const char *tname, int run_no)
{
    const struct bench_opts *o = e->o;
    const struct transport_ops *ops = transport_find(tname);
    struct run r;
    struct bench *b = &r.b;
    int rc = -1, n = o->conns;
    struct result *res = report_add(e->rep);
    if (!res)
        return -1;
    fill_common(e, res, tname, MODE_IDLE, run_no);
    res->conns_asked = n;
    res->users = o->logins;
    /* long polls are held as long as the server allows (300 s), so that
     * none comes back and polls again while the others are being opened
     * or while the probe runs */
    int wait_s = ops == &transport_long_poll ? 300 : o->wait_s;
    res->wait_s = wait_s;
    fprintf(stderr, "chat-bench: %d idle %s connections\n", n, tname);
    if (run_open(e, &r, tname, n + 64, o->logins + 1, wait_s) < 0)
        goto out;
    int64_t sync = bench_sync_id(b);
    if (sync < 0)
        goto out;
    /* baseline: the probe alone */
    bench_sleep(b, 0.5);
    struct probe_out po;
    if (probe_run(&r, b->users[0].token, sync, o->probe_hz, o->probe_s / 2 > 3 ? 3 : o->probe_s / 2,
                  &po) == 0) {
        res->probe0_p50 = po.p50;
        res->probe0_p99 = po.p99;
    }
    bench_sleep(b, 0.5);
    struct proc_sample before = { 0 }, after = { 0 };
    if (r.spid > 0)
        proc_read(r.spid, &before);
    long g_before = self_rss_kb();

    int opened = 0;
    if (open_many(e, b, ops, n, ROLE_IDLE, sync, &opened) < 0)
        goto out;
    res->conns_open = opened;
    bench_sleep(b, o->settle_s);
    if (r.spid > 0)
        proc_read(r.spid, &after);
    long g_after = self_rss_kb();
    if (r.spid > 0 && opened > 0) {
        res->server_rss_before_kb = before.rss_kb;
        res->server_rss_after_kb = after.rss_kb;
        res->server_kb_per_conn = (double)(after.rss_kb - before.rss_kb) / opened;
    }
    if (opened > 0)
        res->generator_kb_per_conn = (double)(g_after - g_before) / opened;

    struct window w;
    window_begin(&r, &w);
    int prc = probe_run(&r, b->users[0].token, sync, o->probe_hz, o->probe_s, &po);
    window_end(&r, &w);
    fill_window(res, &w, 0, e->netns);
    if (prc == 0) {
        res->probe_n = po.n;
        res->probe_fail = po.fail;
        res->probe_p50 = po.p50;
        res->probe_p99 = po.p99;
        res->probe_max = po.max;
        snprintf(res->probe_sched, sizeof res->probe_sched, "%s", po.sched);
    } else {
        res->probe_fail = 1;
        fprintf(stderr, "chat-bench: the probe process failed\n");
    }
    res->clients = b->n_clients;
    res->errors = b->errors;
    /* still all there? */
    int still = 0;
    for (int i = 0; i < b->n_clients; i++)
        still += b->clients[i]->state != CORE_RECONNECTING && b->clients[i]->state != CORE_OFFLINE;
    if (still < b->n_clients)
        fprintf(stderr, "chat-bench: %d connections were lost during the hold\n", b->n_clients - still);
    rc = 0;
out:
    if (rc < 0 && !res->errors)
        res->errors = b->errors ? b->errors : 1;
    run_close(&r);
    return rc;
}

/* ---- fan-out ---- */

static int run_fanout(struct env *e, const char *tname, int run_no)
{
    const struct bench_opts *o = e->o;
    const struct transport_ops *ops = transport_find(tname);
    struct run r;
    struct bench *b = &r.b;
    int rc = -1, n = o->conns;
    struct result *res = report_add(e->rep);
    if (!res)
        return -1;
    fill_common(e, res, tname, MODE_FANOUT, run_no);
    res->conns_asked = n;
    res->users = o->logins;
    res->rate = o->rate;
    res->duration_s = o->duration_s;
    res->wait_s = o->wait_s;
    fprintf(stderr, "chat-bench: fan-out to %d %s subscribers at %.0f msgs/s\n", n, tname, o->rate);
    if (run_open(e, &r, tname, n + 64, o->logins + 1, o->wait_s) < 0)
        goto out;
    int64_t sync = bench_sync_id(b);
    if (sync < 0)
        goto out;
    struct bclient *sender = bench_client_new(b, &b->users[0], ops, ROLE_SENDER, sync);
    if (!sender || bench_client_start(sender) < 0)
        goto out;
    int opened = 0;
    if (open_many(e, b, ops, n, ROLE_SUBSCRIBER, sync, &opened) < 0)
        goto out;
    res->conns_open = opened;
    b->n_receivers = b->n_clients;
    if (warm_up(b, &sender, 1, 10, 0.3) < 0)
        goto out;
    struct window w;
    window_begin(&r, &w);
    bench_phase_begin(b, PH_MEASURE, 1);
    uint64_t total = (uint64_t)llround(o->rate * o->duration_s);
    bench_rate_start(b, &sender, 1, o->rate, total);
    bench_run_until(b, rate_finished, o->duration_s * 1.5 + 10);
    if (!bench_run_until(b, all_delivered, drain_s(o) + 60))
        fprintf(stderr, "chat-bench: fan-out: %llu of %llu deliveries after the drain time\n",
                (unsigned long long)b->ph_deliv[PH_MEASURE],
                (unsigned long long)(b->ph_sent[PH_MEASURE] * (uint64_t)b->n_receivers));
    window_end(&r, &w);
    fill_delivery(res, b);
    fill_window(res, &w, res->delivered, e->netns);
    res->core_dropped = w.core.dropped;
    fill_latency(res, &b->lat);
    /* keeping up, this is the offered rate; falling behind, the last
     * deliveries come late and the rate drops below it */
    double span = (double)(b->ph_last_deliv[PH_MEASURE] - b->ph_first_send[PH_MEASURE]) / 1e9;
    double sending = (double)res->sent / o->rate;
    if (span > 0)
        res->deliveries_per_s = (double)res->delivered / (span > sending ? span : sending);
    res->offered_per_s = o->rate * b->n_receivers;
    rc = 0;
out:
    if (rc < 0 && !res->errors)
        res->errors = b->errors ? b->errors : 1;
    run_close(&r);
    return rc;
}

/* ---- persisted sends ---- */

static int run_sends(struct env *e, const char *tname, int run_no)
{
    const struct bench_opts *o = e->o;
    const struct transport_ops *ops = transport_find(tname);
    struct run r;
    struct bench *b = &r.b;
    int rc = -1, n = o->users;
    struct result *res = report_add(e->rep);
    if (!res)
        return -1;
    fill_common(e, res, tname, MODE_SENDS, run_no);
    res->users = n;
    res->duration_s = o->duration_s;
    res->conns_asked = o->window;
    res->wait_s = o->wait_s;
    fprintf(stderr, "chat-bench: %d %s senders, %d unacknowledged each, %.1f s\n", n, tname,
            o->window, o->duration_s);
    if (run_open(e, &r, tname, n + 64, n, o->wait_s) < 0)
        goto out;
    int64_t sync = bench_sync_id(b);
    if (sync < 0)
        goto out;
    struct bclient **cl = calloc((size_t)n, sizeof *cl);
    for (int i = 0; i < n; i++) {
        cl[i] = bench_client_new(b, &b->users[i], ops, ROLE_SENDER, sync);
        if (!cl[i] || bench_client_start(cl[i]) < 0) {
            free(cl);
            goto out;
        }
    }
    b->n_receivers = n;
    if (warm_up(b, cl, n, 100, 0.3) < 0) {
        free(cl);
        goto out;
    }
    struct window w;
    window_begin(&r, &w);
    bench_phase_begin(b, PH_MEASURE, 1);
    uint64_t acks0 = b->acks;
    b->refill_window = o->window;
    b->refill_until_ns = mono_ns() + (int64_t)(o->duration_s * 1e9);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < o->window; j++)
            bench_send(b, cl[i]);
    bench_sleep(b, o->duration_s);
    b->refill_window = 0;
    if (!bench_run_until(b, all_acked_delivered, drain_s(o) + 30))
        fprintf(stderr, "chat-bench: sends: not everything acknowledged and delivered in time\n");
    window_end(&r, &w);
    fill_delivery(res, b);
    fill_window(res, &w, res->delivered, e->netns);
    if (res->sent)
        res->server_cpu_us_per_delivery = res->server_cpu_s * 1e6 / (double)res->sent;
    fill_latency(res, &b->lat);
    double span = (double)(b->last_ack_ns - w.t0) / 1e9;
    if (span > 0)
        res->acks_per_s = (double)(b->acks - acks0) / span;
    samples_sort(&b->ack_lat);
    res->ack_p50 = samples_pct_ms(&b->ack_lat, 50);
    res->ack_p99 = samples_pct_ms(&b->ack_lat, 99);
    free(cl);
    rc = 0;
out:
    if (rc < 0 && !res->errors)
        res->errors = b->errors ? b->errors : 1;
    run_close(&r);
    return rc;
}

/* ---- main ---- */

enum {
    O_TRANSPORT = 256, O_USERS, O_RATE, O_DURATION, O_WARMUP, O_IDLE, O_DRAIN, O_INTERVAL,
    O_WAIT, O_BODY, O_RUNS, O_IDLECONN, O_FANOUT, O_SENDS, O_LOGINS, O_WINDOW, O_PROBEHZ,
    O_PROBES, O_SETTLE, O_CPUS, O_NETNS, O_SERVER, O_SERVERPID, O_CHATD, O_DBDIR, O_OUT, O_NAME,
    O_NOPLOT, O_ASSERT, O_SMOKE, O_VERIFY, O_VERBOSE, O_HELP, O_PROBECHILD, O_PROBEAFTER,
    O_LOOP,
};

static int parse_args(int argc, char **argv, struct bench_opts *o, const char **verify)
{
    static const struct option opts[] = {
        { "transport", 1, 0, O_TRANSPORT }, { "users", 1, 0, O_USERS }, { "rate", 1, 0, O_RATE },
        { "duration", 1, 0, O_DURATION }, { "warmup", 1, 0, O_WARMUP }, { "idle", 1, 0, O_IDLE },
        { "drain", 1, 0, O_DRAIN }, { "interval-ms", 1, 0, O_INTERVAL }, { "wait-s", 1, 0, O_WAIT },
        { "body-bytes", 1, 0, O_BODY }, { "runs", 1, 0, O_RUNS },
        { "idle-connections", 1, 0, O_IDLECONN }, { "fanout", 1, 0, O_FANOUT },
        { "sends", 0, 0, O_SENDS }, { "logins", 1, 0, O_LOGINS }, { "window", 1, 0, O_WINDOW },
        { "probe-hz", 1, 0, O_PROBEHZ }, { "probe-s", 1, 0, O_PROBES }, { "settle-s", 1, 0, O_SETTLE }, { "cpus", 1, 0, O_CPUS },
        { "netns", 1, 0, O_NETNS }, { "server", 1, 0, O_SERVER }, { "server-pid", 1, 0, O_SERVERPID },
        { "chatd", 1, 0, O_CHATD }, { "db-dir", 1, 0, O_DBDIR }, { "out", 1, 0, O_OUT },
        { "name", 1, 0, O_NAME }, { "no-plot", 0, 0, O_NOPLOT }, { "assert", 0, 0, O_ASSERT },
        { "smoke", 0, 0, O_SMOKE }, { "verify", 1, 0, O_VERIFY }, { "verbose", 0, 0, O_VERBOSE },
        { "help", 0, 0, O_HELP }, { "probe-child", 0, 0, O_PROBECHILD },
        { "probe-after", 1, 0, O_PROBEAFTER }, { "loop", 1, 0, O_LOOP }, { 0, 0, 0, 0 },
    };
    const char *transport = "all";
    int c;
    double v;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_TRANSPORT: transport = optarg; break;
        case O_USERS: bad = parse_num(optarg, 1, 100000, &v); o->users = (int)v; break;
        case O_RATE: bad = parse_num(optarg, 0.1, 1e7, &o->rate); break;
        case O_DURATION: bad = parse_num(optarg, 0.1, 86400, &o->duration_s); break;
        case O_WARMUP: bad = parse_num(optarg, 0, 3600, &o->warmup_s); break;
        case O_IDLE: bad = parse_num(optarg, 0, 3600, &o->idle_s); break;
        case O_DRAIN: bad = parse_num(optarg, 0.1, 3600, &o->drain_s); break;
        case O_INTERVAL: bad = parse_num(optarg, 50, 60000, &v); o->interval_ms = (int)v; break;
        case O_WAIT: bad = parse_num(optarg, 1, 300, &v); o->wait_s = (int)v; break;
        case O_BODY: bad = parse_num(optarg, 24, PROTO_BODY_MAX, &v); o->body_bytes = (int)v; break;
        case O_RUNS: bad = parse_num(optarg, 1, 100, &v); o->runs = (int)v; break;
        case O_IDLECONN: bad = parse_num(optarg, 1, 1000000, &v); o->conns = (int)v; o->mode = MODE_IDLE; break;
        case O_FANOUT: bad = parse_num(optarg, 1, 1000000, &v); o->conns = (int)v; o->mode = MODE_FANOUT; break;
        case O_SENDS: o->mode = MODE_SENDS; break;
        case O_LOGINS: bad = parse_num(optarg, 1, 10000, &v); o->logins = (int)v; break;
        case O_WINDOW: bad = parse_num(optarg, 1, 100000, &v); o->window = (int)v; break;
        case O_PROBEHZ: bad = parse_num(optarg, 0.1, 10000, &o->probe_hz); break;
        case O_PROBES: bad = parse_num(optarg, 0.5, 3600, &o->probe_s); break;
        case O_SETTLE: bad = parse_num(optarg, 0, 3600, &o->settle_s); break;
        case O_CPUS: o->cpus = optarg; break;
        case O_NETNS:
            o->netns = strcmp(optarg, "on") == 0 ? 1 : strcmp(optarg, "off") == 0 ? 0
                     : strcmp(optarg, "auto") == 0 ? -1 : -2;
            bad = o->netns == -2;
            break;
        case O_SERVER: o->server_url = optarg; break;
        case O_SERVERPID: bad = parse_num(optarg, 1, 1e9, &v); o->server_pid = (long)v; break;
        case O_CHATD: o->chatd = optarg; break;
        case O_DBDIR: o->db_dir = optarg; break;
        case O_OUT: o->out_dir = optarg; break;
        case O_NAME: o->name = optarg; break;
        case O_NOPLOT: o->plot = 0; break;
        case O_ASSERT: o->assert_ok = 1; break;
        case O_SMOKE:
            o->users = 3; o->rate = 60; o->duration_s = 1; o->warmup_s = 0.2; o->idle_s = 0.5;
            o->interval_ms = 100; o->assert_ok = 1; o->plot = 0;
            if (!o->name)
                o->name = "smoke";
            break;
        case O_VERIFY: *verify = optarg; break;
        case O_VERBOSE: o->verbose = 1; break;
        case O_LOOP:
            if (strcmp(optarg, "auto") == 0)
                o->loop_uv = -1;
            else if (strcmp(optarg, "poll") == 0 || strcmp(optarg, "uv") == 0)
                o->loop_uv = optarg[0] == 'u';
            else
                bad = 1;
            break;
        case O_HELP: usage(stdout); exit(0);
        case O_PROBECHILD: o->probe_child = 1; break;
        case O_PROBEAFTER: bad = parse_num(optarg, 0, 9e18, &v); o->probe_after = (int64_t)v; break;
        default: usage(stderr); return -1;
        }
        if (bad) {
            fprintf(stderr, "chat-bench: bad value for --%s: %s\n", opts[c - O_TRANSPORT].name, optarg);
            return -1;
        }
    }
    for (int i = optind; i < argc; i++) {       /* after "--": chatd's own flags */
        o->chatd_args = &argv[optind];
        o->n_chatd_args = argc - optind;
        break;
    }
    if (strcmp(transport, "all") == 0) {
        o->n_transports = 3;
        for (int i = 0; i < 3; i++)
            o->transports[i] = all_transports[i];
    } else if (transport_find(transport)) {
        o->n_transports = 1;
        o->transports[0] = transport;
    } else {
        fprintf(stderr, "chat-bench: unknown transport %s\n", transport);
        return -1;
    }
    if (o->mode == MODE_IDLE || o->mode == MODE_FANOUT) {
        if (o->n_transports == 3) {
            o->n_transports = 1;
            o->transports[0] = "websocket";
        }
    }
    return 0;
}

static int mkdir_p(const char *dir)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0755);
            *p = '/';
        }
    return mkdir(buf, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

static const char *mode_name(int mode)
{
    static const char *names[] = { "standard", "idle", "fanout", "sends" };
    return names[mode];
}

int main(int argc, char **argv)
{
    struct bench_opts o = {
        .users = 10, .rate = 1000, .duration_s = 10, .warmup_s = 1, .idle_s = 5,
        .interval_ms = 1000, .wait_s = 25, .body_bytes = 32, .cpus = "none",
        .out_dir = "build/bench", .runs = 1, .logins = 8, .window = 64, .probe_hz = 50,
        .probe_s = 10, .settle_s = 2, .netns = -1, .loop_uv = -1, .plot = 1, .mode = MODE_STANDARD,
    };
    const char *verify = NULL;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (parse_args(argc, argv, &o, &verify) < 0)
        return 2;
    if (verify)
        return report_verify(verify) == 0 ? 0 : 1;
    if (o.probe_child)
        return probe_child_main(&o);
    if (sodium_init() < 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);

    struct report rep;
    memset(&rep, 0, sizeof rep);
    struct env e;
    memset(&e, 0, sizeof e);
    e.o = &o;
    e.rep = &rep;
    e.started = !o.server_url;
    snprintf(rep.latency_clock, sizeof rep.latency_clock,
             "CLOCK_MONOTONIC, send (core_send) to receipt (on_event), same process");
    if (placement_parse(o.cpus, &e.pl) < 0) {
        fprintf(stderr, "chat-bench: bad --cpus %s (none, same, split or S:G, e.g. 0:1)\n", o.cpus);
        return 2;
    }
    if (!e.started) {
        struct bench tmp;
        memset(&tmp, 0, sizeof tmp);
        if (parse_server_url(&tmp, o.server_url) < 0) {
            fprintf(stderr, "chat-bench: --server must be http://host:port[/prefix]\n");
            return 2;
        }
        snprintf(e.url_host, sizeof e.url_host, "%s", tmp.host);
        snprintf(e.url_prefix, sizeof e.url_prefix, "%s", tmp.prefix);
        e.url_port = tmp.port;
    } else {
        if (o.chatd) {
            snprintf(e.chatd, sizeof e.chatd, "%s", o.chatd);
        } else {
            char self[PATH_MAX];
            ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
            self[n > 0 ? n : 0] = '\0';
            snprintf(e.chatd, sizeof e.chatd, "%s/chatd", n > 0 ? dirname(self) : ".");
        }
        if (access(e.chatd, X_OK) < 0) {
            fprintf(stderr, "chat-bench: no server binary at %s (--chatd)\n", e.chatd);
            return 2;
        }
    }
    if (mkdir_p(o.out_dir) < 0) {
        fprintf(stderr, "chat-bench: cannot create %s: %s\n", o.out_dir, strerror(errno));
        return 1;
    }
    if (!realpath(o.db_dir ? o.db_dir : o.out_dir, e.db_dir)) {
        fprintf(stderr, "chat-bench: bad --db-dir\n");
        return 2;
    }
    snprintf(rep.db_fs, sizeof rep.db_fs, "%s", fs_type_of(e.db_dir));

    /* namespace: own loopback, own port range, clean lo counters */
    if (e.started && o.netns != 0 && geteuid() == 0) {
        e.netns = netns_enter(rep.netns, sizeof rep.netns) == 0;
    } else {
        snprintf(rep.netns, sizeof rep.netns, "%s",
                 !e.started ? "host network (--server)"
                 : o.netns == 0 ? "host network (--netns off)" : "host network (not root)");
    }
    if (o.netns == 1 && !e.netns) {
        fprintf(stderr, "chat-bench: --netns on: %s\n", rep.netns);
        return 1;
    }
    long want = (o.mode == MODE_IDLE || o.mode == MODE_FANOUT ? o.conns : o.users) + 16384L;
    rep.nofile = nofile_raise(want);
    if (rep.nofile < want)
        fprintf(stderr, "chat-bench: open-file limit %ld is below the %ld wanted\n", rep.nofile, want);
    if ((o.mode == MODE_IDLE || o.mode == MODE_FANOUT) && o.conns > rep.nofile - 1000) {
        /* chatd is one process: it cannot hold more sockets than this */
        int cap = (int)(rep.nofile - 1000);
        fprintf(stderr, "chat-bench: the open-file limit (%ld, and we may not raise it) allows about "
                        "%d connections per process: measuring %d instead of %d\n",
                rep.nofile, cap, cap, o.conns);
        o.conns = cap;
    }
    if (placement_apply_self(&e.pl) < 0)
        fprintf(stderr, "chat-bench: cannot pin the generator: %s\n", strerror(errno));

    int failures = 0;
    for (int run = 1; run <= o.runs; run++)
        for (int t = 0; t < o.n_transports; t++) {
            int rc;
            switch (o.mode) {
            case MODE_IDLE: rc = run_idle(&e, o.transports[t], run); break;
            case MODE_FANOUT: rc = run_fanout(&e, o.transports[t], run); break;
            case MODE_SENDS: rc = run_sends(&e, o.transports[t], run); break;
            default: rc = run_standard(&e, o.transports[t], run); break;
            }
            failures += rc < 0;
        }
    report_aggregate(&rep);
    report_markdown(&rep, stdout);
    const char *name = o.name ? o.name : mode_name(o.mode);
    int wrc = report_write_files(&rep, o.out_dir, name, o.plot);
    report_free(&rep);
    if (wrc < 0)
        failures++;
    if (o.assert_ok) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s.json", o.out_dir, name);
        if (report_verify(path) < 0)
            failures++;
    }
    return failures ? 1 : 0;
}
