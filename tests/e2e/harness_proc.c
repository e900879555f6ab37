/* harness_proc.c — the harness's core: time and deadlines, growable buffers,
 * the whole-harness lifecycle (init, cleanup, temp dirs, log dumps, the
 * cmocka setup/teardown) and the registry of child processes: spawning them
 * in their own process group, draining every child's pipes while any helper
 * waits, reaping and killing them. */
#include "harness.h"
#include "harness_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_TMPDIRS 16

static struct h_proc *procs[H_MAX_PROCS];
static char *tmpdirs[MAX_TMPDIRS];
static int initialized;
static pid_t harness_pid;
/* Set while spawning helpers (psql, haproxy) that $E2E_WRAP must not wrap. */
int h_spawn_nowrap;

/* ---- time and buffers ---- */

int64_t h_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t h_deadline(int ms) { return h_now_ms() + ms; }

int h_remaining(int64_t deadline)
{
    int64_t r = deadline - h_now_ms();
    return r < 0 ? 0 : (r > 1000000 ? 1000000 : (int)r);
}

void h_buf_add(struct h_buf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) {
            fprintf(stderr, "harness: out of memory\n");
            abort();
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void h_buf_consume(struct h_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    if (b->data)
        b->data[b->len] = '\0';
}

void h_buf_free(struct h_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *h_json_str(const json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    return s ? s : strdup("(null)");
}

/* ---- lifecycle ---- */

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    remove(path);
    return 0;
}

static void atexit_cleanup(void)
{
    if (getpid() == harness_pid)
        harness_cleanup();
}

/* Interrupted (Ctrl-C, timeout(1)): kill the children, remove the temp dirs,
 * then die of the same signal. Not async-signal-safe in the strict sense, but
 * the process is going away anyway and this is test code. */
static void on_fatal_signal(int sig)
{
    if (getpid() == harness_pid)
        harness_cleanup();
    signal(sig, SIG_DFL);
    raise(sig);
}

void harness_init(void)
{
    if (initialized)
        return;
    initialized = 1;
    harness_pid = getpid();
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_fatal_signal);
    signal(SIGTERM, on_fatal_signal);
    signal(SIGHUP, on_fatal_signal);
    atexit(atexit_cleanup);
}

const char *h_tmpdir(void)
{
    harness_init();
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "%s/chat-e2e-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpl))
        fail_msg("mkdtemp(%s): %s", tmpl, strerror(errno));
    for (int i = 0; i < MAX_TMPDIRS; i++) {
        if (!tmpdirs[i]) {
            tmpdirs[i] = strdup(tmpl);
            return tmpdirs[i];
        }
    }
    fail_msg("too many temp dirs");
    return NULL;
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static void proc_free(struct h_proc *p)
{
    close_fd(&p->in_fd);
    close_fd(&p->out_fd);
    close_fd(&p->err_fd);
    close_fd(&p->pidfd);
    h_buf_free(&p->out);
    h_buf_free(&p->err);
    json_decref(p->events);
    free(p);
}

void h_proc_kill(struct h_proc *p)
{
    if (!p || p->exited)
        return;
    kill(-p->pid, SIGKILL);        /* its process group (it made one) */
    kill(p->pid, SIGKILL);
    int st;
    while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR)
        ;
    p->exited = 1;
    p->status = st;
}

void harness_cleanup(void)
{
    for (int i = 0; i < H_MAX_PROCS; i++) {
        if (procs[i]) {
            h_proc_kill(procs[i]);
            proc_free(procs[i]);
            procs[i] = NULL;
        }
    }
    h_pg_drop_all();                 /* after the servers using them are gone */
    h_pwhash_cost_reset();           /* the next test starts from the default */
    for (int i = 0; i < MAX_TMPDIRS; i++) {
        if (tmpdirs[i]) {
            nftw(tmpdirs[i], rm_cb, 16, FTW_DEPTH | FTW_PHYS);
            free(tmpdirs[i]);
            tmpdirs[i] = NULL;
        }
    }
}

void h_dump_logs(void)
{
    for (int i = 0; i < H_MAX_PROCS; i++) {
        struct h_proc *p = procs[i];
        if (!p)
            continue;
        size_t keep = getenv("E2E_LOG_BYTES") ? strtoul(getenv("E2E_LOG_BYTES"), NULL, 10) : 6000;
        size_t n = p->err.len, off = n > keep ? n - keep : 0;
        fprintf(stderr, "---- %s (pid %d%s) stderr, last %zu bytes ----\n%s\n",
                p->name, (int)p->pid, p->exited ? ", exited" : "", n - off,
                p->err.data ? p->err.data + off : "");
        if (p->bad_lines)
            fprintf(stderr, "---- %s: %d non-JSON stdout lines, first: %s\n",
                    p->name, p->bad_lines, p->first_bad);
    }
}

/* ---- processes ---- */

/* Client stdout: turn complete lines into events. */
static void parse_lines(struct h_proc *p)
{
    if (!p->events)
        return;                    /* not a client */
    while (p->parsed < p->out.len) {
        char *start = p->out.data + p->parsed;
        char *nl = memchr(start, '\n', p->out.len - p->parsed);
        if (!nl)
            break;
        size_t n = (size_t)(nl - start);
        p->parsed += n + 1;
        if (n == 0)
            continue;
        json_error_t jerr;
        json_t *j = json_loadb(start, n, 0, &jerr);
        if (!j || !json_is_object(j)) {
            if (!p->bad_lines)
                snprintf(p->first_bad, sizeof p->first_bad, "%.*s", (int)(n > 150 ? 150 : n), start);
            p->bad_lines++;
            json_decref(j);
            continue;
        }
        json_t *ev = j;
        json_t *inner = json_object_get(j, "event");
        if (json_is_object(inner))
            ev = inner;
        if (json_is_integer(json_object_get(ev, "id")) && json_is_string(json_object_get(ev, "type")))
            json_array_append(p->events, ev);
        else
            p->other_lines++;
        json_decref(j);
    }
}

static void reap(struct h_proc *p)
{
    if (p->exited)
        return;
    int st;
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid) {
        p->exited = 1;
        p->status = st;
        close_fd(&p->pidfd);
    }
}

/* Polls all children's pipes (and their pidfds) plus an optional extra fd. */
short h_pump_with(int timeout_ms, int extra_fd, short extra_events)
{
    struct pollfd pf[3 * H_MAX_PROCS + 1];
    struct { struct h_proc *p; int which; } map[3 * H_MAX_PROCS + 1];
    int n = 0, need_waitpid_poll = 0;
    for (int i = 0; i < H_MAX_PROCS; i++) {
        struct h_proc *p = procs[i];
        if (!p)
            continue;
        if (p->out_fd >= 0) { pf[n] = (struct pollfd){ p->out_fd, POLLIN, 0 }; map[n].p = p; map[n].which = 1; n++; }
        if (p->err_fd >= 0) { pf[n] = (struct pollfd){ p->err_fd, POLLIN, 0 }; map[n].p = p; map[n].which = 2; n++; }
        if (!p->exited) {
            if (p->pidfd >= 0) { pf[n] = (struct pollfd){ p->pidfd, POLLIN, 0 }; map[n].p = p; map[n].which = 3; n++; }
            else need_waitpid_poll = 1;
        }
    }
    int extra_idx = -1;
    if (extra_fd >= 0) {
        extra_idx = n;
        pf[n] = (struct pollfd){ extra_fd, extra_events, 0 };
        map[n].p = NULL;
        n++;
    }
    if (need_waitpid_poll && timeout_ms > 20)
        timeout_ms = 20;           /* no pidfd: re-check waitpid often */
    int r = poll(pf, (nfds_t)n, timeout_ms);
    if (r < 0 && errno != EINTR)
        fail_msg("poll: %s", strerror(errno));
    for (int i = 0; r > 0 && i < n; i++) {
        if (!pf[i].revents || i == extra_idx)
            continue;
        struct h_proc *p = map[i].p;
        if (map[i].which == 3) {
            reap(p);
            continue;
        }
        int *fd = map[i].which == 1 ? &p->out_fd : &p->err_fd;
        struct h_buf *b = map[i].which == 1 ? &p->out : &p->err;
        char tmp[65536];
        ssize_t k = read(*fd, tmp, sizeof tmp);
        if (k > 0) {
            h_buf_add(b, tmp, (size_t)k);
            if (map[i].which == 1)
                parse_lines(p);
        } else if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
            close_fd(fd);
        }
    }
    for (int i = 0; i < H_MAX_PROCS; i++)
        if (procs[i] && !procs[i]->exited && (need_waitpid_poll || procs[i]->pidfd < 0))
            reap(procs[i]);
    return extra_idx >= 0 && r > 0 ? pf[extra_idx].revents : 0;
}

void h_pump(int timeout_ms) { h_pump_with(timeout_ms, -1, 0); }

int h_proc_wait_exit(struct h_proc *p, int64_t deadline, int *status)
{
    for (;;) {
        reap(p);
        if (p->exited) {
            /* Collect what is left in its pipes (the child is gone, so EOF comes
             * at once unless a grandchild holds them). */
            int64_t d2 = h_now_ms() + 200;
            while ((p->out_fd >= 0 || p->err_fd >= 0) && h_now_ms() < d2)
                h_pump(h_remaining(d2));
            if (status)
                *status = p->status;
            return 1;
        }
        if (h_now_ms() >= deadline)
            return 0;
        h_pump(h_remaining(deadline));
    }
}

void h_set_nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Runs argv, prefixed by the words of $E2E_WRAP if set (e.g. a valgrind
 * command line for `make valgrind`). Returns only on failure. */
static void exec_wrapped(char *const argv[])
{
    const char *wrap = getenv("E2E_WRAP");
    if (!wrap || !*wrap || h_spawn_nowrap) {
        execvp(argv[0], argv);     /* a tool (psql) is looked up on PATH */
        return;
    }
    char *words = strdup(wrap), *save = NULL, *w;
    char *full[64];
    int n = 0;
    for (w = strtok_r(words, " ", &save); w && n < 32; w = strtok_r(NULL, " ", &save))
        full[n++] = w;
    for (int i = 0; argv[i] && n < 63; i++)
        full[n++] = argv[i];
    full[n] = NULL;
    execvp(full[0], full);
}

/* Forks argv with env (NULL-terminated list of "K=V" to add). */
struct h_proc *h_spawn(const char *name, char *const argv[], const char *const *env, int want_stdin)
{
    harness_init();
    int in[2] = { -1, -1 }, out[2], err[2];
    if ((want_stdin && pipe2(in, O_CLOEXEC) < 0) || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
        fail_msg("pipe: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int devnull = open("/dev/null", O_RDONLY);
        dup2(want_stdin ? in[0] : devnull, 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        for (const char *const *e = env; e && *e; e++)
            putenv((char *)*e);
        exec_wrapped(argv);
        dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid);             /* both sides, so there is no race */
    struct h_proc *p = calloc(1, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->pid = pid;
    p->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (want_stdin) {
        close(in[0]);
        p->in_fd = in[1];
    } else {
        p->in_fd = -1;
    }
    close(out[1]);
    close(err[1]);
    p->out_fd = out[0];
    p->err_fd = err[0];
    h_set_nonblock(p->out_fd);
    h_set_nonblock(p->err_fd);
    int i;
    for (i = 0; i < H_MAX_PROCS && procs[i]; i++)
        ;
    if (i == H_MAX_PROCS) {
        kill(pid, SIGKILL);
        fail_msg("too many child processes");
    }
    procs[i] = p;
    return p;
}

/* Removes p from the registry and frees it (after it exited or was killed). */
void h_proc_forget(struct h_proc *p)
{
    for (int i = 0; i < H_MAX_PROCS; i++)
        if (procs[i] == p)
            procs[i] = NULL;
    h_proc_kill(p);
    proc_free(p);
}

const char *h_bin(const char *env, const char *def)
{
    const char *v = getenv(env);
    return v && *v ? v : def;
}

/* ---- cmocka setup and teardown ---- */

int h_setup(void **state)
{
    (void)state;
    harness_init();
    return 0;
}

int h_teardown(void **state)
{
    (void)state;
    harness_cleanup();
    return 0;
}

struct h_proc *h_spawn_tool(const char *name, char *const argv[], const char *const *env)
{
    h_spawn_nowrap = 1;
    struct h_proc *p = h_spawn(name, argv, env, 0);
    h_spawn_nowrap = 0;
    return p;
}

int h_tool_run(char *const argv[], char **out, char **err, int timeout_ms)
{
    struct h_proc *p = h_spawn_tool(argv[0], argv, NULL);
    int st = 0, done = h_proc_wait_exit(p, h_deadline(timeout_ms), &st);
    if (!done)
        h_proc_kill(p);
    if (out)
        *out = strdup(p->out.data ? p->out.data : "");
    if (err)
        *err = strdup(p->err.data ? p->err.data : "");
    h_proc_forget(p);
    return done && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
