/* run.c — the plumbing every chat-bench mode uses (run.h): one run's
 * chatd and lws context, the result row's common fields, a measurement
 * window (server /proc, our CPU, wire, lo), the waiting conditions and the
 * warm-up. */
#include "run.h"
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

const char *const all_transports[BENCH_NTRANSPORTS] = { "websocket", "long-poll", "short-poll", "sse" };

int transport_index(const char *name)
{
    for (int i = 0; i < BENCH_NTRANSPORTS; i++)
        if (strcmp(name, all_transports[i]) == 0)
            return i;
    return -1;
}

/* http://host:port[/prefix] into b->host, b->port, b->prefix; -1 if malformed. */
int parse_server_url(struct bench *b, const char *url)
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
int run_open(struct env *e, struct run *r, const char *transport, long conns,
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
        int rc = server_start(&r->sp, e->chatd, e->db_dir, e->o->db, log, argv, n, &e->pl);
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
    if (n_users > 0 && bench_login(b, n_users, r->tag, 1) < 0)
        return -1;
    return 0;
}

int run_close(struct run *r)
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

void fill_common(struct env *e, struct result *res, const char *transport, int mode, int run)
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

void fill_latency(struct result *res, struct samples *s)
{
    samples_sort(s);
    res->p50 = samples_pct_ms(s, 50);
    res->p90 = samples_pct_ms(s, 90);
    res->p99 = samples_pct_ms(s, 99);
    res->max = samples_max_ms(s);
    res->mean = samples_mean_ms(s);
}

/* ---- a measurement window: server /proc, our CPU, wire, lo ---- */


void window_begin(struct run *r, struct window *w)
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

void window_end(struct run *r, struct window *w)
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

void fill_window(struct result *res, const struct window *w, uint64_t delivered, int netns)
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

int all_warm(struct bench *b)
{
    return b->ph_deliv[PH_WARMUP] >= b->ph_sent[PH_WARMUP] * (uint64_t)b->n_receivers &&
           bench_rate_done(b);
}

int all_delivered(struct bench *b)
{
    return b->ph_deliv[PH_MEASURE] >= b->ph_sent[PH_MEASURE] * (uint64_t)b->n_receivers &&
           bench_rate_done(b);
}

int all_acked_delivered(struct bench *b)
{
    return all_delivered(b) && b->acks >= b->ph_sent[PH_MEASURE] + b->ph_sent[PH_WARMUP];
}

int rate_finished(struct bench *b)
{
    return bench_rate_done(b);
}

double drain_s(const struct bench_opts *o)
{
    return o->drain_s > 0 ? o->drain_s : 10.0 + 3.0 * o->interval_ms / 1000.0;
}

/* Warm-up: a few messages from everyone, until every client has them all. */
int warm_up(struct bench *b, struct bclient **senders, int n, double rate, double secs)
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

void fill_delivery(struct result *res, struct bench *b)
{
    fill_delivery_phase(res, b, PH_MEASURE);
}

void fill_delivery_phase(struct result *res, struct bench *b, int phase)
{
    res->sent = b->ph_sent[phase];
    res->receivers = b->n_receivers;
    res->expected = res->sent * (uint64_t)b->n_receivers;
    res->delivered = b->ph_deliv[phase];
    res->duplicates = b->ph_dups[PH_WARMUP] + b->ph_dups[phase];
    res->delivered_ratio = res->expected ? (double)res->delivered / (double)res->expected : NAN;
    res->errors = b->errors;
    res->clients = b->n_clients;
}

