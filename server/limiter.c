/* limiter.c — see limiter.h. Three small string-keyed hash tables: one of
 * addresses with their open connections, one of rate buckets, one of
 * failed-login records ("strikes", per "user addr" pair and per user). */
#include "limiter.h"

#include <libwebsockets.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TABLE_SLOTS   4096
#define RATE_MAX_KEYS 65536   /* beyond this, full (idle) buckets are swept */
#define KEY_MAX       64
#define STRIKE_KEY_MAX 96     /* "user addr": 32 + 1 + an IPv6 address */
#define STRIKE_MAX_KEYS 65536 /* beyond this, forgotten records are swept */
#define STRIKE_FORGET_MS (60 * 60 * 1000)   /* an hour without failures */
#define STRIKE_DELAY_FIRST_MS 2000

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

struct strike {
    struct strike *next;
    unsigned fails;
    int64_t last_ms;          /* of the latest failure */
    char key[STRIKE_KEY_MAX];
};

struct limiter {
    struct limiter_config cfg;
    unsigned total;
    struct addr_entry *addrs[TABLE_SLOTS];
    struct bucket *buckets[TABLE_SLOTS];
    unsigned nbuckets;
    struct strike *strikes[TABLE_SLOTS];
    unsigned nstrikes;
    unsigned sweeps;             /* full-table sweeps so far (tests) */
    int64_t buckets_swept_ms, strikes_swept_ms;   /* the last sweep of each table */
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
        while (l->strikes[i]) {
            struct strike *st = l->strikes[i];
            l->strikes[i] = st->next;
            free(st);
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

/* The entry of addr, made if missing; NULL without memory. */
static struct addr_entry *addr_entry_get(struct limiter *l, const char *addr)
{
    unsigned s = slot_of(addr, 0);
    struct addr_entry *e = l->addrs[s];
    while (e && strcmp(e->addr, addr) != 0)
        e = e->next;
    if (!e) {
        if (!(e = calloc(1, sizeof *e)))
            return NULL;
        snprintf(e->addr, sizeof e->addr, "%s", addr);
        e->next = l->addrs[s];
        l->addrs[s] = e;
    }
    return e;
}

/* One connection fewer under e; the entry goes with its last one. */
static void addr_entry_put(struct limiter *l, struct addr_entry *e)
{
    if (--e->conns > 0)
        return;
    struct addr_entry **p = &l->addrs[slot_of(e->addr, 0)];
    while (*p != e)
        p = &(*p)->next;
    *p = e->next;
    free(e);
}

void limiter_conn_open(struct limiter *l, struct lws *wsi)
{
    char addr[KEY_MAX] = "?";
    lws_get_peer_simple(wsi, addr, sizeof addr);
    struct addr_entry *e = addr_entry_get(l, addr);
    if (!e)
        return;                     /* uncounted: never refused for it */
    e->conns++;
    l->total++;
    lws_set_opaque_user_data(wsi, e);
}

void limiter_conn_rekey(struct limiter *l, struct lws *wsi, const char *addr)
{
    struct addr_entry *old = lws_get_opaque_user_data(wsi);
    if (!old || strcmp(old->addr, addr) == 0)
        return;
    struct addr_entry *e = addr_entry_get(l, addr);
    if (!e)
        return;
    e->conns++;
    lws_set_opaque_user_data(wsi, e);
    addr_entry_put(l, old);
}

void limiter_conn_close(struct limiter *l, struct lws *wsi)
{
    struct addr_entry *e = lws_get_opaque_user_data(wsi);
    if (!e)
        return;
    lws_set_opaque_user_data(wsi, NULL);
    l->total--;
    addr_entry_put(l, e);
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
    l->sweeps++;
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
    if (l->nbuckets >= RATE_MAX_KEYS && now_ms - l->buckets_swept_ms >= LIMITER_SWEEP_GAP_MS) {
        l->buckets_swept_ms = now_ms;   /* a table full of busy keys is walked once a gap */
        buckets_sweep(l, now_ms);
    }
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

/* ---- failed logins ---- */

static void strike_key(char *key, const char *user, const char *addr)
{
    snprintf(key, STRIKE_KEY_MAX, "%s %s", user, addr);   /* names have no spaces */
}

/* Drops the records of everyone who stopped failing an hour ago. */
static void strikes_sweep(struct limiter *l, int64_t now_ms)
{
    l->sweeps++;
    for (int i = 0; i < TABLE_SLOTS; i++)
        for (struct strike **p = &l->strikes[i]; *p;) {
            struct strike *st = *p;
            if (now_ms - st->last_ms >= STRIKE_FORGET_MS) {
                *p = st->next;
                free(st);
                l->nstrikes--;
            } else {
                p = &st->next;
            }
        }
}

/* The record of key, made if create; NULL if none (or the table is full of
 * live records: then the failure goes uncounted, the per-address bucket
 * still bounding the guesses, rather than refusing everyone's logins). */
static struct strike *strike_find(struct limiter *l, const char *key, int create, int64_t now_ms)
{
    unsigned s = slot_of(key, LIMIT_KINDS);
    for (struct strike *st = l->strikes[s]; st; st = st->next)
        if (strcmp(st->key, key) == 0) {
            if (now_ms - st->last_ms >= STRIKE_FORGET_MS)
                st->fails = 0;
            return st;
        }
    if (!create)
        return NULL;
    if (l->nstrikes >= STRIKE_MAX_KEYS && now_ms - l->strikes_swept_ms >= LIMITER_SWEEP_GAP_MS) {
        l->strikes_swept_ms = now_ms;   /* a table full of live records is walked once a gap */
        strikes_sweep(l, now_ms);
    }
    struct strike *st = l->nstrikes < STRIKE_MAX_KEYS ? calloc(1, sizeof *st) : NULL;
    if (!st)
        return NULL;
    snprintf(st->key, sizeof st->key, "%s", key);
    st->next = l->strikes[s];
    l->strikes[s] = st;
    l->nstrikes++;
    return st;
}

/* ms still to wait after st's failures when `free` of them cost nothing:
 * 2 s after the first one over, doubling up to LOGIN_DELAY_MAX_MS. */
static int64_t strike_wait(const struct strike *st, unsigned free_fails, int64_t now_ms)
{
    if (!st || st->fails < free_fails)
        return 0;
    unsigned over = st->fails - free_fails;
    int64_t delay = over >= 10 ? LOGIN_DELAY_MAX_MS : (int64_t)STRIKE_DELAY_FIRST_MS << over;
    if (delay > LOGIN_DELAY_MAX_MS)
        delay = LOGIN_DELAY_MAX_MS;
    int64_t left = st->last_ms + delay - now_ms;
    return left > 0 ? left : 0;
}

int64_t limiter_login_wait_ms(struct limiter *l, const char *user, const char *addr, int64_t now_ms)
{
    char key[STRIKE_KEY_MAX];
    strike_key(key, user, addr);
    const struct strike *pair = strike_find(l, key, 0, now_ms);
    if (!pair || pair->fails == 0)
        return 0;                 /* this address has not failed for user */
    unsigned free_fails = l->cfg.login_free_failures;
    int64_t pair_wait = strike_wait(pair, free_fails, now_ms);
    int64_t user_wait = strike_wait(strike_find(l, user, 0, now_ms), LOGIN_USER_FACTOR * free_fails, now_ms);
    return pair_wait > user_wait ? pair_wait : user_wait;
}

void limiter_login_failed(struct limiter *l, const char *user, const char *addr, int64_t now_ms)
{
    char key[STRIKE_KEY_MAX];
    strike_key(key, user, addr);
    struct strike *st[2] = { strike_find(l, key, 1, now_ms), strike_find(l, user, 1, now_ms) };
    for (int i = 0; i < 2; i++)
        if (st[i]) {
            st[i]->fails++;
            st[i]->last_ms = now_ms;
        }
}

void limiter_login_succeeded(struct limiter *l, const char *user, const char *addr)
{
    char key[STRIKE_KEY_MAX];
    strike_key(key, user, addr);
    struct strike **p = &l->strikes[slot_of(key, LIMIT_KINDS)];
    while (*p && strcmp((*p)->key, key) != 0)
        p = &(*p)->next;
    if (*p) {
        struct strike *st = *p;
        *p = st->next;
        free(st);
        l->nstrikes--;
    }
}

unsigned limiter_login_records(const struct limiter *l)
{
    return l->nstrikes;
}

unsigned limiter_sweeps(const struct limiter *l)
{
    return l->sweeps;
}
