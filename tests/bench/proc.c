/* proc.c — the machine side of a run: a private network namespace, the
 * open-file limit, CPU placement, the chatd child process and what /proc
 * says about it (CPU seconds of all its threads, RSS and its peak). */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- CPU placement ---- */

static int ncpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* set[0] = first cpu, set[1] = last cpu (inclusive); -1 = no pinning */
static int parse_range(const char *s, int set[2])
{
    char *end;
    long a = strtol(s, &end, 10), b = a;
    if (end == s)
        return -1;
    if (*end == '-') {
        const char *t = end + 1;
        b = strtol(t, &end, 10);
        if (end == t)
            return -1;
    }
    if (*end || a < 0 || b < a || b >= ncpus())
        return -1;
    set[0] = (int)a;
    set[1] = (int)b;
    return 0;
}

int placement_parse(const char *spec, struct placement *p)
{
    memset(p, 0, sizeof *p);
    snprintf(p->spec, sizeof p->spec, "%s", spec);
    p->server_set[0] = p->generator_set[0] = -1;
    if (strcmp(spec, "none") == 0)
        return 0;
    if (strcmp(spec, "same") == 0) {
        p->server_set[0] = p->server_set[1] = 0;
        p->generator_set[0] = p->generator_set[1] = 0;
        return 0;
    }
    if (strcmp(spec, "split") == 0) {
        if (ncpus() < 2) {          /* one CPU: nothing to split */
            fprintf(stderr, "chat-bench: --cpus split needs 2 CPUs: using same\n");
            snprintf(p->spec, sizeof p->spec, "same");
            p->server_set[0] = p->server_set[1] = 0;
            p->generator_set[0] = p->generator_set[1] = 0;
            return 0;
        }
        p->server_set[0] = p->server_set[1] = 0;
        p->generator_set[0] = p->generator_set[1] = 1;
        return 0;
    }
    char buf[32];
    snprintf(buf, sizeof buf, "%s", spec);
    char *colon = strchr(buf, ':');
    if (!colon)
        return -1;
    *colon = '\0';
    return parse_range(buf, p->server_set) < 0 || parse_range(colon + 1, p->generator_set) < 0
           ? -1 : 0;
}

static int apply(pid_t pid, const int set[2])
{
    if (set[0] < 0)
        return 0;
    cpu_set_t cs;
    CPU_ZERO(&cs);
    for (int c = set[0]; c <= set[1]; c++)
        CPU_SET(c, &cs);
    return sched_setaffinity(pid, sizeof cs, &cs);
}

static void describe(pid_t pid, char *out, size_t len)
{
    cpu_set_t cs;
    size_t used = 0;
    out[0] = '\0';
    if (sched_getaffinity(pid, sizeof cs, &cs) < 0) {
        snprintf(out, len, "?");
        return;
    }
    for (int c = 0; c < CPU_SETSIZE && used + 8 < len; c++)
        if (CPU_ISSET(c, &cs))
            used += (size_t)snprintf(out + used, len - used, "%s%d", used ? "," : "", c);
}

int placement_apply_self(struct placement *p)
{
    return apply(0, p->generator_set);
}

void placement_observe(struct placement *p, pid_t server)
{
    describe(0, p->generator_cpus, sizeof p->generator_cpus);
    if (server > 0)
        describe(server, p->server_cpus, sizeof p->server_cpus);
    else
        snprintf(p->server_cpus, sizeof p->server_cpus, "unknown");
}

/* ---- namespace and limits ---- */

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

int netns_enter(char *why, size_t len)
{
    if (unshare(CLONE_NEWNET) < 0) {
        snprintf(why, len, "no private network namespace (%s): sharing the host's loopback",
                 strerror(errno));
        return -1;
    }
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
    int ok = s >= 0 && ioctl(s, SIOCGIFFLAGS, &ifr) == 0;
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    ok = ok && ioctl(s, SIOCSIFFLAGS, &ifr) == 0;
    if (s >= 0)
        close(s);
    if (!ok) {
        snprintf(why, len, "cannot bring lo up in the new namespace (%s)", strerror(errno));
        return -1;
    }
    /* per namespace: the host's settings are untouched */
    write_file("/proc/sys/net/ipv4/ip_local_port_range", "1024 65535");
    write_file("/proc/sys/net/core/somaxconn", "65535");
    write_file("/proc/sys/net/ipv4/tcp_max_syn_backlog", "65535");
    snprintf(why, len, "private network namespace (lo only, ports 1024-65535)");
    return 0;
}

long nofile_raise(long want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    if ((long)rl.rlim_cur >= want)
        return (long)rl.rlim_cur;
    long nr_open = 1048576;
    FILE *f = fopen("/proc/sys/fs/nr_open", "r");
    if (f) {
        if (fscanf(f, "%ld", &nr_open) != 1)
            nr_open = 1048576;
        fclose(f);
    }
    if (want > nr_open)
        want = nr_open;
    struct rlimit up = { (rlim_t)want, (rlim_t)want > rl.rlim_max ? (rlim_t)want : rl.rlim_max };
    if (setrlimit(RLIMIT_NOFILE, &up) < 0) {      /* not root: up to the hard limit */
        up.rlim_cur = rl.rlim_max;
        up.rlim_max = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &up);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    return (long)rl.rlim_cur;
}

/* ---- the server process ---- */

static void rm_db_dir(const char *dir)
{
    static const char *files[] = { "chat.db", "chat.db-wal", "chat.db-shm", "chat.db-journal" };
    char path[600];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

int server_start(struct server_proc *sp, const char *chatd, const char *db_parent, const char *db_given,
                 const char *log_path, char *const *extra, int n_extra,
                 const struct placement *pl)
{
    char db[600];
    int out[2];
    memset(sp, 0, sizeof *sp);
    sp->pid = -1;
    if (db_given) {
        snprintf(db, sizeof db, "%s", db_given);     /* sp->dir stays empty: nothing removed */
    } else {
        snprintf(sp->dir, sizeof sp->dir, "%s/db.XXXXXX", db_parent);
        if (!mkdtemp(sp->dir)) {
            fprintf(stderr, "chat-bench: mkdtemp %s: %s\n", sp->dir, strerror(errno));
            return -1;
        }
        snprintf(db, sizeof db, "%s/chat.db", sp->dir);
    }
    snprintf(sp->log, sizeof sp->log, "%s", log_path);

    char **argv = calloc((size_t)n_extra + 8, sizeof *argv);
    int n = 0;
    argv[n++] = (char *)chatd;
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n++] = "--db";
    argv[n++] = db;
    for (int i = 0; i < n_extra; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    size_t used = 0;
    for (int i = 0; i < n && used + 2 < sizeof sp->argv_text; i++)
        used += (size_t)snprintf(sp->argv_text + used, sizeof sp->argv_text - used, "%s%s",
                                 i ? " " : "", i == 4 && !db_given ? "TMP/chat.db" : argv[i]);

    if (pipe2(out, O_CLOEXEC) < 0) {
        free(argv);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        free(argv);
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (pl)
            apply(0, pl->server_set);
        int log = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        dup2(out[1], 1);
        if (log >= 0)
            dup2(log, 2);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        execv(chatd, argv);
        fprintf(stderr, "exec %s: %s\n", chatd, strerror(errno));
        _exit(127);
    }
    free(argv);
    close(out[1]);
    sp->pid = pid;

    /* first stdout line: "listening on http://HOST:PORT" */
    char line[256];
    size_t got = 0;
    int64_t deadline = mono_ns() + 15 * 1000000000LL;
    while (got < sizeof line - 1 && !memchr(line, '\n', got)) {
        struct pollfd p = { .fd = out[0], .events = POLLIN };
        int ms = (int)((deadline - mono_ns()) / 1000000);
        if (ms <= 0 || poll(&p, 1, ms) <= 0)
            break;
        ssize_t r = read(out[0], line + got, sizeof line - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(out[0]);
    line[got] = '\0';
    const char *colon = strrchr(line, ':');
    if (!strstr(line, "listening on") || !colon || (sp->port = atoi(colon + 1)) <= 0) {
        fprintf(stderr, "chat-bench: chatd did not start (see %s): %s\n", log_path, line);
        server_stop(sp);
        return -1;
    }
    return 0;
}

int server_stop(struct server_proc *sp)
{
    int status = -1;
    if (sp->pid > 0) {
        kill(sp->pid, SIGTERM);
        int64_t deadline = mono_ns() + 10 * 1000000000LL;
        pid_t r = 0;
        while ((r = waitpid(sp->pid, &status, WNOHANG)) == 0 && mono_ns() < deadline)
            usleep(10000);
        if (r == 0) {
            kill(sp->pid, SIGKILL);
            waitpid(sp->pid, &status, 0);
            status = -1;
        }
        sp->pid = -1;
    }
    if (sp->dir[0])
        rm_db_dir(sp->dir);
    sp->dir[0] = '\0';
    return status;
}

/* ---- /proc ---- */

int proc_read(pid_t pid, struct proc_sample *out)
{
    char path[64], buf[4096];
    memset(out, 0, sizeof *out);
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* fields after the ")" of comm: state is field 3, utime 14, stime 15 */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long long ut = 0, st = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    out->cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    if (!(f = fopen(path, "r")))
        return -1;
    while (fgets(buf, sizeof buf, f)) {
        if (strncmp(buf, "VmRSS:", 6) == 0)
            out->rss_kb = atol(buf + 6);
        else if (strncmp(buf, "VmHWM:", 6) == 0)
            out->hwm_kb = atol(buf + 6);
    }
    fclose(f);
    return 0;
}

int proc_reset_hwm(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/clear_refs", (int)pid);
    return write_file(path, "5");
}

double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

long self_rss_kb(void)
{
    struct proc_sample s;
    return proc_read(getpid(), &s) == 0 ? s.rss_kb : -1;
}

int netdev_lo(uint64_t *bytes, uint64_t *packets)
{
    FILE *f = fopen("/proc/net/dev", "r");
    char line[512];
    int found = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        char *p = line;
        while (*p == ' ')
            p++;
        if (strncmp(p, "lo:", 3) != 0)
            continue;
        unsigned long long rb, rp, tb, tp;
        /* rx: bytes packets errs drop fifo frame compressed multicast; tx: bytes packets */
        if (sscanf(p + 3, "%llu %llu %*u %*u %*u %*u %*u %*u %llu %llu", &rb, &rp, &tb, &tp) == 4) {
            *bytes = tb;    /* on lo every packet is counted once as tx, once as rx */
            *packets = tp;
            found = 0;
        }
    }
    fclose(f);
    return found;
}

const char *fs_type_of(const char *path)
{
    struct statfs s;
    if (statfs(path, &s) < 0)
        return "?";
    switch ((unsigned long)s.f_type) {
    case EXT4_SUPER_MAGIC: return "ext4";
    case TMPFS_MAGIC: return "tmpfs";
    case BTRFS_SUPER_MAGIC: return "btrfs";
    case XFS_SUPER_MAGIC: return "xfs";
    case OVERLAYFS_SUPER_MAGIC: return "overlayfs";
    default: return "other";
    }
}

/* Median time of a 200-byte append + fdatasync in dir: what one durable
 * commit costs on this disk right now (it varies with other I/O). */
double fsync_probe_ms(const char *dir, int n)
{
    char path[600];
    char buf[200];
    struct samples sm = { 0 };
    memset(buf, 'x', sizeof buf);
    snprintf(path, sizeof path, "%s/fsync-probe.XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0)
        return NAN;
    unlink(path);
    for (int i = 0; i < n; i++) {
        int64_t t0 = mono_ns();
        if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf || fdatasync(fd) < 0)
            break;
        samples_add(&sm, mono_ns() - t0);
    }
    close(fd);
    samples_sort(&sm);
    double ms = samples_pct_ms(&sm, 50);
    samples_free(&sm);
    return ms;
}
