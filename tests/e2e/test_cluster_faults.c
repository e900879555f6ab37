/* test_cluster_faults.c — two chatd instances on one PostgreSQL behind
 * HAProxy (deploy/haproxy.cfg.in) while the database misbehaves (issue 15):
 *
 *   - PostgreSQL stopped (pg_ctl stop -m fast) for 10 s, then started;
 *   - PostgreSQL frozen (SIGSTOP of the postmaster and every backend) for
 *     10 s, then SIGCONT;
 *   - one instance's network to PostgreSQL cut for 10 s (it reaches the
 *     database through a relay, tests/e2e/relay.c) while the other serves:
 *     the balancer drains the cut one;
 *   - the events table locked against appends by another session for 10 s
 *     (what the event counter's row lock was before ids came from a
 *     sequence, db/pg/006_event_ids.sql);
 *   - PostgreSQL frozen and, meanwhile, the instance holding the clients'
 *     WebSockets SIGKILLed with its writes queued.
 *
 * Throughout, three headless clients (short poll, long poll, WebSocket)
 * connected through the balancer type a chat line every 100 ms and a
 * transfer every 500 ms. During the stall, every 200 ms: a WebSocket ping
 * straight to each instance (the healthy one in the cut case) must come
 * back within 100 ms, and /healthz must answer within 100 ms and, from
 * 3 s into the stall on, say "degraded" with a reason (the cut instance
 * only, in the cut case). The balancer must follow the health policy: with
 * the database down for everyone, no WebSocket through it is cut; with one
 * instance cut off, new requests go to the other. Afterwards: every typed
 * line is stored exactly once, in order, every acknowledgement names the
 * stored event, every client shows exactly its feed, every acknowledged
 * transfer exists, none is left unfinished, each has the ledger rows its
 * outcome says, and money is conserved (users x opening balance).
 *
 * What the stall breaks is listed as MISMATCH lines and the test fails at
 * its end, after the data checks ran too, so one run says everything.
 * Needs CHAT_TEST_PG and CHAT_TEST_PG_DIR (scripts/with-pg.sh; `make
 * test-cluster`); skipped without them (failed with CHAT_TEST_PG_REQUIRED).
 * Whatever happens, teardown thaws and restarts PostgreSQL and kills
 * every process the test started. FAULTS_ONLY=PATTERN picks tests. */
#include "scenario.h"
#include "relay.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STALL_MS 10000
#define TICK_MS 100               /* each client types a line every tick */
#define XFER_TICKS 5              /* and a transfer every 5th tick */
#define PROBE_MS 200
#define QUICK_MS 100              /* "answers at once" */
#define PONG_WAIT_MS 500          /* a pong later than this counts as this */
#define DEGRADED_BY_MS 3000       /* /healthz says degraded from then on */
#define CONVERGE_MS 25000         /* clients back off up to 8 s */
#define NC 3

static const char *const transports[NC] = { "short-poll", "long-poll", "websocket" };
static const char *const users[NC] = { "sp", "lp", "ws" };
static const char *const extra_flags[] = { "--login-rate", "1000", "--trusted-proxy", "127.0.0.1",
                                           "--max-connections-per-ip", "100000", "--msg-rate", "1000",
                                           "--transfer-delay-ms", "100", NULL };

/* ---- what teardown must undo, whatever happened ---- */
static pid_t frozen[512];
static int nfrozen, pg_is_down;
static struct relay *g_relay;

static const char *pg_dir(void)
{
    const char *d = getenv("CHAT_TEST_PG_DIR");
    return d && *d ? d : NULL;
}

/* Runs scripts/pg-temp.sh CMD DIR; asserts it worked. */
static void pg_temp(const char *cmd)
{
    char *argv[] = { "scripts/pg-temp.sh", (char *)cmd, (char *)pg_dir(), NULL };
    char *err = NULL;
    int rc = h_tool_run(argv, NULL, &err, 60000);
    if (rc != 0)
        fprintf(stderr, "pg-temp.sh %s: %s\n", cmd, err);
    free(err);
    CHECK(rc == 0, "pg-temp.sh %s %s failed (exit %d, its stderr above)", cmd, pg_dir(), rc);
}

static void pg_down(void)
{
    pg_is_down = 1;
    pg_temp("down");
}

static void pg_up(void)
{
    pg_temp("up");
    pg_is_down = 0;
}

/* Parent pid of pid from /proc/PID/stat, -1 if gone. */
static pid_t ppid_of(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    int ppid = -1;
    if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1)
        return -1;
    return ppid;
}

/* SIGSTOP to the postmaster (so it forks no new backend) and to every
 * process it started: backends, checkpointer, WAL writer... */
static void pg_freeze(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/data/postmaster.pid", pg_dir());
    FILE *f = fopen(path, "r");
    int pm = 0;
    CHECK(f && fscanf(f, "%d", &pm) == 1 && pm > 0, "cannot read the postmaster's pid from %s", path);
    fclose(f);
    CHECK(kill(pm, SIGSTOP) == 0, "SIGSTOP postmaster %d failed", pm);
    frozen[nfrozen++] = pm;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d)) && nfrozen < (int)(sizeof frozen / sizeof frozen[0])) {
        pid_t pid = (pid_t)atoi(e->d_name);
        if (pid > 0 && ppid_of(pid) == pm && kill(pid, SIGSTOP) == 0)
            frozen[nfrozen++] = pid;
    }
    if (d)
        closedir(d);
    fprintf(stderr, "    froze the postmaster %d and %d of its processes\n", pm, nfrozen - 1);
}

static void pg_thaw(void)
{
    for (int i = nfrozen - 1; i >= 0; i--)
        kill(frozen[i], SIGCONT);
    nfrozen = 0;
}

/* Killed (Ctrl-C, a CI time-out): PostgreSQL must not stay frozen, or
 * with-pg.sh could not stop it; then what the harness's own handler does
 * (this one replaces it). */
static void thaw_on_signal(int sig)
{
    for (int i = nfrozen - 1; i >= 0; i--)
        kill(frozen[i], SIGCONT);
    harness_cleanup();
    signal(sig, SIG_DFL);
    raise(sig);
}

static int setup(void **state)
{
    (void)state;
    harness_init();
    took_start();
    static int once;
    if (!once++) {
        atexit(pg_thaw);
        signal(SIGINT, thaw_on_signal);
        signal(SIGTERM, thaw_on_signal);
        signal(SIGHUP, thaw_on_signal);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pg_thaw();
    if (pg_is_down && pg_dir())
        pg_up();                  /* before cleanup, which drops the databases */
    relay_stop(g_relay);
    g_relay = NULL;
    if (getenv("CLUSTER_DUMP"))
        h_dump_logs();
    harness_cleanup();
    return 0;
}

static void need_pg(void)
{
    h_need_pg("a database fault under a cluster");
    if (pg_dir())
        return;
    if (getenv("CHAT_TEST_PG_REQUIRED"))
        fail_msg("CHAT_TEST_PG_DIR is not set: run under scripts/with-pg.sh");
    fprintf(stderr, "    CHAT_TEST_PG_DIR is not set, so skipped: the fault tests stop and start PostgreSQL\n");
    skip();
}

/* A mismatch found during the stall: listed now, failed at the end. */
#define MISS(...)                                                             \
    do {                                                                      \
        fprintf(stderr, "MISMATCH: " __VA_ARGS__);                            \
        fputc('\n', stderr);                                                  \
        scenario_mismatches++;                                                \
    } while (0)

/* ---- psql ---- */

/* Runs one SQL text with psql -At on url; its stdout (free()). */
static char *psql(const char *url, const char *sql)
{
    char *argv[] = { "psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", (char *)url, "-c", (char *)sql,
                     NULL };
    char *out = NULL, *err = NULL;
    int rc = h_tool_run(argv, &out, &err, 20000);
    if (rc != 0)
        fprintf(stderr, "psql: %s\n", err);
    free(err);
    CHECK(rc == 0, "psql \"%s\" failed (exit %d, its stderr above)", sql, rc);
    return out;
}

static long long psql_int(const char *url, const char *sql)
{
    char *out = psql(url, sql);
    long long v = atoll(out);
    free(out);
    return v;
}

/* ---- the run: a cluster, its users, clients and probes ---- */

struct probe {
    int inst;                     /* instance index */
    struct h_ws *w;
    int seq, pings;
    int64_t max_ping, max_healthz;
    int healthz, bad_status, degraded, ok_late;
    char reason[160], last_store[16];
};

struct run {
    struct h_cluster c;
    char tok[NC + 1][65];         /* the clients' users, then "probe" */
    struct sender ss[NC];
    int xfers_typed[NC];
    int tick;
    struct probe pr[2];
    int npr;
    int64_t stall_t0;             /* 0: not in a stall */
    size_t err_mark[NC];          /* clients' stderr at the stall's start */
    int gone[NC];                 /* client i exited (said once) */
    int killed;                   /* an instance was killed: a transfer typed
                                     while its client reconnected is refused */
};

static void register_login(int port, const char *user, char *token)
{
    CHECK(h_http_register(port, user, PW) == 201, "register %s: expected 201", user);
    CHECK(h_http_login(port, user, PW, token) == 200, "login %s: expected 200", user);
}

/* Users and clients on an already started cluster; every client shows the
 * first message before it returns. */
static void run_clients(struct run *r)
{
    for (int i = 0; i < NC; i++)
        register_login(r->c.front.port, users[i], r->tok[i]);
    register_login(r->c.front.port, "probe", r->tok[NC]);
    for (int i = 0; i < NC; i++) {
        r->ss[i].user = users[i];
        snprintf(r->ss[i].tag, sizeof r->ss[i].tag, "%s over %s", users[i], transports[i]);
        r->ss[i].c = h_client_spawn(&r->c.front, transports[i], users[i], PW, NULL);
    }
    CHECK(h_http_post_message(r->c.front.port, r->tok[NC], NULL, "start", NULL, NULL) == 201, "post start");
    int64_t dl = h_deadline(10000);
    for (int i = 0; i < NC; i++)
        CHECK(h_client_wait_events(r->ss[i].c, 1, dl) >= 1, "%s did not show the first message within 10 s",
              r->ss[i].c->name);
}

static void run_start(struct run *r, const char *const *dbpath)
{
    memset(r, 0, sizeof *r);
    h_cluster_start_dbs(&r->c, 2, extra_flags, dbpath);
    run_clients(r);
}

/* Probes on the given instances: a WebSocket each, straight to it. */
static void probes_open(struct run *r, const int *inst, int n)
{
    r->npr = n;
    for (int i = 0; i < n; i++) {
        struct probe *p = &r->pr[i];
        memset(p, 0, sizeof *p);
        p->inst = inst[i];
        p->w = h_ws_connect(r->c.inst[inst[i]].port);
        json_decref(h_ws_hello(p->w, r->tok[NC], 0));
        p->w->keep_pongs = 1;
    }
}

static void probes_close(struct run *r)
{
    for (int i = 0; i < r->npr; i++)
        h_ws_free(r->pr[i].w);
    r->npr = 0;
}

/* One ping: its round trip in ms, PONG_WAIT_MS if none came by then. */
static int64_t ping_once(struct probe *p)
{
    char payload[16];
    int n = snprintf(payload, sizeof payload, "p%d", ++p->seq);
    int64_t t0 = h_now_ms(), dl = t0 + PONG_WAIT_MS;
    if (h_ws_send_frame(p->w, WS_PING, 1, payload, (size_t)n) < 0)
        return PONG_WAIT_MS;
    for (;;) {
        int op, fin, got;
        char *pl = NULL;
        size_t len = 0;
        got = h_ws_recv_frame(p->w, dl, &op, &fin, &pl, &len);
        int mine = got == 1 && op == WS_PONG && len == (size_t)n && memcmp(pl, payload, len) == 0;
        free(pl);
        if (mine)
            return h_now_ms() - t0;
        if (got != 1)
            return PONG_WAIT_MS;
    }
}

/* One /healthz straight to the probe's instance: time, status, store. */
static void healthz_once(struct run *r, struct probe *p)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    struct h_http_resp resp;
    int64_t t0 = h_now_ms();
    h_http_request(r->c.inst[p->inst].port, req, sizeof req - 1, &resp, PONG_WAIT_MS);
    int64_t ms = h_now_ms() - t0;
    int64_t into = h_now_ms() - r->stall_t0;
    p->healthz++;
    if (ms > p->max_healthz)
        p->max_healthz = ms;
    const char *store = ev_str(resp.json, "store"), *why = ev_str(resp.json, "reason");
    if (resp.status != 200)
        p->bad_status++;
    snprintf(p->last_store, sizeof p->last_store, "%s", resp.status ? store : "(none)");
    if (strcmp(store, "degraded") == 0 && *why) {
        p->degraded++;
        snprintf(p->reason, sizeof p->reason, "%s", why);
    } else if (into >= DEGRADED_BY_MS) {
        p->ok_late++;
    }
    h_http_resp_free(&resp);
}

static void probe_all(struct run *r)
{
    for (int i = 0; i < r->npr; i++) {
        struct probe *p = &r->pr[i];
        if (!r->c.inst[p->inst].proc)
            continue;              /* killed by the test */
        int64_t rtt = ping_once(p);
        p->pings++;
        if (rtt > p->max_ping)
            p->max_ping = rtt;
        healthz_once(r, p);
    }
}

/* A client that exited (it gave up: a 401, its retries spent) is said so
 * once, with its last stderr line, and is typed to no more. */
static int client_gone(struct run *r, int i)
{
    struct h_proc *c = r->ss[i].c;
    if (!c->exited)
        return 0;
    if (!r->gone[i]++) {
        const char *e = c->err.data ? c->err.data : "", *start = e, *p;
        for (const char *q = e; (p = strstr(q, "{\"error\"")); q = p + 1)
            start = p;                      /* the last error line, if any */
        const char *last = strchr(start, '\n') ? strchr(start, '\n') : start + strlen(start);
        MISS("%s (%s) exited %lld ms into the stall; its last line: %.*s", users[i], transports[i],
             r->stall_t0 ? (long long)(h_now_ms() - r->stall_t0) : -1LL, (int)(last - start), start);
    }
    return 1;
}

/* Every client types its next line; every XFER_TICKS-th tick one of them
 * types a transfer of 1.00 to the next user. */
static void type_tick(struct run *r)
{
    for (int i = 0; i < NC; i++)
        if (!client_gone(r, i))
            send_next(&r->ss[i]);
    if (r->tick % XFER_TICKS == 0 && !client_gone(r, (r->tick / XFER_TICKS) % NC)) {
        int i = (r->tick / XFER_TICKS) % NC;
        char line[64];
        snprintf(line, sizeof line, "/transfer %s 1.00", users[(i + 1) % NC]);
        h_client_send_line(r->ss[i].c, line);
        r->xfers_typed[i]++;
    }
    r->tick++;
}

/* Types (and probes, while a stall is on) for ms; hook(r) runs once at
 * hook_at_ms into it (hook NULL: none). */
static void drive(struct run *r, int ms, void (*hook)(struct run *r), int hook_at_ms)
{
    int64_t t0 = h_now_ms(), end = t0 + ms, next_tick = t0, next_probe = t0;
    while (h_now_ms() < end) {
        int64_t now = h_now_ms();
        if (now >= next_tick) {
            type_tick(r);
            next_tick += TICK_MS;
        }
        if (r->stall_t0 && now >= next_probe) {
            probe_all(r);
            next_probe = h_now_ms() + PROBE_MS;
        }
        if (hook && now - t0 >= hook_at_ms) {
            hook(r);
            hook = NULL;
        }
        int64_t wake = next_tick < end ? next_tick : end;
        if (r->stall_t0 && next_probe < wake)
            wake = next_probe;
        pump_upto(wake);
    }
}

static void stall_begin(struct run *r)
{
    r->stall_t0 = h_now_ms();
    for (int i = 0; i < NC; i++)
        r->err_mark[i] = r->ss[i].c->err.len;
}

/* The stall's measurements, as mismatches. must_degrade: the probe's
 * instance is one that cannot reach the database. */
static void stall_report(struct run *r, const char *what)
{
    for (int i = 0; i < r->npr; i++) {
        struct probe *p = &r->pr[i];
        int must_degrade = strcmp(what, "cut") != 0 || p->inst == 1;
        fprintf(stderr, "    %s: instance %d: %d pings, slowest %lld ms; %d /healthz, slowest %lld ms, "
                "%d not 200, %d degraded (%s)\n", what, p->inst, p->pings, (long long)p->max_ping, p->healthz,
                (long long)p->max_healthz, p->bad_status, p->degraded, p->reason[0] ? p->reason : "no reason");
        int pinged = strcmp(what, "cut") != 0 || p->inst == 0;
        if (pinged && p->max_ping >= QUICK_MS)
            MISS("%s: ping round trip %lld ms > %d ms to instance %d during the stall%s", what,
                 (long long)p->max_ping, QUICK_MS, p->inst, p->max_ping >= PONG_WAIT_MS ? " (no pong at all)" : "");
        if (p->max_healthz >= QUICK_MS)
            MISS("%s: /healthz of instance %d took %lld ms (> %d ms) during the stall", what, p->inst,
                 (long long)p->max_healthz, QUICK_MS);
        if (p->bad_status)
            MISS("%s: /healthz of instance %d answered other than 200 (or not at all) %d times of %d", what,
                 p->inst, p->bad_status, p->healthz);
        if (must_degrade && (!p->degraded || p->ok_late))
            MISS("%s: /healthz of instance %d said degraded with a reason %d times of %d; %d answers after "
                 "%d ms did not (last store \"%s\")", what, p->inst, p->degraded, p->healthz, p->ok_late,
                 DEGRADED_BY_MS, p->last_store);
        if (!must_degrade && p->degraded)
            MISS("%s: /healthz of instance %d (which reaches the database) said degraded %d times: %s", what,
                 p->inst, p->degraded, p->reason);
    }
    r->stall_t0 = 0;
}

/* Database down for everyone: no WebSocket through the balancer may be
 * cut during the stall (the health policy keeps them). */
static void check_no_ws_cut(struct run *r, const char *what)
{
    int ws = 2;
    if (err_has_from(r->ss[ws].c, r->err_mark[ws], "\"reconnecting\""))
        MISS("%s: the WebSocket client through the balancer was cut during the stall (it reconnected): the "
             "balancer drained every instance at once", what);
}

/* ---- afterwards: the data ---- */

/* {"notice":...,"data":{"transfer":{"transfer_id":N,...}}} lines of c. */
struct xfer_ids {
    long long ids[512];
    int n;
};

static int add_xfer(json_t *j, void *arg)
{
    struct xfer_ids *x = arg;
    json_t *t = json_object_get(json_object_get(j, "data"), "transfer");
    if (json_is_integer(json_object_get(t, "transfer_id")) && x->n < 512)
        x->ids[x->n++] = json_integer_value(json_object_get(t, "transfer_id"));
    return 0;
}


/* Every acknowledgement of c names the stored event of its cmid, and
 * user's stored messages with a cmid are as many as the lines typed. */
static void check_acks_stored(struct run *r, int i)
{
    const char *url = r->c.inst[0].dbpath;
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT client_msg_id || ' ' || id FROM events WHERE client_msg_id IS NOT NULL AND "
             "sender_id = (SELECT id FROM users WHERE name = '%s')", users[i]);
    char *rows = psql(url, sql);
    json_t *db = json_object();
    int stored = 0;
    for (char *line = strtok(rows, "\n"); line; line = strtok(NULL, "\n")) {
        char *sp = strrchr(line, ' ');
        if (!sp)
            continue;
        *sp = '\0';
        json_object_set_new(db, line, json_integer(atoll(sp + 1)));
        stored++;
    }
    free(rows);
    json_t *acks = acks_of(r->ss[i].c);
    const char *cmid;
    json_t *id;
    json_object_foreach(acks, cmid, id) {
        json_t *have = json_object_get(db, cmid);
        CHECK(have && json_integer_value(have) == json_integer_value(id), "%s: message %s acknowledged as id %lld "
              "is %s in the database", users[i], cmid, (long long)json_integer_value(id),
              have ? "under another id" : "not");
    }
    CHECK(stored == r->ss[i].sent, "%s: %d messages with a client_msg_id in the database, %d lines typed",
          users[i], stored, r->ss[i].sent);
    json_decref(acks);
    json_decref(db);
}

/* Waits for every transfer's answer, then for none to be unfinished; then
 * checks acknowledged ones exist, the ledger, and the money. */
static void check_transfers(struct run *r)
{
    const char *url = r->c.inst[0].dbpath;
    int64_t dl = h_deadline(CONVERGE_MS);
    struct xfer_ids x[NC];
    for (int i = 0; i < NC; i++) {
        memset(&x[i], 0, sizeof x[i]);
        while (each_err_line(r->ss[i].c, 0, add_xfer, &x[i]), x[i].n < r->xfers_typed[i] && h_now_ms() < dl) {
            x[i].n = 0;
            pump_upto(h_now_ms() + 200);
        }
        if (x[i].n < r->xfers_typed[i] && r->killed)
            fprintf(stderr, "    %s: %d of %d typed transfers accepted (refused while reconnecting)\n", users[i],
                    x[i].n, r->xfers_typed[i]);
        else if (x[i].n < r->xfers_typed[i])
            MISS("%s: %d of %d typed transfers accepted (the others failed or are unanswered; see its stderr)",
                 users[i], x[i].n, r->xfers_typed[i]);
    }
    long long left;
    while ((left = psql_int(url, "SELECT count(*) FROM transfers WHERE status IN ('pending','processing')")) &&
           h_now_ms() < dl)
        pump_upto(h_now_ms() + 200);
    CHECK(left == 0, "%lld transfers still unfinished %d s after the stall", left, CONVERGE_MS / 1000);
    for (int i = 0; i < NC; i++) {
        char sql[160];
        for (int k = 0; k < x[i].n; k++) {
            snprintf(sql, sizeof sql, "SELECT count(*) FROM transfers WHERE id = %lld", x[i].ids[k]);
            CHECK(psql_int(url, sql) == 1, "%s: transfer %lld was accepted but is not in the database", users[i],
                  x[i].ids[k]);
        }
        snprintf(sql, sizeof sql, "SELECT count(*) FROM transfers t JOIN users u ON u.id = t.from_id "
                 "WHERE u.name = '%s'", users[i]);
        long long n = psql_int(url, sql);
        CHECK(n <= r->xfers_typed[i], "%s: %lld transfers in the database, %d typed: one was made twice", users[i],
              n, r->xfers_typed[i]);
    }
    long long bad = psql_int(url, "SELECT count(*) FROM (SELECT t.id FROM transfers t LEFT JOIN ledger l ON "
                             "l.transfer_id = t.id GROUP BY t.id, t.status HAVING (t.status = 'completed' AND "
                             "(count(l.id) <> 2 OR sum(l.delta_cents) <> 0)) OR (t.status <> 'completed' AND "
                             "count(l.id) <> 0)) bad");
    CHECK(bad == 0, "%lld transfers whose ledger rows do not match their outcome", bad);
    long long nusers = psql_int(url, "SELECT count(*) FROM accounts");
    long long sum = psql_int(url, "SELECT coalesce(sum(balance_cents), 0) FROM accounts");
    CHECK(sum == nusers * 100000, "money not conserved: %lld cents in %lld accounts, expected %lld", sum, nusers,
          nusers * 100000);
    CHECK(psql_int(url, "SELECT count(*) FROM accounts WHERE balance_cents <> (SELECT coalesce(sum(delta_cents), 0) "
                   "FROM ledger WHERE account_id = user_id)") == 0, "a balance differs from its ledger");
}

/* After the fault is over: every typed line acknowledged and stored once,
 * every client shows exactly its feed, the transfers and the money. */
static void check_after(struct run *r)
{
    int64_t dl = h_deadline(CONVERGE_MS);
    for (int i = 0; i < NC; i++)
        wait_acks(r->ss[i].c, (size_t)r->ss[i].sent, dl);
    for (int i = 0; i < NC; i++)
        check_acks_stored(r, i);
    check_transfers(r);
    for (int i = 0; i < NC; i++) {
        json_t *feed = feed_all(r->c.front.port, r->tok[i]);
        check_sent_once(feed, users[i], r->ss[i].tag, r->ss[i].sent);
        for (int k = 0; k < NC; k++)
            if (k != i)
                check_sent_once(feed, users[k], r->ss[k].tag, r->ss[k].sent);
        check_same_as_feed(r->ss[i].c, feed, h_deadline(CONVERGE_MS));
        json_decref(feed);
    }
    fprintf(stderr, "    %d + %d + %d lines and %d + %d + %d transfers typed, all stored once\n", r->ss[0].sent,
            r->ss[1].sent, r->ss[2].sent, r->xfers_typed[0], r->xfers_typed[1], r->xfers_typed[2]);
}

static void run_end(struct run *r)
{
    probes_close(r);
    for (int i = 0; i < NC; i++)
        h_client_quit(r->ss[i].c, h_deadline(10000));
    h_cluster_stop(&r->c);
    END_CHECKS();
}

/* ---- the scenarios ---- */

static const int both[] = { 0, 1 };

/* The database is out of reach for both instances during fault(); the
 * balancer must keep every WebSocket. */
static void all_stalled(const char *what, void (*fault)(void), void (*recover)(void))
{
    need_pg();
    static struct run r;
    run_start(&r, NULL);
    drive(&r, 1000, NULL, 0);
    probes_open(&r, both, 2);
    stall_begin(&r);
    fault();
    drive(&r, STALL_MS, NULL, 0);
    recover();
    stall_report(&r, what);
    check_no_ws_cut(&r, what);
    drive(&r, 1000, NULL, 0);
    check_after(&r);
    run_end(&r);
}

static void test_pg_stopped(void **state)
{
    (void)state;
    all_stalled("stopped", pg_down, pg_up);
    took("PostgreSQL stopped for 10 s");
}

static void test_pg_frozen(void **state)
{
    (void)state;
    all_stalled("frozen", pg_freeze, pg_thaw);
    took("PostgreSQL frozen for 10 s");
}

/* The events table locked against appends (SHARE: reads go on) by another
 * session for STALL_MS. */
static struct h_proc *g_locker;
static const char *g_lock_db;            /* the cluster's database */

static void lock_counter(void)
{
    char sql[200];
    snprintf(sql, sizeof sql, "BEGIN; LOCK TABLE events IN SHARE MODE; SELECT pg_sleep(%d); ROLLBACK;",
             STALL_MS / 1000);
    static const char *const env[] = { "PGAPPNAME=chat_fault_lock", NULL };
    char *argv[] = { "psql", "-X", "-q", "-At", "-d", (char *)g_lock_db, "-c", sql, NULL };
    g_locker = h_spawn_tool("psql-lock", argv, env);
    int64_t dl = h_deadline(5000);
    while (psql_int(g_lock_db, "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                    "'chat_fault_lock' AND wait_event = 'PgSleep'") != 1) {
        CHECK(h_now_ms() < dl && !g_locker->exited, "the lock holder did not lock the events table within 5 s");
        pump_upto(h_now_ms() + 50);
    }
}

static void unlock_counter(void)
{
    int st;
    CHECK(h_proc_wait_exit(g_locker, h_deadline(5000), &st), "the lock holder did not end after its %d s",
          STALL_MS / 1000);
    g_locker = NULL;                    /* reaped; harness_cleanup frees it */
}

static void test_counter_locked(void **state)
{
    (void)state;
    need_pg();
    static struct run r;
    run_start(&r, NULL);
    g_lock_db = r.c.inst[0].dbpath;
    drive(&r, 1000, NULL, 0);
    probes_open(&r, both, 2);
    lock_counter();
    stall_begin(&r);
    drive(&r, STALL_MS - 300, NULL, 0);    /* the holder's sleep started a little before */
    unlock_counter();
    stall_report(&r, "locked");
    check_no_ws_cut(&r, "locked");
    drive(&r, 1000, NULL, 0);
    check_after(&r);
    run_end(&r);
    took("the events table locked for 10 s");
}

/* Instance 1 (chatd2) reaches the database through a relay; the relay
 * refuses and resets everything for STALL_MS. */
static int g_pg_port;

/* Mid-stall: the balancer soft-stopped the cut instance only, and new
 * requests through it go to the other. */
static void check_drained(struct run *r)
{
    int64_t dl = h_deadline(3000);
    while ((h_haproxy_backend(&r->c.lb, 1, NULL) != 0 || h_haproxy_backend(&r->c.lb, 0, NULL) != 1) &&
           h_now_ms() < dl)
        pump_upto(h_now_ms() + 100);
    int up0 = h_haproxy_backend(&r->c.lb, 0, NULL), up1 = h_haproxy_backend(&r->c.lb, 1, NULL);
    if (up0 != 1 || up1 != 0) {
        char *st = h_haproxy_cmd(&r->c.lb, "show stat");
        fprintf(stderr, "%s\n", st ? st : "(no stats)");
        free(st);
        MISS("cut: the balancer did not drain the cut instance alone (chatd1 %s, chatd2 %s)",
             up0 == 1 ? "UP" : "not UP", up1 == 1 ? "UP" : "not UP");
        return;
    }
    int other = 0;
    for (int k = 0; k < 6; k++) {
        struct h_http_resp resp;
        h_http_call(r->c.front.port, "GET", "/healthz", NULL, NULL, 0, &resp);
        char *inst = h_http_header(&resp, "X-Chat-Instance");
        other += !inst || strcmp(inst, "chatd1") != 0;
        free(inst);
        h_http_resp_free(&resp);
    }
    if (other)
        MISS("cut: %d of 6 requests through the balancer went to the cut instance", other);
}

static void relay_cut(void)
{
    relay_set_target(g_relay, 1);
    relay_cut_all(g_relay, 1);
}

static void test_one_instance_cut(void **state)
{
    (void)state;
    need_pg();
    static struct run r;
    char db[512], via[600];
    h_pg_createdb(db, sizeof db);
    /* the database's port, and the same URL through the relay */
    const char *at = strrchr(db, '@');
    const char *colon = strchr(at ? at + 1 : db, ':');
    CHECK(colon, "no port in %s", db);
    g_pg_port = atoi(colon + 1);
    g_relay = relay_start(g_pg_port);
    const char *rest = colon + 1 + strspn(colon + 1, "0123456789");
    snprintf(via, sizeof via, "%.*s:%d%s", (int)(colon - db), db, relay_port(g_relay), rest);
    const char *dbs[2] = { db, via };
    memset(&r, 0, sizeof r);
    h_cluster_start_dbs(&r.c, 2, extra_flags, dbs);
    run_clients(&r);
    drive(&r, 1000, NULL, 0);
    probes_open(&r, both, 2);
    stall_begin(&r);
    relay_cut();
    drive(&r, STALL_MS, check_drained, 5000);
    relay_set_target(g_relay, g_pg_port);
    stall_report(&r, "cut");
    drive(&r, 1000, NULL, 0);
    check_after(&r);
    run_end(&r);
    took("one instance cut off from PostgreSQL for 10 s");
}

/* PostgreSQL frozen; 2 s in, the instance holding the WebSocket client is
 * SIGKILLed with its writes queued; 3 s later PostgreSQL is thawed. */
static int g_victim;

static void kill_victim(struct run *r)
{
    g_victim = h_cluster_busiest(&r->c);
    if (g_victim < 0)
        g_victim = 0;
    fprintf(stderr, "    killing instance %d, its writes queued\n", g_victim);
    h_cluster_kill(&r->c, g_victim);
    r->killed = 1;
}

static void test_kill_with_queued_writes(void **state)
{
    (void)state;
    need_pg();
    static struct run r;
    run_start(&r, NULL);
    drive(&r, 1000, NULL, 0);
    probes_open(&r, both, 2);
    stall_begin(&r);
    pg_freeze();
    drive(&r, 5000, kill_victim, 2000);
    pg_thaw();
    stall_report(&r, "kill");
    drive(&r, 1000, NULL, 0);
    check_after(&r);
    run_end(&r);
    took("an instance killed with its writes queued");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pg_stopped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_frozen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_instance_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counter_locked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_with_queued_writes, setup, teardown),
    };
    if (getenv("FAULTS_ONLY"))
        cmocka_set_test_filter(getenv("FAULTS_ONLY"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
