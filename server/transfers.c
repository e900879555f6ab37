/* transfers.c — see transfers.h. Alert events are appended in the same
 * transaction as the state change they announce (feed_begin/feed_commit),
 * and the feed wakes their listeners only after it committed.
 *
 * Several instances on one shared store: each step first takes the
 * transfer's row (store_transfer_lock, SKIP LOCKED) and checks its state
 * inside the same transaction, so a step is applied once even if two
 * instances schedule the same transfer. Transfers an instance left behind
 * when it died are found by a sweep (every ORPHAN_SWEEP_US) for unfinished
 * transfers untouched for much longer than a step takes, and adopted. */
#include "transfers.h"
#include "audit.h"
#include "clock.h"
#include "feed.h"
#include "money.h"
#include "server.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct transfer_job {
    lws_sorted_usec_list_t sul;
    lws_dll2_t node;
    struct transfers *tr;
    int64_t transfer_id;
};

#define ORPHAN_SWEEP_US (2 * LWS_USEC_PER_SEC)
#define ORPHAN_AFTER_MS 3000      /* beyond three step delays */

struct transfers {
    struct server *srv;
    int delay_ms;
    lws_dll2_owner_t jobs;
    lws_sorted_usec_list_t orphan_sul;
};

static void job_run(lws_sorted_usec_list_t *sul);

static void job_schedule(struct transfer_job *j)
{
    lws_usec_t us = (lws_usec_t)j->tr->delay_ms * 1000;
    lws_sul_schedule(j->tr->srv->ctx, 0, &j->sul, job_run, us ? us : 1);
}

static int transfers_tracking(const struct transfers *tr, int64_t transfer_id)
{
    lws_start_foreach_dll(struct lws_dll2 *, d, tr->jobs.head) {
        if (lws_container_of(d, struct transfer_job, node)->transfer_id == transfer_id)
            return 1;
    } lws_end_foreach_dll(d);
    return 0;
}

static int transfers_track(struct transfers *tr, int64_t transfer_id)
{
    if (transfers_tracking(tr, transfer_id))
        return 0;
    struct transfer_job *j = calloc(1, sizeof *j);
    if (!j)
        return -1;
    j->tr = tr;
    j->transfer_id = transfer_id;
    lws_dll2_add_tail(&j->node, &tr->jobs);
    job_schedule(j);
    return 0;
}

static void job_free(struct transfer_job *j)
{
    lws_sul_cancel(&j->sul);
    lws_dll2_remove(&j->node);
    free(j);
}

struct transfers *transfers_new(struct server *srv, int delay_ms)
{
    struct transfers *tr = calloc(1, sizeof *tr);
    if (tr) {
        tr->srv = srv;
        tr->delay_ms = delay_ms;
    }
    return tr;
}

static void track_found(void *arg, int64_t id)
{
    if (transfers_track(arg, id) < 0)
        fprintf(stderr, "chatd: out of memory resuming transfer %lld\n", (long long)id);
}

static void orphan_sweep(lws_sorted_usec_list_t *sul)
{
    struct transfers *tr = lws_container_of(sul, struct transfers, orphan_sul);
    int64_t before = now_ms() - 3 * (int64_t)tr->delay_ms - ORPHAN_AFTER_MS;
    if (store_transfers_stale(tr->srv->store, before, track_found, tr) != STORE_OK)
        fprintf(stderr, "chatd: looking for orphaned transfers failed; retrying\n");
    lws_sul_schedule(tr->srv->ctx, 0, &tr->orphan_sul, orphan_sweep, ORPHAN_SWEEP_US);
}

int transfers_resume(struct transfers *tr)
{
    if (store_transfers_unfinished(tr->srv->store, track_found, tr) != STORE_OK)
        return -1;
    if (store_is_shared(tr->srv->store))
        lws_sul_schedule(tr->srv->ctx, 0, &tr->orphan_sul, orphan_sweep, ORPHAN_SWEEP_US);
    return 0;
}

void transfers_free(struct transfers *tr)
{
    if (!tr)
        return;
    lws_sul_cancel(&tr->orphan_sul);
    while (tr->jobs.head)
        job_free(lws_container_of(tr->jobs.head, struct transfer_job, node));
    free(tr);
}

/* ---- alerts ---- */

static void alert_body(const struct store_transfer *t, const char *kind, char *buf, size_t len)
{
    char amount[32];
    money_format(t->amount_cents, amount, sizeof amount);
    if (!strcmp(kind, "transfer.pending"))
        snprintf(buf, len, "We received your transfer of %s to %s and will process it shortly.", amount, t->to);
    else if (!strcmp(kind, "transfer.processing"))
        snprintf(buf, len, "Your transfer of %s to %s is being processed.", amount, t->to);
    else if (!strcmp(kind, "transfer.completed"))
        snprintf(buf, len, "Your transfer of %s to %s is complete.", amount, t->to);
    else if (!strcmp(kind, "transfer.failed"))
        snprintf(buf, len, "Your transfer of %s to %s failed: %s.", amount, t->to,
                 !strcmp(t->reason, "insufficient_funds") ? "insufficient funds" : t->reason);
    else
        snprintf(buf, len, "You received %s from %s.", amount, t->from);
}

/* Stores one alert for the party the kind is addressed to. */
static int alert_append(struct transfers *tr, const struct store_transfer *t, const char *kind)
{
    int to_recipient = !strcmp(kind, "transfer.received");
    char body[256];
    alert_body(t, kind, body, sizeof body);
    json_t *p = json_pack("{s:s,s:I,s:I,s:s,s:s}", "kind", kind, "transfer_id", (json_int_t)t->id,
                          "amount_cents", (json_int_t)t->amount_cents,
                          "counterparty", to_recipient ? t->from : t->to, "body", body);
    if (p && t->reason[0])
        json_object_set_new(p, "reason", json_string(t->reason));
    char *payload = p ? json_dumps(p, JSON_COMPACT) : NULL;
    json_decref(p);
    if (!payload)
        return STORE_ERROR;
    struct store_new_event ev = {
        .type = "alert", .recipient_id = to_recipient ? t->to_id : t->from_id,
        .payload = payload, .ts_ms = now_ms(),
    };
    int64_t id, ts;
    int created;
    int rc = feed_append(tr->srv, &ev, &id, &ts, &created);
    free(payload);
    return rc;
}

/* ---- accepting ---- */

static enum transfers_rc existing_answer(struct transfers *tr, int64_t id, int64_t to_id,
                                         int64_t amount_cents, struct store_transfer *t)
{
    if (store_transfer_get(tr->srv->store, id, t) != STORE_OK)
        return TRANSFERS_ERROR;
    return t->to_id == to_id && t->amount_cents == amount_cents ? TRANSFERS_REPEATED : TRANSFERS_KEY_MISMATCH;
}

/* Inside a transaction: the transfer row and its pending alert. */
static enum transfers_rc insert_with_alert(struct transfers *tr, int64_t from_id, int64_t to_id,
                                           int64_t amount_cents, const char *key,
                                           struct store_transfer *t)
{
    int64_t id;
    int created;
    struct store *st = tr->srv->store;
    if (store_transfer_insert(st, from_id, to_id, amount_cents, key, now_ms(), &id, &created) != STORE_OK)
        return TRANSFERS_ERROR;
    if (!created)
        return existing_answer(tr, id, to_id, amount_cents, t);
    if (store_transfer_get(st, id, t) != STORE_OK ||
        alert_append(tr, t, "transfer.pending") != STORE_OK)
        return TRANSFERS_ERROR;
    return TRANSFERS_CREATED;
}

enum transfers_rc transfers_submit(struct transfers *tr, int64_t from_id, const char *to,
                                   int64_t amount_cents, const char *key, struct store_transfer *t)
{
    struct store *st = tr->srv->store;
    int64_t to_id;
    int rc = store_user_get(st, to, &to_id, NULL, 0);
    if (rc == STORE_NOT_FOUND)
        return TRANSFERS_NO_RECIPIENT;
    if (rc != STORE_OK)
        return TRANSFERS_ERROR;
    if (to_id == from_id)
        return TRANSFERS_TO_SELF;
    if (feed_begin(tr->srv) != STORE_OK)
        return TRANSFERS_ERROR;
    enum transfers_rc outcome = insert_with_alert(tr, from_id, to_id, amount_cents, key, t);
    if (outcome == TRANSFERS_ERROR) {
        feed_rollback(tr->srv);
        return outcome;
    }
    if (feed_commit(tr->srv) != STORE_OK)
        return TRANSFERS_ERROR;
    if (outcome == TRANSFERS_CREATED)
        audit("transfer.accepted", "id=%lld from=%s to=%s amount_cents=%lld", (long long)t->id,
              t->from, t->to, (long long)t->amount_cents);
    if (outcome == TRANSFERS_CREATED && transfers_track(tr, t->id) < 0)
        fprintf(stderr, "chatd: transfer %lld will be processed after a restart\n", (long long)t->id);
    return outcome;
}

/* ---- processing ---- */

/* processing -> completed, or failed when the sender can't pay now. */
static int settle(struct transfers *tr, struct store_transfer *t)
{
    struct store *st = tr->srv->store;
    int64_t now = now_ms();
    char memo[64];
    snprintf(memo, sizeof memo, "transfer %lld", (long long)t->id);
    int rc = store_account_move(st, t->from_id, -t->amount_cents, t->id, now, memo);
    if (rc == STORE_CONSTRAINT) {
        snprintf(t->reason, sizeof t->reason, "insufficient_funds");
        audit("transfer.failed", "id=%lld reason=%s", (long long)t->id, t->reason);
        rc = store_transfer_set_state(st, t->id, TRANSFER_FAILED, t->reason, now);
        return rc == STORE_OK ? alert_append(tr, t, "transfer.failed") : rc;
    }
    if (rc == STORE_OK)
        rc = store_account_move(st, t->to_id, t->amount_cents, t->id, now, memo);
    if (rc == STORE_OK)
        rc = store_transfer_set_state(st, t->id, TRANSFER_COMPLETED, NULL, now);
    if (rc == STORE_OK)
        audit("transfer.completed", "id=%lld", (long long)t->id);
    if (rc == STORE_OK)
        rc = alert_append(tr, t, "transfer.completed");
    if (rc == STORE_OK)
        rc = alert_append(tr, t, "transfer.received");
    return rc;
}

/* One step of the transfer, in one transaction. *finished when it is over. */
static int step(struct transfers *tr, int64_t id, int *finished)
{
    struct store *st = tr->srv->store;
    struct store_transfer t;
    *finished = 1;
    if (feed_begin(tr->srv) != STORE_OK)
        return -1;
    int rc = store_transfer_lock(st, id);
    if (rc == STORE_EXISTS) {     /* another instance is on this step now */
        feed_rollback(tr->srv);
        *finished = 0;
        return 0;
    }
    if (rc == STORE_OK)
        rc = store_transfer_get(st, id, &t);
    if (rc == STORE_OK && t.state == TRANSFER_PENDING) {
        rc = store_transfer_set_state(st, id, TRANSFER_PROCESSING, NULL, now_ms());
        if (rc == STORE_OK)
            rc = alert_append(tr, &t, "transfer.processing");
        *finished = 0;
    } else if (rc == STORE_OK && t.state == TRANSFER_PROCESSING) {
        rc = settle(tr, &t);
    }
    if (rc != STORE_OK) {
        feed_rollback(tr->srv);
        return -1;
    }
    return feed_commit(tr->srv) == STORE_OK ? 0 : -1;
}

static void job_run(lws_sorted_usec_list_t *sul)
{
    struct transfer_job *j = lws_container_of(sul, struct transfer_job, sul);
    int finished;
    if (step(j->tr, j->transfer_id, &finished) < 0) {
        /* The store failed (e.g. busy): the step rolled back; try again later. */
        fprintf(stderr, "chatd: transfer %lld: step failed, retrying\n", (long long)j->transfer_id);
        finished = 0;
    }
    if (finished)
        job_free(j);
    else
        job_schedule(j);
}
