/* hostile.c — see hostile.h. An accept thread and one thread per
 * connection, each with blocking logic over poll() in 100 ms steps so that
 * hostile_stop (a byte on a pipe every thread watches) ends them promptly.
 * While a connection writes it also reads, so a close frame from the client
 * is seen even while a huge message is still going out. */
#include "hostile.h"
#include "harness.h"

#include <libwebsockets.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define HOSTILE_MAX_CONNS 64
#define HOSTILE_STEP_MS   100
#define HOSTILE_HEAD_MAX  8192
#define HOSTILE_IN_MAX    65536
#define HOSTILE_BIG_SENT  300000
#define HOSTILE_CONT_LEN  60000
#define HOSTILE_DRIP_MS   300
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct hostile {
    struct hostile_script script;
    int lfd, stop_pipe[2];
    int port;
    char url[64];
    pthread_t accept_thread;
    pthread_mutex_t mu;
    struct hostile_stats st;             /* under mu */
    pthread_t threads[HOSTILE_MAX_CONNS];
    int nthreads;                        /* only the accept thread changes it */
};

struct hconn {
    struct hostile *h;
    int fd;
    int ws;                              /* parse what comes in as WS frames */
    unsigned char in[HOSTILE_IN_MAX];
    size_t in_len;
};

/* ---- I/O that keeps an eye on hostile_stop ---- */

static int stopping(const struct hostile *h)
{
    struct pollfd p = { .fd = h->stop_pipe[0], .events = POLLIN };
    return poll(&p, 1, 0) > 0;
}

/* Client frames are masked; only a close frame matters here. */
static void ws_take_frames(struct hconn *c)
{
    for (;;) {
        size_t off = 2, len;
        if (c->in_len < 2)
            return;
        len = c->in[1] & 0x7f;
        if (len == 126 || len == 127) {
            size_t n = len == 126 ? 2 : 8;
            if (c->in_len < 2 + n)
                return;
            len = 0;
            for (size_t i = 0; i < n; i++)
                len = len << 8 | c->in[2 + i];
            off += n;
        }
        if (len > HOSTILE_IN_MAX || c->in_len < off + 4 + len)
            return;                      /* wait for more (or never: a test server) */
        const unsigned char *mask = c->in + off, *p = c->in + off + 4;
        if ((c->in[0] & 0x0f) == 0x8) {
            int code = len >= 2 ? (p[0] ^ mask[0]) << 8 | (p[1] ^ mask[1]) : 1005;
            pthread_mutex_lock(&c->h->mu);
            if (!c->h->st.ws_close_code) {
                c->h->st.ws_close_code = code;
                c->h->st.ws_handshakes_at_close = c->h->st.ws_handshakes;
            }
            pthread_mutex_unlock(&c->h->mu);
        }
        size_t used = off + 4 + len;
        memmove(c->in, c->in + used, c->in_len - used);
        c->in_len -= used;
    }
}

/* Reads what is there; -1 once the peer has closed. */
static int take_input(struct hconn *c)
{
    if (c->in_len == sizeof c->in)
        c->in_len = 0;                   /* not a client we test: drop it */
    ssize_t n = read(c->fd, c->in + c->in_len, sizeof c->in - c->in_len);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
        return -1;
    if (n > 0)
        c->in_len += (size_t)n;
    if (c->ws)
        ws_take_frames(c);
    return 0;
}

/* Waits up to ms for input (taking it); -1 if the peer or the test ended. */
static int wait_input(struct hconn *c, int ms)
{
    struct pollfd p[2] = { { .fd = c->fd, .events = POLLIN },
                           { .fd = c->h->stop_pipe[0], .events = POLLIN } };
    if (poll(p, 2, ms) < 0 && errno != EINTR)
        return -1;
    if (p[1].revents)
        return -1;
    if (p[0].revents)
        return take_input(c);
    return 0;
}

/* Writes everything, reading meanwhile; -1 if the peer or the test ended. */
static int send_all(struct hconn *c, const void *buf, size_t len)
{
    const char *b = buf;
    while (len) {
        struct pollfd p[2] = { { .fd = c->fd, .events = POLLIN | POLLOUT },
                               { .fd = c->h->stop_pipe[0], .events = POLLIN } };
        if (poll(p, 2, HOSTILE_STEP_MS) < 0 && errno != EINTR)
            return -1;
        if (p[1].revents)
            return -1;
        if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) && take_input(c) < 0)
            return -1;
        if (!(p[0].revents & POLLOUT))
            continue;
        ssize_t n = send(c->fd, b, len, MSG_NOSIGNAL);
        if (n < 0 && errno != EINTR && errno != EAGAIN)
            return -1;
        if (n > 0) {
            b += n;
            len -= (size_t)n;
        }
    }
    return 0;
}

static void until_peer_gone(struct hconn *c)
{
    while (wait_input(c, HOSTILE_STEP_MS) == 0)
        ;
}

/* ---- HTTP ---- */

/* Reads the request head and its body (Content-Length); 0 or -1. */
static int read_request(struct hconn *c, char *head, size_t size)
{
    char *end;
    while (!(end = memmem(c->in, c->in_len, "\r\n\r\n", 4))) {
        if (c->in_len >= size - 1 || wait_input(c, HOSTILE_STEP_MS) < 0)
            return -1;
    }
    size_t head_len = (size_t)(end - (char *)c->in) + 4;
    memcpy(head, c->in, head_len);
    head[head_len] = '\0';
    const char *cl = strcasestr(head, "\r\nContent-Length:");
    size_t body = cl ? strtoul(cl + 17, NULL, 10) : 0;
    while (c->in_len < head_len + body && body < HOSTILE_HEAD_MAX)
        if (wait_input(c, HOSTILE_STEP_MS) < 0)
            return -1;
    c->in_len = 0;
    return 0;
}

static void answer_ok(struct hconn *c, const char *body, int drip)
{
    char buf[512];
    int n = snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", strlen(body), body);
    for (int i = 0; drip && i < n; i++)
        if (send_all(c, buf + i, 1) < 0 || wait_input(c, HOSTILE_DRIP_MS) < 0)
            return;
    if (!drip && send_all(c, buf, (size_t)n) == 0)
        until_peer_gone(c);
}

static void answer_http(struct hconn *c, enum hostile_http how, const char *body)
{
    char buf[512];
    switch (how) {
    case HOSTILE_HTTP_OK:
    case HOSTILE_HTTP_DRIP:
        answer_ok(c, body, how == HOSTILE_HTTP_DRIP);
        return;
    case HOSTILE_HTTP_CHUNKED:
        snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n%s\r\n{\"token\":\"", c->h->script.chunk_size);
        break;
    case HOSTILE_HTTP_204_NO_LENGTH:
        snprintf(buf, sizeof buf, "HTTP/1.1 204 No Content\r\n\r\n");
        break;
    case HOSTILE_HTTP_SILENT:
        buf[0] = '\0';
        break;
    case HOSTILE_HTTP_401:
        snprintf(buf, sizeof buf, "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
                 "Content-Length: 55\r\nConnection: close\r\n\r\n"
                 "{\"error\":{\"code\":\"unauthorized\",\"message\":\"bad token\"}}");
        break;
    }
    if (send_all(c, buf, strlen(buf)) == 0)
        until_peer_gone(c);
}

/* ---- WebSocket ---- */

static size_t frame_head(unsigned char *p, int opcode, int fin, uint64_t len)
{
    p[0] = (unsigned char)((fin ? 0x80 : 0) | opcode);
    if (len < 126) {
        p[1] = (unsigned char)len;
        return 2;
    }
    int n = len < 65536 ? 2 : 8;
    p[1] = n == 2 ? 126 : 127;
    for (int i = 0; i < n; i++)
        p[2 + i] = (unsigned char)(len >> (8 * (n - 1 - i)));
    return 2 + (size_t)n;
}

static int send_frame_head(struct hconn *c, int opcode, int fin, uint64_t len)
{
    unsigned char head[10];
    return send_all(c, head, frame_head(head, opcode, fin, len));
}

static int send_text(struct hconn *c, const char *text)
{
    return send_frame_head(c, 0x1, 1, strlen(text)) < 0 ? -1 : send_all(c, text, strlen(text));
}

static int send_filler(struct hconn *c, uint64_t n)
{
    static const char x[4096] = { 0 };
    for (; n; n -= n > sizeof x ? sizeof x : n)
        if (send_all(c, x, n > sizeof x ? sizeof x : n) < 0)
            return -1;
    return 0;
}

static void misbehave(struct hconn *c)
{
    const struct hostile_script *s = &c->h->script;
    if (s->ws == HOSTILE_WS_BIG) {
        if (send_frame_head(c, 0x1, 1, s->ws_declared) == 0)
            send_filler(c, s->ws_declared < HOSTILE_BIG_SENT ? s->ws_declared : HOSTILE_BIG_SENT);
    } else if (s->ws == HOSTILE_WS_ENDLESS) {
        for (int op = 0x1; send_frame_head(c, op, 0, HOSTILE_CONT_LEN) == 0 &&
                           send_filler(c, HOSTILE_CONT_LEN) == 0; op = 0x0)
            ;
    }
}

static void answer_ws(struct hconn *c, const char *head)
{
    char key[64] = "", accept[64], buf[512];
    unsigned char sha[20];
    const char *k = strcasestr(head, "\r\nSec-WebSocket-Key:");
    if (!k || sscanf(k + 20, " %63[^\r\n ]", key) != 1)
        return;
    snprintf(buf, sizeof buf, "%s" WS_GUID, key);
    lws_SHA1((const unsigned char *)buf, strlen(buf), sha);
    lws_b64_encode_string((const char *)sha, sizeof sha, accept, sizeof accept);
    snprintf(buf, sizeof buf, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
             "Sec-WebSocket-Protocol: chat.v1\r\n\r\n", accept);
    c->ws = 1;
    if (send_all(c, buf, strlen(buf)) < 0)
        return;
    pthread_mutex_lock(&c->h->mu);
    int nth = ++c->h->st.ws_handshakes, first = nth == 1;
    pthread_mutex_unlock(&c->h->mu);
    if (c->h->script.ws == HOSTILE_WS_CLOSE_4401 &&
        nth <= (c->h->script.ws_4401s > 0 ? c->h->script.ws_4401s : 1)) {
        static const char why[] = "\x11\x31" "expected a hello with a valid token";   /* 4401 */
        if (send_frame_head(c, 0x8, 1, sizeof why - 1) == 0 && send_all(c, why, sizeof why - 1) == 0)
            until_peer_gone(c);
        return;
    }
    /* the hello is not checked: whatever the client says, it gets ready */
    if (send_text(c, "{\"op\":\"ready\",\"user\":\"alice\",\"heartbeat_s\":30,"
                     "\"long_poll_max_s\":25}") < 0)
        return;
    if (first)
        misbehave(c);
    until_peer_gone(c);
}

/* ---- threads ---- */

static void *conn_main(void *arg)
{
    struct hconn *c = arg;
    struct hostile *h = c->h;
    char head[HOSTILE_HEAD_MAX];
    if (read_request(c, head, sizeof head) == 0) {
        int is_auth = strstr(head, "/login ") || strstr(head, "/register ");
        int is_events = strstr(head, "/events?") != NULL;
        pthread_mutex_lock(&h->mu);
        h->st.logins += is_auth;
        h->st.polls += is_events;
        pthread_mutex_unlock(&h->mu);
        if (strcasestr(head, "\r\nUpgrade: websocket"))
            answer_ws(c, head);
        else if (is_auth)
            answer_http(c, h->script.login, "{\"token\":\"hostile-token\"}");
        else if (is_events)
            answer_http(c, h->script.events, "{\"events\":[],\"next\":0}");
    }
    close(c->fd);
    free(c);
    return NULL;
}

static void *accept_main(void *arg)
{
    struct hostile *h = arg;
    while (!stopping(h)) {
        struct pollfd p[2] = { { .fd = h->lfd, .events = POLLIN },
                               { .fd = h->stop_pipe[0], .events = POLLIN } };
        if (poll(p, 2, -1) <= 0 || p[1].revents)
            continue;
        int fd = accept4(h->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        struct hconn *c = h->nthreads < HOSTILE_MAX_CONNS ? calloc(1, sizeof *c) : NULL;
        if (c) {
            c->h = h;
            c->fd = fd;
        }
        if (!c || pthread_create(&h->threads[h->nthreads], NULL, conn_main, c) != 0) {
            close(fd);
            free(c);
            continue;
        }
        h->nthreads++;
    }
    return NULL;
}

struct hostile *hostile_start(const struct hostile_script *script)
{
    struct hostile *h = calloc(1, sizeof *h);
    assert_non_null(h);
    h->script = *script;
    pthread_mutex_init(&h->mu, NULL);
    assert_int_equal(pipe2(h->stop_pipe, O_CLOEXEC), 0);
    h->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (h->lfd < 0 || bind(h->lfd, (struct sockaddr *)&a, sizeof a) < 0 ||
        listen(h->lfd, 64) < 0 || getsockname(h->lfd, (struct sockaddr *)&a, &alen) < 0)
        fail_msg("hostile server: cannot listen: %s", strerror(errno));
    h->port = ntohs(a.sin_port);
    snprintf(h->url, sizeof h->url, "http://127.0.0.1:%d", h->port);
    assert_int_equal(pthread_create(&h->accept_thread, NULL, accept_main, h), 0);
    return h;
}

const char *hostile_url(const struct hostile *h)
{
    return h->url;
}

void hostile_get_stats(struct hostile *h, struct hostile_stats *out)
{
    pthread_mutex_lock(&h->mu);
    *out = h->st;
    pthread_mutex_unlock(&h->mu);
}

int hostile_wait_close_then_reconnect(struct hostile *h, int64_t deadline)
{
    struct hostile_stats st;
    for (;;) {
        hostile_get_stats(h, &st);
        if (st.ws_close_code && st.ws_handshakes > st.ws_handshakes_at_close)
            return 1;
        if (h_now_ms() >= deadline)
            return 0;
        h_pump(50);
    }
}

void hostile_stop(struct hostile *h)
{
    if (!h)
        return;
    if (write(h->stop_pipe[1], "x", 1) != 1)
        fail_msg("hostile server: cannot stop its threads");
    pthread_join(h->accept_thread, NULL);
    for (int i = 0; i < h->nthreads; i++)
        pthread_join(h->threads[i], NULL);
    close(h->lfd);
    close(h->stop_pipe[0]);
    close(h->stop_pipe[1]);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
