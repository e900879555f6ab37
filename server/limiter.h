/* limiter.h — chatd's self-protection: connections in all and per address
 * (Debian's lws has no peer limits, so we count), token-bucket rate limits
 * keyed by user or address (messages; logins and registrations per
 * address), and the failed-login record that delays password guessing per
 * (user, address). Memory is bounded: an address's entry goes with its last
 * connection; the rate buckets and the failure records have a hard count,
 * and when one is reached the idle entries are swept, at most once a
 * LIMITER_SWEEP_GAP_MS (a rate key that still finds no room is refused; a
 * failure that finds none goes uncounted). */
#ifndef CHAT_LIMITER_H
#define CHAT_LIMITER_H

#include <stdint.h>

struct lws;
struct limiter;

enum limit_kind {
    LIMIT_MESSAGES,      /* per user: messages per second */
    LIMIT_LOGIN_ADDR,    /* per address: login and register attempts per minute */
    LIMIT_KINDS
};

struct limiter_config {
    unsigned max_connections;
    unsigned max_connections_per_ip;
    double   rate[LIMIT_KINDS];      /* tokens per second */
    double   burst[LIMIT_KINDS];     /* bucket size */
    unsigned login_free_failures;    /* per (user, address) before delays start */
};

struct limiter *limiter_new(const struct limiter_config *cfg);
void limiter_free(struct limiter *l);

/* ---- connections ---- */
/* At accept: 0 if the server has room for another connection. */
int limiter_conn_room(const struct limiter *l);
/* Counts a new connection under its address (lws opaque user data). */
void limiter_conn_open(struct limiter *l, struct lws *wsi);
void limiter_conn_close(struct limiter *l, struct lws *wsi);
/* Counts the connection under addr from now on instead of the address it
 * had (its peer's, at accept): the client a trusted proxy names once the
 * request's headers are in (forwarded.h). A no-op when addr is the same;
 * if there is no memory for addr it stays where it was. */
void limiter_conn_rekey(struct limiter *l, struct lws *wsi, const char *addr);
/* 1 if the connection's address holds more connections than allowed. */
int limiter_conn_over(const struct limiter *l, struct lws *wsi);
/* The connection's numeric address (its client's, after limiter_conn_rekey),
 * or "?" . */
const char *limiter_conn_addr(struct lws *wsi);
unsigned limiter_conn_total(const struct limiter *l);

/* ---- rates ---- */
/* Takes one token for key: 0 if allowed, else the ms until the bucket has
 * one (for timers that resume exactly then). */
int64_t limiter_take_ms(struct limiter *l, enum limit_kind kind, const char *key, int64_t now_ms);
/* The same in whole seconds for Retry-After: 1 if allowed, else 0 with
 * *retry_after_s set to the wait rounded up. */
int limiter_take(struct limiter *l, enum limit_kind kind, const char *key, int64_t now_ms,
                int *retry_after_s);

/* ---- failed logins ----
 * Growing delays, never a lock: after login_free_failures failed logins for
 * one user from one address, that address waits 2 s before its next try for
 * that user, then 4, 8, ... at most 15 min; a success from it, or an hour
 * without failures, starts over. Across all addresses a user may fail
 * LOGIN_USER_FACTOR times as often; beyond that, addresses that have failed
 * for the user wait like a failing pair, but an address that has not
 * failed for the user is never delayed: the owner gets in during an attack. */
#define LOGIN_USER_FACTOR 10
#define LOGIN_DELAY_MAX_MS (15 * 60 * 1000)
/* Before the (costly) hash: ms addr must still wait before trying user, 0 if it may. */
int64_t limiter_login_wait_ms(struct limiter *l, const char *user, const char *addr, int64_t now_ms);
void limiter_login_failed(struct limiter *l, const char *user, const char *addr, int64_t now_ms);
void limiter_login_succeeded(struct limiter *l, const char *user, const char *addr);
/* Failed-login records held now (pairs and users), for tests. */
unsigned limiter_login_records(const struct limiter *l);
/* Full-table sweeps done so far (rate buckets and failure records), for
 * tests: a full table is swept at most once per LIMITER_SWEEP_GAP_MS, so
 * that filling it does not make every later request walk it. */
unsigned limiter_sweeps(const struct limiter *l);
#define LIMITER_SWEEP_GAP_MS 1000

#endif
