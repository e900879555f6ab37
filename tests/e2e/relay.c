/* relay.c — see relay.h. One thread, one poll loop over the listening socket,
 * a wake-up pipe and both sockets of every connection. Control calls set a
 * request under the mutex, wake the thread and wait until it has applied
 * the request, so a cut or a stall is in force when the call returns. */
#include "relay.h"
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define RELAY_MAX_CONNS 256
#define RELAY_BUF       16384

struct rconn {
    int cfd, sfd;                 /* client side, server side; -1 once closed */
    int connecting;               /* the server side's connect is in progress */
    int c_eof, s_eof;             /* that side sent FIN */
    int c_shut, s_shut;           /* we sent FIN to that side */
    char up[RELAY_BUF], down[RELAY_BUF];
    size_t up_off, up_len, down_off, down_len;
    long budget;                  /* bytes still allowed towards the client; -1 unlimited */
    int inspect;                  /* refusing upgrades (relay_upgrade_mode): the
                                     request head is not read yet */
};

struct relay {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int lfd, wake[2];
    int port;
    char url[64];

    /* requests, under mu */
    unsigned long req_seq, done_seq;
    int target;
    int stop;
    int stall;
    int cut_all, cut_rst, cut_result;
    int arm_req;                  /* 1 arm, -1 disarm, 0 nothing */
    long arm_bytes;
    int arm_cuts;
    int refuse_ws;                /* relay_upgrade_mode for new connections */

    /* thread state */
    int armed;
    long armed_bytes;
    int cuts_left;                /* <= 0: unlimited while armed */
    struct rconn *conns[RELAY_MAX_CONNS];

    struct relay_stats st;        /* under mu */
};

static void close_fd(int *fd, int rst)
{
    if (*fd < 0)
        return;
    if (rst) {
        struct linger l = { 1, 0 };
        setsockopt(*fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    close(*fd);
    *fd = -1;
}

static void conn_close(struct relay *r, int i, int rst, int on_purpose)
{
    struct rconn *c = r->conns[i];
    close_fd(&c->cfd, rst);
    close_fd(&c->sfd, rst);
    free(c);
    r->conns[i] = NULL;
    pthread_mutex_lock(&r->mu);
    r->st.open--;
    if (on_purpose)
        r->st.cuts++;
    pthread_mutex_unlock(&r->mu);
}

static void accept_one(struct relay *r, int target, int refuse_ws)
{
    int cfd = accept4(r->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0)
        return;
    int slot;
    for (slot = 0; slot < RELAY_MAX_CONNS && r->conns[slot]; slot++)
        ;
    int sfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (slot == RELAY_MAX_CONNS || sfd < 0) {
        close(cfd);
        if (sfd >= 0)
            close(sfd);
        return;
    }
    int one = 1;
    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)target) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(sfd, (struct sockaddr *)&a, sizeof a);
    if (rc < 0 && errno != EINPROGRESS) {
        /* no upstream: the client sees its connection closed */
        close(cfd);
        close(sfd);
        return;
    }
    struct rconn *c = calloc(1, sizeof *c);
    if (!c) {
        close(cfd);
        close(sfd);
        return;
    }
    c->cfd = cfd;
    c->sfd = sfd;
    c->connecting = rc < 0;
    c->budget = r->armed ? r->armed_bytes : -1;
    c->inspect = refuse_ws;
    r->conns[slot] = c;
    pthread_mutex_lock(&r->mu);
    r->st.accepted++;
    r->st.open++;
    pthread_mutex_unlock(&r->mu);
}

/* A budget-induced cut; disarms after the requested number. */
static void budget_cut(struct relay *r, int i)
{
    conn_close(r, i, 0, 1);
    if (r->armed && r->cuts_left > 0 && --r->cuts_left == 0) {
        r->armed = 0;
        for (int k = 0; k < RELAY_MAX_CONNS; k++)
            if (r->conns[k])
                r->conns[k]->budget = -1;
    }
}

/* Does the request head ask for a WebSocket ("Upgrade: websocket")? */
static int wants_websocket(const char *head, size_t len)
{
    const char *p = head, *end = head + len;
    while (p < end) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        size_t n = eol ? (size_t)(eol - p) : (size_t)(end - p);
        if (n > 8 && strncasecmp(p, "upgrade:", 8) == 0) {
            char value[128];
            snprintf(value, sizeof value, "%.*s", (int)(n - 8), p + 8);
            if (strcasestr(value, "websocket"))
                return 1;
        }
        p += n + 2;
    }
    return 0;
}

/* Refusing upgrades: connection i is holding back its request until the
 * head is complete. Returns 1 if the connection was refused and closed. */
static int inspect_head(struct relay *r, int i)
{
    static const char forbidden[] =
        "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 28\r\n"
        "Connection: close\r\n\r\nWebSockets are not allowed.\n";
    struct rconn *c = r->conns[i];
    const char *end = memmem(c->up, c->up_len, "\r\n\r\n", 4);
    if (!end && c->up_len < sizeof c->up && !c->c_eof)
        return 0;                 /* more to come */
    int mode = c->inspect;
    c->inspect = 0;
    if (!wants_websocket(c->up, end ? (size_t)(end - c->up) : c->up_len))
        return 0;                 /* an ordinary request: forward it */
    if (mode == RELAY_UPGRADES_403 && send(c->cfd, forbidden, sizeof forbidden - 1, MSG_NOSIGNAL) < 0) {
        /* the client is gone already: nothing to tell it */
    }
    shutdown(c->cfd, SHUT_WR);
    conn_close(r, i, 0, 0);
    pthread_mutex_lock(&r->mu);
    r->st.refused++;
    pthread_mutex_unlock(&r->mu);
    return 1;
}

/* Moves bytes for connection i as far as the sockets allow. */
static void conn_service(struct relay *r, int i, short crev, short srev, int stall)
{
    int down = stall != RELAY_STALL_DOWN;     /* RELAY_STALL never gets here */
    struct rconn *c = r->conns[i];
    if (c->connecting) {
        if (!(srev & (POLLOUT | POLLERR | POLLHUP)))
            return;
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->sfd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            conn_close(r, i, 0, 0);
            return;
        }
        c->connecting = 0;
    }
    /* client -> server; while inspecting, the head accumulates in up */
    if (!c->c_eof && (c->inspect ? c->up_len < sizeof c->up : c->up_len == 0) &&
        (crev & (POLLIN | POLLHUP | POLLERR))) {
        ssize_t k = recv(c->cfd, c->up + c->up_len, sizeof c->up - c->up_len, 0);
        if (k > 0) {
            c->up_off = 0;
            c->up_len += (size_t)k;
        } else if (k == 0) {
            c->c_eof = 1;
        } else if (errno != EAGAIN && errno != EINTR) {
            conn_close(r, i, 1, 0);
            return;
        }
    }
    if (c->inspect && inspect_head(r, i))
        return;
    if (c->up_len && !c->inspect) {
        ssize_t k = send(c->sfd, c->up + c->up_off, c->up_len, MSG_NOSIGNAL);
        if (k > 0) {
            c->up_off += (size_t)k;
            c->up_len -= (size_t)k;
            pthread_mutex_lock(&r->mu);
            r->st.up += k;
            pthread_mutex_unlock(&r->mu);
        } else if (k < 0 && errno != EAGAIN && errno != EINTR) {
            conn_close(r, i, 1, 0);
            return;
        }
    }
    if (c->c_eof && !c->up_len && !c->inspect && !c->s_shut) {
        shutdown(c->sfd, SHUT_WR);
        c->s_shut = 1;
    }
    /* server -> client */
    if (down && !c->s_eof && c->down_len == 0 && (srev & (POLLIN | POLLHUP | POLLERR))) {
        ssize_t k = recv(c->sfd, c->down, sizeof c->down, 0);
        if (k > 0) {
            c->down_off = 0;
            c->down_len = (size_t)k;
        } else if (k == 0) {
            c->s_eof = 1;
        } else if (errno != EAGAIN && errno != EINTR) {
            conn_close(r, i, 1, 0);
            return;
        }
    }
    if (down && c->down_len) {
        size_t n = c->down_len;
        if (c->budget == 0) {
            budget_cut(r, i);
            return;
        }
        if (c->budget > 0 && (size_t)c->budget < n)
            n = (size_t)c->budget;
        ssize_t k = send(c->cfd, c->down + c->down_off, n, MSG_NOSIGNAL);
        if (k > 0) {
            c->down_off += (size_t)k;
            c->down_len -= (size_t)k;
            pthread_mutex_lock(&r->mu);
            r->st.down += k;
            pthread_mutex_unlock(&r->mu);
            if (c->budget > 0) {
                c->budget -= k;
                if (c->budget == 0) {
                    budget_cut(r, i);
                    return;
                }
            }
        } else if (k < 0 && errno != EAGAIN && errno != EINTR) {
            conn_close(r, i, 1, 0);
            return;
        }
    }
    if (down && c->s_eof && !c->down_len && !c->c_shut) {
        shutdown(c->cfd, SHUT_WR);
        c->c_shut = 1;
    }
    if (c->c_shut && c->s_shut)
        conn_close(r, i, 0, 0);
}

/* Applies pending requests; returns 0 to stop the thread. */
static int take_requests(struct relay *r, int *target, int *stall, int *refuse_ws)
{
    pthread_mutex_lock(&r->mu);
    if (r->cut_all) {
        int n = 0;
        pthread_mutex_unlock(&r->mu);
        for (int i = 0; i < RELAY_MAX_CONNS; i++)
            if (r->conns[i]) {
                conn_close(r, i, r->cut_rst, 1);
                n++;
            }
        pthread_mutex_lock(&r->mu);
        r->cut_all = 0;
        r->cut_result = n;
    }
    if (r->arm_req > 0) {
        r->armed = 1;
        r->armed_bytes = r->arm_bytes;
        r->cuts_left = r->arm_cuts;
        for (int i = 0; i < RELAY_MAX_CONNS; i++)
            if (r->conns[i])
                r->conns[i]->budget = r->arm_bytes;
    } else if (r->arm_req < 0) {
        r->armed = 0;
        for (int i = 0; i < RELAY_MAX_CONNS; i++)
            if (r->conns[i])
                r->conns[i]->budget = -1;
    }
    r->arm_req = 0;
    *target = r->target;
    *stall = r->stall;
    *refuse_ws = r->refuse_ws;
    int go = !r->stop;
    r->done_seq = r->req_seq;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return go;
}

static void *relay_main(void *arg)
{
    struct relay *r = arg;
    struct pollfd pf[2 + 2 * RELAY_MAX_CONNS];
    int target, stall, refuse_ws;
    while (take_requests(r, &target, &stall, &refuse_ws)) {
        int n = 0;
        pf[n++] = (struct pollfd){ r->wake[0], POLLIN, 0 };
        int all = stall == RELAY_STALL, down = stall == RELAY_FLOW;
        pf[n++] = (struct pollfd){ all ? -1 : r->lfd, POLLIN, 0 };
        for (int i = 0; i < RELAY_MAX_CONNS; i++) {
            struct rconn *c = r->conns[i];
            short ce = 0, se = 0;
            if (c && !all) {
                if (c->connecting) {
                    se = POLLOUT;
                } else {
                    if (!c->c_eof && (c->inspect ? c->up_len < sizeof c->up : !c->up_len))
                        ce |= POLLIN;
                    if (down && c->down_len) ce |= POLLOUT;
                    if (down && !c->s_eof && !c->down_len) se |= POLLIN;
                    if (c->up_len && !c->inspect) se |= POLLOUT;
                }
            }
            /* fd -1 is ignored by poll: a stalled or idle side costs nothing */
            pf[n++] = (struct pollfd){ ce ? c->cfd : -1, ce, 0 };
            pf[n++] = (struct pollfd){ se ? c->sfd : -1, se, 0 };
        }
        int rc = poll(pf, (nfds_t)n, -1);
        if (rc < 0)
            continue;
        if (pf[0].revents) {
            char tmp[64];
            while (read(r->wake[0], tmp, sizeof tmp) > 0)
                ;
        }
        if (pf[1].revents & POLLIN)
            accept_one(r, target, refuse_ws);
        for (int i = 0; i < RELAY_MAX_CONNS; i++) {
            short crev = pf[2 + 2 * i].revents, srev = pf[3 + 2 * i].revents;
            if (r->conns[i] && (crev || srev))
                conn_service(r, i, crev, srev, stall);
        }
    }
    for (int i = 0; i < RELAY_MAX_CONNS; i++)
        if (r->conns[i])
            conn_close(r, i, 0, 0);
    return NULL;
}

/* Runs one request (set by fn under the mutex) and waits until applied. */
static void request(struct relay *r)
{
    unsigned long seq = ++r->req_seq;
    char b = 1;
    if (write(r->wake[1], &b, 1) < 0) {
        /* the pipe is non-blocking and full: the thread is awake anyway */
    }
    while (r->done_seq < seq)
        pthread_cond_wait(&r->cv, &r->mu);
}

struct relay *relay_start(int target_port)
{
    struct relay *r = calloc(1, sizeof *r);
    if (!r)
        fail_msg("relay: out of memory");
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->target = target_port;
    r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (r->lfd < 0 || bind(r->lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(r->lfd, 128) < 0 ||
        getsockname(r->lfd, (struct sockaddr *)&a, &al) < 0)
        fail_msg("relay: cannot listen: %s", strerror(errno));
    r->port = ntohs(a.sin_port);
    snprintf(r->url, sizeof r->url, "http://127.0.0.1:%d", r->port);
    if (pipe2(r->wake, O_CLOEXEC | O_NONBLOCK) < 0)
        fail_msg("relay: pipe: %s", strerror(errno));
    if (pthread_create(&r->thread, NULL, relay_main, r) != 0)
        fail_msg("relay: cannot start its thread");
    return r;
}

int relay_port(const struct relay *r) { return r->port; }
const char *relay_url(const struct relay *r) { return r->url; }

void relay_set_target(struct relay *r, int target_port)
{
    pthread_mutex_lock(&r->mu);
    r->target = target_port;
    request(r);
    pthread_mutex_unlock(&r->mu);
}

int relay_cut_all(struct relay *r, int rst)
{
    pthread_mutex_lock(&r->mu);
    r->cut_all = 1;
    r->cut_rst = rst;
    request(r);
    int n = r->cut_result;
    pthread_mutex_unlock(&r->mu);
    return n;
}

void relay_cut_after(struct relay *r, long nbytes, int ncuts)
{
    pthread_mutex_lock(&r->mu);
    r->arm_req = 1;
    r->arm_bytes = nbytes < 0 ? 0 : nbytes;
    r->arm_cuts = ncuts;
    request(r);
    pthread_mutex_unlock(&r->mu);
}

void relay_disarm(struct relay *r)
{
    pthread_mutex_lock(&r->mu);
    r->arm_req = -1;
    request(r);
    pthread_mutex_unlock(&r->mu);
}

void relay_stall(struct relay *r, enum relay_stall_mode mode)
{
    pthread_mutex_lock(&r->mu);
    r->stall = (int)mode;
    request(r);
    pthread_mutex_unlock(&r->mu);
}

void relay_refuse_upgrades(struct relay *r, enum relay_upgrade_mode mode)
{
    pthread_mutex_lock(&r->mu);
    r->refuse_ws = (int)mode;
    request(r);
    pthread_mutex_unlock(&r->mu);
}

void relay_get_stats(struct relay *r, struct relay_stats *st)
{
    pthread_mutex_lock(&r->mu);
    *st = r->st;
    pthread_mutex_unlock(&r->mu);
}

void relay_stop(struct relay *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stop = 1;
    request(r);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    close(r->lfd);
    close(r->wake[0]);
    close(r->wake[1]);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}
