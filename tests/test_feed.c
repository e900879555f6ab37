/* Unit tests for server/feed.c's group commit against a store whose
 * asynchronous calls complete later, as both backends' do: a SQLite store
 * whose async hooks queue each request, run only when the test says so.
 * What they show: a turn's sends are stored in one call (a batch) at the
 * turn's end; a sender is acknowledged only once that call has completed,
 * in id order, and the events enter the feed's memory only then; sends
 * arriving while a batch is on its way go into the next batch; a failed
 * batch answers every sender of it with the error and publishes nothing;
 * with rooms, a WebSocket's reads skip other rooms' events (the session's
 * hint) and still get each of its own once, in order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "feed.h"
#include "rooms.h"
#include "server.h"
#include "store.h"

/* ---- a store whose completions wait ---- */

/* store.c's struct store begins with these two (the test swaps the ops). */
struct store_head {
    const struct store_ops *ops;
    void *impl;
};

enum req_what { REQ_BEGIN, REQ_MANY, REQ_END };

#define BATCH_MAX 8
struct req {
    enum req_what what;
    int commit, nev;
    struct store_new_event ev[BATCH_MAX];
    char type[BATCH_MAX][16], payload[BATCH_MAX][512], cmid[BATCH_MAX][80];
    store_done_fn done;
    void *arg;
};

#define QMAX 64
static struct req queue[QMAX];
static int qhead, qtail;
static int64_t next_txn;
static int fail_next_commit;     /* the next COMMIT answers STORE_UNAVAILABLE */

static struct req *enqueue(enum req_what what, store_done_fn done, void *arg)
{
    assert_true(qtail < QMAX);
    struct req *r = &queue[qtail++];
    memset(r, 0, sizeof *r);
    r->what = what;
    r->done = done;
    r->arg = arg;
    return r;
}

static void fake_call(void *impl, int64_t txn, enum store_call_kind kind,
                      const struct store_args *a, store_done_fn done, void *arg)
{
    (void)impl;
    (void)txn;
    assert_int_equal(kind, STORE_CALL_EVENTS_APPEND_MANY);
    assert_true(a->nev > 0 && a->nev <= BATCH_MAX);
    struct req *r = enqueue(REQ_MANY, done, arg);
    r->nev = a->nev;
    for (int i = 0; i < a->nev; i++) {        /* copied, as store.h promises */
        const struct store_new_event *e = &a->evs[i];
        snprintf(r->type[i], sizeof r->type[i], "%s", e->type);
        snprintf(r->payload[i], sizeof r->payload[i], "%s", e->payload);
        snprintf(r->cmid[i], sizeof r->cmid[i], "%s", e->client_msg_id ? e->client_msg_id : "");
        r->ev[i] = *e;
        r->ev[i].type = r->type[i];
        r->ev[i].payload = r->payload[i];
        r->ev[i].client_msg_id = e->client_msg_id ? r->cmid[i] : NULL;
    }
}

static int64_t fake_begin(void *impl, store_done_fn done, void *arg)
{
    (void)impl;
    enqueue(REQ_BEGIN, done, arg);
    return ++next_txn;
}

static void fake_end(void *impl, int64_t txn, int commit, store_done_fn done, void *arg)
{
    (void)impl;
    (void)txn;
    enqueue(REQ_END, done, arg)->commit = commit;
}

/* A batch: its appends in one SQLite transaction (rolled back instead,
 * answering STORE_UNAVAILABLE, if fail_next_commit). */
static void run_many(struct store_head *st, struct req *r, struct store_reply *rep,
                     int64_t *ids, int64_t *ts, int *created)
{
    rep->rc = store_sqlite_ops.begin(st->impl);
    for (int i = 0; rep->rc == STORE_OK && i < r->nev; i++)
        rep->rc = store_sqlite_ops.event_append(st->impl, &r->ev[i], &ids[i], &ts[i], &created[i]);
    if (rep->rc == STORE_OK && fail_next_commit) {
        fail_next_commit = 0;
        store_sqlite_ops.rollback(st->impl);
        rep->rc = STORE_UNAVAILABLE;
    } else if (rep->rc == STORE_OK) {
        rep->rc = store_sqlite_ops.commit(st->impl);
    }
    rep->n = r->nev;
    rep->ids = ids;
    rep->ts_each = ts;
    rep->created_each = created;
}

/* Runs the oldest queued request on SQLite and calls its completion. */
static void run_one(struct store_head *st)
{
    assert_true(qhead < qtail);
    struct req r = queue[qhead++];
    struct store_reply rep;
    int64_t ids[BATCH_MAX], ts[BATCH_MAX];
    int created[BATCH_MAX];
    memset(&rep, 0, sizeof rep);
    if (r.what == REQ_BEGIN) {
        rep.rc = store_sqlite_ops.begin(st->impl);
    } else if (r.what == REQ_MANY) {
        run_many(st, &r, &rep, ids, ts, created);
    } else if (r.commit && fail_next_commit) {
        fail_next_commit = 0;
        store_sqlite_ops.rollback(st->impl);
        rep.rc = STORE_UNAVAILABLE;
    } else if (r.commit) {
        rep.rc = store_sqlite_ops.commit(st->impl);
    } else {
        store_sqlite_ops.rollback(st->impl);
    }
    r.done(r.arg, &rep);
}

/* Runs requests up to and including the next END or batch. */
static void run_to_end(struct store_head *st)
{
    while (qhead < qtail) {
        int end = queue[qhead].what != REQ_BEGIN;
        run_one(st);
        if (end)
            return;
    }
}

static struct store_ops fake_ops;

/* ---- sessions that record their answers ---- */

#define ANSWERS 64
static struct answer {
    char cmid[80];
    int rc;
    int64_t id;
} answers[ANSWERS];
static int nanswers, nwakes;

static void on_wake(struct session *s)
{
    (void)s;
    nwakes++;
}

static void on_posted(struct session *s, const char *cmid, int rc, int64_t id, int64_t ts)
{
    (void)s;
    (void)ts;
    assert_true(nanswers < ANSWERS);
    struct answer *a = &answers[nanswers++];
    snprintf(a->cmid, sizeof a->cmid, "%s", cmid ? cmid : "");
    a->rc = rc;
    a->id = id;
}

static void on_ended(struct session *s, const char *why)
{
    (void)s;
    (void)why;
}

static const struct session_ops recording_ops = { on_wake, on_posted, on_ended, NULL };

struct fixture {
    char dir[64], path[96];
    struct server srv;
    struct session s[2];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    char err[128];
    snprintf(f->dir, sizeof f->dir, "/tmp/chat-feed-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/t.db", f->dir);
    f->srv.store = store_open(f->path, err, sizeof err);
    assert_non_null(f->srv.store);
    for (int i = 0; i < 2; i++) {
        struct session *s = &f->s[i];
        s->srv = &f->srv;
        s->ops = &recording_ops;
        snprintf(s->user, sizeof s->user, "user%d", i);
        assert_int_equal(store_user_create(f->srv.store, s->user, "$argon2id$x", 1, &s->user_id), STORE_OK);
        feed_subscribe(s);
    }
    f->srv.feed = feed_new(f->srv.store);
    assert_non_null(f->srv.feed);
    feed_start(&f->srv, 1);       /* the test ends each batch (feed_flush) */
    fake_ops = store_sqlite_ops;
    fake_ops.async_call = fake_call;
    fake_ops.async_txn_begin = fake_begin;
    fake_ops.async_txn_end = fake_end;
    ((struct store_head *)f->srv.store)->ops = &fake_ops;
    qhead = qtail = 0;
    nanswers = nwakes = 0;
    fail_next_commit = 0;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char wal[128], shm[128];
    ((struct store_head *)f->srv.store)->ops = &store_sqlite_ops;
    feed_stop(&f->srv);
    for (int i = 0; i < 2; i++) {
        feed_unsubscribe(&f->s[i]);
        feed_forget_session(&f->s[i]);
    }
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

static void post(struct fixture *f, int who, const char *cmid)
{
    assert_int_equal(feed_post_chat(&f->srv, &f->s[who], STORE_GENERAL_ROOM_ID, "general", "hello", cmid), 0);
}

/* Event ids in the feed's memory after `after`, for user 0 (all chat). */
static int in_memory(struct fixture *f, int64_t after)
{
    int n = 0;
    int64_t id;
    const unsigned char *frame;
    size_t len;
    while (feed_next_frame(&f->srv, &f->s[0], after, &id, &frame, &len) == 1) {
        after = id;
        n++;
    }
    return n;
}

static void test_acks_after_commit_in_order(void **state)
{
    struct fixture *f = *state;
    post(f, 0, "a1");
    post(f, 1, "b1");
    post(f, 0, "a2");
    assert_int_equal(qtail, 0);   /* kept for the turn's end */
    feed_flush(&f->srv);          /* the turn's end: the batch sent, not done */
    assert_int_equal(qtail, 1);
    post(f, 1, "b2");             /* the next batch: held until that one is in */
    post(f, 0, "a3");
    feed_flush(&f->srv);
    assert_int_equal(qtail, 1);
    assert_int_equal(nanswers, 0);
    assert_int_equal(nwakes, 0);
    assert_int_equal(in_memory(f, 0), 0);
    run_one((struct store_head *)f->srv.store);   /* the first batch */
    assert_int_equal(nanswers, 3);
    assert_int_equal(in_memory(f, 0), 3);
    assert_true(nwakes > 0);
    assert_int_equal(qtail, 2);                   /* the second goes now */
    run_to_end((struct store_head *)f->srv.store);
    assert_int_equal(nanswers, 5);
    assert_int_equal(in_memory(f, 0), 5);
    const char *order[] = { "a1", "b1", "a2", "b2", "a3" };
    for (int i = 0; i < 5; i++) {
        assert_string_equal(answers[i].cmid, order[i]);
        assert_int_equal(answers[i].rc, STORE_OK);
        if (i)
            assert_true(answers[i].id > answers[i - 1].id);
    }
}

/* A failed batch fails the one gathered behind it too (never sent), and
 * each sender's later sends are refused until its first refused one comes
 * again: one sender's messages are never stored out of order. */
static void test_failed_commit_answers_every_sender(void **state)
{
    struct fixture *f = *state;
    post(f, 0, "a1");
    post(f, 1, "b1");
    feed_flush(&f->srv);
    post(f, 1, "b2");
    feed_flush(&f->srv);
    fail_next_commit = 1;
    run_to_end((struct store_head *)f->srv.store);
    assert_int_equal(nanswers, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(answers[i].rc, STORE_UNAVAILABLE);
    assert_int_equal(qtail, qhead);            /* b2's batch was never sent */
    assert_int_equal(in_memory(f, 0), 0);      /* nothing rolled back is published */
    post(f, 1, "b3");                          /* not b1 again: refused at once */
    assert_int_equal(nanswers, 4);
    assert_string_equal(answers[3].cmid, "b3");
    assert_int_equal(answers[3].rc, STORE_UNAVAILABLE);
    post(f, 1, "b1");                          /* the client sends them again, in order */
    post(f, 1, "b2");
    post(f, 1, "b3");
    feed_flush(&f->srv);
    run_to_end((struct store_head *)f->srv.store);
    assert_int_equal(nanswers, 7);
    const char *order[] = { "b1", "b2", "b3" };
    for (int i = 0; i < 3; i++) {
        assert_string_equal(answers[4 + i].cmid, order[i]);
        assert_int_equal(answers[4 + i].rc, STORE_OK);
    }
    assert_true(answers[4].id < answers[5].id && answers[5].id < answers[6].id);
    assert_int_equal(in_memory(f, 0), 3);
}

/* A session that goes away before its commit is not answered. */
static void test_forgotten_sender(void **state)
{
    struct fixture *f = *state;
    post(f, 0, "a1");
    post(f, 1, "b1");
    feed_flush(&f->srv);
    feed_forget_session(&f->s[0]);
    run_to_end((struct store_head *)f->srv.store);
    assert_int_equal(nanswers, 1);
    assert_string_equal(answers[0].cmid, "b1");
    assert_int_equal(in_memory(f, 0), 2);
}

/* ---- rooms: what feed_next_frame gives one member ---- */

#define ROOM_A 7                  /* user 0's */
#define ROOM_B 8                  /* user 1's */

/* The sessions listen again, now through a room index: user i in room
 * ROOM_A + i from event 1 on. */
static void with_rooms(struct fixture *f)
{
    f->srv.rooms = rooms_new();
    assert_non_null(f->srv.rooms);
    for (int i = 0; i < 2; i++) {
        feed_unsubscribe(&f->s[i]);
        rooms_apply_member(f->srv.rooms, ROOM_A + i, i ? "rb" : "ra", f->s[i].user_id, 1, 1);
        feed_subscribe(&f->s[i]);
    }
}

static void post_to_room(struct fixture *f, int64_t room_id, const char *cmid)
{
    const char *name = room_id == ROOM_A ? "ra" : room_id == ROOM_B ? "rb" : "general";
    int who = room_id == ROOM_B;
    assert_int_equal(feed_post_chat(&f->srv, &f->s[who], room_id, name, "hello", cmid), 0);
}

/* Sends to rooms, given as a string ("ABAG": ROOM_A, ROOM_B, ROOM_A,
 * general), each its own batch or all in one, committed. */
static void send_rooms(struct fixture *f, const char *rooms, int one_batch)
{
    char cmid[32];
    static int n;
    for (const char *c = rooms; *c; c++) {
        snprintf(cmid, sizeof cmid, "%c%d", *c, ++n);   /* the room, for ids_for_user0 */
        post_to_room(f, *c == 'A' ? ROOM_A : *c == 'B' ? ROOM_B : STORE_GENERAL_ROOM_ID, cmid);
        if (!one_batch || !c[1]) {
            feed_flush(&f->srv);
            run_to_end((struct store_head *)f->srv.store);
        }
    }
}

/* The ids user 0 is answered after `after`, as ws_out reads them. */
static int read_frames(struct fixture *f, int64_t after, int64_t *ids, int max)
{
    int n = 0;
    int64_t id;
    const unsigned char *frame;
    size_t len;
    while (feed_next_frame(&f->srv, &f->s[0], after, &id, &frame, &len) == 1) {
        assert_true(n < max);
        assert_true(id > after);
        ids[n++] = after = id;
    }
    return n;
}

/* Every answer so far for ROOM_A or general: the ids user 0 must get. */
static int ids_for_user0(int64_t after, int64_t *ids)
{
    int n = 0;
    for (int i = 0; i < nanswers; i++)
        if (answers[i].id > after && answers[i].rc == STORE_OK && strchr("AG", answers[i].cmid[0]))
            ids[n++] = answers[i].id;
    return n;
}

static void expect_user0(struct fixture *f, int64_t *cursor)
{
    int64_t got[64], want[64];
    int n = read_frames(f, *cursor, got, 64), m = ids_for_user0(*cursor, want);
    assert_int_equal(n, m);
    for (int i = 0; i < n; i++)
        assert_int_equal(got[i], want[i]);
    if (n)
        *cursor = got[n - 1];
}

/* User 0 reads between the batches of two busy rooms and general, as a
 * WebSocket does after each wake: it gets every event of its room and of
 * general once, in order, and none of the other room's, however its reads
 * and the commits interleave (each read that finds nothing leaves a hint
 * the next one starts from). */
static void test_room_reads_skip_other_rooms(void **state)
{
    struct fixture *f = *state;
    with_rooms(f);
    int64_t cursor = 0;
    send_rooms(f, "ABBBABBB", 1);
    expect_user0(f, &cursor);
    assert_int_equal(cursor, answers[4].id);
    send_rooms(f, "BBBBBBBB", 0);         /* nothing of user 0's */
    expect_user0(f, &cursor);
    assert_int_equal(cursor, answers[4].id);
    send_rooms(f, "BBBA", 1);             /* one, after others it skips */
    expect_user0(f, &cursor);
    assert_int_equal(cursor, answers[nanswers - 1].id);
    send_rooms(f, "BB", 1);               /* read: nothing, a hint past the cursor */
    expect_user0(f, &cursor);
    send_rooms(f, "BAAAAABA", 1);         /* more wakes than the hint holds */
    expect_user0(f, &cursor);
    assert_int_equal(cursor, answers[nanswers - 1].id);
    send_rooms(f, "BB", 1);
    expect_user0(f, &cursor);
    send_rooms(f, "BGBA", 1);             /* general wakes everyone */
    send_rooms(f, "ABBA", 0);             /* read only after more batches */
    expect_user0(f, &cursor);
    assert_int_equal(cursor, answers[nanswers - 1].id);
    send_rooms(f, "BBBB", 1);
    int64_t got[4];
    assert_int_equal(read_frames(f, cursor, got, 4), 0);
    send_rooms(f, "AB", 1);
    expect_user0(f, &cursor);
    assert_int_equal(cursor, answers[nanswers - 2].id);
    int64_t again = 0;            /* a read from further back ignores the hint */
    expect_user0(f, &again);
    assert_int_equal(again, cursor);
    for (int i = 0; i < 2; i++)
        feed_unsubscribe(&f->s[i]);
    rooms_free(f->srv.rooms);
    f->srv.rooms = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_acks_after_commit_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_commit_answers_every_sender, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forgotten_sender, setup, teardown),
        cmocka_unit_test_setup_teardown(test_room_reads_skip_other_rooms, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
