/* test_store.c — unit tests of the store API on the SQLite backend: users,
 * sessions, event append/dedupe, feed filtering and paging, and persistence
 * of an on-disk database across reopen. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"

#define NOW 1700000000000LL

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
    store_free(*state);
    return 0;
}

static int64_t mkuser(struct store *st, const char *name)
{
    int64_t id = 0;
    assert_int_equal(store_user_create(st, name, "$argon2id$hash", NOW, &id), STORE_OK);
    assert_true(id > 0);
    return id;
}

/* Appends a chat event; returns its id and checks it was created. */
static int64_t append(struct store *st, int64_t sender, int64_t recipient,
                      const char *cmid, const char *payload)
{
    struct store_new_event ev = {
        .type = "chat", .recipient_id = recipient, .sender_id = sender,
        .client_msg_id = cmid, .payload = payload, .ts_ms = NOW,
    };
    int64_t id = 0, ts = 0;
    int created = -1;
    assert_int_equal(store_event_append(st, &ev, &id, &ts, &created), STORE_OK);
    assert_int_equal(created, 1);
    assert_int_equal(ts, NOW);
    assert_true(id > 0);
    return id;
}

struct seen {
    int n;
    int stop_after;             /* 0: never stop */
    int64_t ids[32];
    char payload[32][64];
    char type[32][16];
};

static int collect(void *arg, const struct store_event *ev)
{
    struct seen *s = arg;
    if (s->n < 32) {
        s->ids[s->n] = ev->id;
        snprintf(s->payload[s->n], sizeof s->payload[0], "%s", ev->payload);
        snprintf(s->type[s->n], sizeof s->type[0], "%s", ev->type);
    }
    s->n++;
    return s->stop_after && s->n >= s->stop_after;
}

static struct seen feed(struct store *st, int64_t user, int64_t after, int limit)
{
    struct seen s = {0};
    assert_int_equal(store_events_after(st, user, after, limit, collect, &s), STORE_OK);
    return s;
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

static void test_open_failure(void **state)
{
    (void)state;
    char err[256] = "";
    assert_null(store_open("/nonexistent-dir/x/chat.db", err, sizeof err));
    assert_true(strlen(err) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_user_create_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_duplicate_and_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_ids_increase, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_dedupe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feed_filtering, setup, teardown),
        cmocka_unit_test_setup_teardown(test_after_limit_stop, setup, teardown),
        cmocka_unit_test(test_file_persistence),
        cmocka_unit_test(test_open_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
