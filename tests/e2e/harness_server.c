/* harness_server.c — chatd under test: starting it on a free port (or on the
 * port it had, after a kill) with a database of its own, with a registered
 * and logged-in user, and stopping, killing and restarting it. */
#include "harness.h"
#include "harness_internal.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The address chatd is asked to listen on: 127.0.0.1 unless the extra
 * arguments say --host (the last one wins, as in chatd). */
static const char *server_host(const struct h_server *s)
{
    const char *host = "127.0.0.1";
    for (int i = 0; i + 1 < s->nextra; i++)
        if (strcmp(s->extra[i], "--host") == 0)
            host = s->extra[i + 1];
    return host;
}

/* The --pwhash-cost every chatd gets. Tests log in hundreds of users, on a
 * machine shared with the other test binaries: at chatd's own cost
 * (interactive, 64 MiB each) the hashes took much of the suite's CPU, and
 * more under the sanitizers. So chatd gets libsodium's least cost, unless
 * $CHAT_TEST_PWHASH_COST names another, or a test chose with
 * h_set_pwhash_cost, or its extra arguments say --pwhash-cost. */
static const char *chosen_cost;
static int cost_chosen;

void h_set_pwhash_cost(const char *cost)
{
    chosen_cost = cost;
    cost_chosen = 1;
}

void h_pwhash_cost_reset(void)
{
    chosen_cost = NULL;
    cost_chosen = 0;
}

/* The cost to pass to chatd, or NULL for no --pwhash-cost at all. */
static const char *server_pwhash_cost(const struct h_server *s)
{
    for (int i = 0; i < s->nextra; i++)
        if (strcmp(s->extra[i], "--pwhash-cost") == 0)
            return NULL;                   /* the test's own, in extra */
    if (cost_chosen)
        return chosen_cost;
    return h_bin("CHAT_TEST_PWHASH_COST", "min");
}

/* Spawns chatd on port (0: a free one) and waits for its listening line.
 * soft: if chatd exits before listening (e.g. the port is still taken),
 * forget it and return -1 instead of failing the test. */
static int server_spawn_port(struct h_server *s, int want, int soft)
{
    char *argv[32], portarg[16];
    int n = 0;
    snprintf(portarg, sizeof portarg, "%d", want);
    argv[n++] = (char *)h_bin("CHATD_BIN", "bin/chatd");
    argv[n++] = "--host";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--port";
    argv[n++] = portarg;
    argv[n++] = "--db";
    argv[n++] = s->dbpath;
    const char *cost = server_pwhash_cost(s);
    if (cost) {
        argv[n++] = "--pwhash-cost";
        argv[n++] = (char *)cost;
    }
    for (int i = 0; i < s->nextra; i++)
        argv[n++] = s->extra[i];
    argv[n] = NULL;
    s->proc = h_spawn("chatd", argv, NULL, 0);

    int64_t dl = h_deadline(10000);
    char *nl;
    while (!(nl = s->proc->out.data ? strchr(s->proc->out.data, '\n') : NULL)) {
        if (soft && s->proc->exited) {
            h_proc_wait_exit(s->proc, h_deadline(1000), NULL);   /* drains its pipes */
            if (s->proc->out.data && strchr(s->proc->out.data, '\n'))
                continue;
            h_proc_forget(s->proc);
            s->proc = NULL;
            return -1;
        }
        if (s->proc->exited || h_now_ms() >= dl) {
            int timed_out = !s->proc->exited;
            h_dump_logs();
            fail_msg("chatd did not print its listening line (%s); stdout so far: %s",
                     timed_out ? "time-out" : "it exited", s->proc->out.data ? s->proc->out.data : "");
        }
        if (s->proc->out_fd < 0 && !s->proc->exited) {
            h_proc_wait_exit(s->proc, dl, NULL);
            continue;
        }
        h_pump(h_remaining(dl));
    }
    char line[256];
    snprintf(line, sizeof line, "%.*s", (int)(nl - s->proc->out.data), s->proc->out.data);
    char host[64], scheme[8];
    int port = 0;
    char tail;
    const char *asked = server_host(s);
    int v6 = strchr(asked, ':') != NULL;       /* an IPv6 address is written [ADDR] */
    if (sscanf(line, v6 ? "listening on %7[a-z]://[%63[^]]]:%d%c" : "listening on %7[a-z]://%63[^:]:%d%c",
               scheme, host, &port, &tail) != 3 ||
        (strcmp(scheme, "http") && strcmp(scheme, "https")) || port <= 0 || port > 65535)
        fail_msg("chatd's first stdout line is not \"listening on http[s]://HOST:PORT\": \"%s\"", line);
    if (strcmp(host, asked) != 0)
        fail_msg("chatd listens on host \"%s\", asked for %s", host, asked);
    if (want && port != want)
        fail_msg("chatd listens on port %d, asked for %d", port, want);
    s->port = port;
    snprintf(s->url, sizeof s->url, v6 ? "%s://[%s]:%d" : "%s://%s:%d", scheme, host, port);
    return 0;
}

/* Test binaries run side by side (scripts/run-tests.sh, TEST_JOBS), each
 * with its slot number in TEST_SLOT. A port the kernel picks (port 0) may
 * be handed to a neighbour as soon as a test stops its chatd, and a test
 * that restarts chatd, or checks that nothing listens there, would then
 * meet the neighbour's. So with a slot, chatd's port comes from the slot's
 * own range, below the kernel's ephemeral ports: 10000 + 5000 x slot. */
#define SLOT_PORT_BASE 10000
#define SLOT_PORT_SPAN 5000

void h_server_spawn(struct h_server *s)
{
    const char *slot = getenv("TEST_SLOT");
    int n = slot && *slot ? atoi(slot) : -1;
    if (n < 0 || n > 3) {
        server_spawn_port(s, 0, 0);
        return;
    }
    uint32_t seed = (uint32_t)getpid() ^ (uint32_t)h_now_ms();
    for (int tries = 0; tries < 50; tries++) {
        seed = seed * 1103515245u + 12345u;
        int port = SLOT_PORT_BASE + SLOT_PORT_SPAN * n + (int)((seed >> 8) % SLOT_PORT_SPAN);
        if (server_spawn_port(s, port, 1) == 0)
            return;
    }
    fail_msg("chatd found no free port in slot %d's range", n);
}

void h_server_start(struct h_server *s, const char *dbdir, const char *const *extra)
{
    harness_init();
    memset(s, 0, sizeof *s);
    snprintf(s->dbdir, sizeof s->dbdir, "%s", dbdir ? dbdir : h_tmpdir());
    if (h_pg_url())
        h_pg_db_for(s->dbdir, s->dbpath, sizeof s->dbpath);   /* CHAT_TEST_PG: a database per dbdir */
    else
        snprintf(s->dbpath, sizeof s->dbpath, "%s/chat.db", s->dbdir);
    for (const char *const *e = extra; e && *e; e++) {
        if (s->nextra == 16 || strlen(*e) >= sizeof s->extra[0])
            fail_msg("h_server_start: too many or too long extra arguments");
        snprintf(s->extra[s->nextra++], sizeof s->extra[0], "%s", *e);
    }
    h_server_spawn(s);
}

static void server_forget(struct h_server *s)
{
    if (s->proc) {
        h_proc_forget(s->proc);
        s->proc = NULL;
    }
}

void h_server_stop(struct h_server *s)
{
    if (!s->proc)
        return;
    struct h_proc *p = s->proc;
    if (!p->exited)
        kill(p->pid, SIGTERM);
    int st = 0;
    if (!h_proc_wait_exit(p, h_deadline(10000), &st)) {
        h_dump_logs();
        h_server_kill(s);
        fail_msg("chatd did not exit within 10 s of SIGTERM");
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        h_dump_logs();
        int sig = WIFSIGNALED(st) ? WTERMSIG(st) : 0, code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        server_forget(s);
        fail_msg("chatd after SIGTERM: exit code %d, signal %d (expected exit 0)", code, sig);
    }
    server_forget(s);
}

void h_server_kill(struct h_server *s)
{
    server_forget(s);
}

void h_server_restart(struct h_server *s)
{
    h_server_stop(s);
    h_server_spawn(s);
}

void h_server_start_with_user(struct h_server *s, const char *const *extra, const char *user,
                              const char *password, char *token)
{
    h_server_start(s, NULL, extra);
    if (h_http_register(s->port, user, password) != 201 || h_http_login(s->port, user, password, token) != 200) {
        h_dump_logs();
        fail_msg("register and log in %s", user);
    }
}

void h_server_start_same_port(struct h_server *s)
{
    if (s->proc)
        fail_msg("h_server_start_same_port: chatd is still running (stop or kill it first)");
    if (s->port <= 0)
        fail_msg("h_server_start_same_port: no port from an earlier run");
    int64_t dl = h_deadline(10000);
    while (server_spawn_port(s, s->port, 1) < 0) {
        if (h_now_ms() >= dl) {
            h_dump_logs();
            fail_msg("chatd could not listen on port %d again within 10 s", s->port);
        }
        h_pump(100);               /* the port is still taken: try again shortly */
    }
}
