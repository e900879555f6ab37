/* harness_http.c — HTTP over raw TCP sockets: connecting (from a chosen
 * loopback address), sending and reading with deadlines, parsing one
 * response (Content-Length, chunked or until EOF), well-formed API calls
 * one at a time, in parallel or many at once, and the error-body checks. */
#include "harness.h"
#include "harness_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

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
    h_set_nonblock(fd);
    return fd;
}

/* Sends all of buf unless the peer goes away or the deadline passes, while
 * also draining the children's pipes. Returns 0 or -1. */
int h_send_all(int fd, const void *buf, size_t len, int64_t deadline)
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
        short rev = h_pump_with(h_remaining(deadline), fd, POLLOUT);
        if (rev & (POLLERR | POLLHUP))
            return -1;
    }
    return 0;
}

/* Reads whatever arrives into b until deadline or EOF. Returns 1 if data
 * arrived, 0 on EOF, -1 on time-out, -2 on error. */
int h_recv_some(int fd, struct h_buf *b, int64_t deadline)
{
    for (;;) {
        char tmp[65536];
        ssize_t k = recv(fd, tmp, sizeof tmp, 0);
        if (k > 0) {
            h_buf_add(b, tmp, (size_t)k);
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
        h_pump_with(h_remaining(deadline), fd, POLLIN);
    }
}

const char *h_find_hdr_end(const struct h_buf *b)
{
    if (!b->data)
        return NULL;
    const char *e = memmem(b->data, b->len, "\r\n\r\n", 4);
    return e ? e + 4 : NULL;
}

char *h_http_header(const struct h_http_resp *r, const char *name)
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
        h_buf_add(out, src + i, sz);
        i += sz + 2;
    }
}

static void resp_finish(struct h_http_resp *r, const struct h_buf *in, const char *hdr_end)
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
int h_read_response(int fd, struct h_buf *in, struct h_http_resp *r, int64_t deadline)
{
    for (;;) {
        const char *he = h_find_hdr_end(in);
        if (he) {
            size_t hl = (size_t)(he - in->data);
            struct h_http_resp tmp = { 0 };
            tmp.head = strndup(in->data, hl);
            char *cl = h_http_header(&tmp, "Content-Length");
            char *te = h_http_header(&tmp, "Transfer-Encoding");
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
                    h_buf_free(&body);
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
        int k = h_recv_some(fd, in, deadline);
        if (k == 1)
            continue;
        /* EOF, error or time-out: take what there is. */
        he = h_find_hdr_end(in);
        if (he) {
            size_t hl = (size_t)(he - in->data);
            r->body = strndup(in->data + hl, in->len - hl);
            r->body_len = in->len - hl;
            resp_finish(r, in, he);
            if (k != 0)
                r->closed_early = 1;
            else {
                struct h_http_resp t2 = { .head = r->head };
                char *cl = h_http_header(&t2, "Content-Length");
                char *te = h_http_header(&t2, "Transfer-Encoding");
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

int h_http_request(int port, const void *raw, size_t len, struct h_http_resp *r, int timeout_ms)
{
    memset(r, 0, sizeof *r);
    int64_t dl = h_deadline(timeout_ms);
    int fd = h_tcp_connect(port);
    if (fd < 0)
        return -1;
    h_send_all(fd, raw, len, dl);    /* errors tolerated: read the answer anyway */
    struct h_buf in = { 0 };
    int rc = h_read_response(fd, &in, r, dl);
    h_buf_free(&in);
    close(fd);
    return rc;
}

void h_http_resp_free(struct h_http_resp *r)
{
    free(r->head);
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

/* A well-formed request (see h_http_call) as a new buffer of *len bytes (free()). */
char *h_build_request(int port, const char *method, const char *path, const char *token,
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

void h_http_call_timeout(int port, const char *method, const char *path, const char *token,
                         const char *body, long body_len, struct h_http_resp *r, int timeout_ms)
{
    size_t len;
    char *req = h_build_request(port, method, path, token, body, body_len, &len);
    int rc = h_http_request(port, req, len, r, timeout_ms);
    free(req);
    if (rc != 0) {
        h_dump_logs();
        fail_msg("%s %s: no HTTP response from 127.0.0.1:%d", method, path, port);
    }
}

void h_http_call(int port, const char *method, const char *path, const char *token,
                 const char *body, long body_len, struct h_http_resp *r)
{
    h_http_call_timeout(port, method, path, token, body, body_len, r, 10000);
}

static char *creds_json(const char *user, const char *password)
{
    json_t *o = json_pack("{s:s, s:s}", "user", user, "password", password);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

int h_http_register(int port, const char *user, const char *password)
{
    char *b = creds_json(user, password);
    struct h_http_resp r;
    h_http_call(port, "POST", "/api/v1/register", NULL, b, -1, &r);
    free(b);
    int st = r.status;
    if (st == 201) {
        const char *u = json_string_value(json_object_get(r.json, "user"));
        if (!u || strcmp(u, user) != 0)
            fail_msg("register %s: 201 but body is %s (expected {\"user\":\"%s\"})", user, r.body, user);
    }
    h_http_resp_free(&r);
    return st;
}

int h_http_login(int port, const char *user, const char *password, char *token)
{
    char *b = creds_json(user, password);
    struct h_http_resp r;
    h_http_call(port, "POST", "/api/v1/login", NULL, b, -1, &r);
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
    h_http_resp_free(&r);
    return st;
}

int h_http_post_message(int port, const char *token, const char *room, const char *body,
                        const char *cmid, int64_t *id)
{
    json_t *o = json_pack("{s:s}", "body", body);
    if (room)
        json_object_set_new(o, "room", json_string(room));
    if (cmid)
        json_object_set_new(o, "client_msg_id", json_string(cmid));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    struct h_http_resp r;
    h_http_call(port, "POST", "/api/v1/messages", token, s, -1, &r);
    free(s);
    int st = r.status;
    if (st == 201) {
        json_t *jid = json_object_get(r.json, "id");
        if (!json_is_integer(jid) || !json_is_integer(json_object_get(r.json, "ts")))
            fail_msg("POST /api/v1/messages: 201 without integer id/ts: %s", r.body);
        if (id)
            *id = json_integer_value(jid);
    }
    h_http_resp_free(&r);
    return st;
}

json_t *h_http_get_events(int port, const char *token, int64_t after)
{
    char path[128];
    snprintf(path, sizeof path, "/api/v1/events?after=%lld&wait=0&limit=1000", (long long)after);
    struct h_http_resp r;
    h_http_call(port, "GET", path, token, NULL, 0, &r);
    if (r.status != 200 || !json_is_array(json_object_get(r.json, "events")) ||
        !json_is_integer(json_object_get(r.json, "next")))
        fail_msg("GET %s: expected 200 {\"events\":[...],\"next\":N}, got %d %s", path, r.status, r.body);
    json_t *ev = json_incref(json_object_get(r.json, "events"));
    h_http_resp_free(&r);
    return ev;
}

int h_long_poll_send(int port, const char *token, int64_t after)
{
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET /api/v1/events?after=%lld&wait=20 HTTP/1.1\r\nHost: x\r\n"
                     "Authorization: Bearer %s\r\nConnection: close\r\n\r\n", (long long)after, token);
    int fd = h_http_send_request(port, req, (size_t)n);
    CHECK(fd >= 0, "long poll: cannot connect");
    return fd;
}

void h_wait_parked(int port, int n, int64_t deadline)
{
    json_int_t parked = -1;
    for (;;) {
        struct h_http_resp r;
        h_http_call(port, "GET", "/healthz", NULL, NULL, 0, &r);
        parked = json_integer_value(json_object_get(r.json, "parked"));
        h_http_resp_free(&r);
        if (parked >= n || h_now_ms() >= deadline)
            break;
        h_pump(20);
    }
    CHECK(parked >= n, "chatd holds %" JSON_INTEGER_FORMAT " long polls, expected %d", parked, n);
}

static int error_mismatch(const char *what, const struct h_http_resp *r, int status, const char *code,
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
    char *ct = h_http_header(r, "Content-Type");
    int ok = ct && strncasecmp(ct, "application/json", 16) == 0;
    if (!ok)
        snprintf(why, whylen, "%s: Content-Type is \"%s\", expected application/json", what, ct ? ct : "(none)");
    free(ct);
    return !ok;
}

int h_check_error(const char *what, const struct h_http_resp *r, int status, const char *code)
{
    char why[600];
    if (!error_mismatch(what, r, status, code, why, sizeof why))
        return 1;
    fprintf(stderr, "MISMATCH: %s\n", why);
    return 0;
}

void h_assert_error(const char *what, const struct h_http_resp *r, int status, const char *code)
{
    char why[600];
    if (error_mismatch(what, r, status, code, why, sizeof why))
        fail_msg("%s", why);
}

/* ---- requests in parallel, and one request in two halves ---- */

/* Reads an answer on each open fds[i] into r[i] until dl, closing each;
 * how many got one (a status). fds[i] < 0: no connection, skipped. */
static int read_responses(const int *fds, int n, struct h_http_resp *r, int64_t dl)
{
    int got = 0;
    for (int i = 0; i < n; i++) {
        if (fds[i] < 0)
            continue;
        struct h_buf in = { 0 };
        if (h_read_response(fds[i], &in, &r[i], dl) == 0 && r[i].status)
            got++;
        h_buf_free(&in);
        close(fds[i]);
    }
    return got;
}

int h_http_call_parallel(int port, const char *method, const char *path, const char *token,
                         const char *body, int n, struct h_http_resp *r, int timeout_ms)
{
    if (n < 1 || n > 64)
        fail_msg("h_http_call_parallel: n must be 1-64, got %d", n);
    size_t len;
    char *req = h_build_request(port, method, path, token, body, -1, &len);
    int64_t dl = h_deadline(timeout_ms);
    int fds[64];
    for (int i = 0; i < n; i++) {
        memset(&r[i], 0, sizeof r[i]);
        fds[i] = h_tcp_connect(port);
    }
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0)
            h_send_all(fds[i], req, len, dl);   /* errors tolerated */
    free(req);
    return read_responses(fds, n, r, dl);
}

int h_http_send_request(int port, const void *raw, size_t len)
{
    int fd = h_tcp_connect(port);
    if (fd < 0)
        return -1;
    if (h_send_all(fd, raw, len, h_deadline(5000)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int h_http_read_response(int fd, struct h_http_resp *r, int timeout_ms)
{
    memset(r, 0, sizeof *r);
    struct h_buf in = { 0 };
    int rc = h_read_response(fd, &in, r, h_deadline(timeout_ms));
    h_buf_free(&in);
    close(fd);
    return rc;
}

int h_http_call_many(const struct h_req *reqs, int n, struct h_http_resp *r, int timeout_ms)
{
    if (n < 1 || n > 512)
        fail_msg("h_http_call_many: n must be 1-512, got %d", n);
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
        char *req = h_build_request(reqs[i].port, reqs[i].method, reqs[i].path, reqs[i].token, reqs[i].body,
                                  -1, &len);
        h_send_all(fds[i], req, len, dl);   /* errors tolerated */
        free(req);
    }
    int got = read_responses(fds, n, r, dl);
    free(fds);
    return got;
}
