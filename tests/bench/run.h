/* run.h — what the modes of chat-bench share (run.c, ramp.c): the run
 * context (struct env), one run's server and clients (struct run), the
 * measurement window, the warm-up and the waiting conditions, and the mode
 * table's entries (one mode_*.c each). */
#ifndef CHAT_BENCH_RUN_H
#define CHAT_BENCH_RUN_H

#include "bench.h"

#include <limits.h>

#define PH_WARMUP 1
#define PH_MEASURE 2

extern const char *const all_transports[BENCH_NTRANSPORTS];
int transport_index(const char *name);
/* http://host:port[/prefix] into b->host, b->port, b->prefix; -1 if malformed. */
int parse_server_url(struct bench *b, const char *url);

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

/* Starts (or targets) the server, creates the lws context, logs users in. */
int run_open(struct env *e, struct run *r, const char *transport, long conns, int n_users, int wait_s);
int run_close(struct run *r);
void fill_common(struct env *e, struct result *res, const char *transport, int mode, int run);
void fill_latency(struct result *res, struct samples *s);
void fill_delivery(struct result *res, struct bench *b);
/* The same for another measured phase than PH_MEASURE. */
void fill_delivery_phase(struct result *res, struct bench *b, int phase);

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
void window_begin(struct run *r, struct window *w);
void window_end(struct run *r, struct window *w);
void fill_window(struct result *res, const struct window *w, uint64_t delivered, int netns);

/* ---- waiting conditions (for bench_run_until) ---- */
int all_warm(struct bench *b);
int all_delivered(struct bench *b);
int all_acked_delivered(struct bench *b);
int rate_finished(struct bench *b);
double drain_s(const struct bench_opts *o);
/* Warm-up: a few messages from everyone, until every client has them all. */
int warm_up(struct bench *b, struct bclient **senders, int n, double rate, double secs);

/* ---- ramp.c: many connections for the capacity modes ---- */
/* Creates and opens n clients of ops over the logged-in users [1..K). */
int open_many(struct env *e, struct bench *b, const struct transport_ops *ops, int n, int role, int64_t sync,
              int *opened);
/* Starts the n created clients from b->clients[first] (at most 200 handshakes in flight). */
int ramp_open(struct env *e, struct bench *b, const struct transport_ops *ops, int first, int n, int *opened);

/* ---- the modes ---- */
int run_standard(struct env *e, const char *tname, int run_no);
int run_idle(struct env *e, const char *tname, int run_no);
int run_fanout(struct env *e, const char *tname, int run_no);
int run_sends(struct env *e, const char *tname, int run_no);
int run_rooms(struct env *e, const char *tname, int run_no);
int run_login(struct env *e, const char *tname, int run_no);
/* The idle mode's probe, in a process of its own (--probe-child). */
int probe_child_main(const struct bench_opts *o);

#endif
