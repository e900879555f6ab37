/* main.c — chat-bench: flags, the mode table and the runs of the chosen
 * mode (each mode is a file: mode_standard.c, mode_idle.c, mode_fanout.c,
 * mode_sends.c, mode_rooms.c, mode_login.c; what they share is run.h). The
 * modes:
 *
 *   standard  N users on one transport (or each in turn), every user sends
 *             at its share of --rate for --duration; every user receives
 *             every message. Latency, requests, bytes, server CPU and RSS.
 *   --idle-connections N   N idle WebSockets or parked long polls; server
 *             memory per connection and a probe's round trips meanwhile.
 *   --fanout N             N subscribers, one sender at --rate: deliveries/s.
 *   --sends                senders keeping --window messages unacknowledged:
 *             persisted (acknowledged, then delivered) sends per second.
 *   --rooms-fanout R       R rooms of --members connections, a sender each
 *             (v1.1), after one room of all of them: deliveries/s, CPU each.
 *   --login N              N fresh logins per transport as a v1.1 client
 *             starts, on a seeded database (--db): time and bytes.
 *
 * By default it starts bin/chatd itself (fresh database per run, in a
 * private network namespace when root), with limits raised for a load test;
 * --server URL targets a running server instead. */
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


static void usage(FILE *out)
{
    fprintf(out,
"usage: chat-bench [flags] [-- chatd flags]\n"
"scenario (default: standard)\n"
"  --transport T         websocket, long-poll, short-poll, sse or all (default all)\n"
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
"  --rooms-fanout R      R rooms of --members WebSocket connections each, one of each\n"
"                        sending at --rate (per room); first, on the same server and\n"
"                        connections, one sender to general (all of them) at --rate:\n"
"                        the one-room fan-out at the same offered deliveries/s\n"
"  --members M           connections per room (default 100)\n"
"  --room-joins          a second user per room joins it (POST /rooms/NAME/join)\n"
"                        and holds half its connections (default: one user per room)\n"
"  --login N             N fresh logins per transport as a v1.1 client starts (after=latest,\n"
"                        rooms, newest 100 of each joined room): time and bytes; use\n"
"                        with --db on a database made by tests/bench/seed-events.sh\n"
"  --login-user NAME     the seeded user who logs in (default seedu0)\n"
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
"  --db FILE|URL         start chatd on this database (kept) instead of a fresh one\n"
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

/* ---- main ---- */

enum {
    O_TRANSPORT = 256, O_USERS, O_RATE, O_DURATION, O_WARMUP, O_IDLE, O_DRAIN, O_INTERVAL,
    O_WAIT, O_BODY, O_RUNS, O_IDLECONN, O_FANOUT, O_SENDS, O_LOGINS, O_WINDOW, O_PROBEHZ,
    O_PROBES, O_SETTLE, O_CPUS, O_NETNS, O_SERVER, O_SERVERPID, O_CHATD, O_DBDIR, O_OUT, O_NAME,
    O_NOPLOT, O_ASSERT, O_SMOKE, O_VERIFY, O_VERBOSE, O_HELP, O_PROBECHILD, O_PROBEAFTER,
    O_LOOP, O_LOGIN, O_LOGINUSER, O_DB, O_ROOMSFAN, O_MEMBERS, O_ROOMJOINS,
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
        { "probe-after", 1, 0, O_PROBEAFTER }, { "loop", 1, 0, O_LOOP },
        { "login", 1, 0, O_LOGIN }, { "login-user", 1, 0, O_LOGINUSER }, { "db", 1, 0, O_DB },
        { "rooms-fanout", 1, 0, O_ROOMSFAN }, { "members", 1, 0, O_MEMBERS },
        { "room-joins", 0, 0, O_ROOMJOINS }, { 0, 0, 0, 0 },
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
        case O_LOGIN: bad = parse_num(optarg, 1, 10000, &v); o->conns = (int)v; o->mode = MODE_LOGIN; break;
        case O_LOGINUSER: o->login_user = optarg; break;
        case O_DB: o->db = optarg; break;
        case O_ROOMSFAN: bad = parse_num(optarg, 1, 10000, &v); o->rooms = (int)v; o->mode = MODE_ROOMS; break;
        case O_MEMBERS: bad = parse_num(optarg, 2, 100000, &v); o->members = (int)v; break;
        case O_ROOMJOINS: o->room_joins = 1; break;
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
        o->n_transports = BENCH_NTRANSPORTS;
        for (int i = 0; i < BENCH_NTRANSPORTS; i++)
            o->transports[i] = all_transports[i];
    } else if (transport_find(transport)) {
        o->n_transports = 1;
        o->transports[0] = transport;
    } else {
        fprintf(stderr, "chat-bench: unknown transport %s\n", transport);
        return -1;
    }
    if (o->mode == MODE_ROOMS)
        o->conns = o->rooms * o->members;
    if (o->mode == MODE_IDLE || o->mode == MODE_FANOUT || o->mode == MODE_ROOMS) {
        if (o->n_transports == BENCH_NTRANSPORTS) {
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

/* The modes, by enum mode: the results file's default name and the run. */
static const struct {
    const char *name;
    int (*run)(struct env *e, const char *tname, int run_no);
} modes[] = {
    [MODE_STANDARD] = { "standard", run_standard },
    [MODE_IDLE] = { "idle", run_idle },
    [MODE_FANOUT] = { "fanout", run_fanout },
    [MODE_SENDS] = { "sends", run_sends },
    [MODE_ROOMS] = { "rooms-fanout", run_rooms },
    [MODE_LOGIN] = { "login", run_login },
};

int main(int argc, char **argv)
{
    struct bench_opts o = {
        .users = 10, .rate = 1000, .duration_s = 10, .warmup_s = 1, .idle_s = 5,
        .interval_ms = 1000, .wait_s = 25, .body_bytes = 32, .cpus = "none",
        .out_dir = "build/bench", .runs = 1, .logins = 8, .window = 64, .probe_hz = 50,
        .probe_s = 10, .settle_s = 2, .netns = -1, .loop_uv = -1, .plot = 1, .mode = MODE_STANDARD,
        .members = 100,
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
    if (o.db && strstr(o.db, "://") && o.netns < 0)
        o.netns = 0;            /* a database server is reached on the host's network */
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
    int many = o.mode == MODE_IDLE || o.mode == MODE_FANOUT || o.mode == MODE_ROOMS;
    long want = (many ? o.conns : o.users) + 16384L;
    rep.nofile = nofile_raise(want);
    if (rep.nofile < want)
        fprintf(stderr, "chat-bench: open-file limit %ld is below the %ld wanted\n", rep.nofile, want);
    if (many && o.conns > rep.nofile - 1000) {
        /* chatd is one process: it cannot hold more sockets than this */
        int cap = (int)(rep.nofile - 1000);
        fprintf(stderr, "chat-bench: the open-file limit (%ld, and we may not raise it) allows about "
                        "%d connections per process: measuring %d instead of %d\n",
                rep.nofile, cap, cap, o.conns);
        o.conns = cap;
    }
    if (placement_apply_self(&e.pl) < 0)
        fprintf(stderr, "chat-bench: cannot pin the generator: %s\n", strerror(errno));

    if (o.mode == MODE_LOGIN)        /* every transport in one run; its own table */
        return run_login(&e, NULL, 1) < 0 ? 1 : 0;
    int failures = 0;
    for (int run = 1; run <= o.runs; run++)
        for (int t = 0; t < o.n_transports; t++)
            failures += modes[o.mode].run(&e, o.transports[t], run) < 0;
    report_aggregate(&rep);
    report_markdown(&rep, stdout);
    const char *name = o.name ? o.name : modes[o.mode].name;
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

