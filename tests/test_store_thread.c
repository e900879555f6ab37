/* Unit tests for server/store_thread.c through store.h, on SQLite: the
 * asynchronous calls run on the store's writer thread and complete later,
 * on the thread that calls store_io_service (the event loop), never inside
 * the call; in call order; a transaction's calls before a later outside
 * call; the bounds (count: refused at once; age: a queued request answered
 * STORE_UNAVAILABLE and never run); store_free answering what is queued;
 * arguments copied at call time; synchronous calls safe meanwhile. The
 * thread is made to wait with store_async_hold. */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "store.h"

#define NOW 1700000000000LL
#define MAXR 16

struct log {
    int n;
    int tag[MAXR];
    int rc[MAXR];
    int64_t id[MAXR];
};

/* done's argument: where it is logged, and the tag it logs. */
struct ticket {
    struct log *log;
    int tag;
};

static void logged(void *arg, const struct store_reply *rep)
{
    struct ticket *t = arg;
    struct log *l = t->log;
    assert_true(l->n < MAXR);
    l->tag[l->n] = t->tag;
    l->rc[l->n] = rep->rc;
    l->id[l->n] = rep->id;
    l->n++;
}

static int setup(void **state)
{
    char err[256] = "";
    struct store *st = store_open(":memory:", err, sizeof err);
    if (!st) {
        fprintf(stderr, "store_open: %s\n", err);
        return -1;
    }
    *state = st;
    return 0;
}

static int teardown(void **state)
{
    if (*state)
        store_free(*state);
    return 0;
}

static int64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Drives the store as the event loop does (its descriptor, then
 * store_io_service) until l has n completions; 5 s at most. */
static void drive(struct store *st, struct log *l, int n)
{
    int64_t end = ms_now() + 5000;
    while (l->n < n && ms_now() < end) {
        int fd = store_io_fd(st);
        assert_true(fd >= 0);
        assert_int_equal(store_io_want(st), STORE_IO_READ);
        struct pollfd p = { fd, POLLIN, 0 };
        poll(&p, 1, 20);
        store_io_service(st);
    }
    assert_int_equal(l->n, n);
}

static int64_t mkuser(struct store *st, const char *name)
{
    int64_t id = 0;
    assert_int_equal(store_user_create(st, name, "$argon2id$hash", NOW, &id), STORE_OK);
    return id;
}

static void append_async(struct store *st, int64_t txn, int64_t sender, const char *cmid,
                         struct ticket *t)
{
    struct store_new_event ev = {
        .type = "chat", .sender_id = sender, .client_msg_id = cmid, .payload = "{}", .ts_ms = NOW,
    };
    struct store_args a = { .ev = &ev };
    store_call_async(st, txn, STORE_CALL_EVENT_APPEND, &a, logged, t);
}

static int count_event(void *arg, const struct store_event *ev)
{
    (void)ev;
    (*(int *)arg)++;
    return 0;
}

static int stored_events(struct store *st)
{
    int n = 0;
    assert_int_equal(store_events_all_after(st, 0, 1000, count_event, &n), STORE_OK);
    return n;
}

/* Nothing completes inside the call; the loop gets each completion, in
 * call order, once the thread has run it. */
static void test_completes_later_in_call_order(void **state)
{
    struct store *st = *state;
    int64_t a = mkuser(st, "alice");
    struct log l = {0};
    struct ticket t[5];
    for (int i = 0; i < 5; i++) {
        t[i] = (struct ticket){ &l, i };
        char cmid[16];
        snprintf(cmid, sizeof cmid, "c%d", i);
        append_async(st, 0, a, cmid, &t[i]);
        assert_int_equal(l.n, 0);
    }
    assert_true(store_io_pending(st) > 0);
    drive(st, &l, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(l.tag[i], i);
        assert_int_equal(l.rc[i], STORE_OK);
        if (i)
            assert_true(l.id[i] > l.id[i - 1]);
    }
    assert_int_equal(store_io_pending(st), 0);
}

/* A call queued after a transaction's BEGIN, outside it, runs after the
 * transaction's calls and its end: the transaction is not refused, and
 * sees nothing of it. */
static void test_transaction_runs_before_later_call(void **state)
{
    struct store *st = *state;
    int64_t a = mkuser(st, "alice");
    struct log l = {0};
    struct ticket before = { &l, 1 }, begin = { &l, 2 }, outside = { &l, 3 },
                  inside = { &l, 4 }, end = { &l, 5 };
    store_async_hold(st, 1);
    append_async(st, 0, a, "before", &before);
    int64_t txn = store_txn_begin_async(st, logged, &begin);
    assert_true(txn != 0);
    append_async(st, 0, a, "outside", &outside);
    append_async(st, txn, a, "inside", &inside);
    store_txn_end_async(st, txn, 1, logged, &end);
    assert_int_equal(l.n, 0);
    store_async_hold(st, 0);
    drive(st, &l, 5);
    static const int order[5] = { 1, 2, 4, 5, 3 };
    for (int i = 0; i < 5; i++) {
        assert_int_equal(l.tag[i], order[i]);
        assert_int_equal(l.rc[i], STORE_OK);
    }
    assert_true(l.id[2] > l.id[0]);     /* inside after before */
    assert_true(l.id[4] > l.id[2]);     /* outside after inside */
    assert_int_equal(stored_events(st), 3);
}

/* A request still queued past the age bound is answered STORE_UNAVAILABLE
 * by the loop's service, and never runs; health says requests wait. */
static void test_age_bound_answers_queued(void **state)
{
    struct store *st = *state;
    int64_t a = mkuser(st, "alice");
    store_async_bound(st, 0, 50);
    struct log l = {0};
    struct ticket t = { &l, 1 };
    store_async_hold(st, 1);
    append_async(st, 0, a, "late", &t);
    char reason[96];
    int64_t end = ms_now() + 5000;
    while (!store_io_health(st, 20, reason, sizeof reason) && ms_now() < end)
        poll(NULL, 0, 5);
    assert_non_null(strstr(reason, "oldest database request waiting"));
    drive(st, &l, 1);                   /* the tick: the age bound */
    assert_int_equal(l.rc[0], STORE_UNAVAILABLE);
    store_async_hold(st, 0);
    assert_int_equal(stored_events(st), 0);     /* it never ran */
    assert_int_equal(store_io_health(st, 20, reason, sizeof reason), 0);
}

/* A transaction that lost its BEGIN to the age bound stores nothing: its
 * calls and its commit are answered STORE_UNAVAILABLE. */
static void test_age_bound_dooms_transaction(void **state)
{
    struct store *st = *state;
    int64_t a = mkuser(st, "alice");
    store_async_bound(st, 0, 50);
    struct log l = {0};
    struct ticket begin = { &l, 1 }, inside = { &l, 2 }, end = { &l, 3 }, after = { &l, 4 };
    store_async_hold(st, 1);
    int64_t txn = store_txn_begin_async(st, logged, &begin);
    drive(st, &l, 1);
    assert_int_equal(l.rc[0], STORE_UNAVAILABLE);
    append_async(st, txn, a, "inside", &inside);
    store_txn_end_async(st, txn, 1, logged, &end);
    append_async(st, 0, a, "after", &after);
    store_async_hold(st, 0);
    drive(st, &l, 4);
    assert_int_equal(l.rc[1], STORE_UNAVAILABLE);
    assert_int_equal(l.rc[2], STORE_UNAVAILABLE);
    assert_int_equal(l.tag[3], 4);
    assert_int_equal(l.rc[3], STORE_OK);
    assert_int_equal(stored_events(st), 1);
}

/* Beyond the count bound a call is refused at once. */
static void test_count_bound_refuses_at_once(void **state)
{
    struct store *st = *state;
    int64_t a = mkuser(st, "alice");
    store_async_bound(st, 2, 0);
    struct log l = {0};
    struct ticket t[3] = { { &l, 1 }, { &l, 2 }, { &l, 3 } };
    store_async_hold(st, 1);
    append_async(st, 0, a, "1", &t[0]);
    append_async(st, 0, a, "2", &t[1]);
    assert_int_equal(l.n, 0);
    append_async(st, 0, a, "3", &t[2]);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.tag[0], 3);
    assert_int_equal(l.rc[0], STORE_UNAVAILABLE);
    store_async_hold(st, 0);
    drive(st, &l, 3);
    assert_int_equal(l.rc[1], STORE_OK);
    assert_int_equal(l.rc[2], STORE_OK);
}

/* Closing the store answers what is queued STORE_UNAVAILABLE, and rolls
 * back a transaction left open. */
static void test_free_answers_queued(void **state)
{
    struct store *st = *state;
    int64_t a = mkuser(st, "alice");
    struct log l = {0};
    struct ticket begin = { &l, 1 }, inside = { &l, 2 }, queued = { &l, 3 };
    int64_t txn = store_txn_begin_async(st, logged, &begin);
    append_async(st, txn, a, "inside", &inside);
    drive(st, &l, 2);
    store_async_hold(st, 1);
    append_async(st, 0, a, "queued", &queued);
    store_free(st);
    *state = NULL;
    assert_int_equal(l.n, 3);
    assert_int_equal(l.tag[2], 3);
    assert_int_equal(l.rc[2], STORE_UNAVAILABLE);
}

/* The arguments are the store's copy: the caller may reuse its buffers at
 * once. */
static void test_args_copied_at_call(void **state)
{
    struct store *st = *state;
    int64_t a = mkuser(st, "alice");
    struct log l = {0};
    struct ticket t = { &l, 1 };
    char payload[32], cmid[8];
    snprintf(payload, sizeof payload, "{\"text\":\"kept\"}");
    snprintf(cmid, sizeof cmid, "m1");
    struct store_new_event evs[2] = {
        { .type = "chat", .sender_id = a, .client_msg_id = cmid, .payload = payload, .ts_ms = NOW },
        { .type = "chat", .sender_id = a, .payload = payload, .ts_ms = NOW },
    };
    store_async_hold(st, 1);
    struct store_args args = { .evs = evs, .nev = 2 };
    store_call_async(st, 0, STORE_CALL_EVENTS_APPEND_MANY, &args, logged, &t);
    memset(payload, 'x', sizeof payload - 1);
    memset(evs, 0, sizeof evs);
    store_async_hold(st, 0);
    drive(st, &l, 1);
    assert_int_equal(l.rc[0], STORE_OK);
    assert_int_equal(stored_events(st), 2);
    int64_t id = 0, ts = 0;
    int created = -1;
    struct store_new_event again = {
        .type = "chat", .sender_id = a, .client_msg_id = "m1", .payload = "{}", .ts_ms = NOW,
    };
    assert_int_equal(store_event_append(st, &again, &id, &ts, &created), STORE_OK);
    assert_int_equal(created, 0);       /* "m1" was stored, not what the buffer became */
}

/* A synchronous call while requests wait runs between them, safely. */
static void test_sync_call_while_queued(void **state)
{
    struct store *st = *state;
    int64_t a = mkuser(st, "alice");
    struct log l = {0};
    struct ticket t[8];
    for (int i = 0; i < 8; i++) {
        t[i] = (struct ticket){ &l, i };
        char cmid[16];
        snprintf(cmid, sizeof cmid, "a%d", i);
        append_async(st, 0, a, cmid, &t[i]);
    }
    mkuser(st, "bob");                  /* while the thread works */
    assert_int_equal(store_begin(st), STORE_OK);
    struct store_new_event ev = {
        .type = "chat", .sender_id = a, .client_msg_id = "sync", .payload = "{}", .ts_ms = NOW,
    };
    int64_t id = 0, ts = 0;
    int created = 0;
    assert_int_equal(store_event_append(st, &ev, &id, &ts, &created), STORE_OK);
    assert_int_equal(store_commit(st), STORE_OK);
    drive(st, &l, 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(l.rc[i], STORE_OK);
    assert_int_equal(stored_events(st), 9);
    char hash[STORE_PWHASH_MAX];
    assert_int_equal(store_user_get(st, "bob", &id, hash, sizeof hash), STORE_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_completes_later_in_call_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transaction_runs_before_later_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_age_bound_answers_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_age_bound_dooms_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_count_bound_refuses_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_answers_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_args_copied_at_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_call_while_queued, setup, teardown),
    };
    return cmocka_run_group_tests_name("store writer thread (SQLite)", tests, NULL, NULL);
}
