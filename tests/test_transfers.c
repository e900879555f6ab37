/* Unit tests for server/transfers.c on a real store and lws timers: the
 * transfer state machine, idempotency, and the ledger invariants over a
 * randomized run of thousands of transfers (money is neither created nor
 * lost, no balance goes below zero, every movement is in the ledger). */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "feed.h"
#include "server.h"
#include "transfers.h"

#define USERS 8

struct fixture {
    char dir[64], path[96];
    struct server srv;
    int64_t uid[USERS];
};

static const struct lws_protocols no_protocols[] = {
    { "none", lws_callback_http_dummy, 0, 0, 0, NULL, 0 },
    { NULL, NULL, 0, 0, 0, NULL, 0 },
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    char err[128];
    snprintf(f->dir, sizeof f->dir, "/tmp/chat-transfers-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/t.db", f->dir);
    f->srv.store = store_open(f->path, err, sizeof err);
    assert_non_null(f->srv.store);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = no_protocols;
    lws_set_log_level(LLL_ERR, NULL);
    f->srv.ctx = lws_create_context(&info);
    assert_non_null(f->srv.ctx);
    f->srv.feed = feed_new(f->srv.store);
    assert_non_null(f->srv.feed);
    f->srv.transfers = transfers_new(&f->srv, 0);
    for (int i = 0; i < USERS; i++) {
        char name[16];
        snprintf(name, sizeof name, "user%d", i);
        assert_int_equal(store_user_create(f->srv.store, name, "$argon2id$x", 1, &f->uid[i]), STORE_OK);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char wal[128], shm[128];
    transfers_free(f->srv.transfers);
    lws_context_destroy(f->srv.ctx);
    feed_free(f->srv.feed);
    store_free(f->srv.store);
    snprintf(wal, sizeof wal, "%s-wal", f->path);
    snprintf(shm, sizeof shm, "%s-shm", f->path);
    unlink(f->path);
    unlink(wal);
    unlink(shm);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void count_unfinished(void *arg, int64_t id)
{
    (void)id;
    (*(int *)arg)++;
}

static int unfinished(struct fixture *f)
{
    int n = 0;
    assert_int_equal(store_transfers_unfinished(f->srv.store, count_unfinished, &n), STORE_OK);
    return n;
}

/* Runs the loop until every transfer is settled (bounded). lws sizes its
 * poll wait inside the loop only, so wake it each turn: timers set from
 * outside (here, by transfers_submit) are then seen at once. The store's
 * completions (its writer thread's) are taken as main.c's loop does. */
static void service(struct fixture *f)
{
    if (store_io_pending(f->srv.store) > 0) {
        struct pollfd p = { store_io_fd(f->srv.store), POLLIN, 0 };
        poll(&p, 1, 10);
    }
    store_io_service(f->srv.store);
    lws_cancel_service(f->srv.ctx);
    lws_service(f->srv.ctx, 0);
}

/* Settled: nothing unfinished and no store call out (a synchronous read
 * runs between the writer thread's requests, so it may see a transfer's
 * step inside its open transaction). */
static void settle_all(struct fixture *f)
{
    for (int i = 0; i < 200000 && (unfinished(f) > 0 || store_io_pending(f->srv.store) > 0); i++)
        service(f);
    assert_int_equal(unfinished(f), 0);
}

/* transfers_submit's answer, once its completion came. */
struct outcome {
    int called;
    enum transfers_rc rc;
    struct store_transfer t;
};

static void submitted(void *arg, enum transfers_rc rc, const struct store_transfer *t)
{
    struct outcome *o = arg;
    o->called++;
    o->rc = rc;
    if (t)
        o->t = *t;
}

static enum transfers_rc submit(struct fixture *f, int64_t from, const char *to, int64_t amount,
                                const char *key, struct store_transfer *t)
{
    struct outcome o = { 0 };
    transfers_submit(f->srv.transfers, from, to, amount, key, submitted, &o);
    for (int i = 0; i < 1000 && !o.called; i++)
        service(f);
    assert_int_equal(o.called, 1);
    *t = o.t;
    return o.rc;
}

static int64_t sql_int(struct fixture *f, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    int64_t v = -1;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static int64_t balance(struct fixture *f, int i)
{
    int64_t c = -1;
    assert_int_equal(store_account_balance(f->srv.store, f->uid[i], &c), STORE_OK);
    return c;
}

static void test_one_transfer(void **state)
{
    struct fixture *f = *state;
    struct store_transfer t;
    assert_int_equal(submit(f, f->uid[0], "user1", 2500, "k1", &t), TRANSFERS_CREATED);
    assert_int_equal(t.state, TRANSFER_PENDING);
    assert_int_equal(balance(f, 0), 100000);      /* nothing moves before processing */
    settle_all(f);
    assert_int_equal(store_transfer_get(f->srv.store, t.id, &t), STORE_OK);
    assert_int_equal(t.state, TRANSFER_COMPLETED);
    assert_int_equal(balance(f, 0), 97500);
    assert_int_equal(balance(f, 1), 102500);
    /* pending, processing, completed for the sender; received for the recipient */
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM events WHERE type='alert'"), 4);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM events WHERE type='alert' AND recipient_id=2"), 1);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM events WHERE payload LIKE '%transfer.received%'"
                                " AND recipient_id=2"), 1);
}

static void test_idempotency(void **state)
{
    struct fixture *f = *state;
    struct store_transfer a, b;
    assert_int_equal(submit(f, f->uid[0], "user1", 100, "same", &a), TRANSFERS_CREATED);
    assert_int_equal(submit(f, f->uid[0], "user1", 100, "same", &b), TRANSFERS_REPEATED);
    assert_int_equal(a.id, b.id);
    assert_int_equal(submit(f, f->uid[0], "user1", 101, "same", &b), TRANSFERS_KEY_MISMATCH);
    assert_int_equal(submit(f, f->uid[0], "user2", 100, "same", &b), TRANSFERS_KEY_MISMATCH);
    /* the key is per sender: another sender may use it */
    assert_int_equal(submit(f, f->uid[1], "user2", 100, "same", &b), TRANSFERS_CREATED);
    assert_int_equal(submit(f, f->uid[0], "nobody", 100, "k", &b), TRANSFERS_NO_RECIPIENT);
    assert_int_equal(submit(f, f->uid[0], "user0", 100, "k", &b), TRANSFERS_TO_SELF);
    settle_all(f);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM transfers"), 2);
    assert_int_equal(balance(f, 0), 100000 - 100);
}

static void test_insufficient_funds(void **state)
{
    struct fixture *f = *state;
    struct store_transfer t;
    assert_int_equal(submit(f, f->uid[0], "user1", 100001, "big", &t), TRANSFERS_CREATED);
    settle_all(f);
    assert_int_equal(store_transfer_get(f->srv.store, t.id, &t), STORE_OK);
    assert_int_equal(t.state, TRANSFER_FAILED);
    assert_string_equal(t.reason, "insufficient_funds");
    assert_int_equal(balance(f, 0), 100000);
    assert_int_equal(balance(f, 1), 100000);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM ledger WHERE transfer_id IS NOT NULL"), 0);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM events WHERE payload LIKE '%transfer.failed%'"), 1);
}

/* Funds are checked when processing, not when accepting: two transfers
 * that each fit but not together leave one completed, one failed. */
static void test_funds_checked_at_processing(void **state)
{
    struct fixture *f = *state;
    struct store_transfer a, b;
    assert_int_equal(submit(f, f->uid[0], "user1", 60000, "a", &a), TRANSFERS_CREATED);
    assert_int_equal(submit(f, f->uid[0], "user2", 60000, "b", &b), TRANSFERS_CREATED);
    settle_all(f);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM transfers WHERE status='completed'"), 1);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM transfers WHERE status='failed'"), 1);
    assert_int_equal(balance(f, 0), 40000);
}

static void check_ledger_invariants(struct fixture *f)
{
    assert_int_equal(sql_int(f, "SELECT SUM(balance_cents) FROM accounts"), (int64_t)USERS * 100000);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM accounts WHERE balance_cents < 0"), 0);
    /* each balance is the sum of its ledger rows */
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM accounts a WHERE a.balance_cents <>"
                                " (SELECT SUM(delta_cents) FROM ledger l WHERE l.account_id = a.user_id)"), 0);
    /* every transfer's rows sum to zero: completed have two, failed none */
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM (SELECT transfer_id FROM ledger WHERE transfer_id"
                                " IS NOT NULL GROUP BY transfer_id HAVING SUM(delta_cents) <> 0"
                                " OR COUNT(*) <> 2)"), 0);
    assert_int_equal(sql_int(f, "SELECT COUNT(DISTINCT transfer_id) FROM ledger"),
                     sql_int(f, "SELECT COUNT(*) FROM transfers WHERE status='completed'"));
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM ledger l JOIN transfers t ON t.id = l.transfer_id"
                                " WHERE t.status <> 'completed'"), 0);
    /* one final alert per transfer, one received alert per completed one */
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM events WHERE payload LIKE '%transfer.completed%'"
                                " OR payload LIKE '%transfer.failed%'"),
                     sql_int(f, "SELECT COUNT(*) FROM transfers"));
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM events WHERE payload LIKE '%transfer.received%'"),
                     sql_int(f, "SELECT COUNT(*) FROM transfers WHERE status='completed'"));
}

static void test_randomized_ledger(void **state)
{
    struct fixture *f = *state;
    unsigned seed = 20261128;
    int created = 0, failed_expected_some = 0;
    char key[32], to[16];
    for (int i = 0; i < 3000; i++) {
        int from = rand_r(&seed) % USERS, dest = rand_r(&seed) % USERS;
        int64_t amount = 1 + rand_r(&seed) % 60000;
        /* one in ten reuses a recent key: a retry or a mismatch */
        int k = (rand_r(&seed) % 10 == 0 && i > 0) ? i - 1 : i;
        snprintf(key, sizeof key, "key-%d", k);
        snprintf(to, sizeof to, "user%d", dest);
        struct store_transfer t;
        enum transfers_rc rc = submit(f, f->uid[from], to, amount, key, &t);
        assert_true(rc != TRANSFERS_ERROR && rc != TRANSFERS_NO_RECIPIENT);
        assert_true(rc != TRANSFERS_TO_SELF || from == dest);
        created += rc == TRANSFERS_CREATED;
        if (i % 50 == 0)
            service(f);   /* let some settle while others arrive */
    }
    settle_all(f);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM transfers"), created);
    failed_expected_some = (int)sql_int(f, "SELECT COUNT(*) FROM transfers WHERE status='failed'");
    assert_true(failed_expected_some > 0);        /* the run exercised overdrafts */
    assert_true(sql_int(f, "SELECT COUNT(*) FROM transfers WHERE status='completed'") > 1000);
    check_ledger_invariants(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_transfer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_insufficient_funds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_funds_checked_at_processing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_randomized_ledger, setup, teardown),
    };
    return cmocka_run_group_tests_name("transfers", tests, NULL, NULL);
}
