/* harness_pg.c — PostgreSQL for the end-to-end tests (CHAT_TEST_PG): a fresh
 * database per server's dbdir, created with psql and dropped in the
 * background at cleanup. */
#include "harness.h"
#include "harness_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_PG_DBS 64

static struct { char dir[256]; char url[300]; char name[64]; } pg_dbs[MAX_PG_DBS];
static int pg_ndbs, pg_seq;

const char *h_pg_url(void)
{
    const char *u = getenv("CHAT_TEST_PG");
    return u && *u ? u : NULL;
}

void h_need_pg(const char *why)
{
    if (h_pg_url())
        return;
    if (getenv("CHAT_TEST_PG_REQUIRED"))
        fail_msg("CHAT_TEST_PG is not set (CHAT_TEST_PG_REQUIRED is): run under scripts/with-pg.sh");
    fprintf(stderr, "    CHAT_TEST_PG is not set, so skipped (needs PostgreSQL: %s; see scripts/with-pg.sh)\n", why);
    skip();
}

/* Runs argv (no $E2E_WRAP) with stdin from /dev/null, collecting stdout and
 * stderr together into out (may be NULL), for up to timeout_ms; kills it
 * then. Returns its exit code, or -1 (did not run, killed, time-out). Not
 * tracked in procs and never fails the test, so harness_cleanup can use it. */
static int run_cmd(char *const argv[], struct h_buf *out, int timeout_ms)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -1;
    fflush(stdout);
    fflush(stderr);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        dup2(pfd[1], 1);
        dup2(pfd[1], 2);
        execvp(argv[0], argv);
        dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(pfd[1]);
    h_set_nonblock(pfd[0]);
    int64_t dl = h_deadline(timeout_ms);
    int st = 0, exited = 0, open_ = 1;
    for (;;) {
        int wait_ms = h_remaining(dl) < 100 ? h_remaining(dl) : 100;
        if (open_) {
            if (h_pump_with(wait_ms, pfd[0], POLLIN)) {
                char tmp[4096];
                ssize_t k = read(pfd[0], tmp, sizeof tmp);
                if (k > 0 && out)
                    h_buf_add(out, tmp, (size_t)k);
                else if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR))
                    open_ = 0;
            }
        } else {
            h_pump(wait_ms < 20 ? wait_ms : 20);
        }
        if (!exited && waitpid(pid, &st, WNOHANG) == pid)
            exited = 1;
        if (exited && (!open_ || h_now_ms() >= dl))
            break;                 /* (a grandchild may hold the pipe: not waited for) */
        if (!exited && h_now_ms() >= dl) {
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
            close(pfd[0]);
            return -1;
        }
    }
    close(pfd[0]);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* base with its database (the path after host[:port]) replaced by name. */
static void pg_url_with_db(const char *base, const char *name, char *url, size_t len)
{
    const char *hs = strstr(base, "://");
    hs = hs ? hs + 3 : base;
    const char *path = strchr(hs, '/');
    const char *query = strchr(hs, '?');
    if (!path || (query && path > query))
        path = query ? query : hs + strlen(hs);
    const char *rest = query ? query : "";
    snprintf(url, len, "%.*s/%s%s", (int)(path - base), base, name, rest);
}

static int psql_run(const char *url, const char *sql, struct h_buf *out)
{
    char *argv[] = { "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", (char *)url, "-c", (char *)sql, NULL };
    return run_cmd(argv, out, 20000);
}

void h_pg_createdb(char *url, size_t len)
{
    const char *base = h_pg_url();
    if (!base)
        fail_msg("h_pg_createdb: CHAT_TEST_PG is not set");
    if (pg_ndbs == MAX_PG_DBS)
        fail_msg("h_pg_createdb: more than %d databases in one test", MAX_PG_DBS);
    char name[64], sql[128];
    snprintf(name, sizeof name, "chat_e2e_%d_%d", (int)getpid(), ++pg_seq);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    struct h_buf out = { 0 };
    int rc = psql_run(base, sql, &out);
    if (rc != 0) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s on %s: psql exit %d: %.400s", sql, base, rc, out.data ? out.data : "");
        h_buf_free(&out);
        fail_msg("%s", msg);
    }
    h_buf_free(&out);
    pg_url_with_db(base, name, url, len);
    snprintf(pg_dbs[pg_ndbs].name, sizeof pg_dbs[0].name, "%s", name);
    snprintf(pg_dbs[pg_ndbs].url, sizeof pg_dbs[0].url, "%s", url);
    pg_dbs[pg_ndbs].dir[0] = '\0';
    pg_ndbs++;
}

/* The database of dbdir: the one made for it before, or a new one. */
void h_pg_db_for(const char *dbdir, char *url, size_t len)
{
    for (int i = 0; i < pg_ndbs; i++)
        if (pg_dbs[i].dir[0] && strcmp(pg_dbs[i].dir, dbdir) == 0) {
            snprintf(url, len, "%s", pg_dbs[i].url);
            return;
        }
    h_pg_createdb(url, len);
    snprintf(pg_dbs[pg_ndbs - 1].dir, sizeof pg_dbs[0].dir, "%s", dbdir);
}

/* Drops the databases made since the last call, in the background: a DROP
 * DATABASE waits for a checkpoint (~0.3 s each), which no test needs to wait
 * for. The psql is not tied to this process's life (no PDEATHSIG), so the
 * last test's databases are dropped after the harness exits too; finished
 * ones are reaped at the next call. */
static pid_t pg_droppers[32];

void h_pg_drop_all(void)
{
    for (int i = 0; i < 32; i++)
        if (pg_droppers[i] > 0 && waitpid(pg_droppers[i], NULL, WNOHANG) == pg_droppers[i])
            pg_droppers[i] = 0;
    const char *base = h_pg_url();
    if (!base || !pg_ndbs) {
        pg_ndbs = 0;
        return;
    }
    static char sql[MAX_PG_DBS][128];
    char *argv[8 + 2 * MAX_PG_DBS];
    int n = 0;
    argv[n++] = "psql";
    argv[n++] = "-X";
    argv[n++] = "-q";
    argv[n++] = "-d";
    argv[n++] = (char *)base;
    for (int i = 0; i < pg_ndbs; i++) {
        snprintf(sql[i], sizeof sql[i], "DROP DATABASE IF EXISTS %s WITH (FORCE)", pg_dbs[i].name);
        argv[n++] = "-c";
        argv[n++] = sql[i];
    }
    argv[n] = NULL;
    pg_ndbs = 0;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    for (int i = 0; pid > 0 && i < 32; i++)
        if (pg_droppers[i] <= 0) {
            pg_droppers[i] = pid;
            break;
        }
}

void h_pg_url_with_port(const char *url, int port, char *out, size_t len, int *old_port)
{
    const char *at = strrchr(url, '@');
    const char *host = at ? at + 1 : strstr(url, "://") + 3;
    const char *colon = strchr(host, ':');
    if (!colon)
        fail_msg("no port in the database URL %s", url);
    *old_port = atoi(colon + 1);
    const char *rest = colon + 1 + strspn(colon + 1, "0123456789");
    snprintf(out, len, "%.*s:%d%s", (int)(colon - url), url, port, rest);
}
