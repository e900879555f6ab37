/* bench.h — chat-bench: a load generator built on the client's own core and
 * transports (libclient.a), one lws context for every simulated user.
 *
 * Modules: main.c (flags, the mode table, orchestration), one file per
 * mode (mode_standard.c, mode_idle.c, mode_fanout.c, mode_sends.c,
 * mode_rooms.c, mode_login.c) on what
 * run.h shares (run.c: a run's server, context, window, waits; ramp.c:
 * opening many connections), proc.c (the chatd
 * process, network namespace, rlimits, CPU placement, /proc readings),
 * clients.c (the lws context, logins, simulated clients, sending and
 * receipt bookkeeping), wire.c + tcpinfo.c (socket-level byte counts from
 * TCP_INFO), stats.c (samples, percentiles, medians), report.c (Markdown,
 * CSV, JSON, gnuplot). */
#ifndef CHAT_BENCH_H
#define CHAT_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "core.h"

struct lws;
struct lws_context;
struct transport_ops;
struct http;
struct login;

/* ---- time (CLOCK_MONOTONIC) ---- */
int64_t mono_ns(void);
double mono_s(void);

/* ---- samples and statistics (stats.c) ---- */
struct samples {
    int64_t *v;                 /* nanoseconds */
    size_t n, cap;
};
int samples_add(struct samples *s, int64_t ns);
void samples_free(struct samples *s);
/* Sorts in place; nearest-rank percentile in ms, NaN when empty. */
void samples_sort(struct samples *s);
double samples_pct_ms(const struct samples *sorted, double p);
double samples_max_ms(const struct samples *sorted);
double samples_mean_ms(const struct samples *s);
double median_of(double *v, size_t n);    /* sorts v; NaN if n == 0 */

/* ---- socket-level byte counts (wire.c, tcpinfo.c) ---- */
struct tcp_counts {
    uint64_t bytes_in, bytes_out;   /* TCP payload: HTTP/WS incl. headers */
    uint64_t segs_in, segs_out;
};
/* 0 on success. */
int tcpinfo_read(int fd, struct tcp_counts *out);

struct wire_totals {
    uint64_t bytes_in, bytes_out, segs_in, segs_out;
    uint64_t conns;                 /* connections seen in the window */
};
void wire_init(void);
void wire_free(void);
/* Called for every callback of the client's protocols (see clients.c). */
void wire_observe(struct lws *wsi, int reason);
void wire_destroyed(struct lws *wsi);
/* Opens / closes the accounting window; totals are for the window. */
void wire_window_start(void);
void wire_window_end(struct wire_totals *out);
unsigned wire_open_connections(void);
uint64_t wire_unmeasured(void);     /* connections that closed without a reading */

/* ---- the chatd process and the machine (proc.c) ---- */
struct placement {
    char spec[32];              /* as asked: none, same, split, S:G */
    char server_cpus[64];       /* as observed with sched_getaffinity */
    char generator_cpus[64];
    int server_set[2], generator_set[2];   /* internal */
};
int placement_parse(const char *spec, struct placement *p);
int placement_apply_self(struct placement *p);
void placement_observe(struct placement *p, pid_t server);

/* Enters a fresh network namespace with lo up and a wide ephemeral port
 * range (root only); 0 on success, -1 if not possible (we stay where we are). */
int netns_enter(char *why, size_t len);
/* Raises RLIMIT_NOFILE to at least want (as far as allowed); returns the limit. */
long nofile_raise(long want);

struct server_proc {
    pid_t pid;
    int port;
    char dir[512];              /* temporary database directory */
    char log[512];
    char argv_text[1024];       /* the command line, for the report */
};
/* Starts chatd on 127.0.0.1:0 with a new database under db_parent; extra
 * are the bench's own flags, then the user's passthrough flags. */
/* db: an existing database (file or URL) instead, kept afterwards. */
int server_start(struct server_proc *sp, const char *chatd, const char *db_parent, const char *db,
                 const char *log_path, char *const *extra, int n_extra,
                 const struct placement *pl);
/* SIGTERM, wait (then SIGKILL); returns the exit status (or -1). */
int server_stop(struct server_proc *sp);

struct proc_sample {
    double cpu_s;               /* utime + stime, all threads */
    long rss_kb, hwm_kb;
};
int proc_read(pid_t pid, struct proc_sample *out);
int proc_reset_hwm(pid_t pid);
double self_cpu_s(void);
long self_rss_kb(void);
/* "lo" counters of the current network namespace. */
int netdev_lo(uint64_t *bytes, uint64_t *packets);
const char *fs_type_of(const char *path);
double fsync_probe_ms(const char *dir, int n);

/* ---- clients (clients.c) ---- */
enum role { ROLE_PEER = 0, ROLE_SENDER, ROLE_SUBSCRIBER, ROLE_IDLE };

struct buser {
    char name[40];
    char token[160];
    struct core *core;          /* login only */
    struct http *http;
    struct login *login;
    int started, done, code;
};

struct bclient {
    struct bench *b;
    int idx;
    int role;
    struct buser *user;
    struct core *core;
    struct http *http;
    const struct transport_ops *ops;
    void *t;
    int started, stopped;
    int connected;              /* reached CORE_CONNECTED at least once */
    enum core_state state;
    uint8_t *seen;              /* bitmap over global sequence numbers */
    size_t seen_bytes;
    uint64_t recv;              /* bench messages delivered */
    uint64_t sent;              /* bench messages queued by this client */
    uint64_t *ackq;             /* FIFO of sequence numbers awaiting an ack */
    size_t ack_head, ack_len, ack_cap;
    uint64_t errors;
    struct core_stats base;     /* snapshot at a window start */
    char room[64];              /* sends here and receives only this room's (rooms-fanout); "" = general */
};

#define MAX_PHASES 16
/* websocket, long-poll, short-poll, sse (run.c's all_transports) */
#define BENCH_NTRANSPORTS 4

struct bench {
    const struct bench_opts *o;
    struct lws_context *ctx;
    char host[256];
    int port;
    char prefix[256];
    int wait_s, interval_ms;

    struct buser *users;
    int n_users;

    struct bclient **clients;
    int n_clients;
    int n_receivers;            /* clients expected to receive every message */

    /* global sequence numbers, across phases */
    uint64_t next_seq;
    int64_t *sent_ns;
    uint8_t *seq_phase;
    size_t seq_cap;

    int phase;                  /* tag of messages being sent now */
    int record_phase;           /* deliveries of this phase are sampled */
    uint64_t ph_sent[MAX_PHASES], ph_deliv[MAX_PHASES], ph_dups[MAX_PHASES];
    int64_t ph_first_send[MAX_PHASES], ph_last_deliv[MAX_PHASES];
    uint64_t foreign;           /* events that are not bench messages of ours */
    uint64_t leaks;             /* bench messages of a room the client is not in */
    uint64_t acks;
    struct samples lat;         /* send -> receipt, record_phase only */
    struct samples ack_lat;     /* send -> ack */
    uint64_t errors;
    char first_error[256];

    /* sends mode: refill each sender's window on every ack until then */
    int64_t refill_until_ns;
    int refill_window;
    int64_t last_ack_ns;

    /* probe (capacity modes): GET /api/v1/events?wait=0 round trips */
    struct samples probe_lat;
    uint64_t probe_fail, probe_skipped;

    char body_pad[4097];
    int verbose;
};

/* The generator's event loop: libuv (epoll) or lws' own poll() (bench_opts.loop_uv). */
int bench_loop_is_uv(const struct bench_opts *o);
int bench_ctx_create(struct bench *b, long max_conns);
void bench_ctx_destroy(struct bench *b);
/* Services the loop until done(b) or timeout; returns 1 if done. */
int bench_run_until(struct bench *b, int (*done)(struct bench *b), double timeout_s);
void bench_sleep(struct bench *b, double s);

/* Registers and logs in n users named <tag>u<i>; 0 when all have tokens. */
int bench_login(struct bench *b, int n, const char *tag, int register_first);
void bench_users_free(struct bench *b);
/* POSTs one message and returns its id (every later event has a higher one). */
int64_t bench_sync_id(struct bench *b);

struct bclient *bench_client_new(struct bench *b, struct buser *u, const struct transport_ops *ops,
                                 int role, int64_t start_after);
int bench_client_start(struct bclient *c);
/* Stops (WebSocket close) and frees every client. */
void bench_clients_free(struct bench *b);
/* Queues one bench message from c; returns its sequence number. */
uint64_t bench_send(struct bench *b, struct bclient *c);
void bench_phase_begin(struct bench *b, int phase, int record);
void bench_stats_snapshot(struct bench *b);
/* Sums of core counters since the snapshot over all clients (or one role, -1: all). */
void bench_stats_delta(struct bench *b, int role, struct core_stats *sum);
uint64_t bench_core_dropped(struct bench *b);

/* Sends total messages from senders (round robin) at rate per second. */
void bench_rate_start(struct bench *b, struct bclient **senders, int n, double rate, uint64_t total);
int bench_rate_done(struct bench *b);
void bench_rate_stop(struct bench *b);
/* HTTP probe round trips every 1/hz s with token, until bench_probe_stop. */
int bench_probe_start(struct bench *b, const char *token, int64_t after, double hz);
void bench_probe_stop(struct bench *b);

/* Raw exact response header size of GET /api/v1/events (blocking socket). */
int bench_probe_headers(struct bench *b, const char *token, int64_t after, int wait_s,
                        int *req_bytes, int *resp_header_bytes, int *resp_body_bytes,
                        char *head, size_t head_len);

/* ---- results (report.c) ---- */
enum mode { MODE_STANDARD = 0, MODE_IDLE, MODE_FANOUT, MODE_SENDS, MODE_ROOMS, MODE_LOGIN, MODE_COUNT };

struct result {
    int mode;
    char transport[16];
    char placement[32];
    char server_cpus[64], generator_cpus[64];
    char generator_loop[8];     /* "poll" (lws' own) or "uv" (libuv, epoll) */
    int run;                    /* 1..runs, 0 for a median row */
    int runs;
    /* scenario */
    int users, clients, receivers;
    double rate, duration_s, idle_s;
    int interval_ms, wait_s, body_bytes;
    /* correctness */
    uint64_t sent, expected, delivered, duplicates, core_dropped, errors;
    double delivered_ratio;
    /* latency, ms */
    double p50, p90, p99, max, mean;
    /* requests and bytes */
    uint64_t requests;
    double req_per_delivery, events_per_poll;
    double idle_req_per_s;          /* per client */
    double idle_bytes_per_s;        /* per client, wire */
    uint64_t core_bytes_in, core_bytes_out, wire_bytes_in, wire_bytes_out;
    double core_bytes_per_delivery, wire_bytes_per_delivery, core_vs_wire;
    double segs_per_delivery;
    uint64_t wire_unmeasured;
    double lo_bytes_per_delivery;   /* /proc/net/dev, own namespace only; NaN otherwise */
    int resp_header_bytes, req_header_bytes;
    /* costs */
    double server_cpu_s, server_cpu_us_per_delivery, generator_cpu_s;
    long server_rss_start_kb, server_peak_rss_kb;
    /* capacity */
    int conns_asked, conns_open;
    int rooms;                      /* fan-out: 1; rooms-fanout: the rooms */
    long server_rss_before_kb, server_rss_after_kb;
    double server_kb_per_conn, generator_kb_per_conn;
    double probe_p50, probe_p99, probe_max;
    double probe0_p50, probe0_p99;  /* the probe alone, before the connections */
    uint64_t probe_n, probe_fail;
    char probe_sched[16];           /* the probe process' scheduling: SCHED_FIFO, nice -10, normal */
    double deliveries_per_s, offered_per_s, acks_per_s;
    double ack_p50, ack_p99;
    double window_s;
    double fsync_ms;                /* median append + fdatasync where the database is */
};

struct report {
    struct result *r;
    size_t n, cap;
    /* per transport, pooled latency samples for the plot (standard mode) */
    struct samples lat[BENCH_NTRANSPORTS];
    char chatd_flags[1024];
    char netns[160];
    char db_fs[32];
    long nofile;
    char latency_clock[128];
};

struct result *report_add(struct report *rep);
void report_free(struct report *rep);
/* Median rows per (mode, transport, placement) when runs > 1. */
void report_aggregate(struct report *rep);
void report_markdown(const struct report *rep, FILE *out);
int report_write_files(const struct report *rep, const char *dir, const char *name, int plot);
/* Reloads a JSON results file and checks every row has every field and
 * is correct (delivered == sent, no duplicates); prints what is wrong. */
int report_verify(const char *json_path);

/* ---- options (main.c) ---- */
struct bench_opts {
    const char *server_url;
    const char *chatd;
    char **chatd_args;
    int n_chatd_args;
    const char *transports[BENCH_NTRANSPORTS];
    int n_transports;
    int mode;
    int users;
    double rate, duration_s, warmup_s, idle_s, drain_s;
    int interval_ms, wait_s, body_bytes;
    const char *cpus;
    const char *out_dir;
    const char *name;
    const char *db_dir;
    int runs;
    int conns;                  /* idle-connections / fanout subscribers */
    int logins;                 /* distinct users for capacity modes */
    int window;                 /* sends mode: unacked messages per sender */
    double probe_hz, probe_s;
    double settle_s;            /* idle mode: wait after opening, before measuring */
    int netns;                  /* -1 auto, 0 off, 1 required */
    int loop_uv;                /* generator's loop: -1 auto, 0 lws' poll(), 1 libuv (epoll) */
    int assert_ok;
    int plot;
    int verbose;
    long server_pid;            /* with --server: to read its /proc */
    int probe_child;            /* internal: be the probe process */
    const char *db;             /* chatd's database (a file or a URL) instead of a fresh one */
    const char *login_user;     /* --login: the seeded user (default seedu0) */
    int rooms, members;         /* --rooms-fanout: rooms of members online each */
    int room_joins;             /* --rooms-fanout: a second user per room joins it */
    int64_t probe_after;
};

#endif
