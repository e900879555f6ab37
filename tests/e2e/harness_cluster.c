/* harness_cluster.c — several chatd instances on one PostgreSQL database,
 * HAProxy in front of them (its configuration from deploy/haproxy.cfg.in,
 * its runtime API on a stats socket), and clusters of both: start, kill an
 * instance, revive it, find the busiest, stop. */
#include "harness.h"
#include "harness_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- instances on one database ---- */

/* Instance i on dbpath[i] when given (a database made with h_pg_createdb,
 * or the same one through a relay), else instance 0 on a new database and
 * the others on instance 0's. */
static void servers_start(struct h_server *s, int n, const char *const *extra, const char *const *dbpath)
{
    if (n < 1 || n > H_CLUSTER_MAX)
        fail_msg("h_servers_start_shared: n must be 1-%d, got %d", H_CLUSTER_MAX, n);
    if (!h_pg_url())
        fail_msg("h_servers_start_shared: instances share a database only on PostgreSQL: set CHAT_TEST_PG "
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
    if (dbpath && dbpath[0]) {             /* h_server_start on a given database */
        harness_init();
        memset(&s[0], 0, sizeof s[0]);
        snprintf(s[0].dbdir, sizeof s[0].dbdir, "%s", h_tmpdir());
        snprintf(s[0].dbpath, sizeof s[0].dbpath, "%s", dbpath[0]);
        for (int i = 0; i < ne; i++)
            snprintf(s[0].extra[s[0].nextra++], sizeof s[0].extra[0], "%s", ex[i]);
        h_server_spawn(&s[0]);
    } else {
        h_server_start(&s[0], NULL, ex);
    }
    for (int i = 1; i < n; i++) {
        memset(&s[i], 0, sizeof s[i]);
        snprintf(s[i].dbdir, sizeof s[i].dbdir, "%s", s[0].dbdir);
        snprintf(s[i].dbpath, sizeof s[i].dbpath, "%s", dbpath && dbpath[i] ? dbpath[i] : s[0].dbpath);
        memcpy(s[i].extra, s[0].extra, sizeof s[i].extra);
        s[i].nextra = s[0].nextra;
        snprintf(s[i].extra[s[i].nextra - 1], sizeof s[i].extra[0], "chatd%d", i + 1);
        h_server_spawn(&s[i]);
    }
}

void h_servers_start_shared(struct h_server *s, int n, const char *const *extra)
{
    servers_start(s, n, extra, NULL);
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
        h_buf_add(&b, s, (size_t)(p - s));
        h_buf_add(&b, to, tl);
        s = p + fl;
    }
    h_buf_add(&b, s, strlen(s));
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
        h_buf_add(&b, tmp, k);
    fclose(f);
    if (!b.data)
        h_buf_add(&b, "", 0);
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

char *h_haproxy_cmd(const struct h_haproxy *h, const char *cmd)
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
    h_set_nonblock(fd);
    int64_t dl = h_deadline(5000);
    char line[512];
    int n = snprintf(line, sizeof line, "%s\n", cmd);
    if (h_send_all(fd, line, (size_t)n, dl) < 0) {
        close(fd);
        return NULL;
    }
    struct h_buf b = { 0 };
    int k;
    while ((k = h_recv_some(fd, &b, dl)) == 1)
        ;
    close(fd);
    if (k != 0) {                  /* time-out or error: no complete answer */
        h_buf_free(&b);
        return NULL;
    }
    if (!b.data)
        h_buf_add(&b, "", 0);
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

int h_haproxy_backend(const struct h_haproxy *h, int i, int *sessions)
{
    char *st = h_haproxy_cmd(h, "show stat");
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

int h_haproxy_wait_backend(const struct h_haproxy *h, int i, int up, int64_t deadline)
{
    for (;;) {
        int r = h_haproxy_backend(h, i, NULL);
        if (r == up)
            return 1;
        if (h_now_ms() >= deadline)
            return 0;
        h_pump(h_remaining(deadline) < 50 ? h_remaining(deadline) : 50);
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
    h_spawn_nowrap = 1;
    h->proc = h_spawn("haproxy", argv, NULL, 0);
    h_spawn_nowrap = 0;
    int64_t dl = h_deadline(10000);
    for (;;) {
        h_pump(20);
        if (h->proc->exited) {
            h_proc_wait_exit(h->proc, h_deadline(1000), NULL);
            if (h->proc->err.data && strstr(h->proc->err.data, "cannot bind")) {
                h_proc_forget(h->proc);
                h->proc = NULL;
                return 0;          /* the port was taken meanwhile: another one */
            }
            h_dump_logs();
            fail_msg("haproxy exited at start (see its stderr above)");
        }
        int all = 1;
        for (int i = 0; i < n && all; i++)
            all = h_haproxy_backend(h, i, NULL) == 1;
        if (all) {
            int fd = h_tcp_connect(h->port);
            if (fd >= 0) {
                close(fd);
                return 1;
            }
        }
        if (h_now_ms() >= dl) {
            h_dump_logs();
            char *st = h_haproxy_cmd(h, "show servers state");
            fprintf(stderr, "haproxy: show servers state:\n%s\n", st ? st : "(no answer)");
            free(st);
            fail_msg("haproxy on port %d: not every backend UP within 10 s", h->port);
        }
    }
}

void h_haproxy_start(struct h_haproxy *h, const struct h_server *backends, int n)
{
    harness_init();
    if (n < 1 || n > H_CLUSTER_MAX)
        fail_msg("h_haproxy_start: 1-%d backends, got %d", H_CLUSTER_MAX, n);
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

void h_haproxy_stop(struct h_haproxy *h)
{
    if (h->proc) {
        h_proc_forget(h->proc);
        h->proc = NULL;
    }
}

/* ---- clusters ---- */

void h_cluster_start_dbs(struct h_cluster *c, int n, const char *const *extra, const char *const *dbpath)
{
    memset(c, 0, sizeof *c);
    c->n = n;
    servers_start(c->inst, n, extra, dbpath);
    h_haproxy_start(&c->lb, c->inst, n);
    c->front.port = c->lb.port;
    snprintf(c->front.url, sizeof c->front.url, "%s", c->lb.url);
    snprintf(c->front.dbpath, sizeof c->front.dbpath, "%s", c->inst[0].dbpath);
}

void h_cluster_start(struct h_cluster *c, int n, const char *const *extra)
{
    h_cluster_start_dbs(c, n, extra, NULL);
}

void h_cluster_kill(struct h_cluster *c, int i)
{
    if (i < 0 || i >= c->n || !c->inst[i].proc)
        fail_msg("h_cluster_kill: instance %d is not running", i);
    h_server_kill(&c->inst[i]);
}

void h_cluster_revive(struct h_cluster *c, int i)
{
    if (i < 0 || i >= c->n)
        fail_msg("h_cluster_revive: no instance %d", i);
    h_server_start_same_port(&c->inst[i]);
    if (!h_haproxy_wait_backend(&c->lb, i, 1, h_deadline(10000))) {
        h_dump_logs();
        fail_msg("the balancer did not report instance %d (port %d) UP within 10 s of its restart", i,
                 c->inst[i].port);
    }
}

int h_cluster_busiest(const struct h_cluster *c)
{
    int best = -1, most = -1;
    for (int i = 0; i < c->n; i++) {
        int sess = 0;
        if (!c->inst[i].proc || h_haproxy_backend(&c->lb, i, &sess) < 0)
            continue;
        if (sess > most) {
            most = sess;
            best = i;
        }
    }
    return best;
}

void h_cluster_stop(struct h_cluster *c)
{
    h_haproxy_stop(&c->lb);
    for (int i = 0; i < c->n; i++)
        if (c->inst[i].proc)
            h_server_stop(&c->inst[i]);
}
