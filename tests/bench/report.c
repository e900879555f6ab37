/* report.c — results: one table of fields drives the JSON and CSV files and
 * the checks of --assert/--verify; the Markdown tables pick the columns a
 * reader needs per mode; gnuplot draws the latency distributions. */
#include "bench.h"

#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

enum ftype { F_INT, F_U64, F_LONG, F_DBL, F_STR };
#define M_STD  (1u << MODE_STANDARD)
#define M_IDLE (1u << MODE_IDLE)
#define M_FAN  (1u << MODE_FANOUT)
#define M_SND  (1u << MODE_SENDS)
#define M_ROOM (1u << MODE_ROOMS)
#define M_LOAD (M_STD | M_FAN | M_SND | M_ROOM)
#define M_ALL  (M_LOAD | M_IDLE)

struct field {
    const char *name;
    int type;
    size_t off;
    unsigned required;          /* modes in which it must have a value */
};

#define FLD(n, t, m) { #n, t, offsetof(struct result, n), m }
static const struct field fields[] = {
    FLD(transport, F_STR, M_ALL), FLD(placement, F_STR, M_ALL),
    FLD(server_cpus, F_STR, M_ALL), FLD(generator_cpus, F_STR, M_ALL), FLD(generator_loop, F_STR, M_ALL),
    FLD(run, F_INT, M_ALL), FLD(runs, F_INT, M_ALL),
    FLD(users, F_INT, M_ALL), FLD(clients, F_INT, M_ALL), FLD(receivers, F_INT, M_LOAD),
    FLD(rate, F_DBL, M_STD | M_FAN | M_ROOM), FLD(duration_s, F_DBL, M_LOAD), FLD(idle_s, F_DBL, M_STD),
    FLD(interval_ms, F_INT, M_ALL), FLD(wait_s, F_INT, M_ALL), FLD(body_bytes, F_INT, M_ALL),
    FLD(sent, F_U64, M_LOAD), FLD(expected, F_U64, M_LOAD), FLD(delivered, F_U64, M_LOAD),
    FLD(delivered_ratio, F_DBL, M_LOAD), FLD(duplicates, F_U64, M_LOAD),
    FLD(core_dropped, F_U64, M_LOAD), FLD(errors, F_U64, M_ALL),
    FLD(p50, F_DBL, M_LOAD), FLD(p90, F_DBL, M_LOAD), FLD(p99, F_DBL, M_LOAD),
    FLD(max, F_DBL, M_LOAD), FLD(mean, F_DBL, M_LOAD),
    FLD(requests, F_U64, M_STD), FLD(req_per_delivery, F_DBL, M_STD),
    FLD(events_per_poll, F_DBL, 0), FLD(idle_req_per_s, F_DBL, M_STD),
    FLD(idle_bytes_per_s, F_DBL, M_STD),
    FLD(core_bytes_in, F_U64, M_STD), FLD(core_bytes_out, F_U64, M_STD),
    FLD(wire_bytes_in, F_U64, M_STD), FLD(wire_bytes_out, F_U64, M_STD),
    FLD(core_bytes_per_delivery, F_DBL, M_STD), FLD(wire_bytes_per_delivery, F_DBL, M_STD),
    FLD(core_vs_wire, F_DBL, M_STD), FLD(segs_per_delivery, F_DBL, M_STD),
    FLD(wire_unmeasured, F_U64, M_STD), FLD(lo_bytes_per_delivery, F_DBL, 0),
    FLD(resp_header_bytes, F_INT, M_STD), FLD(req_header_bytes, F_INT, M_STD),
    FLD(server_cpu_s, F_DBL, M_ALL), FLD(server_cpu_us_per_delivery, F_DBL, M_LOAD),
    FLD(generator_cpu_s, F_DBL, M_ALL),
    FLD(server_rss_start_kb, F_LONG, M_LOAD), FLD(server_peak_rss_kb, F_LONG, M_LOAD),
    FLD(conns_asked, F_INT, M_IDLE | M_FAN | M_ROOM), FLD(conns_open, F_INT, M_IDLE | M_FAN | M_ROOM),
    FLD(rooms, F_INT, M_FAN | M_ROOM),
    FLD(server_rss_before_kb, F_LONG, M_IDLE), FLD(server_rss_after_kb, F_LONG, M_IDLE),
    FLD(server_kb_per_conn, F_DBL, M_IDLE), FLD(generator_kb_per_conn, F_DBL, M_IDLE),
    FLD(probe_p50, F_DBL, M_IDLE), FLD(probe_p99, F_DBL, M_IDLE), FLD(probe_max, F_DBL, M_IDLE),
    FLD(probe0_p50, F_DBL, M_IDLE), FLD(probe0_p99, F_DBL, M_IDLE),
    FLD(probe_n, F_U64, M_IDLE), FLD(probe_fail, F_U64, M_IDLE), FLD(probe_sched, F_STR, M_IDLE),
    FLD(deliveries_per_s, F_DBL, M_FAN | M_ROOM), FLD(offered_per_s, F_DBL, M_FAN | M_ROOM),
    FLD(acks_per_s, F_DBL, M_SND), FLD(ack_p50, F_DBL, M_SND), FLD(ack_p99, F_DBL, M_SND),
    FLD(window_s, F_DBL, M_ALL), FLD(fsync_ms, F_DBL, 0),
};
#define N_FIELDS (sizeof fields / sizeof fields[0])

static const char *mode_names[MODE_COUNT] = { "standard", "idle", "fanout", "sends", "rooms-fanout", "login" };

static double get_num(const struct result *r, const struct field *f)
{
    const char *p = (const char *)r + f->off;
    switch (f->type) {
    case F_INT: return *(const int *)p < 0 && strstr(f->name, "bytes") ? NAN : *(const int *)p;
    case F_U64: return (double)*(const uint64_t *)p;
    case F_LONG: return *(const long *)p < 0 ? NAN : (double)*(const long *)p;
    case F_DBL: return *(const double *)p;
    default: return NAN;
    }
}

static void set_num(struct result *r, const struct field *f, double v)
{
    char *p = (char *)r + f->off;
    switch (f->type) {
    case F_INT: *(int *)p = isnan(v) ? -1 : (int)llround(v); break;
    case F_U64: *(uint64_t *)p = isnan(v) ? 0 : (uint64_t)llround(v); break;
    case F_LONG: *(long *)p = isnan(v) ? -1 : (long)llround(v); break;
    case F_DBL: *(double *)p = v; break;
    default: break;
    }
}

struct result *report_add(struct report *rep)
{
    if (rep->n == rep->cap) {
        size_t cap = rep->cap ? rep->cap * 2 : 16;
        struct result *r = realloc(rep->r, cap * sizeof *r);
        if (!r)
            return NULL;
        rep->r = r;
        rep->cap = cap;
    }
    struct result *r = &rep->r[rep->n++];
    memset(r, 0, sizeof *r);
    return r;
}

void report_free(struct report *rep)
{
    free(rep->r);
    for (int i = 0; i < BENCH_NTRANSPORTS; i++)
        samples_free(&rep->lat[i]);
    memset(rep, 0, sizeof *rep);
}

/* ---- medians over runs ---- */

static int same_group(const struct result *a, const struct result *b)
{
    return a->mode == b->mode && strcmp(a->transport, b->transport) == 0 &&
           strcmp(a->placement, b->placement) == 0 && a->conns_asked == b->conns_asked &&
           a->users == b->users && a->rate == b->rate;
}

void report_aggregate(struct report *rep)
{
    size_t n0 = rep->n;
    for (size_t i = 0; i < n0; i++) {
        if (rep->r[i].run == 0)
            continue;
        int first = 1, count = 0;
        for (size_t j = 0; j < n0; j++)
            if (rep->r[j].run && same_group(&rep->r[i], &rep->r[j])) {
                if (j < i)
                    first = 0;
                count++;
            }
        if (!first || count < 2)
            continue;
        double *v = malloc((size_t)count * sizeof *v);
        struct result agg = rep->r[i];
        agg.run = 0;
        agg.runs = count;
        for (size_t f = 0; f < N_FIELDS; f++) {
            if (fields[f].type == F_STR || strcmp(fields[f].name, "run") == 0 ||
                strcmp(fields[f].name, "runs") == 0)
                continue;
            int k = 0;
            for (size_t j = 0; j < n0; j++)
                if (rep->r[j].run && same_group(&rep->r[i], &rep->r[j]))
                    v[k++] = get_num(&rep->r[j], &fields[f]);
            set_num(&agg, &fields[f], median_of(v, (size_t)k));
        }
        /* correctness is never a median: the worst run counts */
        for (size_t j = 0; j < n0; j++)
            if (rep->r[j].run && same_group(&rep->r[i], &rep->r[j])) {
                if (rep->r[j].duplicates > agg.duplicates)
                    agg.duplicates = rep->r[j].duplicates;
                if (rep->r[j].delivered_ratio < agg.delivered_ratio ||
                    isnan(rep->r[j].delivered_ratio))
                    agg.delivered_ratio = rep->r[j].delivered_ratio;
            }
        free(v);
        struct result *slot = report_add(rep);
        if (slot)
            *slot = agg;
    }
}

/* ---- Markdown ---- */

static void fmt(char *buf, size_t len, double v)
{
    if (isnan(v))
        snprintf(buf, len, "–");
    else if (fabs(v) < 10)
        snprintf(buf, len, "%.3f", v);
    else if (fabs(v) < 1000)
        snprintf(buf, len, "%.1f", v);
    else
        snprintf(buf, len, "%.0f", v);
}

/* "median (min–max)" over the runs of r's group, or just the value. */
static void cell(char *buf, size_t len, const struct report *rep, const struct result *r,
                 size_t off)
{
    double v = *(const double *)((const char *)r + off);
    char a[20], lo_s[20], hi_s[20];
    fmt(a, sizeof a, v);
    if (r->run != 0) {
        snprintf(buf, len, "%s", a);
        return;
    }
    double lo = INFINITY, hi = -INFINITY;
    for (size_t j = 0; j < rep->n; j++)
        if (rep->r[j].run && same_group(r, &rep->r[j])) {
            double x = *(const double *)((const char *)&rep->r[j] + off);
            if (!isnan(x)) {
                lo = x < lo ? x : lo;
                hi = x > hi ? x : hi;
            }
        }
    if (isinf(lo)) {
        snprintf(buf, len, "%s", a);
        return;
    }
    fmt(lo_s, sizeof lo_s, lo);
    fmt(hi_s, sizeof hi_s, hi);
    snprintf(buf, len, "%s (%s–%s)", a, lo_s, hi_s);
}

/* Rows to print: the median rows of groups with several runs, else the runs. */
static int shown(const struct report *rep, size_t i, int mode)
{
    const struct result *r = &rep->r[i];
    if (r->mode != mode)
        return 0;
    if (r->run == 0)
        return 1;
    for (size_t j = 0; j < rep->n; j++)
        if (rep->r[j].run == 0 && same_group(r, &rep->r[j]))
            return 0;
    return 1;
}

static void ratio(char *buf, size_t len, const struct result *r)
{
    if (isnan(r->delivered_ratio))
        snprintf(buf, len, "–");
    else if (r->delivered == r->expected)
        snprintf(buf, len, "%.1f", r->delivered_ratio);
    else
        snprintf(buf, len, "%.4f", r->delivered_ratio);
}

#define C(field) (cell(c[k], sizeof c[k], rep, r, offsetof(struct result, field)), c[k++])
#define N(value) (fmt(c[k], sizeof c[k], (value)), c[k++])

static void md_standard(const struct report *rep, FILE *out)
{
    fprintf(out, "| transport | CPUs server/gen | runs | delivered/sent | dups | p50 ms | p90 ms | p99 ms | max ms "
                 "| requests/delivery | events/poll | idle req/s per client | wire bytes/delivery | core est./wire "
                 "| server CPU s | server µs/delivery | server peak RSS MB |\n"
                 "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < rep->n; i++) {
        if (!shown(rep, i, MODE_STANDARD))
            continue;
        const struct result *r = &rep->r[i];
        char c[20][80], rt[32];
        int k = 0;
        ratio(rt, sizeof rt, r);
        const char *p50 = C(p50), *p90 = C(p90), *p99 = C(p99), *mx = C(max);
        const char *rpd = C(req_per_delivery), *epp = C(events_per_poll), *idle = C(idle_req_per_s);
        const char *wb = C(wire_bytes_per_delivery), *cw = C(core_vs_wire), *cpu = C(server_cpu_s);
        const char *us = C(server_cpu_us_per_delivery);
        const char *rss = N(r->server_peak_rss_kb < 0 ? NAN : r->server_peak_rss_kb / 1024.0);
        fprintf(out, "| %s | %s/%s | %d | %s | %llu | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
                r->transport, r->server_cpus, r->generator_cpus, r->runs, rt,
                (unsigned long long)r->duplicates, p50, p90, p99, mx, rpd, epp, idle, wb, cw, cpu, us, rss);
    }
}

static void md_idle(const struct report *rep, FILE *out)
{
    fprintf(out, "| transport | CPUs server/gen | runs | connections open/asked | server RSS before → after MB "
                 "| server KB/connection | generator KB/connection | probe p50 ms | probe p99 ms | probe max ms "
                 "| probe alone p50/p99 ms | probe fails | server CPU s in %s | generator CPU s |\n"
                 "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n", "the hold");
    for (size_t i = 0; i < rep->n; i++) {
        if (!shown(rep, i, MODE_IDLE))
            continue;
        const struct result *r = &rep->r[i];
        char c[20][80];
        int k = 0;
        const char *kb = C(server_kb_per_conn), *gkb = C(generator_kb_per_conn);
        const char *p50 = C(probe_p50), *p99 = C(probe_p99), *mx = C(probe_max);
        const char *b50 = N(r->probe0_p50), *b99 = N(r->probe0_p99), *cpu = C(server_cpu_s);
        const char *gcpu = C(generator_cpu_s);
        const char *before = N(r->server_rss_before_kb < 0 ? NAN : r->server_rss_before_kb / 1024.0);
        const char *after = N(r->server_rss_after_kb < 0 ? NAN : r->server_rss_after_kb / 1024.0);
        fprintf(out, "| %s | %s/%s | %d | %d/%d | %s → %s | %s | %s | %s | %s | %s | %s/%s | %llu | %s | %s |\n",
                r->transport, r->server_cpus, r->generator_cpus, r->runs, r->conns_open, r->conns_asked,
                before, after, kb, gkb, p50, p99, mx, b50, b99, (unsigned long long)r->probe_fail, cpu, gcpu);
    }
}

static void md_fanout(const struct report *rep, FILE *out)
{
    fprintf(out, "| transport | CPUs server/gen | runs | rooms | subscribers | msgs/s | offered deliveries/s "
                 "| achieved deliveries/s | delivered/sent | dups | p50 ms | p99 ms | max ms | server CPU s "
                 "| server µs/delivery | generator CPU s |\n"
                 "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < rep->n; i++) {
        if (!shown(rep, i, MODE_FANOUT) && !shown(rep, i, MODE_ROOMS))
            continue;
        const struct result *r = &rep->r[i];
        char c[20][80], rt[32];
        int k = 0;
        ratio(rt, sizeof rt, r);
        const char *off = N(r->offered_per_s), *ach = C(deliveries_per_s);
        const char *p50 = C(p50), *p99 = C(p99), *mx = C(max), *cpu = C(server_cpu_s);
        const char *us = C(server_cpu_us_per_delivery), *g = C(generator_cpu_s);
        fprintf(out, "| %s | %s/%s | %d | %d | %d/%d | %.0f | %s | %s | %s | %llu | %s | %s | %s | %s | %s | %s |\n",
                r->transport, r->server_cpus, r->generator_cpus, r->runs, r->rooms, r->conns_open, r->conns_asked,
                r->rate, off, ach, rt, (unsigned long long)r->duplicates, p50, p99, mx, cpu, us, g);
    }
}

static void md_sends(const struct report *rep, FILE *out)
{
    fprintf(out, "| transport | CPUs server/gen | runs | senders × window | acknowledged sends/s | ack p50 ms "
                 "| ack p99 ms | delivered/sent | dups | server CPU s | server µs/send | generator CPU s |\n"
                 "|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < rep->n; i++) {
        if (!shown(rep, i, MODE_SENDS))
            continue;
        const struct result *r = &rep->r[i];
        char c[20][80], rt[32];
        int k = 0;
        ratio(rt, sizeof rt, r);
        const char *aps = C(acks_per_s), *a50 = C(ack_p50), *a99 = C(ack_p99), *cpu = C(server_cpu_s);
        const char *us = C(server_cpu_us_per_delivery), *g = C(generator_cpu_s);
        fprintf(out, "| %s | %s/%s | %d | %d × %d | %s | %s | %s | %s | %llu | %s | %s | %s |\n",
                r->transport, r->server_cpus, r->generator_cpus, r->runs, r->users, r->conns_asked,
                aps, a50, a99, rt, (unsigned long long)r->duplicates, cpu, us, g);
    }
}

void report_markdown(const struct report *rep, FILE *out)
{
    int have[MODE_COUNT] = { 0 };
    for (size_t i = 0; i < rep->n; i++)
        have[rep->r[i].mode] = 1;
    const struct result *first = rep->n ? &rep->r[0] : NULL;
    fprintf(out, "\n");
    if (have[MODE_STANDARD]) {
        fprintf(out, "### Transports: %d users, %.0f msgs/s for %.0f s (each user receives every message)\n\n",
                first->users, first->rate, first->duration_s);
        md_standard(rep, out);
    }
    if (have[MODE_IDLE]) {
        fprintf(out, "\n### Idle connections\n\n");
        md_idle(rep, out);
    }
    if (have[MODE_FANOUT] || have[MODE_ROOMS]) {
        fprintf(out, "\n### Fan-out: rooms of subscribers, one sender each (msgs/s: all senders; "
                     "each message goes to its room's subscribers)\n\n");
        md_fanout(rep, out);
    }
    if (have[MODE_SENDS]) {
        fprintf(out, "\n### Persisted sends (acknowledged after commit, then delivered)\n\n");
        md_sends(rep, out);
    }
    fprintf(out, "\n");
    if (have[MODE_STANDARD]) {
        int hdr = -1, req = -1;
        for (size_t i = 0; i < rep->n; i++)
            if (rep->r[i].mode == MODE_STANDARD && rep->r[i].resp_header_bytes > 0) {
                hdr = rep->r[i].resp_header_bytes;
                req = rep->r[i].req_header_bytes;
            }
        fprintf(out, "- latency: %s; percentiles over every delivery of the measured window%s\n",
                rep->latency_clock, first && first->runs > 1 ? "; cells: median of runs (min–max)" : "");
        fprintf(out, "- short poll every %d ms, long poll hold %d s; body %d bytes\n",
                first->interval_ms, first->wait_s, first->body_bytes);
        fprintf(out, "- requests/delivery counts every HTTP request (polls and POSTed sends) or WS handshake "
                     "per message delivered to one client; events/poll = deliveries per poll answer\n");
        fprintf(out, "- wire bytes: TCP payload of every client socket (TCP_INFO: HTTP/WS headers "
                     "included, TCP/IP headers not), both directions; core est./wire = the client core's "
                     "own byte counters against that\n");
        if (hdr > 0)
            fprintf(out, "- GET /api/v1/events response headers: %d bytes (exact, raw socket; a minimal "
                         "request with a bearer token is %d bytes)\n", hdr, req);
    }
    double fs = NAN;
    for (size_t i = 0; i < rep->n; i++)
        if (!isnan(rep->r[i].fsync_ms))
            fs = isnan(fs) || rep->r[i].fsync_ms > fs ? rep->r[i].fsync_ms : fs;
    char fsb[32];
    fmt(fsb, sizeof fsb, fs);
    fprintf(out, "- server: chatd %s; database on %s, where one 200-byte append + fdatasync "
                 "took %s ms (median; worst of the runs): every message is one such commit\n",
            rep->chatd_flags[0] ? rep->chatd_flags : "(not started by the bench)", rep->db_fs, fsb);
    fprintf(out, "- network: %s; open-file limit %ld\n", rep->netns, rep->nofile);
    if (first)
        fprintf(out, "- CPU placement %s: server on CPU %s, generator on CPU %s; the generator's "
                     "loop: %s\n", first->placement, first->server_cpus, first->generator_cpus,
                strcmp(first->generator_loop, "uv") == 0 ? "libuv (epoll)" : "lws' poll()");
    if (have[MODE_IDLE])
        for (size_t i = 0; i < rep->n; i++)
            if (rep->r[i].mode == MODE_IDLE && rep->r[i].probe_sched[0]) {
                fprintf(out, "- probe: a process of its own on the generator's CPU, scheduled %s "
                             "(so that it waits for the server, not for the generator's loop)\n",
                        rep->r[i].probe_sched);
                break;
            }
}

/* ---- files ---- */

static json_t *row_json(const struct result *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "mode", json_string(mode_names[r->mode]));
    for (size_t f = 0; f < N_FIELDS; f++) {
        const char *p = (const char *)r + fields[f].off;
        json_t *v;
        if (fields[f].type == F_STR) {
            v = json_string(p);
        } else {
            double x = get_num(r, &fields[f]);
            if (isnan(x))
                v = json_null();
            else if (fields[f].type == F_DBL)
                v = json_real(x);
            else
                v = json_integer((json_int_t)x);
        }
        json_object_set_new(o, fields[f].name, v);
    }
    return o;
}

static int write_csv(const struct report *rep, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "mode");
    for (size_t i = 0; i < N_FIELDS; i++)
        fprintf(f, ",%s", fields[i].name);
    fprintf(f, "\n");
    for (size_t i = 0; i < rep->n; i++) {
        const struct result *r = &rep->r[i];
        fprintf(f, "%s", mode_names[r->mode]);
        for (size_t k = 0; k < N_FIELDS; k++) {
            if (fields[k].type == F_STR) {
                fprintf(f, ",\"%s\"", (const char *)r + fields[k].off);
                continue;
            }
            double x = get_num(r, &fields[k]);
            if (isnan(x))
                fprintf(f, ",");
            else if (fields[k].type == F_DBL)
                fprintf(f, ",%.6g", x);
            else
                fprintf(f, ",%.0f", x);
        }
        fprintf(f, "\n");
    }
    return fclose(f);
}

static int write_plot(const struct report *rep, const char *dir, const char *name)
{
    static const char *names[BENCH_NTRANSPORTS] = { "websocket", "long-poll", "short-poll", "sse" };
    char dat[1024], png[1024];
    int any = 0;
    for (int t = 0; t < BENCH_NTRANSPORTS; t++)
        any |= rep->lat[t].n > 0;
    if (!any)
        return 0;
    snprintf(dat, sizeof dat, "%s/%s-latency.dat", dir, name);
    snprintf(png, sizeof png, "%s/%s-latency.png", dir, name);
    FILE *f = fopen(dat, "w");
    if (!f)
        return -1;
    int idx[BENCH_NTRANSPORTS], blocks = 0;
    for (int t = 0; t < BENCH_NTRANSPORTS; t++) {
        idx[t] = -1;
        struct samples s = rep->lat[t];     /* sorted copy */
        if (!s.n)
            continue;
        s.v = malloc(s.n * sizeof *s.v);
        if (!s.v)
            continue;
        memcpy(s.v, rep->lat[t].v, s.n * sizeof *s.v);
        s.cap = s.n;
        samples_sort(&s);
        fprintf(f, "# %s: latency_ms fraction (%zu deliveries)\n", names[t], s.n);
        for (int q = 0; q <= 1000; q++) {
            size_t i = (size_t)((double)q / 1000.0 * (double)(s.n - 1));
            double ms = (double)s.v[i] / 1e6;
            fprintf(f, "%.6f %.4f\n", ms < 0.001 ? 0.001 : ms, (double)q / 1000.0);
        }
        fprintf(f, "\n\n");
        free(s.v);
        idx[t] = blocks++;
    }
    fclose(f);
    if (!blocks)
        return 0;
    if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
        fprintf(stderr, "chat-bench: gnuplot not installed: no %s (data in %s)\n", png, dat);
        return 0;
    }
    FILE *g = popen("gnuplot", "w");
    if (!g)
        return -1;
    const struct result *r0 = rep->n ? &rep->r[0] : NULL;
    fprintf(g, "set terminal pngcairo size 960,600 noenhanced font 'sans,11'\n"
               "set output '%s'\n"
               "set title 'chat delivery latency, send to receipt: %d users, %.0f msgs/s; "
               "server CPU %s, generator CPU %s'\n"
               "set xlabel 'latency, ms (log scale)'\nset ylabel 'fraction of deliveries'\n"
               "set logscale x\nset grid xtics mxtics ytics\nset key at graph 0.62, 0.62 center\nset yrange [0:1]\n"
               "plot ", png, r0 ? r0->users : 0, r0 ? r0->rate : 0,
            r0 ? r0->server_cpus : "?", r0 ? r0->generator_cpus : "?");
    int first = 1;
    for (int t = 0; t < BENCH_NTRANSPORTS; t++)
        if (idx[t] >= 0) {
            fprintf(g, "%s'%s' index %d using 1:2 with lines lw 2 title '%s (%zu)'",
                    first ? "" : ", ", dat, idx[t], names[t], rep->lat[t].n);
            first = 0;
        }
    fprintf(g, "\n");
    int rc = pclose(g);
    if (rc != 0)
        fprintf(stderr, "chat-bench: gnuplot failed (%d)\n", rc);
    else
        fprintf(stderr, "chat-bench: wrote %s\n", png);
    return rc == 0 ? 0 : -1;
}

int report_write_files(const struct report *rep, const char *dir, const char *name, int plot)
{
    char path[1024];
    json_t *root = json_object(), *rows = json_array(), *meta = json_object();
    struct utsname un;
    uname(&un);
    time_t now = time(NULL);
    char when[64];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    json_object_set_new(meta, "date", json_string(when));
    json_object_set_new(meta, "kernel", json_string(un.release));
    json_object_set_new(meta, "cpus_online", json_integer(sysconf(_SC_NPROCESSORS_ONLN)));
    json_object_set_new(meta, "chatd_flags", json_string(rep->chatd_flags));
    json_object_set_new(meta, "network", json_string(rep->netns));
    json_object_set_new(meta, "db_fs", json_string(rep->db_fs));
    json_object_set_new(meta, "nofile", json_integer(rep->nofile));
    json_object_set_new(meta, "latency_clock", json_string(rep->latency_clock));
    json_object_set_new(root, "meta", meta);
    for (size_t i = 0; i < rep->n; i++)
        json_array_append_new(rows, row_json(&rep->r[i]));
    json_object_set_new(root, "results", rows);
    snprintf(path, sizeof path, "%s/%s.json", dir, name);
    int rc = json_dump_file(root, path, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (rc < 0) {
        fprintf(stderr, "chat-bench: cannot write %s\n", path);
        return -1;
    }
    fprintf(stderr, "chat-bench: wrote %s\n", path);
    snprintf(path, sizeof path, "%s/%s.csv", dir, name);
    if (write_csv(rep, path) < 0) {
        fprintf(stderr, "chat-bench: cannot write %s\n", path);
        return -1;
    }
    fprintf(stderr, "chat-bench: wrote %s\n", path);
    if (plot && write_plot(rep, dir, name) < 0)
        return -1;
    return 0;
}

/* ---- verification ---- */

int report_verify(const char *json_path)
{
    json_error_t err;
    json_t *root = json_load_file(json_path, 0, &err);
    int bad = 0;
    if (!root) {
        fprintf(stderr, "chat-bench: verify: cannot read %s: %s\n", json_path, err.text);
        return -1;
    }
    json_t *rows = json_object_get(root, "results");
    if (!json_is_array(rows) || json_array_size(rows) == 0) {
        fprintf(stderr, "chat-bench: verify: %s has no results\n", json_path);
        json_decref(root);
        return -1;
    }
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        const char *mode = json_string_value(json_object_get(row, "mode"));
        const char *tr = json_string_value(json_object_get(row, "transport"));
        int m = -1;
        for (int k = 0; k < MODE_COUNT; k++)
            if (mode && strcmp(mode, mode_names[k]) == 0)
                m = k;
        if (m < 0) {
            fprintf(stderr, "chat-bench: verify: row %zu: unknown mode\n", i);
            bad++;
            continue;
        }
        for (size_t f = 0; f < N_FIELDS; f++) {
            json_t *v = json_object_get(row, fields[f].name);
            if (!v) {
                fprintf(stderr, "chat-bench: verify: %s %s: field %s missing\n", mode, tr, fields[f].name);
                bad++;
            } else if ((fields[f].required & (1u << m)) && json_is_null(v)) {
                fprintf(stderr, "chat-bench: verify: %s %s: field %s has no value\n", mode, tr,
                        fields[f].name);
                bad++;
            }
        }
        if (m == MODE_IDLE) {
            json_int_t open = json_integer_value(json_object_get(row, "conns_open"));
            json_int_t asked = json_integer_value(json_object_get(row, "conns_asked"));
            if (open != asked) {
                fprintf(stderr, "chat-bench: verify: %s %s: %lld of %lld connections open\n", mode, tr,
                        (long long)open, (long long)asked);
                bad++;
            }
            continue;
        }
        json_int_t sent = json_integer_value(json_object_get(row, "sent"));
        json_int_t exp = json_integer_value(json_object_get(row, "expected"));
        json_int_t got = json_integer_value(json_object_get(row, "delivered"));
        json_int_t dups = json_integer_value(json_object_get(row, "duplicates"));
        if (sent <= 0 || got != exp || dups != 0) {
            fprintf(stderr, "chat-bench: verify: %s %s: sent %lld, delivered %lld of %lld, %lld duplicates\n",
                    mode, tr, (long long)sent, (long long)got, (long long)exp, (long long)dups);
            bad++;
        }
    }
    json_decref(root);
    if (bad)
        fprintf(stderr, "chat-bench: verify: %s: %d problems\n", json_path, bad);
    else
        fprintf(stderr, "chat-bench: verify: %s: every row complete, every message delivered once\n",
                json_path);
    return bad ? -1 : 0;
}
