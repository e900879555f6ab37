/* wire.c — socket-level accounting of every client connection, to check the
 * core's own estimate of bytes on the wire. The bench wraps the client's lws
 * protocols (clients.c) and calls wire_observe() on every callback: the first
 * callback of a connection (before it sends anything) opens a record keyed
 * by its wsi; each closing callback (CLOSED_CLIENT_HTTP, CLIENT_CLOSED, the
 * protocol drop, a connection error — lws calls them before it closes the
 * socket) takes a TCP_INFO reading; LWS_CALLBACK_WSI_DESTROY ends the record.
 * A window (wire_window_start/end) counts what each connection moved inside
 * it: connections open at its start count from a reading taken then, those
 * still open at its end up to a reading taken then. */
#include "bench.h"

#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>

#define WIRE_BUCKETS (1u << 17)

struct rec {
    struct rec *hnext;
    struct rec *prev, *next;    /* all records */
    struct lws *wsi;
    struct tcp_counts base;     /* reading at the window start (or zero) */
    struct tcp_counts last;     /* latest reading */
    int have_last;
    int in_window;              /* counted toward the open window */
};

static struct rec **buckets;
static struct rec *all;
static unsigned n_open;
static int window_open;
static struct wire_totals win;
static uint64_t unmeasured;

static unsigned slot(const struct lws *wsi)
{
    uintptr_t p = (uintptr_t)wsi;
    p ^= p >> 17;
    p *= 0x9E3779B97F4A7C15ull;
    return (unsigned)(p >> 40) & (WIRE_BUCKETS - 1);
}

void wire_init(void)
{
    if (!buckets)
        buckets = calloc(WIRE_BUCKETS, sizeof *buckets);
}

static void rec_unlink(struct rec *r)
{
    struct rec **pp = &buckets[slot(r->wsi)];
    while (*pp && *pp != r)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = r->hnext;
    if (r->prev)
        r->prev->next = r->next;
    else
        all = r->next;
    if (r->next)
        r->next->prev = r->prev;
    n_open--;
}

void wire_free(void)
{
    while (all) {
        struct rec *r = all;
        rec_unlink(r);
        free(r);
    }
    free(buckets);
    buckets = NULL;
}

static struct rec *find(struct lws *wsi)
{
    if (!buckets)
        return NULL;
    for (struct rec *r = buckets[slot(wsi)]; r; r = r->hnext)
        if (r->wsi == wsi)
            return r;
    return NULL;
}

static void add_delta(const struct tcp_counts *from, const struct tcp_counts *to)
{
    win.bytes_in += to->bytes_in - from->bytes_in;
    win.bytes_out += to->bytes_out - from->bytes_out;
    win.segs_in += to->segs_in - from->segs_in;
    win.segs_out += to->segs_out - from->segs_out;
}

static int is_closing(int reason)
{
    return reason == LWS_CALLBACK_CLOSED_CLIENT_HTTP ||
           reason == LWS_CALLBACK_CLIENT_CLOSED ||
           reason == LWS_CALLBACK_CLIENT_HTTP_DROP_PROTOCOL ||
           reason == LWS_CALLBACK_CLIENT_CONNECTION_ERROR;
}

void wire_observe(struct lws *wsi, int reason)
{
    if (!buckets || !wsi || reason == LWS_CALLBACK_WSI_DESTROY)
        return;
    int fd = lws_get_socket_fd(wsi);
    struct rec *r = find(wsi);
    if (!r) {
        if (fd < 0)
            return;
        if (!(r = calloc(1, sizeof *r)))
            return;
        r->wsi = wsi;
        r->in_window = window_open;     /* base stays zero: nothing sent yet */
        if (window_open)
            win.conns++;
        unsigned s = slot(wsi);
        r->hnext = buckets[s];
        buckets[s] = r;
        r->next = all;
        if (all)
            all->prev = r;
        all = r;
        n_open++;
    }
    if (is_closing(reason) && fd >= 0 && tcpinfo_read(fd, &r->last) == 0)
        r->have_last = 1;
}

void wire_destroyed(struct lws *wsi)
{
    struct rec *r = find(wsi);
    if (!r)
        return;
    if (!r->have_last)
        unmeasured++;
    else if (r->in_window)
        add_delta(&r->base, &r->last);
    rec_unlink(r);
    free(r);
}

void wire_window_start(void)
{
    memset(&win, 0, sizeof win);
    window_open = 1;
    for (struct rec *r = all; r; r = r->next) {
        int fd = lws_get_socket_fd(r->wsi);
        memset(&r->base, 0, sizeof r->base);
        if (fd >= 0 && tcpinfo_read(fd, &r->base) == 0) {
            r->in_window = 1;
            win.conns++;
        } else if (r->have_last) {
            r->base = r->last;          /* already closing: nothing more */
            r->in_window = 1;
        }
    }
}

void wire_window_end(struct wire_totals *out)
{
    for (struct rec *r = all; r; r = r->next) {
        if (!r->in_window)
            continue;
        struct tcp_counts now;
        int fd = lws_get_socket_fd(r->wsi);
        if (fd >= 0 && tcpinfo_read(fd, &now) == 0)
            add_delta(&r->base, &now);
        else if (r->have_last)
            add_delta(&r->base, &r->last);
        r->in_window = 0;
    }
    window_open = 0;
    *out = win;
}

unsigned wire_open_connections(void)
{
    return n_open;
}

uint64_t wire_unmeasured(void)
{
    return unmeasured;
}
