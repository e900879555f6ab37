/* test_store.c — unit tests of the store API that every backend must pass
 * (users, sessions, event append/dedupe, feed filtering and paging, reading
 * every recipient's events, the bank's moves and transfers), run on SQLite
 * and, when CHAT_TEST_PG holds a PostgreSQL URL (scripts/with-pg.sh), on a
 * fresh database of that cluster per test; plus SQLite's own: persistence
 * of an on-disk database across reopen. PostgreSQL's concurrency tests are
 * in test_store_pg.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <unistd.h>

#include "store.h"
#include "store_test.h"
#include "migrations.h"
#include "pg_migrations.h"

static int open_at(void **state, const char *location)
{
    char err[256] = "";
    struct store *st = store_open(location, err, sizeof err);
    if (!st) {
        fprintf(stderr, "store_open: %s\n", err);
        return -1;
    }
    *state = st;
    return 0;
}

static int setup(void **state)
{
    return open_at(state, ":memory:");
}

static int teardown(void **state)
{
    store_free(*state);
    return 0;
}

/* ---- PostgreSQL: a fresh database per test ---- */

static char pg_db[64];          /* the running test's database */

static int setup_pg(void **state)
{
    static int n;
    if (!getenv("CHAT_TEST_PG") || !*getenv("CHAT_TEST_PG")) {
        fprintf(stderr, "CHAT_TEST_PG is not set: no PostgreSQL to test (make test-unit-pg)\n");
        return -1;
    }
    snprintf(pg_db, sizeof pg_db, "chat_test_%d_%d", (int)getpid(), ++n);
    char url[512];
    pg_test_url(pg_db, url, sizeof url);
    if (pg_test_admin("CREATE", pg_db, ""))
        return -1;
    if (open_at(state, url) == 0)
        return 0;
    pg_test_admin("DROP", pg_db, " WITH (FORCE)");
    return -1;
}

static int teardown_pg(void **state)
{
    store_free(*state);
    return pg_test_admin("DROP", pg_db, " WITH (FORCE)");
}

struct ids {
    int n;
    int64_t v[16];
};

static void collect_id(void *arg, int64_t id)
{
    struct ids *l = arg;
    if (l->n < 16)
        l->v[l->n] = id;
    l->n++;
}

static void test_user_create_get(void **state)
{
    struct store *st = *state;
    int64_t a = mkuser(st, "alice"), b = mkuser(st, "bob");
    assert_int_not_equal(a, b);

    int64_t id = 0;
    char hash[128] = "";
    assert_int_equal(store_user_get(st, "bob", &id, hash, sizeof hash), STORE_OK);
    assert_int_equal(id, b);
    assert_string_equal(hash, "$argon2id$hash");
    assert_int_equal(store_user_get(st, "alice", &id, hash, sizeof hash), STORE_OK);
    assert_int_equal(id, a);
}

static void test_user_duplicate_and_unknown(void **state)
{
    struct store *st = *state;
    int64_t a = mkuser(st, "alice"), id = -1;
    assert_int_equal(store_user_create(st, "alice", "other", NOW, &id), STORE_EXISTS);
    assert_int_equal(id, -1);

    char hash[128] = "";
    assert_int_equal(store_user_get(st, "alicia", &id, hash, sizeof hash), STORE_NOT_FOUND);
    assert_int_equal(store_user_get(st, "", &id, hash, sizeof hash), STORE_NOT_FOUND);
    /* The original account is unchanged. */
    assert_int_equal(store_user_get(st, "alice", &id, hash, sizeof hash), STORE_OK);
    assert_int_equal(id, a);
    assert_string_equal(hash, "$argon2id$hash");
    /* A hash that does not fit is an error, never a truncated copy. */
    char tiny[4];
    assert_int_equal(store_user_get(st, "alice", &id, tiny, sizeof tiny), STORE_ERROR);
}

static void test_session(void **state)
{
    struct store *st = *state;
    mkuser(st, "alice");
    int64_t b = mkuser(st, "bob");
    const char *tok = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    assert_int_equal(store_session_create(st, tok, b, NOW, NOW + 1000), STORE_OK);
    assert_int_equal(store_session_create(st, tok, b, NOW, NOW + 1000), STORE_EXISTS);

    struct store_session ss;
    assert_int_equal(store_session_lookup(st, tok, NOW + 999, &ss), STORE_OK);
    assert_int_equal(ss.user_id, b);
    assert_string_equal(ss.user, "bob");
    assert_int_equal(ss.expires_ms, NOW + 1000);
    assert_int_equal(ss.last_used_ms, NOW);
    assert_int_equal(store_session_touch(st, tok, NOW + 500), STORE_OK);
    assert_int_equal(store_session_lookup(st, tok, NOW + 999, &ss), STORE_OK);
    assert_int_equal(ss.last_used_ms, NOW + 500);

    /* Expired exactly at expires_ms and after it. */
    assert_int_equal(store_session_lookup(st, tok, NOW + 1000, &ss), STORE_NOT_FOUND);
    assert_int_equal(store_session_lookup(st, tok, NOW + 5000, &ss), STORE_NOT_FOUND);
    assert_int_equal(store_session_lookup(st, "00", NOW, &ss), STORE_NOT_FOUND);
    /* foreign_keys is on: a session for a user that does not exist is refused. */
    assert_int_equal(store_session_create(st, "ab", 9999, NOW, NOW + 1000), STORE_NOT_FOUND);
    assert_int_equal(store_session_lookup(st, "ab", NOW, &ss), STORE_NOT_FOUND);
    /* Logout revokes. */
    assert_int_equal(store_session_delete(st, tok), STORE_OK);
    assert_int_equal(store_session_lookup(st, tok, NOW + 1, &ss), STORE_NOT_FOUND);
    assert_int_equal(store_session_delete(st, tok), STORE_NOT_FOUND);
}

static void test_event_ids_increase(void **state)
{
    struct store *st = *state;
    int64_t last = -1;
    assert_int_equal(store_last_event_id(st, &last), STORE_OK);
    assert_int_equal(last, 0);

    int64_t a = mkuser(st, "alice");
    int64_t prev = 0;
    for (int i = 0; i < 5; i++) {
        int64_t id = append(st, a, 0, NULL, "{\"text\":\"hi\"}");
        assert_true(id > prev);
        prev = id;
    }
    assert_int_equal(store_last_event_id(st, &last), STORE_OK);
    assert_int_equal(last, prev);
    struct seen s = feed(st, a, 0, 100);
    assert_int_equal(s.n, 5);
    assert_string_equal(s.type[0], "chat");
    assert_string_equal(s.payload[4], "{\"text\":\"hi\"}");
}

static void test_event_dedupe(void **state)
{
    struct store *st = *state;
    int64_t a = mkuser(st, "alice"), b = mkuser(st, "bob");
    int64_t first = append(st, a, 0, "m-1", "{\"text\":\"first\"}");
    append(st, b, 0, NULL, "{\"text\":\"other\"}");

    /* A retry (different ts and body) returns the first event, stores nothing. */
    struct store_new_event retry = {
        .type = "chat", .sender_id = a, .client_msg_id = "m-1",
        .payload = "{\"text\":\"retry\"}", .ts_ms = NOW + 777,
    };
    int64_t id = 0, ts = 0, last = 0;
    int created = -1;
    assert_int_equal(store_event_append(st, &retry, &id, &ts, &created), STORE_OK);
    assert_int_equal(created, 0);
    assert_int_equal(id, first);
    assert_int_equal(ts, NOW);
    struct seen s = feed(st, a, 0, 100);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.payload[0], "{\"text\":\"first\"}");
    assert_int_equal(store_last_event_id(st, &last), STORE_OK);
    assert_int_equal(last, s.ids[1]);

    /* Same client_msg_id from another sender is a different message. */
    int64_t other = append(st, b, 0, "m-1", "{\"text\":\"bob's\"}");
    assert_true(other > last);
    /* Without a client_msg_id there is no dedupe. */
    append(st, a, 0, NULL, "{}");
    append(st, a, 0, NULL, "{}");
    assert_int_equal(feed(st, a, 0, 100).n, 5);
}

static void test_feed_filtering(void **state)
{
    struct store *st = *state;
    int64_t a = mkuser(st, "alice"), b = mkuser(st, "bob"), c = mkuser(st, "carol");
    int64_t b1 = append(st, c, 0, NULL, "{\"n\":1}");
    int64_t pa = append(st, 0, a, NULL, "{\"to\":\"alice\"}");
    int64_t b2 = append(st, c, 0, NULL, "{\"n\":2}");
    int64_t pb = append(st, a, b, NULL, "{\"to\":\"bob\"}");
    int64_t b3 = append(st, b, 0, NULL, "{\"n\":3}");

    struct seen s = feed(st, a, 0, 100);
    assert_int_equal(s.n, 4);
    int64_t want_a[] = {b1, pa, b2, b3};
    for (int i = 0; i < 4; i++)
        assert_int_equal(s.ids[i], want_a[i]);

    s = feed(st, b, 0, 100);
    assert_int_equal(s.n, 4);
    int64_t want_b[] = {b1, b2, pb, b3};
    for (int i = 0; i < 4; i++)
        assert_int_equal(s.ids[i], want_b[i]);
    assert_string_equal(s.payload[2], "{\"to\":\"bob\"}");

    s = feed(st, c, 0, 100);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.ids[0], b1);
    assert_int_equal(s.ids[1], b2);
    assert_int_equal(s.ids[2], b3);
    /* A private event after the cursor only, and the limit cuts the merge. */
    s = feed(st, a, b1, 2);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.ids[0], pa);
    assert_int_equal(s.ids[1], b2);
}

static void test_after_limit_stop(void **state)
{
    struct store *st = *state;
    int64_t a = mkuser(st, "alice"), id[6];
    for (int i = 0; i < 6; i++)
        id[i] = append(st, a, 0, NULL, "{}");

    struct seen s = feed(st, a, id[1], 2);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.ids[0], id[2]);
    assert_int_equal(s.ids[1], id[3]);

    s = feed(st, a, id[1], 100);
    assert_int_equal(s.n, 4);
    assert_int_equal(s.ids[3], id[5]);

    /* limit < 1 is clamped to 1. */
    s = feed(st, a, 0, 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.ids[0], id[0]);
    assert_int_equal(feed(st, a, 0, -5).n, 1);

    /* Nothing after the newest. */
    assert_int_equal(feed(st, a, id[5], 100).n, 0);

    /* The callback stops the iteration, and the statement is reusable after. */
    struct seen stop = {.stop_after = 3};
    assert_int_equal(store_events_after(st, a, 0, 100, collect, &stop), STORE_OK);
    assert_int_equal(stop.n, 3);
    assert_int_equal(stop.ids[2], id[2]);
    assert_int_equal(feed(st, a, id[3], 100).n, 2);

    int64_t last = 0;
    assert_int_equal(store_last_event_id(st, &last), STORE_OK);
    assert_int_equal(last, id[5]);
}

/* Events carry their recipient (0 = everyone), and events_all_after reads
 * every user's events in id order. */
static void test_recipients_and_all_after(void **state)
{
    struct store *st = *state;
    int64_t a = mkuser(st, "alice"), b = mkuser(st, "bob");
    int64_t e1 = append(st, a, 0, NULL, "{\"n\":1}");
    int64_t e2 = append(st, 0, b, NULL, "{\"to\":\"bob\"}");
    int64_t e3 = append(st, b, a, "m-1", "{\"to\":\"alice\"}");

    struct seen s = feed(st, b, 0, 100);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.rcpt[0], 0);
    assert_int_equal(s.ids[1], e2);
    assert_int_equal(s.rcpt[1], b);

    s = all_after(st, 0, 100);
    assert_int_equal(s.n, 3);
    int64_t want[] = {e1, e2, e3}, rcpt[] = {0, b, a};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s.ids[i], want[i]);
        assert_int_equal(s.rcpt[i], rcpt[i]);
    }
    assert_string_equal(s.payload[2], "{\"to\":\"alice\"}");
    assert_string_equal(s.type[1], "chat");

    s = all_after(st, e1, 1);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.ids[0], e2);
    assert_int_equal(all_after(st, 0, 0).n, 1);
    assert_int_equal(all_after(st, e3, 100).n, 0);
    struct seen stop = {.stop_after = 2};
    assert_int_equal(store_events_all_after(st, 0, 100, collect, &stop), STORE_OK);
    assert_int_equal(stop.n, 2);
}

static int64_t balance(struct store *st, int64_t user)
{
    int64_t cents = -1;
    assert_int_equal(store_account_balance(st, user, &cents), STORE_OK);
    return cents;
}

/* An overdraft is refused without spoiling the transaction around it. */
static void test_account_move(void **state)
{
    struct store *st = *state;
    const int64_t open = STORE_OPENING_BALANCE_CENTS;
    int64_t a = mkuser(st, "alice"), b = mkuser(st, "bob"), cents;
    assert_int_equal(balance(st, a), open);
    assert_int_equal(store_account_balance(st, 9999, &cents), STORE_NOT_FOUND);

    assert_int_equal(store_begin(st), STORE_OK);
    assert_int_equal(store_account_move(st, a, -(open + 1), 0, NOW, "too much"), STORE_CONSTRAINT);
    assert_int_equal(balance(st, a), open);
    assert_int_equal(store_account_move(st, 9999, 1, 0, NOW, "nobody"), STORE_NOT_FOUND);
    assert_int_equal(store_account_move(st, a, -300, 0, NOW, "out"), STORE_OK);
    assert_int_equal(store_account_move(st, b, 300, 0, NOW, "in"), STORE_OK);
    append(st, 0, a, NULL, "{}");
    assert_int_equal(store_commit(st), STORE_OK);
    assert_int_equal(balance(st, a), open - 300);
    assert_int_equal(balance(st, b), open + 300);
    assert_int_equal(store_account_move(st, a, -(open - 300), 0, NOW, "all"), STORE_OK);
    assert_int_equal(balance(st, a), 0);

    /* A rollback undoes the moves and the events. */
    int64_t last = 0, after = 0;
    assert_int_equal(store_last_event_id(st, &last), STORE_OK);
    assert_int_equal(store_begin(st), STORE_OK);
    assert_int_equal(store_account_move(st, b, -100, 0, NOW, "undone"), STORE_OK);
    append(st, 0, b, NULL, "{}");
    store_rollback(st);
    assert_int_equal(balance(st, b), open + 300);
    assert_int_equal(store_last_event_id(st, &after), STORE_OK);
    assert_int_equal(after, last);
}

static struct ids unfinished(struct store *st)
{
    struct ids l = {0};
    assert_int_equal(store_transfers_unfinished(st, collect_id, &l), STORE_OK);
    return l;
}

static struct ids stale(struct store *st, int64_t before_ms)
{
    struct ids l = {0};
    assert_int_equal(store_transfers_stale(st, before_ms, collect_id, &l), STORE_OK);
    return l;
}

/* Two transfers from alice to bob (t[0] at NOW, t[1] at NOW + 10), the
 * first one inserted twice under its key inside a transaction. */
static void two_transfers(struct store *st, int64_t *a, int64_t *b, int64_t t[2])
{
    int64_t id;
    int created = -1;
    *a = mkuser(st, "alice");
    *b = mkuser(st, "bob");
    assert_int_equal(store_begin(st), STORE_OK);
    assert_int_equal(store_transfer_insert(st, *a, *b, 500, "k1", NOW, &t[0], &created), STORE_OK);
    assert_int_equal(created, 1);
    assert_int_equal(store_transfer_insert(st, *a, *b, 999, "k1", NOW, &id, &created), STORE_OK);
    assert_int_equal(created, 0);
    assert_int_equal(id, t[0]);
    assert_int_equal(store_transfer_lock(st, t[0]), STORE_OK);
    assert_int_equal(store_commit(st), STORE_OK);
    assert_int_equal(store_transfer_insert(st, *a, *b, 700, "k2", NOW + 10, &t[1], &created),
                     STORE_OK);
    assert_int_equal(created, 1);
    assert_true(t[1] > t[0]);
}

static void test_transfer_insert_get(void **state)
{
    struct store *st = *state;
    int64_t a, b, t[2], id;
    int created;
    two_transfers(st, &a, &b, t);
    assert_int_equal(store_transfer_insert(st, a, 9999, 1, "k3", NOW, &id, &created), STORE_NOT_FOUND);

    struct store_transfer tr;
    assert_int_equal(store_transfer_get(st, t[0], &tr), STORE_OK);
    assert_int_equal(tr.id, t[0]);
    assert_int_equal(tr.from_id, a);
    assert_int_equal(tr.to_id, b);
    assert_int_equal(tr.amount_cents, 500);
    assert_string_equal(tr.from, "alice");
    assert_string_equal(tr.to, "bob");
    assert_int_equal(tr.state, TRANSFER_PENDING);
    assert_int_equal(tr.state, TRANSFER_PENDING);
    assert_string_equal(tr.reason, "");
    assert_int_equal(tr.created_ms, NOW);
    assert_int_equal(tr.updated_ms, NOW);
    assert_int_equal(store_transfer_get(st, 9999, &tr), STORE_NOT_FOUND);
}

/* Unfinished and stale (unchanged since a time) transfers, oldest first. */
static void test_transfer_state_stale(void **state)
{
    struct store *st = *state;
    int64_t a, b, t[2];
    two_transfers(st, &a, &b, t);
    assert_int_equal(store_transfer_set_state(st, t[0], TRANSFER_PROCESSING, NULL, NOW + 100), STORE_OK);
    assert_int_equal(store_transfer_set_state(st, 9999, TRANSFER_FAILED, NULL, NOW), STORE_NOT_FOUND);
    struct ids l = unfinished(st);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.v[0], t[0]);
    assert_int_equal(l.v[1], t[1]);
    l = stale(st, NOW + 50);            /* t[0] changed at NOW + 100 */
    assert_int_equal(l.n, 1);
    assert_int_equal(l.v[0], t[1]);
    assert_int_equal(stale(st, NOW + 10).n, 0);
    l = stale(st, NOW + 101);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.v[0], t[0]);

    assert_int_equal(store_transfer_set_state(st, t[1], TRANSFER_FAILED, "insufficient_funds", NOW + 200),
                     STORE_OK);
    struct store_transfer tr;
    assert_int_equal(store_transfer_get(st, t[1], &tr), STORE_OK);
    assert_int_equal(tr.state, TRANSFER_FAILED);
    assert_int_equal(tr.state, TRANSFER_FAILED);
    assert_string_equal(tr.reason, "insufficient_funds");
    assert_int_equal(tr.updated_ms, NOW + 200);
    l = unfinished(st);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.v[0], t[0]);
    assert_int_equal(stale(st, NOW + 1000).n, 1);
}

/* Every state's name parses back to it; anything else is refused. */
static void test_transfer_state_names(void **state)
{
    (void)state;
    const char *want[] = {"pending", "processing", "completed", "failed"};
    for (int i = TRANSFER_PENDING; i <= TRANSFER_FAILED; i++) {
        enum transfer_state parsed = TRANSFER_FAILED - i;
        assert_string_equal(transfer_state_name(i), want[i]);
        assert_int_equal(transfer_state_parse(transfer_state_name(i), &parsed), 0);
        assert_int_equal(parsed, i);
    }
    enum transfer_state untouched = TRANSFER_PROCESSING;
    const char *bad[] = {"", "Pending", "pending ", "done", "unknown", NULL};
    for (int i = 0; i < 6; i++)
        assert_int_equal(transfer_state_parse(bad[i], &untouched), -1);
    assert_int_equal(untouched, TRANSFER_PROCESSING);
}

/* Both backends fill every operation; only PostgreSQL is shared. (This also
 * links store_pg.c into this test while store.c refers to it weakly.) */
static void test_ops_tables(void **state)
{
    (void)state;
    const struct store_ops *ops[] = {&store_sqlite_ops, &store_pg_ops};
    for (int i = 0; i < 2; i++) {
        const struct store_ops *o = ops[i];
        assert_non_null(o->name);
        assert_true(o->open && o->close && o->user_create && o->user_get);
        assert_true(o->session_create && o->session_lookup && o->session_touch &&
                    o->session_delete);
        assert_true(o->event_append && o->events_after && o->last_event_id &&
                    o->events_all_after);
        assert_true(o->begin && o->commit && o->rollback);
        assert_true(o->account_balance && o->account_move && o->transfer_insert &&
                    o->transfer_get && o->transfer_set_state && o->transfers_unfinished &&
                    o->transfers_stale);
        assert_int_equal(o->shared, i);
        assert_int_equal(o->notify_fd != NULL, i);
        assert_int_equal(o->notify_drain != NULL, i);
        assert_int_equal(o->transfer_lock != NULL, i);
        /* asynchronous calls: SQLite's run its synchronous ones on a
         * writer thread (store_thread.c) */
        assert_int_equal(o->async_call != NULL, i);
        assert_int_equal(o->io_fd != NULL && o->io_want && o->io_pending && o->io_service &&
                         o->io_health && o->async_bound, i);
    }
}

struct sync_replies {
    int n;
    struct store_reply r[4];
};

static void on_sync_reply(void *arg, const struct store_reply *rep)
{
    struct sync_replies *rs = arg;
    if (rs->n < 4)
        rs->r[rs->n] = *rep;
    rs->n++;
}

/* Drives the store as the event loop does until *n reaches want (5 s at
 * most). */
static void drive_until(struct store *st, const int *n, int want)
{
    for (int i = 0; *n < want && i < 250; i++) {
        int fd = store_io_fd(st), want_io = store_io_want(st);
        if (fd >= 0) {
            struct pollfd p = { fd, (short)((want_io & STORE_IO_READ ? POLLIN : 0) |
                                            (want_io & STORE_IO_WRITE ? POLLOUT : 0)), 0 };
            poll(&p, 1, 20);
        }
        store_io_service(st);
    }
    assert_int_equal(*n, want);
}

/* SQLite fills store.h's asynchronous contract with its writer thread: no
 * completion inside its call; each later, from store_io_service, in call
 * order, once the eventfd it watches says so. */
static void test_async_completes_later_on_sqlite(void **state)
{
    struct store *st = *state;
    int64_t a = mkuser(st, "alice");
    struct store_new_event ev = {
        .type = "chat", .sender_id = a, .client_msg_id = "c1", .payload = "{}", .ts_ms = NOW,
    };
    struct sync_replies rs = {0};
    struct store_args args = { .ev = &ev };
    int64_t txn = store_txn_begin_async(st, on_sync_reply, &rs);
    assert_true(txn != 0);
    store_call_async(st, txn, STORE_CALL_EVENT_APPEND, &args, on_sync_reply, &rs);
    store_call_async(st, txn, STORE_CALL_EVENT_APPEND, &args, on_sync_reply, &rs); /* same client_msg_id */
    store_txn_end_async(st, txn, 1, on_sync_reply, &rs);
    assert_int_equal(rs.n, 0);
    assert_true(store_io_fd(st) >= 0);
    assert_int_equal(store_io_want(st), STORE_IO_READ);
    assert_true(store_io_pending(st) > 0);
    drive_until(st, &rs.n, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(rs.r[i].rc, STORE_OK);
    assert_int_equal(rs.r[1].created, 1);
    assert_int_equal(rs.r[2].created, 0);
    assert_int_equal(rs.r[2].id, rs.r[1].id);
    assert_int_equal(all_after(st, 0, SEEN_MAX).n, 1);
    /* one instance: no other instance holds presence leases */
    int64_t ids[1] = { a };
    struct store_args lease = { .key = "me", .ids_in = ids, .nids_in = 1, .expires_ms = 30000 };
    rs.n = 0;
    store_call_async(st, 0, STORE_CALL_PRESENCE_RENEW, &lease, on_sync_reply, &rs);
    assert_int_equal(rs.n, 0);
    drive_until(st, &rs.n, 1);
    assert_int_equal(rs.r[0].rc, STORE_OK);
    assert_int_equal(rs.r[0].n, 0);
    assert_int_equal(store_io_pending(st), 0);
    char reason[64];
    assert_int_equal(store_io_health(st, 100, reason, sizeof reason), 0);
}

static int64_t many_ids[4];
static int many_created[4], many_n, many_rc, many_done;
static void on_many(void *arg, const struct store_reply *rep)
{
    (void)arg;
    many_done++;
    many_rc = rep->rc;
    many_n = rep->n;
    for (int i = 0; i < rep->n && i < 4; i++) {
        many_ids[i] = rep->ids[i];
        many_created[i] = rep->created_each[i];
    }
}

/* A batch of appends on SQLite: one transaction, a repeated
 * client_msg_id answered with its first id. */
static void test_append_many_on_sqlite(void **state)
{
    struct store *st = *state;
    int64_t a = mkuser(st, "alice");
    struct store_new_event evs[3] = {
        { .type = "chat", .sender_id = a, .client_msg_id = "c1", .payload = "{}", .ts_ms = NOW },
        { .type = "chat", .sender_id = a, .client_msg_id = NULL, .payload = "{}", .ts_ms = NOW },
        { .type = "chat", .sender_id = a, .client_msg_id = "c1", .payload = "{}", .ts_ms = NOW },
    };
    struct store_args args = { .evs = evs, .nev = 3 };
    many_n = -1;
    many_done = 0;
    store_call_async(st, 0, STORE_CALL_EVENTS_APPEND_MANY, &args, on_many, NULL);
    drive_until(st, &many_done, 1);
    assert_int_equal(many_rc, STORE_OK);
    assert_int_equal(many_n, 3);
    assert_int_equal(many_created[0], 1);
    assert_int_equal(many_created[1], 1);
    assert_int_equal(many_created[2], 0);
    assert_true(many_ids[1] > many_ids[0]);
    assert_int_equal(many_ids[2], many_ids[0]);
    assert_int_equal(all_after(st, 0, SEEN_MAX).n, 2);
}

/* --- on-disk database --- */

static int64_t query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return v;
}

static void test_file_persistence(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_store.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], wal[140], shm[140];
    snprintf(path, sizeof path, "%s/chat.db", dir);
    snprintf(wal, sizeof wal, "%s-wal", path);
    snprintf(shm, sizeof shm, "%s-shm", path);

    char err[256] = "";
    struct store *st = store_open(path, err, sizeof err);
    assert_non_null(st);
    int64_t a = mkuser(st, "alice");
    assert_int_equal(store_session_create(st, "tok", a, NOW, NOW + 1000), STORE_OK);
    int64_t e1 = append(st, a, 0, "m-1", "{\"text\":\"kept\"}");
    int64_t e2 = append(st, a, 0, NULL, "{}");
    store_free(st);

    /* Outside the store: WAL persisted in the file, schema version set; then
     * delete the newest event, whose id AUTOINCREMENT must not hand out again. */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
    sqlite3_finalize(q);
    int64_t version = query_int(db, "PRAGMA user_version");
    assert_true(version >= 1);
    assert_int_equal(sqlite3_exec(db, "DELETE FROM events WHERE id = (SELECT MAX(id) FROM events)",
                                  NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    /* Reopen: migrations are not re-run, data and dedupe survive. */
    st = store_open(path, err, sizeof err);
    assert_non_null(st);
    int64_t id = 0;
    char hash[64];
    struct store_session ss;
    assert_int_equal(store_user_get(st, "alice", &id, hash, sizeof hash), STORE_OK);
    assert_int_equal(id, a);
    assert_int_equal(store_session_lookup(st, "tok", NOW, &ss), STORE_OK);
    assert_string_equal(ss.user, "alice");
    struct store_new_event retry = {
        .type = "chat", .sender_id = a, .client_msg_id = "m-1", .payload = "{}", .ts_ms = NOW,
    };
    int64_t ts = 0;
    int created = -1;
    assert_int_equal(store_event_append(st, &retry, &id, &ts, &created), STORE_OK);
    assert_int_equal(created, 0);
    assert_int_equal(id, e1);
    int64_t e3 = append(st, a, 0, NULL, "{}");
    assert_true(e3 > e2);
    struct seen s = feed(st, a, 0, 100);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.payload[0], "{\"text\":\"kept\"}");
    store_free(st);

    /* Reopening does not change the schema version; a newer one is refused. */
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(query_int(db, "PRAGMA user_version"), version);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 9999", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    err[0] = '\0';
    assert_null(store_open(path, err, sizeof err));
    assert_true(strlen(err) > 0);

    unlink(wal);
    unlink(shm);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
}

/* A state the table does not know, written behind the store's back (past
 * the schema's CHECK), makes reading the transfer an error, not a guess. */
static void test_unknown_state_read(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_store.XXXXXX", path[128], err[256] = "";
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/chat.db", dir);
    struct store *st = store_open(path, err, sizeof err);
    assert_non_null(st);
    int64_t a = mkuser(st, "alice"), b = mkuser(st, "bob"), id;
    int created;
    assert_int_equal(store_transfer_insert(st, a, b, 5, "k", NOW, &id, &created), STORE_OK);

    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA ignore_check_constraints = ON;"
                                  "UPDATE transfers SET status = 'paused'", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    struct store_transfer t;
    assert_int_equal(store_transfer_get(st, id, &t), STORE_ERROR);
    store_free(st);

    char side[140];
    const char *suffix[] = {"-wal", "-shm", ""};
    for (int i = 0; i < 3; i++) {
        snprintf(side, sizeof side, "%s%s", path, suffix[i]);
        unlink(side);
    }
    assert_int_equal(rmdir(dir), 0);
}

static void test_open_failure(void **state)
{
    (void)state;
    char err[256] = "";
    assert_null(store_open("/nonexistent-dir/x/chat.db", err, sizeof err));
    assert_true(strlen(err) > 0);
}

/* The tests every backend must pass. */
/* ---- rooms (protocol v1.1): asynchronous calls, so these run them
 * through store_call_async and drive the store's descriptor until the
 * answer comes ---- */

struct room_out {
    int done, rc, room_err, more, n, n_rooms;
    int64_t room_id, id;
    int64_t ids[SEEN_MAX];
    char type[SEEN_MAX][16];
    struct store_room rooms[8];
};

static void room_done(void *arg, const struct store_reply *rep)
{
    struct room_out *o = arg;
    o->done = 1;
    o->rc = rep->rc;
    o->room_err = rep->room_err;
    o->room_id = rep->room_id;
    o->id = rep->id;
    o->more = rep->more;
    o->n = rep->n;
    for (int i = 0; i < rep->n && i < SEEN_MAX; i++) {
        o->ids[i] = rep->events[i].id;
        snprintf(o->type[i], sizeof o->type[i], "%s", rep->events[i].type);
    }
    o->n_rooms = rep->n_rooms;
    for (int i = 0; i < rep->n_rooms && i < 8; i++)
        o->rooms[i] = rep->rooms[i];
}

static struct room_out room_call(struct store *st, enum store_call_kind kind, struct store_args a)
{
    struct room_out o = {0};
    a.now_ms = NOW;
    if (!a.payload)
        a.payload = "{\"room\":\"x\",\"user\":\"u\",\"action\":\"join\"}";
    store_call_async(st, 0, kind, &a, room_done, &o);
    for (int64_t i = 0; !o.done && i < 1000; i++) {
        int fd = store_io_fd(st), want = store_io_want(st);
        if (fd >= 0) {
            struct pollfd p = { fd, (short)((want & STORE_IO_READ ? POLLIN : 0) |
                                            (want & STORE_IO_WRITE ? POLLOUT : 0)), 0 };
            poll(&p, 1, 20);
        } else {
            usleep(5000);
        }
        store_io_service(st);
    }
    assert_true(o.done);
    return o;
}

static struct room_out room_op(struct store *st, enum store_call_kind kind, int64_t user,
                               const char *name)
{
    return room_call(st, kind, (struct store_args){ .user_id = user, .name = name });
}

static void expect_room_err(struct room_out o, int err)
{
    assert_int_equal(o.rc, STORE_CONSTRAINT);
    assert_int_equal(o.room_err, err);
}

/* A chat event of a room, appended as the feed does. */
static int64_t room_chat(struct store *st, int64_t sender, int64_t room_id, const char *text)
{
    struct store_new_event ev = { .type = "chat", .sender_id = sender, .room_id = room_id,
                                  .payload = text, .ts_ms = NOW };
    int64_t id = 0, ts;
    int created;
    assert_int_equal(store_event_append(st, &ev, &id, &ts, &created), STORE_OK);
    return id;
}

static int seen_has(const struct seen *s, int64_t id)
{
    for (int i = 0; i < s->n && i < SEEN_MAX; i++)
        if (s->ids[i] == id)
            return 1;
    return 0;
}

/* Who sees what: a room's events from one's join event to one's leave
 * event, a DM's only by its two parties, general's by everyone; the
 * feed stays in id order. */
static void test_room_visibility(void **state)
{
    struct store *st = *state;
    int64_t a = mkuser(st, "alice"), b = mkuser(st, "bob"), c = mkuser(st, "carol");
    struct room_out r = room_call(st, STORE_CALL_ROOM_CREATE, (struct store_args){
        .user_id = a, .name = "rust", .topic = "Ownership", .payload2 = "{\"room\":\"rust\"}" });
    assert_int_equal(r.rc, STORE_OK);
    assert_int_equal(r.n, 2);                   /* the join, the topic */
    assert_string_equal(r.type[0], "member");
    assert_string_equal(r.type[1], "topic");
    int64_t rust = r.room_id;
    assert_true(rust > 1);
    int64_t before_b = room_chat(st, a, rust, "{\"body\":\"before bob\"}");
    r = room_op(st, STORE_CALL_ROOM_JOIN, b, "rust");
    assert_int_equal(r.rc, STORE_OK);
    assert_int_equal(r.n, 1);
    int64_t b_join = r.ids[0];
    assert_int_equal(room_op(st, STORE_CALL_ROOM_JOIN, b, "rust").n, 0);   /* already in */
    int64_t in_rust = room_chat(st, b, rust, "{\"body\":\"rust\"}");
    r = room_call(st, STORE_CALL_DM_OPEN, (struct store_args){ .user_id = a, .name = "@alice,bob",
                                                               .to = "bob", .payload2 = "{}" });
    assert_int_equal(r.rc, STORE_OK);
    assert_int_equal(r.n, 2);
    int64_t dm = r.room_id;
    r = room_call(st, STORE_CALL_DM_OPEN, (struct store_args){ .user_id = b, .name = "@alice,bob",
                                                               .to = "alice", .payload2 = "{}" });
    assert_int_equal(r.room_id, dm);            /* reused, nothing new */
    assert_int_equal(r.n, 0);
    int64_t in_dm = room_chat(st, a, dm, "{\"body\":\"psst\"}");
    int64_t everyone = append(st, c, 0, NULL, "{\"body\":\"v1\"}");
    int64_t alert = append(st, 0, c, NULL, "{\"kind\":\"x\"}");
    struct seen fa = feed(st, a, 0, 100), fb = feed(st, b, 0, 100), fc = feed(st, c, 0, 100);
    assert_true(seen_has(&fa, before_b) && seen_has(&fa, in_rust) && seen_has(&fa, in_dm));
    assert_true(!seen_has(&fb, before_b) && seen_has(&fb, b_join) && seen_has(&fb, in_rust));
    assert_true(seen_has(&fb, in_dm));
    assert_int_equal(fc.n, 2);                  /* general's and the alert only */
    assert_int_equal(fc.ids[0], everyone);
    assert_int_equal(fc.ids[1], alert);
    assert_true(seen_has(&fa, everyone) && !seen_has(&fa, alert));
    for (int i = 1; i < fa.n; i++)
        assert_true(fa.ids[i] > fa.ids[i - 1]);
    /* a limit cuts the merged feed at the lowest ids */
    struct seen two = feed(st, a, 0, 2);
    assert_int_equal(two.n, 2);
    assert_int_equal(two.ids[1], fa.ids[1]);
    /* leaving: the leave event still, then nothing more of the room */
    r = room_op(st, STORE_CALL_ROOM_LEAVE, b, "rust");
    assert_int_equal(r.n, 1);
    int64_t b_left = r.ids[0], after_leave = room_chat(st, a, rust, "{\"body\":\"gone\"}");
    fb = feed(st, b, in_dm, 100);
    assert_true(seen_has(&fb, b_left) && !seen_has(&fb, after_leave));
    assert_int_equal(room_op(st, STORE_CALL_ROOM_LEAVE, b, "rust").n, 0);  /* not in: nothing */
}

/* Every refusal names its reason and changes nothing. */
static void test_room_refusals(void **state)
{
    struct store *st = *state;
    int64_t a = mkuser(st, "alice"), c = mkuser(st, "carol");
    mkuser(st, "bob");
    assert_int_equal(room_op(st, STORE_CALL_ROOM_CREATE, a, "rust").rc, STORE_OK);
    assert_int_equal(room_call(st, STORE_CALL_DM_OPEN, (struct store_args){
        .user_id = a, .name = "@alice,bob", .to = "bob", .payload2 = "{}" }).rc, STORE_OK);
    int64_t last = 0;
    assert_int_equal(store_last_event_id(st, &last), STORE_OK);
    expect_room_err(room_op(st, STORE_CALL_ROOM_CREATE, c, "rust"), STORE_ROOM_EXISTS);
    expect_room_err(room_op(st, STORE_CALL_ROOM_CREATE, c, "general"), STORE_ROOM_EXISTS);
    expect_room_err(room_op(st, STORE_CALL_ROOM_JOIN, c, "nope"), STORE_ROOM_NOT_FOUND);
    expect_room_err(room_op(st, STORE_CALL_ROOM_JOIN, c, "@alice,bob"), STORE_ROOM_NOT_FOUND);
    expect_room_err(room_op(st, STORE_CALL_ROOM_LEAVE, c, "@alice,bob"), STORE_ROOM_NOT_FOUND);
    expect_room_err(room_op(st, STORE_CALL_ROOM_TOPIC, c, "@alice,bob"), STORE_ROOM_NOT_FOUND);
    expect_room_err(room_op(st, STORE_CALL_ROOM_READ, c, "@alice,bob"), STORE_ROOM_NOT_FOUND);
    expect_room_err(room_op(st, STORE_CALL_ROOM_MESSAGES, c, "@alice,bob"), STORE_ROOM_NOT_FOUND);
    expect_room_err(room_op(st, STORE_CALL_ROOM_JOIN, a, "@alice,bob"), STORE_ROOM_NOT_ALLOWED);
    expect_room_err(room_op(st, STORE_CALL_ROOM_LEAVE, a, "@alice,bob"), STORE_ROOM_NOT_ALLOWED);
    expect_room_err(room_op(st, STORE_CALL_ROOM_LEAVE, a, "general"), STORE_ROOM_CANNOT_LEAVE);
    expect_room_err(room_op(st, STORE_CALL_ROOM_TOPIC, c, "rust"), STORE_ROOM_NOT_MEMBER);
    expect_room_err(room_op(st, STORE_CALL_ROOM_READ, c, "rust"), STORE_ROOM_NOT_MEMBER);
    expect_room_err(room_op(st, STORE_CALL_ROOM_MESSAGES, c, "rust"), STORE_ROOM_NOT_MEMBER);
    expect_room_err(room_call(st, STORE_CALL_DM_OPEN, (struct store_args){
        .user_id = a, .name = "@alice,nobody", .to = "nobody" }), STORE_ROOM_NOT_FOUND);
    int64_t now = 0;
    assert_int_equal(store_last_event_id(st, &now), STORE_OK);
    assert_int_equal(now, last);                /* nothing stored */
    /* at most STORE_ROOMS_PER_USER memberships (general is one) */
    char name[16];
    for (int i = 0; i < STORE_ROOMS_PER_USER - 1; i++) {
        snprintf(name, sizeof name, "r%d", i);
        assert_int_equal(room_op(st, STORE_CALL_ROOM_CREATE, c, name).rc, STORE_OK);
    }
    expect_room_err(room_op(st, STORE_CALL_ROOM_CREATE, c, "onemore"), STORE_ROOM_TOO_MANY);
    expect_room_err(room_op(st, STORE_CALL_ROOM_JOIN, c, "rust"), STORE_ROOM_TOO_MANY);
    expect_room_err(room_call(st, STORE_CALL_DM_OPEN, (struct store_args){
        .user_id = a, .name = "@alice,carol", .to = "carol" }), STORE_ROOM_TOO_MANY);
}

/* History pages: the newest `limit` before `before`, oldest first, and
 * whether older ones exist; a page never repeats another's events. */
static void test_room_history(void **state)
{
    struct store *st = *state;
    int64_t a = mkuser(st, "alice");
    struct room_out r = room_op(st, STORE_CALL_ROOM_CREATE, a, "rust");
    int64_t ids[8];
    ids[0] = r.ids[0];                          /* the join */
    for (int i = 1; i < 8; i++)
        ids[i] = room_chat(st, a, r.room_id, "{\"body\":\"m\"}");
    append(st, a, 0, NULL, "{\"body\":\"general\"}");     /* not rust's */
    struct room_out p = room_call(st, STORE_CALL_ROOM_MESSAGES, (struct store_args){
        .user_id = a, .name = "rust", .limit = 3 });
    assert_int_equal(p.rc, STORE_OK);
    assert_int_equal(p.n, 3);
    assert_int_equal(p.more, 1);
    assert_int_equal(p.ids[0], ids[5]);
    assert_int_equal(p.ids[2], ids[7]);
    p = room_call(st, STORE_CALL_ROOM_MESSAGES, (struct store_args){
        .user_id = a, .name = "rust", .before = ids[5], .limit = 3 });
    assert_int_equal(p.n, 3);
    assert_int_equal(p.ids[0], ids[2]);
    assert_int_equal(p.more, 1);
    p = room_call(st, STORE_CALL_ROOM_MESSAGES, (struct store_args){
        .user_id = a, .name = "rust", .before = ids[2], .limit = 3 });
    assert_int_equal(p.n, 2);
    assert_int_equal(p.ids[0], ids[0]);
    assert_string_equal(p.type[0], "member");
    assert_int_equal(p.more, 0);
    p = room_call(st, STORE_CALL_ROOM_MESSAGES, (struct store_args){
        .user_id = a, .name = "rust", .before = ids[0], .limit = 3 });
    assert_int_equal(p.rc, STORE_OK);
    assert_int_equal(p.n, 0);
    assert_int_equal(p.more, 0);
}

static const struct store_room *listed(const struct room_out *o, const char *name)
{
    for (int i = 0; i < o->n_rooms && i < 8; i++)
        if (!strcmp(o->rooms[i].name, name))
            return &o->rooms[i];
    return NULL;
}

/* Read markers move forward only; unread counts others' chat events after
 * them, up to STORE_UNREAD_MAX; the list shows public rooms and one's DMs. */
static void test_read_markers(void **state)
{
    struct store *st = *state;
    int64_t a = mkuser(st, "alice"), b = mkuser(st, "bob");
    mkuser(st, "carol");
    struct room_out r = room_op(st, STORE_CALL_ROOM_CREATE, a, "rust");
    assert_int_equal(room_op(st, STORE_CALL_ROOM_JOIN, b, "rust").rc, STORE_OK);
    room_chat(st, a, r.room_id, "{\"body\":\"mine\"}");
    int64_t first = room_chat(st, b, r.room_id, "{\"body\":\"1\"}");
    int64_t last = room_chat(st, b, r.room_id, "{\"body\":\"2\"}");
    assert_int_equal(room_call(st, STORE_CALL_DM_OPEN, (struct store_args){
        .user_id = b, .name = "@bob,carol", .to = "carol" }).rc, STORE_OK);
    struct room_out l = room_op(st, STORE_CALL_ROOMS_LIST, a, NULL);
    assert_int_equal(l.rc, STORE_OK);
    assert_int_equal(l.n_rooms, 2);             /* general, rust: not bob and carol's DM */
    assert_non_null(listed(&l, "general"));
    const struct store_room *x = listed(&l, "rust");
    assert_non_null(x);
    assert_int_equal(x->unread, 2);
    assert_int_equal(x->members, 2);
    assert_int_equal(x->last_id, last);
    assert_true(x->joined);
    r = room_call(st, STORE_CALL_ROOM_READ, (struct store_args){ .user_id = a, .name = "rust", .id = first });
    assert_int_equal(r.rc, STORE_OK);
    assert_int_equal(r.id, first);
    r = room_call(st, STORE_CALL_ROOM_READ, (struct store_args){ .user_id = a, .name = "rust", .id = 1 });
    assert_int_equal(r.id, first);              /* never backwards */
    l = room_op(st, STORE_CALL_ROOMS_LIST, a, NULL);
    assert_int_equal(listed(&l, "rust")->unread, 1);
    l = room_op(st, STORE_CALL_ROOMS_LIST, b, NULL);
    assert_non_null(listed(&l, "@bob,carol"));
    /* the count stops at STORE_UNREAD_MAX */
    assert_int_equal(store_begin(st), STORE_OK);
    for (int i = 0; i < STORE_UNREAD_MAX + 5; i++)
        room_chat(st, b, r.room_id, "{\"body\":\"x\"}");
    assert_int_equal(store_commit(st), STORE_OK);
    l = room_op(st, STORE_CALL_ROOMS_LIST, a, NULL);
    assert_int_equal(listed(&l, "rust")->unread, STORE_UNREAD_MAX);
}

/* A v1 database (schema 3) opened by this chatd: each room name its
 * broadcast events used becomes a public room with every user in it, the
 * events are theirs (general's by default), alerts stay private. */
static void test_migrate_v1(void **state)
{
    (void)state;
    char path[] = "/tmp/chat_test_v1_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(sqlite3_exec(db, MIGRATIONS[i], NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
        "PRAGMA user_version = 3;"
        "INSERT INTO users(name, pwhash, created_ms) VALUES ('alice', 'h', 1), ('bob', 'h', 1);"
        "INSERT INTO events(ts_ms, type, recipient_id, sender_id, payload) VALUES"
        " (1, 'chat', NULL, 1, '{\"room\":\"general\",\"from\":\"alice\",\"body\":\"a\"}'),"
        " (1, 'chat', NULL, 2, '{\"room\":\"rust\",\"from\":\"bob\",\"body\":\"b\"}'),"
        " (1, 'alert', 2, NULL, '{\"kind\":\"transfer.received\"}');", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    void *opened = NULL;
    assert_int_equal(open_at(&opened, path), 0);
    struct store *st = opened;
    struct seen fa = feed(st, 1, 0, 10), fb = feed(st, 2, 0, 10);
    assert_int_equal(fa.n, 2);                  /* general's and rust's, not bob's alert */
    assert_int_equal(fb.n, 3);
    struct room_out l = room_op(st, STORE_CALL_ROOMS_LIST, 1, NULL);
    assert_int_equal(l.n_rooms, 2);
    assert_int_equal(listed(&l, "rust")->members, 2);
    assert_int_equal(listed(&l, "rust")->last_id, 2);
    assert_int_equal(listed(&l, "general")->last_id, 1);
    struct room_out p = room_call(st, STORE_CALL_ROOM_MESSAGES, (struct store_args){
        .user_id = 1, .name = "rust", .limit = 10 });
    assert_int_equal(p.n, 1);
    assert_int_equal(p.ids[0], 2);
    int64_t carol = mkuser(st, "carol");       /* a new user is in general */
    assert_int_equal(feed(st, carol, 0, 10).n, 1);
    store_free(st);
    unlink(path);
}

/* The same on PostgreSQL: a database at schema 2 (v1) migrated by opening
 * it. */
static void test_migrate_v1_pg(void **state)
{
    (void)state;
    char db[64], url[512];
    snprintf(db, sizeof db, "chat_test_v1_%d", (int)getpid());
    pg_test_url(db, url, sizeof url);
    assert_int_equal(pg_test_admin("CREATE", db, ""), 0);
    PGconn *c = PQconnectdb(url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    const char *steps[] = {
        "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_ms BIGINT NOT NULL)",
        PG_MIGRATIONS[0], PG_MIGRATIONS[1],
        "INSERT INTO schema_version VALUES (1, 0), (2, 0)",
        "INSERT INTO users(name, pwhash, created_ms) VALUES ('alice', 'h', 1), ('bob', 'h', 1)",
        "INSERT INTO events(id, ts_ms, type, recipient_id, sender_id, payload) VALUES"
        " (1, 1, 'chat', NULL, 1, '{\"room\":\"general\",\"from\":\"alice\",\"body\":\"a\"}'),"
        " (2, 1, 'chat', NULL, 2, '{\"room\":\"rust\",\"from\":\"bob\",\"body\":\"b\"}'),"
        " (3, 1, 'alert', 2, NULL, '{\"kind\":\"transfer.received\"}')",
        "UPDATE event_counter SET last_id = 3",
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        PGresult *r = PQexec(c, steps[i]);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            fail_msg("step %zu: %s", i, PQerrorMessage(c));
        PQclear(r);
    }
    PQfinish(c);
    void *opened = NULL;
    assert_int_equal(open_at(&opened, url), 0);
    struct store *st = opened;
    assert_int_equal(feed(st, 1, 0, 10).n, 2);
    assert_int_equal(feed(st, 2, 0, 10).n, 3);
    struct room_out l = room_op(st, STORE_CALL_ROOMS_LIST, 1, NULL);
    assert_int_equal(l.n_rooms, 2);
    assert_int_equal(listed(&l, "rust")->members, 2);
    assert_int_equal(listed(&l, "rust")->last_id, 2);
    int64_t carol = mkuser(st, "carol");
    assert_int_equal(feed(st, carol, 0, 10).n, 1);
    assert_int_equal(room_op(st, STORE_CALL_ROOM_CREATE, carol, "newroom").rc, STORE_OK);
    store_free(st);
    pg_test_admin("DROP", db, " WITH (FORCE)");
}

#define STORE_TESTS(SETUP, TEARDOWN) \
    cmocka_unit_test_setup_teardown(test_user_create_get, SETUP, TEARDOWN), \
    cmocka_unit_test_setup_teardown(test_user_duplicate_and_unknown, SETUP, TEARDOWN), \
    cmocka_unit_test_setup_teardown(test_session, SETUP, TEARDOWN), \
    cmocka_unit_test_setup_teardown(test_event_ids_increase, SETUP, TEARDOWN), \
    cmocka_unit_test_setup_teardown(test_event_dedupe, SETUP, TEARDOWN), \
    cmocka_unit_test_setup_teardown(test_feed_filtering, SETUP, TEARDOWN), \
    cmocka_unit_test_setup_teardown(test_after_limit_stop, SETUP, TEARDOWN), \
    cmocka_unit_test_setup_teardown(test_recipients_and_all_after, SETUP, TEARDOWN), \
    cmocka_unit_test_setup_teardown(test_account_move, SETUP, TEARDOWN), \
    cmocka_unit_test_setup_teardown(test_transfer_insert_get, SETUP, TEARDOWN), \
    cmocka_unit_test_setup_teardown(test_transfer_state_stale, SETUP, TEARDOWN), \
    cmocka_unit_test_setup_teardown(test_room_visibility, SETUP, TEARDOWN), \
    cmocka_unit_test_setup_teardown(test_room_refusals, SETUP, TEARDOWN), \
    cmocka_unit_test_setup_teardown(test_room_history, SETUP, TEARDOWN), \
    cmocka_unit_test_setup_teardown(test_read_markers, SETUP, TEARDOWN)

/* Stands in for the PostgreSQL run when there is no cluster to run it on. */
static void test_cluster_given(void **state)
{
    (void)state;
    fail_msg("CHAT_TEST_PG is not set: no PostgreSQL to test (run make test-unit-pg)");
}

/* The PostgreSQL run needs CHAT_TEST_PG; without it, it is skipped, unless
 * CHAT_TEST_PG_REQUIRED is set (make test-unit-pg): then that is a failure. */
int main(void)
{
    const struct CMUnitTest sqlite_tests[] = {
        STORE_TESTS(setup, teardown),
        cmocka_unit_test(test_file_persistence),
        cmocka_unit_test(test_open_failure),
        cmocka_unit_test(test_transfer_state_names),
        cmocka_unit_test(test_unknown_state_read),
        cmocka_unit_test(test_ops_tables),
        cmocka_unit_test_setup_teardown(test_async_completes_later_on_sqlite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_many_on_sqlite, setup, teardown),
        cmocka_unit_test(test_migrate_v1),
    };
    const struct CMUnitTest pg_tests[] = {
        STORE_TESTS(setup_pg, teardown_pg),
        cmocka_unit_test(test_migrate_v1_pg),
    };
    const struct CMUnitTest pg_missing[] = {cmocka_unit_test(test_cluster_given)};
    const char *url = getenv("CHAT_TEST_PG"), *req = getenv("CHAT_TEST_PG_REQUIRED");
    int failed = cmocka_run_group_tests_name("store on SQLite", sqlite_tests, NULL, NULL);
    if (url && *url)
        failed += cmocka_run_group_tests_name("store on PostgreSQL", pg_tests, NULL, NULL);
    else if (req && *req && strcmp(req, "0"))
        failed += cmocka_run_group_tests_name("store on PostgreSQL", pg_missing, NULL, NULL);
    else
        printf("CHAT_TEST_PG not set: the PostgreSQL run is skipped (make test-unit-pg)\n");
    return failed ? 1 : 0;
}
