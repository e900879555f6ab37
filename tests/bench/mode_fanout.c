/* mode_fanout.c — chat-bench --fanout N: N subscribers of one room, one
 * sender at --rate; deliveries per second. */
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

/* ---- fan-out ---- */

int run_fanout(struct env *e, const char *tname, int run_no)
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
    res->rooms = 1;
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

