/* limiter.c — see limiter.h. Two small string-keyed hash tables: one of
 * addresses with their open connections, one of rate buckets. */
#include "limiter.h"

#include <libwebsockets.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TABLE_SLOTS   4096
#define RATE_MAX_KEYS 65536   /* beyond this, full (idle) buckets are swept */
#define KEY_MAX       64

struct addr_entry {
    struct addr_entry *next;
    unsigned conns;
    char addr[KEY_MAX];
};

struct bucket {
    struct bucket *next;
    int kind;
    double tokens;
    int64_t last_ms;
    char key[KEY_MAX];
};

struct limiter {
    struct limiter_config cfg;
    unsigned total;
    struct addr_entry *addrs[TABLE_SLOTS];
    struct bucket *buckets[TABLE_SLOTS];
    unsigned nbuckets;
};

static unsigned slot_of(const char *key, int kind)
{
    uint32_t h = 2166136261u ^ (uint32_t)kind;        /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % TABLE_SLOTS;
}

struct limiter *limiter_new(const struct limiter_config *cfg)
{
    struct limiter *l = calloc(1, sizeof *l);
    if (l)
        l->cfg = *cfg;
    return l;
}

void limiter_free(struct limiter *l)
{
    if (!l)
        return;
    for (int i = 0; i < TABLE_SLOTS; i++) {
        while (l->addrs[i]) {
            struct addr_entry *e = l->addrs[i];
            l->addrs[i] = e->next;
            free(e);
        }
        while (l->buckets[i]) {
            struct bucket *b = l->buckets[i];
            l->buckets[i] = b->next;
            free(b);
        }
    }
    free(l);
}

/* ---- connections ---- */

int limiter_conn_room(const struct limiter *l)
{
    return l->total < l->cfg.max_connections ? 0 : -1;
}

unsigned limiter_conn_total(const struct limiter *l)
{
    return l->total;
}

void limiter_conn_open(struct limiter *l, struct lws *wsi)
{
    char addr[KEY_MAX] = "?";
    lws_get_peer_simple(wsi, addr, sizeof addr);
    unsigned s = slot_of(addr, 0);
    struct addr_entry *e = l->addrs[s];
    while (e && strcmp(e->addr, addr) != 0)
        e = e->next;
    if (!e) {
        if (!(e = calloc(1, sizeof *e)))
            return;                 /* uncounted: never refused for it */
        snprintf(e->addr, sizeof e->addr, "%s", addr);
        e->next = l->addrs[s];
        l->addrs[s] = e;
    }
    e->conns++;
    l->total++;
    lws_set_opaque_user_data(wsi, e);
}

void limiter_conn_close(struct limiter *l, struct lws *wsi)
{
    struct addr_entry *e = lws_get_opaque_user_data(wsi);
    if (!e)
        return;
    lws_set_opaque_user_data(wsi, NULL);
    l->total--;
    if (--e->conns > 0)
        return;
    struct addr_entry **p = &l->addrs[slot_of(e->addr, 0)];
    while (*p != e)
        p = &(*p)->next;
    *p = e->next;
    free(e);
}

int limiter_conn_over(const struct limiter *l, struct lws *wsi)
{
    const struct addr_entry *e = lws_get_opaque_user_data(wsi);
    return e && e->conns > l->cfg.max_connections_per_ip;
}

const char *limiter_conn_addr(struct lws *wsi)
{
    const struct addr_entry *e = lws_get_opaque_user_data(wsi);
    return e ? e->addr : "?";
}

/* ---- rates ---- */

static void bucket_refill(const struct limiter *l, struct bucket *b, int64_t now_ms)
{
    double add = (double)(now_ms - b->last_ms) / 1000.0 * l->cfg.rate[b->kind];
    b->tokens = fmin(l->cfg.burst[b->kind], b->tokens + (add > 0 ? add : 0));
    b->last_ms = now_ms;
}

/* Drops buckets that have refilled: they mean the same as no bucket. */
static void buckets_sweep(struct limiter *l, int64_t now_ms)
{
    for (int i = 0; i < TABLE_SLOTS; i++)
        for (struct bucket **p = &l->buckets[i]; *p;) {
            struct bucket *b = *p;
            bucket_refill(l, b, now_ms);
            if (b->tokens >= l->cfg.burst[b->kind]) {
                *p = b->next;
                free(b);
                l->nbuckets--;
            } else {
                p = &b->next;
            }
        }
}

static struct bucket *bucket_find(struct limiter *l, int kind, const char *key, int64_t now_ms)
{
    unsigned s = slot_of(key, kind);
    for (struct bucket *b = l->buckets[s]; b; b = b->next)
        if (b->kind == kind && strcmp(b->key, key) == 0)
            return b;
    if (l->nbuckets >= RATE_MAX_KEYS)
        buckets_sweep(l, now_ms);
    if (l->nbuckets >= RATE_MAX_KEYS)
        return NULL;
    struct bucket *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->kind = kind;
    b->tokens = l->cfg.burst[kind];
    b->last_ms = now_ms;
    snprintf(b->key, sizeof b->key, "%s", key);
    b->next = l->buckets[s];
    l->buckets[s] = b;
    l->nbuckets++;
    return b;
}

int64_t limiter_take_ms(struct limiter *l, enum limit_kind kind, const char *key, int64_t now_ms)
{
    struct bucket *b = bucket_find(l, (int)kind, key, now_ms);
    if (!b)
        return 1000;    /* table full of active keys: refuse rather than stop counting */
    bucket_refill(l, b, now_ms);
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return 0;
    }
    int64_t wait_ms = (int64_t)ceil((1.0 - b->tokens) * 1000.0 / l->cfg.rate[kind]);
    return wait_ms > 0 ? wait_ms : 1;
}

int limiter_take(struct limiter *l, enum limit_kind kind, const char *key, int64_t now_ms,
                int *retry_after_s)
{
    int64_t wait_ms = limiter_take_ms(l, kind, key, now_ms);
    if (wait_ms == 0)
        return 1;
    *retry_after_s = (int)((wait_ms + 999) / 1000);
    return 0;
}
