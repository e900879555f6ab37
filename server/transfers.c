/* transfers.c — see transfers.h. Alert events are appended in the same
 * transaction as the state change they announce (feed_txn_begin ...
 * feed_txn_end), and the feed wakes their listeners only after it
 * committed.
 *
 * Every store call is asynchronous (store.h): a submit and each step are a
 * chain of continuations on a struct xfer_op, each completion sending the
 * transaction's next call (or its end) before it returns: begin → lock or
 * insert → get → account moves → set_state → alerts → commit. The chain
 * runs over several loop turns (a refusal may complete inside a call). A
 * step that fails (STORE_UNAVAILABLE: the database
 * is gone or slow) rolls back and its job stays scheduled: money never
 * moves twice, as each step checks the transfer's state under its row
 * lock inside the transaction that changes it.
 *
 * Several instances on one shared store: each step first takes the
 * transfer's row (STORE_CALL_TRANSFER_LOCK, SKIP LOCKED) and checks its
 * state inside the same transaction, so a step is applied once even if two
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

/* A submit or a step on its way through its transaction. */
struct xfer_op {
    lws_dll2_t node;              /* in tr->ops */
    struct transfers *tr;         /* NULL once transfers_free came */
    struct server *srv;
    struct feed_txn *txn;
    struct transfer_job *job;     /* a step's (NULL for a submit, or once freed) */
    struct store_transfer t;
    int rc;                       /* a step's first failure */
    int finished;                 /* a step: the transfer is over */
    const char *alerts[2];        /* still to append, in order */
    int nalerts, next_alert;
    const char *audit;            /* what the commit makes true */
    /* a submit */
    int64_t from_id, to_id, amount_cents;
    int created;
    char to[PROTO_USER_MAX + 1], key[PROTO_CLIENT_MSG_ID_MAX + 1];
    enum transfers_rc outcome;
    transfers_done_fn done;
    void *arg;
};

#define ORPHAN_SWEEP_US (2 * LWS_USEC_PER_SEC)
#define ORPHAN_AFTER_MS 3000      /* beyond three step delays */
#define RESUME_RETRY_US (1 * LWS_USEC_PER_SEC)

struct transfers {
    struct server *srv;
    int delay_ms;
    lws_dll2_owner_t jobs;
    lws_dll2_owner_t ops;
    lws_sorted_usec_list_t orphan_sul, resume_sul;
    int scanning;                 /* a scan's read is on its way */
    int freed;                    /* transfers_free came during it */
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

/* ---- finding transfers to process ---- */

static void orphan_sweep(lws_sorted_usec_list_t *sul);
static void resume_timer(lws_sorted_usec_list_t *sul);

/* A scan's rows: each transfer gets a job. 0, or -1 if the read failed. */
static int scan_found(struct transfers *tr, const struct store_reply *reply)
{
    tr->scanning = 0;
    if (reply->rc != STORE_OK)
        return -1;
    for (int i = 0; i < reply->n; i++)
        if (transfers_track(tr, reply->ids[i]) < 0)
            fprintf(stderr, "chatd: out of memory resuming transfer %lld\n", (long long)reply->ids[i]);
    return 0;
}

static void stale_found(void *arg, const struct store_reply *reply)
{
    struct transfers *tr = arg;
    if (tr->freed) {
        free(tr);
        return;
    }
    if (scan_found(tr, reply) < 0)
        fprintf(stderr, "chatd: looking for orphaned transfers failed; retrying\n");
    lws_sul_schedule(tr->srv->ctx, 0, &tr->orphan_sul, orphan_sweep, ORPHAN_SWEEP_US);
}

static void orphan_sweep(lws_sorted_usec_list_t *sul)
{
    struct transfers *tr = lws_container_of(sul, struct transfers, orphan_sul);
    struct store_args a = { .before_ms = now_ms() - 3 * (int64_t)tr->delay_ms - ORPHAN_AFTER_MS };
    tr->scanning = 1;
    store_call_async(tr->srv->store, 0, STORE_CALL_TRANSFERS_STALE, &a, stale_found, tr);
}

static void unfinished_found(void *arg, const struct store_reply *reply)
{
    struct transfers *tr = arg;
    if (tr->freed) {
        free(tr);
        return;
    }
    if (scan_found(tr, reply) < 0) {
        fprintf(stderr, "chatd: reading unfinished transfers failed; retrying in 1 s\n");
        lws_sul_schedule(tr->srv->ctx, 0, &tr->resume_sul, resume_timer, RESUME_RETRY_US);
    } else if (store_is_shared(tr->srv->store)) {
        lws_sul_schedule(tr->srv->ctx, 0, &tr->orphan_sul, orphan_sweep, ORPHAN_SWEEP_US);
    }
}

int transfers_resume(struct transfers *tr)
{
    struct store_args a = { 0 };
    tr->scanning = 1;
    store_call_async(tr->srv->store, 0, STORE_CALL_TRANSFERS_UNFINISHED, &a, unfinished_found, tr);
    return 0;
}

static void resume_timer(lws_sorted_usec_list_t *sul)
{
    transfers_resume(lws_container_of(sul, struct transfers, resume_sul));
}

void transfers_free(struct transfers *tr)
{
    if (!tr)
        return;
    lws_sul_cancel(&tr->orphan_sul);
    lws_sul_cancel(&tr->resume_sul);
    while (tr->ops.head) {        /* their completions roll back and end */
        struct xfer_op *op = lws_container_of(tr->ops.head, struct xfer_op, node);
        lws_dll2_remove(&op->node);
        op->tr = NULL;
        op->job = NULL;
    }
    while (tr->jobs.head)
        job_free(lws_container_of(tr->jobs.head, struct transfer_job, node));
    if (tr->scanning)
        tr->freed = 1;            /* the scan's completion frees it */
    else
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

/* Stores one alert for the party the kind is addressed to, inside op's
 * transaction; done(op, reply) when it is in. */
static void alert_append(struct xfer_op *op, const char *kind, store_done_fn done)
{
    const struct store_transfer *t = &op->t;
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
    if (!payload) {
        struct store_reply r = { .rc = STORE_ERROR };
        done(op, &r);
        return;
    }
    struct store_new_event ev = {
        .type = "alert", .recipient_id = to_recipient ? t->to_id : t->from_id,
        .payload = payload, .ts_ms = now_ms(),
    };
    feed_txn_append(op->txn, &ev, done, op);   /* copies ev: op may be gone now */
    free(payload);
}

/* ---- the chains ---- */

static struct xfer_op *op_new(struct transfers *tr)
{
    struct xfer_op *op = calloc(1, sizeof *op);
    if (op) {
        op->tr = tr;
        op->srv = tr->srv;
        lws_dll2_add_tail(&op->node, &tr->ops);
    }
    return op;
}

static void op_free(struct xfer_op *op)
{
    if (op->tr)
        lws_dll2_remove(&op->node);
    free(op);
}

/* The transaction's next call; done(op, reply) when it is answered. */
static void op_call(struct xfer_op *op, enum store_call_kind kind, const struct store_args *a,
                    store_done_fn done)
{
    store_call_async(op->srv->store, feed_txn_handle(op->txn), kind, a, done, op);
}

static void op_end(struct xfer_op *op, int commit, store_done_fn done)
{
    feed_txn_end(op->txn, commit, done, op);
}

static enum transfers_rc rc_outcome(int rc)
{
    return rc == STORE_UNAVAILABLE ? TRANSFERS_UNAVAILABLE : TRANSFERS_ERROR;
}

/* ---- accepting: recipient → begin → insert → get → pending alert → commit ---- */

static void submit_finish(struct xfer_op *op, enum transfers_rc rc)
{
    int have = rc == TRANSFERS_CREATED || rc == TRANSFERS_REPEATED;
    transfers_done_fn done = op->done;
    void *arg = op->arg;
    struct store_transfer t = op->t;
    op_free(op);
    done(arg, rc, have ? &t : NULL);
}

static void submit_ended(void *arg, const struct store_reply *reply)
{
    struct xfer_op *op = arg;
    enum transfers_rc rc = op->outcome;
    if (rc == TRANSFERS_CREATED && reply->rc != STORE_OK)
        rc = rc_outcome(reply->rc);
    if (rc == TRANSFERS_CREATED) {
        const struct store_transfer *t = &op->t;
        audit("transfer.accepted", "id=%lld from=%s to=%s amount_cents=%lld", (long long)t->id,
              t->from, t->to, (long long)t->amount_cents);
        if (!op->tr || transfers_track(op->tr, t->id) < 0)
            fprintf(stderr, "chatd: transfer %lld will be processed after a restart\n", (long long)t->id);
    }
    submit_finish(op, rc);
}

/* Something failed inside the transaction: roll back, then answer. */
static void submit_abort(struct xfer_op *op, int rc)
{
    op->outcome = op->tr ? rc_outcome(rc) : TRANSFERS_UNAVAILABLE;
    op_end(op, 0, submit_ended);
}

static void submit_alerted(void *arg, const struct store_reply *reply)
{
    struct xfer_op *op = arg;
    if (reply->rc != STORE_OK || !op->tr) {
        submit_abort(op, reply->rc);
        return;
    }
    op_end(op, 1, submit_ended);
}

static void submit_got(void *arg, const struct store_reply *reply)
{
    struct xfer_op *op = arg;
    if (reply->rc != STORE_OK || !op->tr) {
        submit_abort(op, reply->rc);
        return;
    }
    op->t = reply->transfer;
    if (op->created) {
        op->outcome = TRANSFERS_CREATED;
        alert_append(op, "transfer.pending", submit_alerted);
        return;
    }
    /* the key's first transfer: nothing was written */
    op->outcome = op->t.to_id == op->to_id && op->t.amount_cents == op->amount_cents
        ? TRANSFERS_REPEATED : TRANSFERS_KEY_MISMATCH;
    op_end(op, 0, submit_ended);
}

static void submit_inserted(void *arg, const struct store_reply *reply)
{
    struct xfer_op *op = arg;
    if (reply->rc != STORE_OK || !op->tr) {
        submit_abort(op, reply->rc);
        return;
    }
    op->created = reply->created;
    struct store_args a = { .id = reply->id };
    op_call(op, STORE_CALL_TRANSFER_GET, &a, submit_got);
}

static void submit_recipient(void *arg, const struct store_reply *reply)
{
    struct xfer_op *op = arg;
    if (!op->tr) {
        submit_finish(op, TRANSFERS_UNAVAILABLE);
        return;
    }
    if (reply->rc == STORE_NOT_FOUND) {
        submit_finish(op, TRANSFERS_NO_RECIPIENT);
        return;
    }
    if (reply->rc != STORE_OK) {
        submit_finish(op, rc_outcome(reply->rc));
        return;
    }
    if (reply->id == op->from_id) {
        submit_finish(op, TRANSFERS_TO_SELF);
        return;
    }
    op->to_id = reply->id;
    op->txn = feed_txn_begin(op->srv);
    if (!op->txn) {
        submit_finish(op, TRANSFERS_ERROR);
        return;
    }
    struct store_args a = {
        .from_id = op->from_id, .to_id = op->to_id, .amount_cents = op->amount_cents,
        .key = op->key, .now_ms = now_ms(),
    };
    op_call(op, STORE_CALL_TRANSFER_INSERT, &a, submit_inserted);
}

void transfers_submit(struct transfers *tr, int64_t from_id, const char *to, int64_t amount_cents,
                      const char *key, transfers_done_fn done, void *arg)
{
    struct xfer_op *op = op_new(tr);
    if (!op) {
        done(arg, TRANSFERS_ERROR, NULL);
        return;
    }
    op->from_id = from_id;
    op->amount_cents = amount_cents;
    snprintf(op->to, sizeof op->to, "%s", to);
    snprintf(op->key, sizeof op->key, "%s", key);
    op->done = done;
    op->arg = arg;
    struct store_args a = { .name = op->to };
    store_call_async(tr->srv->store, 0, STORE_CALL_USER_GET, &a, submit_recipient, op);
}

/* ---- processing: begin → lock → get → (moves →) state → alerts → commit ---- */

static void step_ended(void *arg, const struct store_reply *reply)
{
    struct xfer_op *op = arg;
    struct transfer_job *j = op->job;
    int ok = op->rc == STORE_OK && reply->rc == STORE_OK;
    if (ok && op->audit && op->t.reason[0])
        audit(op->audit, "id=%lld reason=%s", (long long)op->t.id, op->t.reason);
    else if (ok && op->audit)
        audit(op->audit, "id=%lld", (long long)op->t.id);
    int finished = ok && op->finished;
    op_free(op);
    if (!j)                       /* transfers_free came: it resumes at the next start */
        return;
    if (!ok)   /* the store failed (e.g. unavailable): rolled back; try again later */
        fprintf(stderr, "chatd: transfer %lld: step failed, retrying\n", (long long)j->transfer_id);
    if (finished)
        job_free(j);
    else
        job_schedule(j);
}

static void step_abort(struct xfer_op *op, int rc)
{
    op->rc = rc != STORE_OK ? rc : STORE_UNAVAILABLE;
    op->finished = 0;
    op_end(op, 0, step_ended);
}

static void step_alerted(void *arg, const struct store_reply *reply);

/* The step's alerts, one after the other, then the commit. */
static void step_next_alert(struct xfer_op *op)
{
    if (op->next_alert < op->nalerts)
        alert_append(op, op->alerts[op->next_alert++], step_alerted);
    else
        op_end(op, 1, step_ended);
}

static void step_alerted(void *arg, const struct store_reply *reply)
{
    struct xfer_op *op = arg;
    if (reply->rc != STORE_OK || !op->tr) {
        step_abort(op, reply->rc);
        return;
    }
    step_next_alert(op);
}

/* The state is set: announce it. */
static void step_state_set(void *arg, const struct store_reply *reply)
{
    struct xfer_op *op = arg;
    if (reply->rc != STORE_OK || !op->tr) {
        step_abort(op, reply->rc);
        return;
    }
    step_next_alert(op);
}

static void step_set_state(struct xfer_op *op, enum transfer_state state)
{
    struct store_args a = {
        .id = op->t.id, .state = state, .reason = op->t.reason[0] ? op->t.reason : NULL,
        .now_ms = now_ms(),
    };
    op_call(op, STORE_CALL_TRANSFER_SET_STATE, &a, step_state_set);
}

static void step_credited(void *arg, const struct store_reply *reply)
{
    struct xfer_op *op = arg;
    if (reply->rc != STORE_OK || !op->tr) {
        step_abort(op, reply->rc);
        return;
    }
    op->alerts[0] = "transfer.completed";
    op->alerts[1] = "transfer.received";
    op->nalerts = 2;
    op->audit = "transfer.completed";
    op->finished = 1;
    step_set_state(op, TRANSFER_COMPLETED);
}

static void step_move(struct xfer_op *op, int64_t user_id, int64_t delta, store_done_fn done)
{
    char memo[64];
    snprintf(memo, sizeof memo, "transfer %lld", (long long)op->t.id);
    struct store_args a = {
        .user_id = user_id, .delta_cents = delta, .id = op->t.id, .now_ms = now_ms(), .memo = memo,
    };
    op_call(op, STORE_CALL_ACCOUNT_MOVE, &a, done);
}

/* The debit: done, or failed when the sender can't pay now. */
static void step_debited(void *arg, const struct store_reply *reply)
{
    struct xfer_op *op = arg;
    if (reply->rc == STORE_CONSTRAINT && op->tr) {
        snprintf(op->t.reason, sizeof op->t.reason, "insufficient_funds");
        op->alerts[0] = "transfer.failed";
        op->nalerts = 1;
        op->audit = "transfer.failed";
        op->finished = 1;
        step_set_state(op, TRANSFER_FAILED);
        return;
    }
    if (reply->rc != STORE_OK || !op->tr) {
        step_abort(op, reply->rc);
        return;
    }
    step_move(op, op->t.to_id, op->t.amount_cents, step_credited);
}

static void step_got(void *arg, const struct store_reply *reply)
{
    struct xfer_op *op = arg;
    if (reply->rc != STORE_OK || !op->tr) {
        step_abort(op, reply->rc);
        return;
    }
    op->t = reply->transfer;
    if (op->t.state == TRANSFER_PENDING) {
        op->alerts[0] = "transfer.processing";
        op->nalerts = 1;
        op->finished = 0;
        step_set_state(op, TRANSFER_PROCESSING);
        return;
    }
    if (op->t.state == TRANSFER_PROCESSING) {  /* processing -> completed | failed */
        step_move(op, op->t.from_id, -op->t.amount_cents, step_debited);
        return;
    }
    op->finished = 1;             /* over already (another instance did it) */
    op_end(op, 0, step_ended);
}

static void step_locked(void *arg, const struct store_reply *reply)
{
    struct xfer_op *op = arg;
    if (reply->rc == STORE_EXISTS) {  /* another instance is on this step now */
        op->finished = 0;
        op_end(op, 0, step_ended);
        return;
    }
    if (reply->rc != STORE_OK || !op->tr) {
        step_abort(op, reply->rc);
        return;
    }
    struct store_args a = { .id = op->job->transfer_id };
    op_call(op, STORE_CALL_TRANSFER_GET, &a, step_got);
}

static void job_run(lws_sorted_usec_list_t *sul)
{
    struct transfer_job *j = lws_container_of(sul, struct transfer_job, sul);
    struct xfer_op *op = op_new(j->tr);
    if (op) {
        op->job = j;
        op->txn = feed_txn_begin(j->tr->srv);
    }
    if (!op || !op->txn) {
        fprintf(stderr, "chatd: transfer %lld: out of memory, retrying\n", (long long)j->transfer_id);
        if (op)
            op_free(op);
        job_schedule(j);
        return;
    }
    struct store_args a = { .id = j->transfer_id };
    op_call(op, STORE_CALL_TRANSFER_LOCK, &a, step_locked);
}
