/* ramp.c — opening thousands of connections for the capacity modes
 * (idle, fan-out) without tripping the server's hello time-out: at most
 * 200 handshakes in flight, then wait until the count stops moving. */
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
int open_many(struct env *e, struct bench *b, const struct transport_ops *ops, int n,
                     int role, int64_t sync, int *opened)
{
    int k = b->n_users - 1;
    int first = b->n_clients;
    for (int i = 0; i < n; i++)
        if (!bench_client_new(b, &b->users[1 + i % k], ops, role, sync)) {
            fprintf(stderr, "chat-bench: cannot create client %d\n", i);
            return -1;
        }
    return ramp_open(e, b, ops, first, n, opened);
}

/* Starts the n clients from b->clients[first], 200 handshakes at a time. */
int ramp_open(struct env *e, struct bench *b, const struct transport_ops *ops, int first, int n,
              int *opened)
{
    ramp.first = first;
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

