/* bank.c — see bank.h. Each call is a small job: an HTTP request, and for a
 * transfer, retries with backoff and the same idempotency key while the
 * answer is lost (no response, 409 still running, 429, 5xx). The last
 * balance answered is remembered until a transfer is sent, so a transfer
 * larger than it is refused at once (the server decides otherwise). */
#include "bank.h"
#include "backoff.h"
#include "core.h"
#include "http.h"
#include "money.h"
#include "protocol.h"
#include "servers.h"

#include <libwebsockets.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BANK_TIMEOUT_S   10
#define BANK_MAX_TRIES   8

enum bank_kind { BANK_TRANSFER, BANK_BALANCE };

struct bank_job {
    struct bank_job *next;
    struct bank *bank;
    enum bank_kind kind;
    char to[PROTO_USER_MAX + 1];
    int64_t amount_cents;
    char key[33];                  /* idempotency key: 128 random bits */
    struct http_req *req;
    lws_sorted_usec_list_t sul;
    uint16_t tries;
};

struct bank {
    struct bank_env env;
    struct bank_job *jobs;       /* newest first */
    int pending;
    int started;                 /* logged in: calls are issued at once */
    int balance_known;           /* from the last balance answer, until a transfer */
    int64_t balance_cents;
};

static void bank_issue(struct bank_job *j);

struct bank *bank_new(const struct bank_env *env)
{
    struct bank *b = calloc(1, sizeof *b);
    if (b)
        b->env = *env;
    return b;
}

static void bank_job_free(struct bank_job *j)
{
    struct bank *b = j->bank;
    for (struct bank_job **p = &b->jobs; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            break;
        }
    lws_sul_cancel(&j->sul);
    http_cancel(j->req);
    b->pending--;
    free(j);
}

void bank_free(struct bank *b)
{
    if (!b)
        return;
    while (b->jobs)
        bank_job_free(b->jobs);
    free(b);
}

int bank_pending(const struct bank *b)
{
    return b ? b->pending : 0;
}

int bank_transfers_pending(const struct bank *b)
{
    int n = 0;
    for (const struct bank_job *j = b ? b->jobs : NULL; j; j = j->next)
        n += j->kind == BANK_TRANSFER;
    return n;
}

/* Held jobs sit newest first in the list: issue the oldest first. */
static void bank_issue_held(struct bank *b, struct bank_job *j)
{
    if (!j)
        return;
    bank_issue_held(b, j->next);
    if (!j->req && !j->tries)
        bank_issue(j);
}

void bank_start(struct bank *b)
{
    if (!b || b->started)
        return;
    b->started = 1;
    bank_issue_held(b, b->jobs);
}

static void bank_retry_tick(lws_sorted_usec_list_t *sul)
{
    bank_issue(lws_container_of(sul, struct bank_job, sul));
}

/* A lost or temporary answer: try again with the same key, or give up. */
static void bank_retry(struct bank_job *j, const char *why)
{
    if (j->tries >= BANK_MAX_TRIES) {
        core_error(j->bank->env.core, "%s failed: %s",
                   j->kind == BANK_TRANSFER ? "transfer" : "balance", why);
        bank_job_free(j);
        return;
    }
    unsigned ms = backoff_next(j->bank->env.ctx, &j->tries);
    lws_sul_schedule(j->bank->env.ctx, 0, &j->sul, bank_retry_tick, (lws_usec_t)ms * 1000);
}

static void bank_transfer_done(struct bank_job *j, const json_t *body)
{
    char amount[32];
    const char *status = json_string_value(json_object_get(body, "status"));
    if (!status || !json_is_integer(json_object_get(body, "transfer_id"))) {
        core_error(j->bank->env.core, "the bank sent an unreadable answer");
        return;
    }
    json_t *t = json_pack("{s:{s:O,s:O,s:s,s:I}}", "transfer",
                          "transfer_id", json_object_get(body, "transfer_id"),
                          "status", json_object_get(body, "status"),
                          "to", j->to, "amount_cents", (json_int_t)j->amount_cents);
    core_notice(j->bank->env.core, t, "transfer #%lld of %s to %s accepted (%s)",
                (long long)json_integer_value(json_object_get(body, "transfer_id")),
                money_format(j->amount_cents, amount, sizeof amount), j->to, status);
    json_decref(t);
}

static void bank_balance_done(struct bank_job *j, const json_t *body)
{
    char amount[32];
    json_int_t cents = json_integer_value(json_object_get(body, "balance_cents"));
    j->bank->balance_known = 1;
    j->bank->balance_cents = cents;
    json_t *d = json_pack("{s:I,s:O}", "balance_cents", cents, "user", json_object_get(body, "user"));
    core_notice(j->bank->env.core, d, "balance: %s", money_format(cents, amount, sizeof amount));
    json_decref(d);
}

static void bank_answer(void *arg, const struct http_result *r)
{
    struct bank_job *j = arg;
    char why[256];
    j->req = NULL;
    if (!r->error && (r->status == 200 || r->status == 201 || r->status == 202)) {
        json_t *body = json_loadb(r->body, r->len, 0, NULL);
        if (json_is_object(body)) {
            if (j->kind == BANK_TRANSFER)
                bank_transfer_done(j, body);
            else
                bank_balance_done(j, body);
        } else {
            core_error(j->bank->env.core, "the bank sent an unreadable answer");
        }
        json_decref(body);
        bank_job_free(j);
        return;
    }
    if (r->error || r->status == 409 || r->status == 429 || r->status >= 500) {
        bank_retry(j, r->error ? r->error : http_error_text(r, why, sizeof why));
        return;
    }
    if (r->status == 401)
        core_fatal(j->bank->env.core, 2, "the server no longer accepts this session (401); log in again");
    else
        core_error(j->bank->env.core, "%s refused: %s", j->kind == BANK_TRANSFER ? "transfer" : "balance",
                   http_error_text(r, why, sizeof why));
    bank_job_free(j);
}

static void bank_issue(struct bank_job *j)
{
    char path[300];
    char *body = NULL;
    struct bank *b = j->bank;
    if (j->kind == BANK_TRANSFER) {
        b->balance_known = 0;   /* the money may be gone at any moment now */
        json_t *o = json_pack("{s:s,s:I,s:s}", "to", j->to, "amount_cents",
                              (json_int_t)j->amount_cents, "idempotency_key", j->key);
        body = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
    }
    snprintf(path, sizeof path, "%s/api/v1/%s", servers_prefix(b->env.servers, b->env.prefix),
             j->kind == BANK_TRANSFER ? "transfers" : "account");
    struct http_call call = {
        .method = j->kind == BANK_TRANSFER ? "POST" : "GET", .path = path,
        .body = body, .token = b->env.token, .timeout_s = b->env.timeout_s > 0 ? b->env.timeout_s : BANK_TIMEOUT_S,
        .servers = b->env.servers,
    };
    j->req = (j->kind == BANK_BALANCE || body) ? http_request(b->env.http, &call, bank_answer, j) : NULL;
    free(body);
    if (!j->req)
        bank_retry(j, "out of memory");
}

static struct bank_job *bank_job_new(struct bank *b, enum bank_kind kind)
{
    struct bank_job *j = calloc(1, sizeof *j);
    if (!j) {
        core_error(b->env.core, "out of memory");
        return NULL;
    }
    j->bank = b;
    j->kind = kind;
    j->next = b->jobs;
    b->jobs = j;
    b->pending++;
    return j;
}

int bank_transfer(struct bank *b, const char *to, int64_t amount_cents)
{
    unsigned char raw[16];
    if (b->balance_known && amount_cents > b->balance_cents) {
        char amount[32], balance[32];
        core_error(b->env.core, "insufficient funds: %s is more than your balance of %s; not sent",
                   money_format(amount_cents, amount, sizeof amount),
                   money_format(b->balance_cents, balance, sizeof balance));
        return -1;
    }
    struct bank_job *j = bank_job_new(b, BANK_TRANSFER);
    if (!j)
        return -1;
    snprintf(j->to, sizeof j->to, "%s", to);
    j->amount_cents = amount_cents;
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(j->key, sizeof j->key, raw, sizeof raw);
    if (b->started) {
        bank_issue(j);
    } else {
        char amount[32];
        json_t *d = json_pack("{s:{s:s,s:I}}", "held", "to", to, "amount_cents", (json_int_t)amount_cents);
        core_notice(b->env.core, d, "transfer of %s to %s will be sent once logged in",
                    money_format(amount_cents, amount, sizeof amount), to);
        json_decref(d);
    }
    return 0;
}

int bank_balance(struct bank *b)
{
    struct bank_job *j = bank_job_new(b, BANK_BALANCE);
    if (!j)
        return -1;
    if (b->started)
        bank_issue(j);
    return 0;
}

void bank_balance_refresh(struct bank *b)
{
    for (const struct bank_job *j = b->jobs; j; j = j->next)
        if (j->kind == BANK_BALANCE)
            return;             /* one on its way answers this too */
    bank_balance(b);
}
