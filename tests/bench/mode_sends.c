/* mode_sends.c — chat-bench --sends: senders keeping --window messages
 * unacknowledged; persisted (acknowledged, then delivered) sends per second. */
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

/* ---- persisted sends ---- */

int run_sends(struct env *e, const char *tname, int run_no)
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

