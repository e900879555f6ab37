/* mode_idle.c — chat-bench --idle-connections N: N idle WebSockets or
 * parked long polls; server memory per connection and the round trips of a
 * probe (a process of its own) meanwhile. */
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

int probe_child_main(const struct bench_opts *o)
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

int run_idle(struct env *e, const char *tname, int run_no)
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

