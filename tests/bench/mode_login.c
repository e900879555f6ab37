/* mode_login.c — chat-bench --login N: what a protocol v1.1 client does when
 * it starts, against a server holding many stored events (made by
 * tests/bench/seed-events.sh). Per transport, N fresh logins one after the
 * other, each:
 *
 *   POST /api/v1/login                                   -> token
 *   the cursor C, by transport, and GET /api/v1/rooms, in parallel:
 *     websocket   GET /api/v1/ws, hello {"after":"latest"} -> ready.after
 *     sse         GET /api/v1/stream?after=latest          -> ready's after
 *     long-poll,  GET /api/v1/events?after=latest&wait=0  -> next
 *     short-poll
 *   for the room on screen (general, the first of bin/chat's room bar):
 *     GET /api/v1/rooms/general/messages?before=C+1&limit=100 (and a long
 *     poll parks GET /events?after=C); the other joined rooms show their
 *     unread counts from the rooms list, their pages come when first shown
 *
 * timed from the login request until the newest messages on screen have
 * arrived, and the bytes every connection of it moved by then (TCP_INFO:
 * both directions, HTTP and WebSocket headers included). Plain non-blocking
 * sockets and poll() in this one process, no lws: the figures are the
 * server's and the protocol's, not a client library's. */
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LOGIN_PASSWORD  "bench-password-0123"   /* clients.c, seed-events.sh */
#define HISTORY_LIMIT   100
#define SHOWN_ROOM      "general"               /* on screen at the start */
#define MAX_CONNS       8                       /* login, cursor, rooms, page, park */
#define STEP_TIMEOUT_S  30

enum ckind { C_HTTP, C_WS, C_SSE, C_PARK };

/* One connection of a login: an HTTP exchange (done when the whole answer
 * is in), a WebSocket or an SSE stream (done at its ready), or a parked
 * long poll (done when its request is out). */
struct conn {
    int kind, fd, done, failed;
    char req[4096];
    size_t req_len, req_off;
    char *buf;
    size_t len, cap, head_len;
    long body_len;
    int status, hello_sent;
    int64_t after;              /* C_WS, C_SSE: the ready's cursor */
    struct tcp_counts tc;       /* the last reading */
};

struct login_run {
    const char *host, *prefix;
    int port;
    struct conn c[MAX_CONNS];
    int n;
    /* one login's results */
    double login_ms, after_ms, total_ms;
    double cursor_ms;           /* token -> cursor and rooms list */
    uint64_t bytes, login_bytes;
    int rooms, events, bad_events;
    int64_t cursor;
    char why[256];
};

static int tcp_connect(const char *host, int port)
{
    char ps[16];
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    snprintf(ps, sizeof ps, "%d", port);
    if (getaddrinfo(host, ps, &hints, &ai) != 0)
        return -1;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0 && (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ||
                    fcntl(fd, F_SETFL, O_NONBLOCK) < 0)) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

static struct conn *conn_open(struct login_run *L, int kind, const char *method, const char *path,
                              const char *token, const char *body)
{
    if (L->n == MAX_CONNS)
        return NULL;
    struct conn *c = &L->c[L->n++];
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->body_len = -1;
    c->fd = tcp_connect(L->host, L->port);
    char auth[300] = "";
    if (token)
        snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);
    int n;
    if (kind == C_WS)
        n = snprintf(c->req, sizeof c->req,
                     "GET %s%s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Protocol: chat.v1\r\n\r\n",
                     L->prefix, path, L->host, L->port);
    else if (body)
        n = snprintf(c->req, sizeof c->req,
                     "%s %s%s HTTP/1.1\r\nHost: %s:%d\r\n%sContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     method, L->prefix, path, L->host, L->port, auth, strlen(body), body);
    else
        n = snprintf(c->req, sizeof c->req, "%s %s%s HTTP/1.1\r\nHost: %s:%d\r\n%sConnection: close\r\n\r\n",
                     method, L->prefix, path, L->host, L->port, auth);
    c->req_len = n > 0 && (size_t)n < sizeof c->req ? (size_t)n : 0;
    if (c->fd < 0 || !c->req_len) {
        c->failed = 1;
        snprintf(L->why, sizeof L->why, "cannot connect or request too long: %s", path);
    }
    return c;
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0) {
        tcpinfo_read(c->fd, &c->tc);
        close(c->fd);
    }
    c->fd = -1;
}

/* The WebSocket hello, a masked text frame. The masking key is 0 (the
 * payload goes as is): a server cannot tell, and nothing here is a proxy. */
static int ws_hello(struct conn *c, const char *token)
{
    char text[400];
    int n = snprintf(text, sizeof text, "{\"op\":\"hello\",\"token\":\"%s\",\"after\":\"latest\"}", token);
    if (n < 0 || n >= (int)sizeof text)
        return -1;
    unsigned char f[512];
    size_t h = 0;
    f[h++] = 0x81;
    if (n < 126) {
        f[h++] = (unsigned char)(0x80 | n);
    } else {
        f[h++] = 0x80 | 126;
        f[h++] = (unsigned char)(n >> 8);
        f[h++] = (unsigned char)n;
    }
    memset(f + h, 0, 4);
    h += 4;
    memcpy(f + h, text, (size_t)n);
    return write(c->fd, f, h + (size_t)n) == (ssize_t)(h + (size_t)n) ? 0 : -1;
}

static int64_t json_after(const char *s, size_t len, const char *key)
{
    json_t *o = json_loadb(s, len, 0, NULL);
    json_t *v = o ? json_object_get(o, key) : NULL;
    int64_t r = json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
    json_decref(o);
    return r;
}

/* The first complete server frame's text, if it is the ready. */
static void ws_parse(struct conn *c)
{
    const unsigned char *p = (const unsigned char *)c->buf + c->head_len;
    size_t avail = c->len - c->head_len, h = 2;
    while (avail >= 2) {
        uint64_t n = p[1] & 0x7f;
        h = 2;
        if (n == 126) {
            if (avail < 4)
                return;
            n = (uint64_t)p[2] << 8 | p[3];
            h = 4;
        } else if (n == 127) {
            if (avail < 10)
                return;
            n = 0;
            for (int i = 0; i < 8; i++)
                n = n << 8 | p[2 + i];
            h = 10;
        }
        if (avail < h + n)
            return;
        int64_t a = (p[0] & 0x0f) == 1 ? json_after((const char *)p + h, (size_t)n, "after") : -1;
        if (a >= 0) {
            c->after = a;
            c->done = 1;
            return;
        }
        if ((p[0] & 0x0f) == 8) {          /* close: the hello was refused */
            c->failed = 1;
            return;
        }
        p += h + n;
        avail -= h + n;
    }
}

static void sse_parse(struct conn *c)
{
    c->buf[c->len] = '\0';
    char *ev = strstr(c->buf + c->head_len, "event: ready\n");
    char *data = ev ? strstr(ev, "data: ") : NULL;
    char *nl = data ? strchr(data, '\n') : NULL;
    if (nl) {
        c->after = json_after(data + 6, (size_t)(nl - data - 6), "after");
        c->done = c->after >= 0;
        c->failed = !c->done;
    }
}

static void conn_head(struct conn *c)
{
    c->buf[c->len] = '\0';
    char *end = strstr(c->buf, "\r\n\r\n");
    if (!end)
        return;
    c->head_len = (size_t)(end + 4 - c->buf);
    c->status = atoi(c->buf + 9);
    for (char *l = strstr(c->buf, "\r\n"); l && l < end; l = strstr(l + 2, "\r\n"))
        if (strncasecmp(l + 2, "content-length:", 15) == 0)
            c->body_len = atol(l + 17);
}

/* Reads what is there; sets done or failed. */
static void conn_read(struct conn *c, const char *token)
{
    for (;;) {
        if (c->cap - c->len < 65536) {
            size_t cap = c->cap ? c->cap * 2 : 131072;
            char *b = realloc(c->buf, cap + 1);
            if (!b) {
                c->failed = 1;
                return;
            }
            c->buf = b;
            c->cap = cap;
        }
        ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (r <= 0) {               /* the server closed: an HTTP answer is complete */
            if (!c->head_len)
                conn_head(c);
            c->done = c->kind == C_HTTP && c->head_len > 0;
            c->failed = !c->done;
            return;
        }
        c->len += (size_t)r;
    }
    if (!c->head_len)
        conn_head(c);
    if (!c->head_len)
        return;
    if (c->kind == C_HTTP) {
        c->done = c->body_len >= 0 && c->len >= c->head_len + (size_t)c->body_len;
    } else if (c->kind == C_WS) {
        if (c->status != 101) {
            c->failed = 1;
        } else if (!c->hello_sent) {
            c->hello_sent = 1;
            if (ws_hello(c, token) < 0)
                c->failed = 1;
        }
        if (!c->failed)
            ws_parse(c);
    } else if (c->kind == C_SSE) {
        if (c->status != 200)
            c->failed = 1;
        else
            sse_parse(c);
    }
}

/* Drives every open connection until the ones in want[] are done. */
static int conns_wait(struct login_run *L, struct conn **want, int n_want, const char *token)
{
    int64_t deadline = mono_ns() + (int64_t)STEP_TIMEOUT_S * 1000000000;
    for (;;) {
        int pending = 0;
        for (int i = 0; i < n_want; i++) {
            if (!want[i]) {
                snprintf(L->why, sizeof L->why, "too many connections for one login");
                return -1;
            }
            if (want[i]->failed) {
                if (!L->why[0])
                    snprintf(L->why, sizeof L->why, "a request failed (HTTP %d): %.*s", want[i]->status,
                             (int)strcspn(want[i]->req, "\r"), want[i]->req);
                return -1;
            }
            pending += !want[i]->done;
        }
        if (!pending)
            return 0;
        struct pollfd p[MAX_CONNS];
        struct conn *pc[MAX_CONNS];
        int np = 0;
        for (int i = 0; i < L->n; i++) {
            struct conn *c = &L->c[i];
            if (c->fd < 0 || c->failed || (c->done && c->kind != C_WS && c->kind != C_SSE))
                continue;
            p[np] = (struct pollfd){ .fd = c->fd, .events = POLLIN | (c->req_off < c->req_len ? POLLOUT : 0) };
            pc[np++] = c;
        }
        int ms = (int)((deadline - mono_ns()) / 1000000);
        if (ms <= 0 || poll(p, (nfds_t)np, ms) <= 0) {
            snprintf(L->why, sizeof L->why, "no answer within %d s", STEP_TIMEOUT_S);
            return -1;
        }
        for (int i = 0; i < np; i++) {
            struct conn *c = pc[i];
            if (p[i].revents & POLLOUT) {
                ssize_t w = write(c->fd, c->req + c->req_off, c->req_len - c->req_off);
                if (w > 0)
                    c->req_off += (size_t)w;
                if (c->kind == C_PARK && c->req_off == c->req_len)
                    c->done = 1;
            }
            if (p[i].revents & (POLLIN | POLLHUP | POLLERR))
                conn_read(c, token);
            if (c->done && c->kind == C_HTTP)
                conn_close(c);
        }
    }
}

static json_t *conn_json(struct conn *c)
{
    return json_loadb(c->buf + c->head_len, c->len - c->head_len, 0, NULL);
}

static void path_name(char *out, size_t len, const char *name)
{
    size_t o = 0;
    for (const char *s = name; *s && o + 4 < len; s++) {
        if (*s == '@' || *s == ',')
            o += (size_t)snprintf(out + o, len - o, "%%%02X", (unsigned char)*s);
        else
            out[o++] = *s;
    }
    out[o] = '\0';
}

/* The newest page of the room on screen (sync.c's start), after checking it
 * is among the joined rooms in rooms_c's list; the long poll parks. */
static int fetch_histories(struct login_run *L, struct conn *rooms_c, int64_t cursor, const char *token,
                           const char *transport)
{
    json_t *root = conn_json(rooms_c), *rooms = json_object_get(root, "rooms"), *r;
    struct conn *want[MAX_CONNS];
    int nw = 0;
    size_t i;
    char path[512], enc[200];
    int shown = 0;
    L->rooms = 0;
    json_array_foreach(rooms, i, r) {
        const char *name = json_string_value(json_object_get(r, "name"));
        if (!name || !json_is_true(json_object_get(r, "joined")))
            continue;
        L->rooms++;
        shown += strcmp(name, SHOWN_ROOM) == 0;
    }
    json_decref(root);
    if (!shown) {
        snprintf(L->why, sizeof L->why, "GET /api/v1/rooms: %s not joined (rooms API missing?)", SHOWN_ROOM);
        return -1;
    }
    path_name(enc, sizeof enc, SHOWN_ROOM);
    snprintf(path, sizeof path, "/api/v1/rooms/%s/messages?before=%" PRId64 "&limit=%d", enc, cursor + 1,
             HISTORY_LIMIT);
    want[nw++] = conn_open(L, C_HTTP, "GET", path, token, NULL);
    if (strcmp(transport, "long-poll") == 0) {
        snprintf(path, sizeof path, "/api/v1/events?after=%" PRId64 "&wait=25", cursor);
        conn_open(L, C_PARK, "GET", path, token, NULL);
    }
    if (conns_wait(L, want, nw, token) < 0)
        return -1;
    for (int k = 0; k < nw; k++) {
        json_t *h = conn_json(want[k]), *evs = json_object_get(h, "events"), *ev;
        size_t j;
        if (want[k]->status != 200 || !json_is_array(evs))
            L->bad_events++;
        json_array_foreach(evs, j, ev) {
            json_t *id = json_object_get(ev, "id");
            L->events++;
            if (!json_is_integer(id) || json_integer_value(id) > cursor)
                L->bad_events++;
        }
        json_decref(h);
    }
    return 0;
}

/* The cursor step of each transport. */
static struct conn *open_cursor(struct login_run *L, const char *transport, const char *token)
{
    if (strcmp(transport, "websocket") == 0)
        return conn_open(L, C_WS, "GET", "/api/v1/ws", token, NULL);
    if (strcmp(transport, "sse") == 0)
        return conn_open(L, C_SSE, "GET", "/api/v1/stream?after=latest", token, NULL);
    return conn_open(L, C_HTTP, "GET", "/api/v1/events?after=latest&wait=0", token, NULL);
}

static int one_login(struct login_run *L, const char *transport, const char *user)
{
    char body[256], token[200] = "";
    int rc = -1;
    L->n = 0;
    L->why[0] = '\0';
    L->rooms = L->events = L->bad_events = 0;
    snprintf(body, sizeof body, "{\"user\":\"%s\",\"password\":\"%s\"}", user, LOGIN_PASSWORD);
    int64_t t0 = mono_ns();
    struct conn *lc = conn_open(L, C_HTTP, "POST", "/api/v1/login", NULL, body);
    if (conns_wait(L, &lc, 1, NULL) < 0)
        goto out;
    json_t *lj = conn_json(lc);
    const char *tk = json_string_value(json_object_get(lj, "token"));
    if (lc->status == 200 && tk)
        snprintf(token, sizeof token, "%s", tk);
    json_decref(lj);
    if (!token[0]) {
        snprintf(L->why, sizeof L->why, "login %s: HTTP %d", user, lc->status);
        goto out;
    }
    int64_t t1 = mono_ns();
    struct conn *want[2] = { open_cursor(L, transport, token),
                             conn_open(L, C_HTTP, "GET", "/api/v1/rooms", token, NULL) };
    if (conns_wait(L, want, 2, token) < 0)
        goto out;
    L->cursor_ms = (double)(mono_ns() - t1) / 1e6;
    int64_t cursor = want[0]->kind == C_HTTP ? json_after(want[0]->buf + want[0]->head_len,
                                                          want[0]->len - want[0]->head_len, "next")
                                             : want[0]->after;
    if (want[0]->status != 200 && want[0]->status != 101) {
        snprintf(L->why, sizeof L->why, "%s cursor: HTTP %d", transport, want[0]->status);
        goto out;
    }
    if (cursor < 0 || want[1]->status != 200) {
        snprintf(L->why, sizeof L->why, "no cursor (after=latest unsupported?) or GET /rooms HTTP %d",
                 want[1]->status);
        goto out;
    }
    L->cursor = cursor;
    if (fetch_histories(L, want[1], cursor, token, transport) < 0)
        goto out;
    int64_t t2 = mono_ns();
    L->login_ms = (double)(t1 - t0) / 1e6;
    L->after_ms = (double)(t2 - t1) / 1e6;
    L->total_ms = (double)(t2 - t0) / 1e6;
    rc = 0;
out:
    L->bytes = 0;
    for (int i = 0; i < L->n; i++) {
        conn_close(&L->c[i]);
        uint64_t b = L->c[i].tc.bytes_in + L->c[i].tc.bytes_out;
        L->bytes += b;
        if (i == 0)
            L->login_bytes = b;
        free(L->c[i].buf);
    }
    return rc;
}

struct login_row {
    const char *transport;
    int ok, tried, rooms, events, bad;
    int64_t newest;             /* the newest event id the login saw */
    double login[2], after[2], total[2], kb[2], kb_after[2], cursor[2];   /* p50, max */
};

static void p50_max(double *v, int n, double out[2])
{
    double mx = NAN;
    for (int i = 0; i < n; i++)
        if (isnan(mx) || v[i] > mx)
            mx = v[i];
    out[1] = mx;
    out[0] = median_of(v, (size_t)n);
}

static int login_transport(struct env *e, struct run *r, const char *transport, const char *user,
                           struct login_row *row)
{
    struct login_run *L = calloc(1, sizeof *L);
    int n = e->o->conns;
    double *v = calloc((size_t)n * 6, sizeof *v);
    if (!L || !v) {
        free(L);
        free(v);
        return -1;
    }
    L->host = r->b.host;
    L->port = r->b.port;
    L->prefix = r->b.prefix;
    row->transport = transport;
    row->tried = n;
    for (int i = 0; i < n; i++) {
        if (one_login(L, transport, user) < 0) {
            fprintf(stderr, "chat-bench: login %s #%d: %s\n", transport, i + 1, L->why);
        } else {
            int k = row->ok++;
            v[k] = L->login_ms;
            v[n + k] = L->after_ms;
            v[2 * n + k] = L->total_ms;
            v[3 * n + k] = (double)L->bytes / 1000.0;
            v[4 * n + k] = (double)(L->bytes - L->login_bytes) / 1000.0;
            row->rooms = L->rooms;
            row->events = L->events;
            row->bad += L->bad_events;
            row->newest = L->cursor;
            v[5 * n + k] = L->cursor_ms;
        }
        usleep(100000);
    }
    p50_max(v, row->ok, row->login);
    p50_max(v + n, row->ok, row->after);
    p50_max(v + 2 * n, row->ok, row->total);
    p50_max(v + 3 * n, row->ok, row->kb);
    p50_max(v + 4 * n, row->ok, row->kb_after);
    p50_max(v + 5 * n, row->ok, row->cursor);
    free(v);
    free(L);
    return row->ok == n && !row->bad ? 0 : -1;
}

static void login_report(const struct login_row *rows, int n, const char *user, int64_t events,
                         const char *out_dir, const char *name)
{
    printf("\n### Login on a server whose newest event id is %" PRId64 ": %s, newest %d messages of the room on screen (" SHOWN_ROOM ")\n\n"
           "| transport | logins ok | joined rooms | messages loaded | login (argon2id) ms p50 / max "
           "| token → cursor + rooms list ms p50 / max | token → newest messages ms p50 / max | login request → newest messages ms p50 / max "
           "| wire KB p50 / max | of which after the login KB p50 |\n"
           "|---|---|---|---|---|---|---|---|---|---|\n",
           events, user, HISTORY_LIMIT);
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) {
        const struct login_row *w = &rows[i];
        printf("| %s | %d/%d | %d | %d%s | %.1f / %.1f | %.1f / %.1f | %.1f / %.1f | %.1f / %.1f | %.1f / %.1f | %.1f |\n",
               w->transport, w->ok, w->tried, w->rooms, w->events, w->bad ? " (BAD)" : "", w->login[0],
               w->login[1], w->cursor[0], w->cursor[1], w->after[0], w->after[1], w->total[0], w->total[1], w->kb[0], w->kb[1],
               w->kb_after[0]);
        json_array_append_new(arr, json_pack("{s:s,s:i,s:i,s:i,s:i,s:i,s:[ff],s:[ff],s:[ff],s:[ff],s:[ff],s:[ff]}",
                                             "transport", w->transport, "ok", w->ok, "tried", w->tried,
                                             "rooms", w->rooms, "messages", w->events, "bad", w->bad,
                                             "login_ms", w->login[0], w->login[1], "cursor_rooms_ms", w->cursor[0], w->cursor[1],
                                             "after_login_ms",
                                             w->after[0], w->after[1], "total_ms", w->total[0], w->total[1],
                                             "wire_kb", w->kb[0], w->kb[1], "wire_kb_after_login",
                                             w->kb_after[0], w->kb_after[1]));
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.json", out_dir, name);
    json_t *root = json_pack("{s:s,s:I,s:o}", "user", user, "events", (json_int_t)events, "results", arr);
    if (root && json_dump_file(root, path, JSON_INDENT(1)) == 0)
        fprintf(stderr, "chat-bench: wrote %s\n", path);
    json_decref(root);
}

int run_login(struct env *e, const char *tname, int run_no)
{
    (void)tname;
    (void)run_no;
    const struct bench_opts *o = e->o;
    struct run r;
    const char *user = o->login_user ? o->login_user : "seedu0";
    struct login_row rows[BENCH_NTRANSPORTS];
    int failures = 0;
    memset(rows, 0, sizeof rows);
    /* no users of the bench's own: the login user is the seeded database's */
    if (run_open(e, &r, "login", 64, 0, o->wait_s) < 0) {
        run_close(&r);
        return -1;
    }
    for (int t = 0; t < o->n_transports; t++) {
        fprintf(stderr, "chat-bench: %d logins of %s over %s\n", o->conns, user, o->transports[t]);
        failures += login_transport(e, &r, o->transports[t], user, &rows[t]) < 0;
    }
    login_report(rows, o->n_transports, user, rows[0].newest, o->out_dir, o->name ? o->name : "login");
    run_close(&r);
    return failures ? -1 : 0;
}
