/* limiter.h — chatd's self-protection: connections in all and per address
 * (Debian's lws has no peer limits, so we count), and token-bucket rate
 * limits keyed by user or address (messages; logins and registrations).
 * Memory is bounded: an address's entry goes with its last connection, and
 * the rate buckets have a hard count; when it is reached, buckets that have
 * refilled (idle ones) are swept, and a key that still finds no room is
 * refused. */
#ifndef CHAT_LIMITER_H
#define CHAT_LIMITER_H

#include <stdint.h>

struct lws;
struct limiter;

enum limit_kind {
    LIMIT_MESSAGES,      /* per user: messages per second */
    LIMIT_LOGIN_USER,    /* per user name: login attempts per minute */
    LIMIT_LOGIN_ADDR,    /* per address: login and register attempts per minute */
    LIMIT_KINDS
};

struct limiter_config {
    unsigned max_connections;
    unsigned max_connections_per_ip;
    double   rate[LIMIT_KINDS];      /* tokens per second */
    double   burst[LIMIT_KINDS];     /* bucket size */
};

struct limiter *limiter_new(const struct limiter_config *cfg);
void limiter_free(struct limiter *l);

/* ---- connections ---- */
/* At accept: 0 if the server has room for another connection. */
int limiter_conn_room(const struct limiter *l);
/* Counts a new connection under its address (lws opaque user data). */
void limiter_conn_open(struct limiter *l, struct lws *wsi);
void limiter_conn_close(struct limiter *l, struct lws *wsi);
/* 1 if the connection's address holds more connections than allowed. */
int limiter_conn_over(const struct limiter *l, struct lws *wsi);
/* The connection's numeric address, or "?" . */
const char *limiter_conn_addr(struct lws *wsi);
unsigned limiter_conn_total(const struct limiter *l);

/* ---- rates ---- */
/* Takes one token for key; 1 if allowed, else 0 with *retry_after_s set. */
int limiter_take(struct limiter *l, enum limit_kind kind, const char *key, int64_t now_ms,
                int *retry_after_s);

#endif
