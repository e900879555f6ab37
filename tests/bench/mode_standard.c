/* mode_standard.c — chat-bench's standard mode: N users on one transport,
 * every user sends at its share of --rate for --duration and receives every
 * message; latency, requests, bytes, server CPU and RSS. */
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

/* ---- standard ---- */

int run_standard(struct env *e, const char *tname, int run_no)
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
    if (strcmp(tname, "websocket") != 0 && strcmp(tname, "sse") != 0) {   /* polls */
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

