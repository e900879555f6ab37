/* bank.h — the client's calls to the mock bank, over HTTP whatever the
 * event transport: a transfer (POST /api/v1/transfers with a fresh
 * idempotency key, retried with the same key while the server can't be
 * reached, on the next server of the list if there is one, so a retry
 * never pays twice) and the balance. Calls made before bank_start (the
 * login still under way) are held, a transfer with its idempotency key
 * already drawn, and issued by bank_start. Results reach the
 * front end through core_notice / core_error; the transfer's progress then
 * arrives as alert events in the feed. */
#ifndef CHAT_BANK_H
#define CHAT_BANK_H

#include <stdint.h>

struct core;
struct http;
struct lws_context;
struct servers;

struct bank_env {
    struct lws_context *ctx;
    struct http *http;
    struct core *core;
    const char *prefix;        /* server path prefix, "" or "/x" */
    const char *token;         /* borrowed; must outlive the bank */
    struct servers *servers;   /* NULL: http's own address and prefix */
    int timeout_s;             /* each request's deadline; 0: BANK_TIMEOUT_S */
};

struct bank;
/* env->token may still be empty: it is read when bank_start issues. */
struct bank *bank_new(const struct bank_env *env);
/* The login is done: issues every held call, in the order made. */
void bank_start(struct bank *b);
/* Cancels requests still open. */
void bank_free(struct bank *b);

/* Notice data: {"transfer":{"transfer_id","status","to","amount_cents"}}.
 * With the balance known (a balance answer since the last transfer) and
 * smaller than amount_cents: an "insufficient funds" error, nothing sent, -1. */
int bank_transfer(struct bank *b, const char *to, int64_t amount_cents);
/* Notice data: {"balance_cents":N,"user":...}. */
int bank_balance(struct bank *b);
/* The same, unless a balance request is already on its way (after a
 * completed or received transfer: the new balance, without asking). */
void bank_balance_refresh(struct bank *b);
/* Requests still waiting for an answer (a front end may wait for them on quit). */
int bank_pending(const struct bank *b);
/* Transfers held or waiting for an answer: money whose fate is not known. */
int bank_transfers_pending(const struct bank *b);

#endif
