/* harness.c — see harness.h. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROCS 64
#define MAX_TMPDIRS 16

static struct h_proc *procs[MAX_PROCS];
static char *tmpdirs[MAX_TMPDIRS];
static int initialized;
static pid_t harness_pid;
/* Set while spawning helpers (psql, haproxy) that $E2E_WRAP must not wrap. */
static int spawn_nowrap;
static void pg_drop_all(void);
static void pg_db_for(const char *dbdir, char *url, size_t len);

/* ------------------------------------------------------------------------ */
int64_t h_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t h_deadline(int ms) { return h_now_ms() + ms; }

static int remaining(int64_t deadline)
{
    int64_t r = deadline - h_now_ms();
    return r < 0 ? 0 : (r > 1000000 ? 1000000 : (int)r);
}

static void buf_add(struct h_buf *b, const void *p, size_t n)
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

static void buf_consume(struct h_buf *b, size_t n)
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

static void buf_free(struct h_buf *b)
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

/* ------------------------------------------------------------------------ */
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
    buf_free(&p->out);
    buf_free(&p->err);
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
    for (int i = 0; i < MAX_PROCS; i++) {
        if (procs[i]) {
            h_proc_kill(procs[i]);
            proc_free(procs[i]);
            procs[i] = NULL;
        }
    }
    pg_drop_all();                 /* after the servers using them are gone */
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
    for (int i = 0; i < MAX_PROCS; i++) {
        struct h_proc *p = procs[i];
        if (!p)
            continue;
        size_t n = p->err.len, off = n > 6000 ? n - 6000 : 0;
        fprintf(stderr, "---- %s (pid %d%s) stderr, last %zu bytes ----\n%s\n",
                p->name, (int)p->pid, p->exited ? ", exited" : "", n - off,
                p->err.data ? p->err.data + off : "");
        if (p->bad_lines)
            fprintf(stderr, "---- %s: %d non-JSON stdout lines, first: %s\n",
                    p->name, p->bad_lines, p->first_bad);
    }
}

/* ------------------------------------------------------------------------ */
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
static short pump_with(int timeout_ms, int extra_fd, short extra_events)
{
    struct pollfd pf[3 * MAX_PROCS + 1];
    struct { struct h_proc *p; int which; } map[3 * MAX_PROCS + 1];
    int n = 0, need_waitpid_poll = 0;
    for (int i = 0; i < MAX_PROCS; i++) {
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
            buf_add(b, tmp, (size_t)k);
            if (map[i].which == 1)
                parse_lines(p);
        } else if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
            close_fd(fd);
        }
    }
    for (int i = 0; i < MAX_PROCS; i++)
        if (procs[i] && !procs[i]->exited && (need_waitpid_poll || procs[i]->pidfd < 0))
            reap(procs[i]);
    return extra_idx >= 0 && r > 0 ? pf[extra_idx].revents : 0;
}

void h_pump(int timeout_ms) { pump_with(timeout_ms, -1, 0); }

int h_proc_wait_exit(struct h_proc *p, int64_t deadline, int *status)
{
    for (;;) {
        reap(p);
        if (p->exited) {
            /* Collect what is left in its pipes (the child is gone, so EOF comes
             * at once unless a grandchild holds them). */
            int64_t d2 = h_now_ms() + 200;
            while ((p->out_fd >= 0 || p->err_fd >= 0) && h_now_ms() < d2)
                h_pump(remaining(d2));
            if (status)
                *status = p->status;
            return 1;
        }
        if (h_now_ms() >= deadline)
            return 0;
        h_pump(remaining(deadline));
    }
}

static void set_nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Runs argv, prefixed by the words of $E2E_WRAP if set (e.g. a valgrind
 * command line for `make valgrind`). Returns only on failure. */
static void exec_wrapped(char *const argv[])
{
    const char *wrap = getenv("E2E_WRAP");
    if (!wrap || !*wrap || spawn_nowrap) {
        execv(argv[0], argv);
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
static struct h_proc *spawn(const char *name, char *const argv[], const char *const *env, int want_stdin)
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
    set_nonblock(p->out_fd);
    set_nonblock(p->err_fd);
    int i;
    for (i = 0; i < MAX_PROCS && procs[i]; i++)
        ;
    if (i == MAX_PROCS) {
        kill(pid, SIGKILL);
        fail_msg("too many child processes");
    }
    procs[i] = p;
    return p;
}

/* Removes p from the registry and frees it (after it exited or was killed). */
static void proc_forget(struct h_proc *p)
{
    for (int i = 0; i < MAX_PROCS; i++)
        if (procs[i] == p)
            procs[i] = NULL;
    h_proc_kill(p);
    proc_free(p);
}

static const char *bin(const char *env, const char *def)
{
    const char *v = getenv(env);
    return v && *v ? v : def;
}

/* ------------------------------------------------------------------------ */
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

/* Spawns chatd on port (0: a free one) and waits for its listening line.
 * soft: if chatd exits before listening (e.g. the port is still taken),
 * forget it and return -1 instead of failing the test. */
static int server_spawn_port(struct h_server *s, int want, int soft)
{
    char *argv[32], portarg[16];
    int n = 0;
    snprintf(portarg, sizeof portarg, "%d", want);
    argv[n++] = (char *)bin("CHATD_BIN", "bin/chatd");
    argv[n++] = "--host";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--port";
    argv[n++] = portarg;
    argv[n++] = "--db";
    argv[n++] = s->dbpath;
    for (int i = 0; i < s->nextra; i++)
        argv[n++] = s->extra[i];
    argv[n] = NULL;
    s->proc = spawn("chatd", argv, NULL, 0);

    int64_t dl = h_deadline(10000);
    char *nl;
    while (!(nl = s->proc->out.data ? strchr(s->proc->out.data, '\n') : NULL)) {
        if (soft && s->proc->exited) {
            h_proc_wait_exit(s->proc, h_deadline(1000), NULL);   /* drains its pipes */
            if (s->proc->out.data && strchr(s->proc->out.data, '\n'))
                continue;
            proc_forget(s->proc);
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
        h_pump(remaining(dl));
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

static void server_spawn(struct h_server *s)
{
    server_spawn_port(s, 0, 0);
}

void server_start(struct h_server *s, const char *dbdir, const char *const *extra)
{
    harness_init();
    memset(s, 0, sizeof *s);
    snprintf(s->dbdir, sizeof s->dbdir, "%s", dbdir ? dbdir : h_tmpdir());
    if (h_pg_url())
        pg_db_for(s->dbdir, s->dbpath, sizeof s->dbpath);   /* CHAT_TEST_PG: a database per dbdir */
    else
        snprintf(s->dbpath, sizeof s->dbpath, "%s/chat.db", s->dbdir);
    for (const char *const *e = extra; e && *e; e++) {
        if (s->nextra == 16 || strlen(*e) >= sizeof s->extra[0])
            fail_msg("server_start: too many or too long extra arguments");
        snprintf(s->extra[s->nextra++], sizeof s->extra[0], "%s", *e);
    }
    server_spawn(s);
}

static void server_forget(struct h_server *s)
{
    if (s->proc) {
        proc_forget(s->proc);
        s->proc = NULL;
    }
}

void server_stop(struct h_server *s)
{
    if (!s->proc)
        return;
    struct h_proc *p = s->proc;
    if (!p->exited)
        kill(p->pid, SIGTERM);
    int st = 0;
    if (!h_proc_wait_exit(p, h_deadline(10000), &st)) {
        h_dump_logs();
        server_kill(s);
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

void server_kill(struct h_server *s)
{
    server_forget(s);
}

void server_restart(struct h_server *s)
{
    server_stop(s);
    server_spawn(s);
}

/* ------------------------------------------------------------------------ */
struct h_proc *client_spawn(const struct h_server *s, const char *transport,
                            const char *user, const char *password,
                            const char *const *extra)
{
    char *argv[40];
    int n = 0, has_interval = 0;
    for (const char *const *e = extra; e && *e; e++)
        if (strcmp(*e, "--interval-ms") == 0)
            has_interval = 1;
    argv[n++] = (char *)bin("CHAT_BIN", "bin/chat");
    argv[n++] = "--headless";
    argv[n++] = "--server";
    argv[n++] = (char *)s->url;
    argv[n++] = "--user";
    argv[n++] = (char *)user;
    argv[n++] = "--transport";
    argv[n++] = (char *)transport;
    if (strcmp(transport, "short-poll") == 0 && !has_interval) {
        argv[n++] = "--interval-ms";
        argv[n++] = "100";
    }
    for (const char *const *e = extra; e && *e && n < 38; e++)
        argv[n++] = (char *)*e;
    argv[n] = NULL;
    static char envbuf[MAX_PROCS][200];
    static int envi;
    char *pw = envbuf[envi++ % MAX_PROCS];
    snprintf(pw, 200, "CHAT_PASSWORD=%s", password);
    const char *env[] = { pw, NULL };
    char name[48];
    snprintf(name, sizeof name, "chat %s/%s", user, transport);
    struct h_proc *p = spawn(name, argv, env, 1);
    p->events = json_array();
    return p;
}

void client_send_line(struct h_proc *c, const char *line)
{
    size_t n = strlen(line);
    char *b = malloc(n + 1);
    memcpy(b, line, n);
    b[n] = '\n';
    size_t off = 0;
    int64_t dl = h_deadline(5000);
    while (off < n + 1) {
        if (c->in_fd < 0) {
            free(b);
            h_dump_logs();
            fail_msg("%s: stdin closed", c->name);
        }
        ssize_t k = write(c->in_fd, b + off, n + 1 - off);
        if (k > 0) {
            off += (size_t)k;
        } else if (k < 0 && errno == EINTR) {
            continue;
        } else {
            free(b);
            h_dump_logs();
            fail_msg("%s: writing to stdin failed (%s)%s", c->name, strerror(errno),
                     c->exited ? " — it exited" : "");
        }
        if (off < n + 1) {
            if (h_now_ms() >= dl) {
                free(b);
                fail_msg("%s: stdin blocked for 5 s", c->name);
            }
            h_pump(10);
        }
    }
    free(b);
}

size_t client_nevents(const struct h_proc *c) { return json_array_size(c->events); }
json_t *client_event(const struct h_proc *c, size_t i) { return json_array_get(c->events, i); }

size_t client_wait_events(struct h_proc *c, size_t n, int64_t deadline)
{
    while (json_array_size(c->events) < n && h_now_ms() < deadline) {
        if (c->exited && c->out_fd < 0)
            break;
        h_pump(remaining(deadline));
    }
    return json_array_size(c->events);
}

int client_wait_stderr_match(struct h_proc *c, const char *needle, int64_t deadline)
{
    for (;;) {
        if (c->err.data && strstr(c->err.data, needle))
            return 1;
        if (h_now_ms() >= deadline || (c->exited && c->err_fd < 0))
            return 0;
        h_pump(remaining(deadline));
    }
}

void client_quit(struct h_proc *c, int64_t deadline)
{
    if (!c->exited)
        client_send_line(c, "/quit");
    int st = 0;
    if (!h_proc_wait_exit(c, deadline, &st)) {
        h_dump_logs();
        fail_msg("%s did not exit after /quit", c->name);
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        h_dump_logs();
        fail_msg("%s after /quit: exit code %d, signal %d (expected exit 0)", c->name,
                 WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    }
}

/* ------------------------------------------------------------------------ */
static struct in_addr source_addr;     /* 0: the kernel picks (127.0.0.1) */

void h_set_source_addr(const char *ipv4)
{
    source_addr.s_addr = 0;
    if (ipv4 && inet_pton(AF_INET, ipv4, &source_addr) != 1)
        fail_msg("h_set_source_addr: bad address %s", ipv4);
}

int h_tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in src = { .sin_family = AF_INET, .sin_addr = source_addr };
    if (source_addr.s_addr && bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
        close(fd);
        return -1;
    }
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    set_nonblock(fd);
    return fd;
}

/* Sends all of buf unless the peer goes away or the deadline passes, while
 * also draining the children's pipes. Returns 0 or -1. */
static int send_all(int fd, const void *buf, size_t len, int64_t deadline)
{
    const char *p = buf;
    while (len) {
        ssize_t k = send(fd, p, len, MSG_NOSIGNAL);
        if (k > 0) {
            p += k;
            len -= (size_t)k;
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && errno != EAGAIN)
            return -1;
        if (h_now_ms() >= deadline)
            return -1;
        short rev = pump_with(remaining(deadline), fd, POLLOUT);
        if (rev & (POLLERR | POLLHUP))
            return -1;
    }
    return 0;
}

/* Reads whatever arrives into b until deadline or EOF. Returns 1 if data
 * arrived, 0 on EOF, -1 on time-out, -2 on error. */
static int recv_some(int fd, struct h_buf *b, int64_t deadline)
{
    for (;;) {
        char tmp[65536];
        ssize_t k = recv(fd, tmp, sizeof tmp, 0);
        if (k > 0) {
            buf_add(b, tmp, (size_t)k);
            return 1;
        }
        if (k == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -2;
        if (h_now_ms() >= deadline)
            return -1;
        pump_with(remaining(deadline), fd, POLLIN);
    }
}

static const char *find_hdr_end(const struct h_buf *b)
{
    if (!b->data)
        return NULL;
    const char *e = memmem(b->data, b->len, "\r\n\r\n", 4);
    return e ? e + 4 : NULL;
}

char *http_header(const struct http_resp *r, const char *name)
{
    if (!r->head)
        return NULL;
    size_t nl = strlen(name);
    const char *line = strstr(r->head, "\r\n");
    while (line) {
        line += 2;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            const char *e = strstr(v, "\r\n");
            size_t n = e ? (size_t)(e - v) : strlen(v);
            while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
                n--;
            return strndup(v, n);
        }
        line = strstr(line, "\r\n");
    }
    return NULL;
}

/* Decodes a chunked body from src[0..n). Returns 1 when complete, 0 if more
 * is needed, -1 if malformed. */
static int dechunk(const char *src, size_t n, struct h_buf *out)
{
    size_t i = 0;
    out->len = 0;
    for (;;) {
        const char *e = memmem(src + i, n - i, "\r\n", 2);
        if (!e)
            return 0;
        char *end;
        unsigned long sz = strtoul(src + i, &end, 16);
        if (end == src + i)
            return -1;
        i = (size_t)(e - src) + 2;
        if (sz == 0)
            return 1;              /* trailers ignored */
        if (n - i < sz + 2)
            return 0;
        buf_add(out, src + i, sz);
        i += sz + 2;
    }
}

static void resp_finish(struct http_resp *r, const struct h_buf *in, const char *hdr_end)
{
    size_t hl = (size_t)(hdr_end - in->data);
    r->head = strndup(in->data, hl);
    sscanf(r->head, "HTTP/1.%*d %d", &r->status);
    if (!r->body) {
        r->body = malloc(1);
        r->body[0] = '\0';
    }
    json_error_t jerr;
    r->json = r->body_len ? json_loadb(r->body, r->body_len, 0, &jerr) : NULL;
}

/* Reads one HTTP response from fd, with bytes already in *in. */
static int read_response(int fd, struct h_buf *in, struct http_resp *r, int64_t deadline)
{
    for (;;) {
        const char *he = find_hdr_end(in);
        if (he) {
            size_t hl = (size_t)(he - in->data);
            struct http_resp tmp = { 0 };
            tmp.head = strndup(in->data, hl);
            char *cl = http_header(&tmp, "Content-Length");
            char *te = http_header(&tmp, "Transfer-Encoding");
            int status = 0;
            sscanf(tmp.head, "HTTP/1.%*d %d", &status);
            free(tmp.head);
            int done = 0;
            size_t have = in->len - hl;
            if (te && strcasestr(te, "chunked")) {
                struct h_buf body = { 0 };
                int d = dechunk(in->data + hl, have, &body);
                if (d != 0) {
                    r->body = body.data ? body.data : strdup("");
                    r->body_len = body.len;
                    done = 1;
                } else {
                    buf_free(&body);
                }
            } else if (cl) {
                size_t want = strtoul(cl, NULL, 10);
                if (have >= want) {
                    r->body = strndup(in->data + hl, want);
                    r->body_len = want;
                    done = 1;
                }
            } else if (status == 101 || status == 204 || status == 304 || (status >= 100 && status < 200)) {
                r->body = strdup("");
                done = 1;
            }
            free(cl);
            free(te);
            if (done) {
                resp_finish(r, in, he);
                return 0;
            }
        }
        int k = recv_some(fd, in, deadline);
        if (k == 1)
            continue;
        /* EOF, error or time-out: take what there is. */
        he = find_hdr_end(in);
        if (he) {
            size_t hl = (size_t)(he - in->data);
            r->body = strndup(in->data + hl, in->len - hl);
            r->body_len = in->len - hl;
            resp_finish(r, in, he);
            if (k != 0)
                r->closed_early = 1;
            else {
                struct http_resp t2 = { .head = r->head };
                char *cl = http_header(&t2, "Content-Length");
                char *te = http_header(&t2, "Transfer-Encoding");
                if (cl || te)
                    r->closed_early = 1;   /* the framing promised more */
                free(cl);
                free(te);
            }
            return 0;
        }
        r->closed_early = 1;
        if (in->len) {
            r->head = strndup(in->data, in->len);
            sscanf(r->head, "HTTP/1.%*d %d", &r->status);
            r->body = strdup("");
            return r->status ? 0 : -1;
        }
        return -1;
    }
}

int http_request(int port, const void *raw, size_t len, struct http_resp *r, int timeout_ms)
{
    memset(r, 0, sizeof *r);
    int64_t dl = h_deadline(timeout_ms);
    int fd = h_tcp_connect(port);
    if (fd < 0)
        return -1;
    send_all(fd, raw, len, dl);    /* errors tolerated: read the answer anyway */
    struct h_buf in = { 0 };
    int rc = read_response(fd, &in, r, dl);
    buf_free(&in);
    close(fd);
    return rc;
}

void http_resp_free(struct http_resp *r)
{
    free(r->head);
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

/* A well-formed request (see http_call) as a new buffer of *len bytes (free()). */
static char *build_request(int port, const char *method, const char *path, const char *token,
                           const char *body, long body_len, size_t *len)
{
    size_t bl = body ? (body_len < 0 ? strlen(body) : (size_t)body_len) : 0;
    char head[1024];
    int hn = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n"
                      "%s%s%s%s"
                      "Content-Length: %zu\r\n\r\n",
                      method, path, port,
                      token ? "Authorization: Bearer " : "", token ? token : "", token ? "\r\n" : "",
                      body ? "Content-Type: application/json\r\n" : "", bl);
    char *req = malloc((size_t)hn + bl);
    memcpy(req, head, (size_t)hn);
    if (bl)
        memcpy(req + hn, body, bl);
    *len = (size_t)hn + bl;
    return req;
}

void http_call_timeout(int port, const char *method, const char *path, const char *token,
                       const char *body, long body_len, struct http_resp *r, int timeout_ms)
{
    size_t len;
    char *req = build_request(port, method, path, token, body, body_len, &len);
    int rc = http_request(port, req, len, r, timeout_ms);
    free(req);
    if (rc != 0) {
        h_dump_logs();
        fail_msg("%s %s: no HTTP response from 127.0.0.1:%d", method, path, port);
    }
}

void http_call(int port, const char *method, const char *path, const char *token,
               const char *body, long body_len, struct http_resp *r)
{
    http_call_timeout(port, method, path, token, body, body_len, r, 10000);
}

static char *creds_json(const char *user, const char *password)
{
    json_t *o = json_pack("{s:s, s:s}", "user", user, "password", password);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

int http_register(int port, const char *user, const char *password)
{
    char *b = creds_json(user, password);
    struct http_resp r;
    http_call(port, "POST", "/api/v1/register", NULL, b, -1, &r);
    free(b);
    int st = r.status;
    if (st == 201) {
        const char *u = json_string_value(json_object_get(r.json, "user"));
        if (!u || strcmp(u, user) != 0)
            fail_msg("register %s: 201 but body is %s (expected {\"user\":\"%s\"})", user, r.body, user);
    }
    http_resp_free(&r);
    return st;
}

int http_login(int port, const char *user, const char *password, char *token)
{
    char *b = creds_json(user, password);
    struct http_resp r;
    http_call(port, "POST", "/api/v1/login", NULL, b, -1, &r);
    free(b);
    int st = r.status;
    if (st == 200) {
        const char *t = json_string_value(json_object_get(r.json, "token"));
        const char *u = json_string_value(json_object_get(r.json, "user"));
        json_t *exp = json_object_get(r.json, "expires_at");
        if (!t || strlen(t) != 64 || strspn(t, "0123456789abcdefABCDEF") != 64)
            fail_msg("login %s: token is not 64 hex characters: %s", user, r.body);
        if (!u || strcmp(u, user) != 0 || !json_is_integer(exp))
            fail_msg("login %s: body lacks user/expires_at: %s", user, r.body);
        memcpy(token, t, 65);
    }
    http_resp_free(&r);
    return st;
}

void server_start_with_user(struct h_server *s, const char *const *extra, const char *user,
                            const char *password, char *token)
{
    server_start(s, NULL, extra);
    if (http_register(s->port, user, password) != 201 || http_login(s->port, user, password, token) != 200) {
        h_dump_logs();
        fail_msg("register and log in %s", user);
    }
}

int http_post_message(int port, const char *token, const char *room, const char *body,
                      const char *cmid, int64_t *id)
{
    json_t *o = json_pack("{s:s}", "body", body);
    if (room)
        json_object_set_new(o, "room", json_string(room));
    if (cmid)
        json_object_set_new(o, "client_msg_id", json_string(cmid));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    struct http_resp r;
    http_call(port, "POST", "/api/v1/messages", token, s, -1, &r);
    free(s);
    int st = r.status;
    if (st == 201) {
        json_t *jid = json_object_get(r.json, "id");
        if (!json_is_integer(jid) || !json_is_integer(json_object_get(r.json, "ts")))
            fail_msg("POST /api/v1/messages: 201 without integer id/ts: %s", r.body);
        if (id)
            *id = json_integer_value(jid);
    }
    http_resp_free(&r);
    return st;
}

json_t *http_get_events(int port, const char *token, int64_t after)
{
    char path[128];
    snprintf(path, sizeof path, "/api/v1/events?after=%lld&wait=0&limit=1000", (long long)after);
    struct http_resp r;
    http_call(port, "GET", path, token, NULL, 0, &r);
    if (r.status != 200 || !json_is_array(json_object_get(r.json, "events")) ||
        !json_is_integer(json_object_get(r.json, "next")))
        fail_msg("GET %s: expected 200 {\"events\":[...],\"next\":N}, got %d %s", path, r.status, r.body);
    json_t *ev = json_incref(json_object_get(r.json, "events"));
    http_resp_free(&r);
    return ev;
}

static int error_mismatch(const char *what, const struct http_resp *r, int status, const char *code,
                          char *why, size_t whylen)
{
    if (r->status != status) {
        snprintf(why, whylen, "%s: expected HTTP %d, got %d; body: %.300s", what, status, r->status,
                 r->body ? r->body : "");
        return 1;
    }
    json_t *e = json_object_get(r->json, "error");
    if (!r->json || !json_is_object(r->json) || json_object_size(r->json) != 1 || !json_is_object(e)) {
        snprintf(why, whylen, "%s: body is not {\"error\":{...}}: %.300s", what, r->body ? r->body : "");
        return 1;
    }
    json_t *c = json_object_get(e, "code"), *m = json_object_get(e, "message");
    if (!json_is_string(c) || !json_is_string(m)) {
        snprintf(why, whylen, "%s: error lacks string code/message: %.300s", what, r->body);
        return 1;
    }
    if (code && strcmp(json_string_value(c), code) != 0) {
        snprintf(why, whylen, "%s: expected error code \"%s\", got \"%s\" (%s)", what, code,
                 json_string_value(c), json_string_value(m));
        return 1;
    }
    char *ct = http_header(r, "Content-Type");
    int ok = ct && strncasecmp(ct, "application/json", 16) == 0;
    if (!ok)
        snprintf(why, whylen, "%s: Content-Type is \"%s\", expected application/json", what, ct ? ct : "(none)");
    free(ct);
    return !ok;
}

int h_check_error(const char *what, const struct http_resp *r, int status, const char *code)
{
    char why[600];
    if (!error_mismatch(what, r, status, code, why, sizeof why))
        return 1;
    fprintf(stderr, "MISMATCH: %s\n", why);
    return 0;
}

void h_assert_error(const char *what, const struct http_resp *r, int status, const char *code)
{
    char why[600];
    if (error_mismatch(what, r, status, code, why, sizeof why))
        fail_msg("%s", why);
}

/* ------------------------------------------------------------------------ */
#define WS_KEY    "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="   /* RFC 6455 section 1.3 */

struct h_ws *ws_connect_raw(int port, const char *extra_headers, struct http_resp *resp)
{
    memset(resp, 0, sizeof *resp);
    int fd = h_tcp_connect(port);
    if (fd < 0)
        fail_msg("connect to 127.0.0.1:%d failed", port);
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: " WS_KEY "\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s\r\n",
                     port, extra_headers ? extra_headers : "Sec-WebSocket-Protocol: chat.v1\r\n");
    int64_t dl = h_deadline(10000);
    send_all(fd, req, (size_t)n, dl);
    struct h_ws *w = calloc(1, sizeof *w);
    w->fd = fd;
    w->close_code = -1;
    /* Read only the header block; whatever follows stays in w->in. */
    const char *he;
    while (!(he = find_hdr_end(&w->in))) {
        int k = recv_some(fd, &w->in, dl);
        if (k != 1)
            break;
    }
    if (!he) {
        resp->closed_early = 1;
        if (w->in.len) {
            resp->head = strndup(w->in.data, w->in.len);
            sscanf(resp->head, "HTTP/1.%*d %d", &resp->status);
        }
        resp->body = strdup("");
        ws_free(w);
        return NULL;
    }
    size_t hl = (size_t)(he - w->in.data);
    resp->head = strndup(w->in.data, hl);
    sscanf(resp->head, "HTTP/1.%*d %d", &resp->status);
    if (resp->status != 101) {
        /* Read the error response's body too. */
        struct h_buf rest = { 0 };
        buf_add(&rest, w->in.data, w->in.len);
        free(resp->head);
        resp->head = NULL;
        resp->status = 0;
        read_response(fd, &rest, resp, dl);
        buf_free(&rest);
        ws_free(w);
        return NULL;
    }
    resp->body = strdup("");
    buf_consume(&w->in, hl);
    return w;
}

struct h_ws *ws_connect(int port)
{
    struct http_resp r;
    struct h_ws *w = ws_connect_raw(port, NULL, &r);
    if (!w) {
        h_dump_logs();
        fail_msg("WebSocket handshake: expected 101, got %d: %s%s", r.status, r.head ? r.head : "", r.body ? r.body : "");
    }
    char *acc = http_header(&r, "Sec-WebSocket-Accept");
    char *proto = http_header(&r, "Sec-WebSocket-Protocol");
    int ok_acc = acc && strcmp(acc, WS_ACCEPT) == 0;
    int ok_proto = proto && strcmp(proto, "chat.v1") == 0;
    free(acc);
    free(proto);
    if (!ok_acc || !ok_proto) {
        char head[1024];
        snprintf(head, sizeof head, "%s", r.head);
        http_resp_free(&r);
        ws_free(w);
        fail_msg("WebSocket handshake: bad Sec-WebSocket-Accept or Sec-WebSocket-Protocol (want chat.v1):\n%s", head);
    }
    http_resp_free(&r);
    return w;
}

int ws_send_frame(struct h_ws *w, int opcode, int fin, const void *payload, size_t len)
{
    unsigned char hdr[14];
    size_t h = 0;
    hdr[h++] = (unsigned char)((fin ? 0x80 : 0) | (opcode & 0x0f));
    if (len < 126) {
        hdr[h++] = (unsigned char)(0x80 | len);
    } else if (len <= 0xffff) {
        hdr[h++] = 0x80 | 126;
        hdr[h++] = (unsigned char)(len >> 8);
        hdr[h++] = (unsigned char)len;
    } else {
        hdr[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            hdr[h++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    static const unsigned char mask[4] = { 0x37, 0xfa, 0x21, 0x3d };
    memcpy(hdr + h, mask, 4);
    h += 4;
    unsigned char *f = malloc(h + len + 1);
    memcpy(f, hdr, h);
    const unsigned char *p = payload;
    for (size_t i = 0; i < len; i++)
        f[h + i] = p[i] ^ mask[i & 3];
    int rc = send_all(w->fd, f, h + len, h_deadline(10000));
    free(f);
    return rc;
}

int ws_send_text(struct h_ws *w, const char *text)
{
    return ws_send_frame(w, WS_TEXT, 1, text, strlen(text));
}

int ws_send_raw(struct h_ws *w, const void *bytes, size_t len)
{
    return send_all(w->fd, bytes, len, h_deadline(10000));
}

int ws_wait_eof(struct h_ws *w, int64_t deadline)
{
    for (;;) {
        buf_consume(&w->in, w->in.len);
        int k = recv_some(w->fd, &w->in, deadline);
        if (k == -1)
            return 0;
        if (k == 0 || k == -2)
            return 1;
    }
}

/* Parses one complete frame at the start of w->in; returns 1 and consumes it,
 * or 0 if more bytes are needed. */
static int take_frame(struct h_ws *w, int *opcode, int *fin, char **payload, size_t *len)
{
    const unsigned char *b = (const unsigned char *)w->in.data;
    size_t n = w->in.len;
    if (n < 2)
        return 0;
    size_t h = 2;
    uint64_t pl = b[1] & 0x7f;
    int masked = b[1] & 0x80;
    if (pl == 126) {
        if (n < 4)
            return 0;
        pl = ((uint64_t)b[2] << 8) | b[3];
        h = 4;
    } else if (pl == 127) {
        if (n < 10)
            return 0;
        pl = 0;
        for (int i = 0; i < 8; i++)
            pl = (pl << 8) | b[2 + i];
        h = 10;
    }
    if (masked)
        h += 4;
    if (n < h + pl)
        return 0;
    *opcode = b[0] & 0x0f;
    *fin = !!(b[0] & 0x80);
    *payload = malloc(pl + 1);
    memcpy(*payload, b + h, pl);
    if (masked)
        for (uint64_t i = 0; i < pl; i++)
            (*payload)[i] ^= b[h - 4 + (i & 3)];
    (*payload)[pl] = '\0';
    *len = pl;
    buf_consume(&w->in, h + pl);
    return 1;
}

int ws_recv_frame(struct h_ws *w, int64_t deadline, int *opcode, int *fin, char **payload, size_t *len)
{
    for (;;) {
        if (take_frame(w, opcode, fin, payload, len)) {
            if (*opcode == WS_PING) {
                ws_send_frame(w, WS_PONG, 1, *payload, *len);
                free(*payload);
                continue;
            }
            if (*opcode == WS_PONG && !w->keep_pongs) {
                free(*payload);
                continue;
            }
            if (*opcode == WS_CLOSE) {
                w->closed = 1;
                w->close_code = *len >= 2 ? (((unsigned char)(*payload)[0] << 8) | (unsigned char)(*payload)[1]) : 1005;
                /* Echo the close, as RFC 6455 asks. */
                ws_send_frame(w, WS_CLOSE, 1, *payload, *len >= 2 ? 2 : 0);
            }
            return 1;
        }
        if (w->closed && w->in.len == 0 && w->close_code != -1)
            return -1;
        int k = recv_some(w->fd, &w->in, deadline);
        if (k == -1)
            return 0;
        if (k == 0 || k == -2) {   /* EOF or reset: nothing more will come */
            w->closed = 1;
            return -1;
        }
    }
}

json_t *ws_recv_json(struct h_ws *w, int64_t deadline)
{
    for (;;) {
        int op, fin;
        char *p;
        size_t n;
        int k = ws_recv_frame(w, deadline, &op, &fin, &p, &n);
        if (k == 0) {
            fprintf(stderr, "ws: time-out waiting for a frame\n");
            return NULL;
        }
        if (k < 0) {
            fprintf(stderr, "ws: connection ended without a close frame\n");
            return NULL;
        }
        if (op == WS_CLOSE) {
            fprintf(stderr, "ws: server closed with code %d (%.*s)\n", w->close_code,
                    n > 2 ? (int)(n - 2) : 0, n > 2 ? p + 2 : "");
            free(p);
            return NULL;
        }
        if (op != WS_TEXT || !fin) {
            fprintf(stderr, "ws: unexpected frame opcode %d fin %d from the server\n", op, fin);
            free(p);
            return NULL;
        }
        json_error_t jerr;
        json_t *j = json_loadb(p, n, 0, &jerr);
        if (!j || !json_is_object(j)) {
            fprintf(stderr, "ws: server text frame is not a JSON object: %.200s\n", p);
            json_decref(j);
            free(p);
            return NULL;
        }
        free(p);
        return j;
    }
}

json_t *ws_recv_op(struct h_ws *w, const char *op, int64_t deadline)
{
    for (;;) {
        json_t *j = ws_recv_json(w, deadline);
        if (!j)
            return NULL;
        const char *o = json_string_value(json_object_get(j, "op"));
        if (o && strcmp(o, op) == 0)
            return j;
        json_decref(j);
    }
}

int ws_wait_close(struct h_ws *w, int64_t deadline)
{
    for (;;) {
        int op, fin;
        char *p;
        size_t n;
        int k = ws_recv_frame(w, deadline, &op, &fin, &p, &n);
        if (k == 0)
            return -2;
        if (k < 0)
            return w->close_code;  /* -1 unless a close frame came before */
        free(p);
        if (op == WS_CLOSE)
            return w->close_code;
    }
}

json_t *ws_hello(struct h_ws *w, const char *token, int64_t after)
{
    json_t *o = json_pack("{s:s, s:s, s:I}", "op", "hello", "token", token, "after", (json_int_t)after);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    ws_send_text(w, s);
    free(s);
    json_t *r = ws_recv_json(w, h_deadline(10000));
    const char *op = json_string_value(json_object_get(r, "op"));
    if (!op || strcmp(op, "ready") != 0) {
        char *d = h_json_str(r);
        json_decref(r);
        h_dump_logs();
        char msg[512];
        snprintf(msg, sizeof msg, "ws hello: expected {\"op\":\"ready\",...} first, got %s", d);
        free(d);
        fail_msg("%s", msg);
    }
    if (!json_is_string(json_object_get(r, "user")) || !json_is_integer(json_object_get(r, "heartbeat_s")) ||
        !json_is_integer(json_object_get(r, "long_poll_max_s"))) {
        char *d = h_json_str(r);
        char msg[512];
        snprintf(msg, sizeof msg, "ws ready frame lacks user/heartbeat_s/long_poll_max_s: %s", d);
        free(d);
        json_decref(r);
        fail_msg("%s", msg);
    }
    return r;
}

void ws_free(struct h_ws *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    buf_free(&w->in);
    free(w);
}

/* ------------------------------------------------------------------------ */
/* Additions for the reliability tests. */
void server_start_same_port(struct h_server *s)
{
    if (s->proc)
        fail_msg("server_start_same_port: chatd is still running (stop or kill it first)");
    if (s->port <= 0)
        fail_msg("server_start_same_port: no port from an earlier run");
    int64_t dl = h_deadline(10000);
    while (server_spawn_port(s, s->port, 1) < 0) {
        if (h_now_ms() >= dl) {
            h_dump_logs();
            fail_msg("chatd could not listen on port %d again within 10 s", s->port);
        }
        h_pump(100);               /* the port is still taken: try again shortly */
    }
}

/* ------------------------------------------------------------------------ */
/* Additions for the bank tests. */
int http_call_parallel(int port, const char *method, const char *path, const char *token,
                       const char *body, int n, struct http_resp *r, int timeout_ms)
{
    if (n < 1 || n > 64)
        fail_msg("http_call_parallel: n must be 1-64, got %d", n);
    size_t len;
    char *req = build_request(port, method, path, token, body, -1, &len);
    int64_t dl = h_deadline(timeout_ms);
    int fds[64];
    for (int i = 0; i < n; i++) {
        memset(&r[i], 0, sizeof r[i]);
        fds[i] = h_tcp_connect(port);
    }
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0)
            send_all(fds[i], req, len, dl);   /* errors tolerated */
    free(req);
    int got = 0;
    for (int i = 0; i < n; i++) {
        if (fds[i] < 0)
            continue;
        struct h_buf in = { 0 };
        if (read_response(fds[i], &in, &r[i], dl) == 0 && r[i].status)
            got++;
        buf_free(&in);
        close(fds[i]);
    }
    return got;
}

int http_send_request(int port, const void *raw, size_t len)
{
    int fd = h_tcp_connect(port);
    if (fd < 0)
        return -1;
    if (send_all(fd, raw, len, h_deadline(5000)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int http_read_response(int fd, struct http_resp *r, int timeout_ms)
{
    memset(r, 0, sizeof *r);
    struct h_buf in = { 0 };
    int rc = read_response(fd, &in, r, h_deadline(timeout_ms));
    buf_free(&in);
    close(fd);
    return rc;
}

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

/* ------------------------------------------------------------------------ */
/* PostgreSQL (CHAT_TEST_PG) and clusters behind HAProxy. */

#define MAX_PG_DBS 64

static struct { char dir[256]; char url[300]; char name[64]; } pg_dbs[MAX_PG_DBS];
static int pg_ndbs, pg_seq;

const char *h_pg_url(void)
{
    const char *u = getenv("CHAT_TEST_PG");
    return u && *u ? u : NULL;
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
    set_nonblock(pfd[0]);
    int64_t dl = h_deadline(timeout_ms);
    int st = 0, exited = 0, open_ = 1;
    for (;;) {
        int wait_ms = remaining(dl) < 100 ? remaining(dl) : 100;
        if (open_) {
            if (pump_with(wait_ms, pfd[0], POLLIN)) {
                char tmp[4096];
                ssize_t k = read(pfd[0], tmp, sizeof tmp);
                if (k > 0 && out)
                    buf_add(out, tmp, (size_t)k);
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
        buf_free(&out);
        fail_msg("%s", msg);
    }
    buf_free(&out);
    pg_url_with_db(base, name, url, len);
    snprintf(pg_dbs[pg_ndbs].name, sizeof pg_dbs[0].name, "%s", name);
    snprintf(pg_dbs[pg_ndbs].url, sizeof pg_dbs[0].url, "%s", url);
    pg_dbs[pg_ndbs].dir[0] = '\0';
    pg_ndbs++;
}

/* The database of dbdir: the one made for it before, or a new one. */
static void pg_db_for(const char *dbdir, char *url, size_t len)
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

static void pg_drop_all(void)
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

void servers_start_shared(struct h_server *s, int n, const char *const *extra)
{
    if (n < 1 || n > H_CLUSTER_MAX)
        fail_msg("servers_start_shared: n must be 1-%d, got %d", H_CLUSTER_MAX, n);
    if (!h_pg_url())
        fail_msg("servers_start_shared: instances share a database only on PostgreSQL: set CHAT_TEST_PG "
                 "(scripts/with-pg.sh does)");
    /* Each instance is named as the balancer names it (chatd1, chatd2...):
     * --instance, which /healthz reports. */
    const char *ex[20];
    int ne = 0;
    for (const char *const *e = extra; e && *e && ne < 14; e++)
        ex[ne++] = *e;
    ex[ne++] = "--instance";
    ex[ne++] = "chatd1";
    ex[ne] = NULL;
    server_start(&s[0], NULL, ex);
    for (int i = 1; i < n; i++) {
        memset(&s[i], 0, sizeof s[i]);
        snprintf(s[i].dbdir, sizeof s[i].dbdir, "%s", s[0].dbdir);
        snprintf(s[i].dbpath, sizeof s[i].dbpath, "%s", s[0].dbpath);
        memcpy(s[i].extra, s[0].extra, sizeof s[i].extra);
        s[i].nextra = s[0].nextra;
        snprintf(s[i].extra[s[i].nextra - 1], sizeof s[i].extra[0], "chatd%d", i + 1);
        server_spawn(&s[i]);
    }
}

/* ---- HAProxy ---- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &al) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    if (port <= 0)
        fail_msg("no free port: %s", strerror(errno));
    return port;
}

/* s with every "from" replaced by "to" (new string). */
static char *str_replace_all(const char *s, const char *from, const char *to)
{
    struct h_buf b = { 0 };
    size_t fl = strlen(from), tl = strlen(to);
    const char *p;
    while ((p = strstr(s, from))) {
        buf_add(&b, s, (size_t)(p - s));
        buf_add(&b, to, tl);
        s = p + fl;
    }
    buf_add(&b, s, strlen(s));
    return b.data;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    struct h_buf b = { 0 };
    char tmp[4096];
    size_t k;
    while ((k = fread(tmp, 1, sizeof tmp, f)) > 0)
        buf_add(&b, tmp, k);
    fclose(f);
    if (!b.data)
        buf_add(&b, "", 0);
    return b.data;
}

/* The haproxy binary: $HAPROXY_BIN, or the first haproxy on PATH, or
 * /usr/sbin/haproxy (Debian's place, often not on a user's PATH). */
static const char *haproxy_bin(void)
{
    static char found[512];
    const char *e = getenv("HAPROXY_BIN");
    if (e && *e)
        return e;
    if (found[0])
        return found;
    char *path = strdup(getenv("PATH") ? getenv("PATH") : ""), *save = NULL;
    for (char *d = strtok_r(path, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(found, sizeof found, "%s/haproxy", d);
        if (access(found, X_OK) == 0) {
            free(path);
            return found;
        }
    }
    free(path);
    snprintf(found, sizeof found, "/usr/sbin/haproxy");
    return found;
}

char *haproxy_cmd(const struct h_haproxy *h, const char *cmd)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    size_t sl = strlen(h->sock);
    if (sl >= sizeof a.sun_path) {
        close(fd);
        return NULL;
    }
    memcpy(a.sun_path, h->sock, sl + 1);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return NULL;
    }
    set_nonblock(fd);
    int64_t dl = h_deadline(5000);
    char line[512];
    int n = snprintf(line, sizeof line, "%s\n", cmd);
    if (send_all(fd, line, (size_t)n, dl) < 0) {
        close(fd);
        return NULL;
    }
    struct h_buf b = { 0 };
    int k;
    while ((k = recv_some(fd, &b, dl)) == 1)
        ;
    close(fd);
    if (k != 0) {                  /* time-out or error: no complete answer */
        buf_free(&b);
        return NULL;
    }
    if (!b.data)
        buf_add(&b, "", 0);
    return b.data;
}

/* Column index of name in a `show stat` header line ("# pxname,svname,..."). */
static int stat_col(const char *header, const char *name)
{
    const char *p = header + (strncmp(header, "# ", 2) == 0 ? 2 : 0);
    size_t nl = strlen(name);
    for (int col = 0; p && *p; col++) {
        const char *e = strpbrk(p, ",\n");
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == nl && strncmp(p, name, nl) == 0)
            return col;
        if (!e || *e == '\n')
            break;
        p = e + 1;
    }
    return -1;
}

/* Field col of a CSV line into out. */
static void stat_field(const char *line, int col, char *out, size_t len)
{
    const char *p = line;
    for (int i = 0; i < col && p; i++) {
        p = strpbrk(p, ",\n");
        if (p && *p == ',')
            p++;
        else
            p = NULL;
    }
    size_t l = 0;
    if (p)
        while (p[l] && p[l] != ',' && p[l] != '\n')
            l++;
    snprintf(out, len, "%.*s", (int)l, p ? p : "");
}

int haproxy_backend(const struct h_haproxy *h, int i, int *sessions)
{
    char *st = haproxy_cmd(h, "show stat");
    if (!st)
        return -1;
    int c_px = stat_col(st, "pxname"), c_sv = stat_col(st, "svname");
    int c_status = stat_col(st, "status"), c_scur = stat_col(st, "scur");
    char want[32];
    snprintf(want, sizeof want, "chatd%d", i + 1);
    int rc = -1;
    for (const char *line = strchr(st, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
        const char *l = line + 1;
        char px[64], sv[64], status[64], scur[32];
        stat_field(l, c_px, px, sizeof px);
        stat_field(l, c_sv, sv, sizeof sv);
        if (strcmp(px, "chatd") != 0 || strcmp(sv, want) != 0)
            continue;
        stat_field(l, c_status, status, sizeof status);
        stat_field(l, c_scur, scur, sizeof scur);
        if (sessions)
            *sessions = atoi(scur);
        rc = strcmp(status, "UP") == 0;
        break;
    }
    free(st);
    return rc;
}

int haproxy_wait_backend(const struct h_haproxy *h, int i, int up, int64_t deadline)
{
    for (;;) {
        int r = haproxy_backend(h, i, NULL);
        if (r == up)
            return 1;
        if (h_now_ms() >= deadline)
            return 0;
        h_pump(remaining(deadline) < 50 ? remaining(deadline) : 50);
    }
}

/* One try on a port; 1 when up, 0 if it exited (port taken?), fails on a
 * time-out or a configuration error. */
static int haproxy_try(struct h_haproxy *h, const struct h_server *backends, int n)
{
    const char *tmpl_path = getenv("HAPROXY_CFG_IN");
    if (!tmpl_path || !*tmpl_path)
        tmpl_path = "deploy/haproxy.cfg.in";
    char *tmpl = read_file(tmpl_path);
    if (!tmpl)
        fail_msg("cannot read the HAProxy template %s: %s", tmpl_path, strerror(errno));
    char port[16], servers[H_CLUSTER_MAX * 64] = "";
    snprintf(port, sizeof port, "%d", h->port);
    for (int i = 0; i < n; i++) {
        char line[64];
        snprintf(line, sizeof line, "%sserver chatd%d 127.0.0.1:%d", i ? "\n    " : "", i + 1, backends[i].port);
        strcat(servers, line);
    }
    char *a = str_replace_all(tmpl, "@LISTEN_PORT@", port);
    char *b = str_replace_all(a, "@STATS_SOCKET@", h->sock);
    char *cfg = str_replace_all(b, "@SERVERS@", servers);
    free(tmpl);
    free(a);
    free(b);
    char cfgpath[300];
    snprintf(cfgpath, sizeof cfgpath, "%s/haproxy.cfg", h->dir);
    FILE *f = fopen(cfgpath, "w");
    if (!f || fputs(cfg, f) < 0 || fclose(f) != 0)
        fail_msg("cannot write %s", cfgpath);
    free(cfg);
    unlink(h->sock);

    char *argv[] = { (char *)haproxy_bin(), "-db", "-f", cfgpath, NULL };
    spawn_nowrap = 1;
    h->proc = spawn("haproxy", argv, NULL, 0);
    spawn_nowrap = 0;
    int64_t dl = h_deadline(10000);
    for (;;) {
        h_pump(20);
        if (h->proc->exited) {
            h_proc_wait_exit(h->proc, h_deadline(1000), NULL);
            if (h->proc->err.data && strstr(h->proc->err.data, "cannot bind")) {
                proc_forget(h->proc);
                h->proc = NULL;
                return 0;          /* the port was taken meanwhile: another one */
            }
            h_dump_logs();
            fail_msg("haproxy exited at start (see its stderr above)");
        }
        int all = 1;
        for (int i = 0; i < n && all; i++)
            all = haproxy_backend(h, i, NULL) == 1;
        if (all) {
            int fd = h_tcp_connect(h->port);
            if (fd >= 0) {
                close(fd);
                return 1;
            }
        }
        if (h_now_ms() >= dl) {
            h_dump_logs();
            char *st = haproxy_cmd(h, "show servers state");
            fprintf(stderr, "haproxy: show servers state:\n%s\n", st ? st : "(no answer)");
            free(st);
            fail_msg("haproxy on port %d: not every backend UP within 10 s", h->port);
        }
    }
}

void haproxy_start(struct h_haproxy *h, const struct h_server *backends, int n)
{
    harness_init();
    if (n < 1 || n > H_CLUSTER_MAX)
        fail_msg("haproxy_start: 1-%d backends, got %d", H_CLUSTER_MAX, n);
    memset(h, 0, sizeof *h);
    h->n = n;
    snprintf(h->dir, sizeof h->dir, "%s", h_tmpdir());
    snprintf(h->sock, sizeof h->sock, "%s/haproxy.sock", h->dir);
    for (int attempt = 0; attempt < 5; attempt++) {
        h->port = free_port();
        if (haproxy_try(h, backends, n)) {
            snprintf(h->url, sizeof h->url, "http://127.0.0.1:%d", h->port);
            return;
        }
    }
    fail_msg("haproxy could not bind a free port in 5 tries");
}

void haproxy_stop(struct h_haproxy *h)
{
    if (h->proc) {
        proc_forget(h->proc);
        h->proc = NULL;
    }
}

/* ---- clusters ---- */

void cluster_start(struct h_cluster *c, int n, const char *const *extra)
{
    memset(c, 0, sizeof *c);
    c->n = n;
    servers_start_shared(c->inst, n, extra);
    haproxy_start(&c->lb, c->inst, n);
    c->front.port = c->lb.port;
    snprintf(c->front.url, sizeof c->front.url, "%s", c->lb.url);
    snprintf(c->front.dbpath, sizeof c->front.dbpath, "%s", c->inst[0].dbpath);
}

void cluster_kill(struct h_cluster *c, int i)
{
    if (i < 0 || i >= c->n || !c->inst[i].proc)
        fail_msg("cluster_kill: instance %d is not running", i);
    server_kill(&c->inst[i]);
}

void cluster_revive(struct h_cluster *c, int i)
{
    if (i < 0 || i >= c->n)
        fail_msg("cluster_revive: no instance %d", i);
    server_start_same_port(&c->inst[i]);
    if (!haproxy_wait_backend(&c->lb, i, 1, h_deadline(10000))) {
        h_dump_logs();
        fail_msg("the balancer did not report instance %d (port %d) UP within 10 s of its restart", i,
                 c->inst[i].port);
    }
}

int cluster_busiest(const struct h_cluster *c)
{
    int best = -1, most = -1;
    for (int i = 0; i < c->n; i++) {
        int sess = 0;
        if (!c->inst[i].proc || haproxy_backend(&c->lb, i, &sess) < 0)
            continue;
        if (sess > most) {
            most = sess;
            best = i;
        }
    }
    return best;
}

void cluster_stop(struct h_cluster *c)
{
    haproxy_stop(&c->lb);
    for (int i = 0; i < c->n; i++)
        if (c->inst[i].proc)
            server_stop(&c->inst[i]);
}

/* ---- many requests at once ---- */

int http_call_many(const struct h_req *reqs, int n, struct http_resp *r, int timeout_ms)
{
    if (n < 1 || n > 512)
        fail_msg("http_call_many: n must be 1-512, got %d", n);
    int64_t dl = h_deadline(timeout_ms);
    int *fds = calloc((size_t)n, sizeof *fds);
    for (int i = 0; i < n; i++) {
        memset(&r[i], 0, sizeof r[i]);
        fds[i] = h_tcp_connect(reqs[i].port);
    }
    for (int i = 0; i < n; i++) {
        if (fds[i] < 0)
            continue;
        size_t len;
        char *req = build_request(reqs[i].port, reqs[i].method, reqs[i].path, reqs[i].token, reqs[i].body,
                                  -1, &len);
        send_all(fds[i], req, len, dl);   /* errors tolerated */
        free(req);
    }
    int got = 0;
    for (int i = 0; i < n; i++) {
        if (fds[i] < 0)
            continue;
        struct h_buf in = { 0 };
        if (read_response(fds[i], &in, &r[i], dl) == 0 && r[i].status)
            got++;
        buf_free(&in);
        close(fds[i]);
    }
    free(fds);
    return got;
}
