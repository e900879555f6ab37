/* test_store_pg.c — what only the PostgreSQL backend promises, on a fresh
 * database per test of the cluster at CHAT_TEST_PG (scripts/with-pg.sh):
 * event ids become visible in id order across store handles (threads:
 * the watermark rule of db/pg/006_event_ids.sql), a
 * transfer row held by one handle is refused to another, the expected
 * refusals (overdraft, duplicates) leave a transaction usable, LISTEN
 * notifications arrive at commit and survive a lost connection, a lost main
 * connection is reset, and instances starting at once migrate the schema
 * once. The backend-agnostic tests are in test_store.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "store.h"
#include "store_test.h"

struct fixture {
    char db[64];
    int created;                /* db exists and must be dropped */
    char url[512];
    struct store *st;           /* handle A; tests open more on url */
    PGconn *admin;              /* a plain connection to db, for inspection */
};

/* ---- databases ---- */

static struct store *open_store(const char *url)
{
    char err[256] = "";
    struct store *st = store_open(url, err, sizeof err);
    if (!st)
        fprintf(stderr, "store_open: %s\n", err);
    return st;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (!f)
        return 0;
    store_free(f->st);
    PQfinish(f->admin);
    int rc = f->created ? pg_test_admin("DROP", f->db, " WITH (FORCE)") : 0;
    free(f);
    *state = NULL;
    return rc;
}

static int setup(void **state)
{
    static int n;
    const char *base = getenv("CHAT_TEST_PG");
    if (!base || !*base) {
        fprintf(stderr, "CHAT_TEST_PG is not set: no PostgreSQL to test (make test-unit-pg)\n");
        return -1;
    }
    struct fixture *f = calloc(1, sizeof *f);
    *state = f;
    if (!f)
        return -1;
    snprintf(f->db, sizeof f->db, "chat_test_pg_%d_%d", (int)getpid(), ++n);
    pg_test_url(f->db, f->url, sizeof f->url);
    f->created = pg_test_admin("CREATE", f->db, "") == 0;
    if (f->created)
        f->admin = PQconnectdb(f->url);
    if (f->created && PQstatus(f->admin) != CONNECTION_OK)
        fprintf(stderr, "admin connection: %s", PQerrorMessage(f->admin));
    else if (f->created)
        f->st = open_store(f->url);
    if (f->st)
        return 0;
    teardown(state);            /* cmocka does not call it after a failed setup */
    return -1;
}

/* ---- inspection through the admin connection ---- */

/* The single integer sql gives; its $1, if any, is the database's name. */
static int64_t admin_int(struct fixture *f, const char *sql)
{
    const char *vals[] = {f->db};
    int n = strstr(sql, "$1") ? 1 : 0;
    PGresult *r = PQexecParams(f->admin, sql, n, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        fail_msg("%s: %s", sql, PQerrorMessage(f->admin));
    int64_t v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

static void nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls until the query gives want; fails after 10 s. */
static void wait_for(struct fixture *f, const char *sql, int64_t want)
{
    for (int i = 0; i < 1000; i++) {
        if (admin_int(f, sql) == want)
            return;
        nap_ms(10);
    }
    fail_msg("waited 10 s for %s = %lld", sql, (long long)want);
}

/* Ends the database's sessions of one application_name ('chatd' is a
 * store's main connection, 'chatd-listen' its LISTEN connection). */
static void kill_sessions(struct fixture *f, const char *app)
{
    const char *vals[] = {f->db, app};
    PGresult *r = PQexecParams(f->admin,
                               "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                               " WHERE datname = $1 AND application_name = $2",
                               2, NULL, vals, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_true(strtol(PQgetvalue(r, 0, 0), NULL, 10) >= 1);
    PQclear(r);
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity"
             " WHERE datname = $1 AND application_name = '%s'", app);
    wait_for(f, sql, 0);
}

/* ---- appends (store_test.h has the rest) ---- */

static int append_rc(struct store *st, int64_t sender, const char *cmid, int64_t *id, int *created)
{
    struct store_new_event ev = {
        .type = "chat", .sender_id = sender, .client_msg_id = cmid,
        .payload = "{\"text\":\"hi\"}", .ts_ms = NOW,
    };
    int64_t ts;
    return store_event_append(st, &ev, id, &ts, created);
}

/* An append on its own handle, in a thread (it must not wait for a lock). */
struct appender {
    struct store *st;
    int64_t recipient;
    int64_t id;
    int rc;
    atomic_int done;
};

static void *append_thread(void *arg)
{
    struct appender *a = arg;
    struct store_new_event ev = {
        .type = "chat", .recipient_id = a->recipient, .payload = "{}", .ts_ms = NOW,
    };
    int64_t ts;
    int created;
    a->rc = store_event_append(a->st, &ev, &a->id, &ts, &created);
    atomic_store(&a->done, 1);
    return NULL;
}

/* ---- ordering ---- */

/* True within 5 s if the appender's call returned. */
static int appender_done(struct appender *ap)
{
    for (int i = 0; i < 500 && !atomic_load(&ap->done); i++)
        nap_ms(10);
    return atomic_load(&ap->done);
}

static int64_t last_id(struct store *st)
{
    int64_t last = -1;
    assert_int_equal(store_last_event_id(st, &last), STORE_OK);
    return last;
}

/* The watermark rule: while A holds a lower id in an open transaction, B's
 * append (a higher id) commits without waiting, but a reader C returns
 * neither, through any read, until A commits; then both, in id order. */
static void test_append_waits_for_uncommitted(void **state)
{
    struct fixture *f = *state;
    struct store *a = f->st, *b = open_store(f->url), *c = open_store(f->url);
    assert_non_null(b);
    assert_non_null(c);
    assert_int_equal(store_begin(a), STORE_OK);
    int64_t ia = append(a, 0, 7, NULL, "{}");         /* private to user 7 */

    struct appender ap = {.st = b, .recipient = 7};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, append_thread, &ap), 0);
    assert_true(appender_done(&ap));            /* B did not wait for A */
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(ap.rc, STORE_OK);
    assert_true(ap.id > ia);
    assert_int_equal(admin_int(f, "SELECT count(*) FROM events"), 1);  /* B's is committed */
    assert_int_equal(all_after(c, 0, SEEN_MAX).n, 0);
    assert_int_equal(feed(c, 7, 0, 10).n, 0);
    assert_int_equal(last_id(c), 0);

    assert_int_equal(store_commit(a), STORE_OK);
    struct seen s = all_after(c, 0, SEEN_MAX);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.ids[0], ia);
    assert_int_equal(s.ids[1], ap.id);
    s = feed(c, 7, 0, 10);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.ids[0], ia);
    assert_int_equal(s.ids[1], ap.id);
    assert_int_equal(last_id(c), ap.id);
    store_free(b);
    store_free(c);
}

/* The same with A rolling back: B's event shows once A's transaction is
 * over, and A's id never does. */
static void test_watermark_after_rollback(void **state)
{
    struct fixture *f = *state;
    struct store *a = f->st, *b = open_store(f->url), *c = open_store(f->url);
    assert_non_null(b);
    assert_non_null(c);
    int64_t first = append(b, 0, 0, NULL, "{}");
    assert_int_equal(store_begin(a), STORE_OK);
    int64_t ia = append(a, 0, 0, NULL, "{}");
    int64_t ib = append(b, 0, 0, NULL, "{}");
    assert_true(ib > ia && ia > first);
    struct seen s = all_after(c, 0, SEEN_MAX);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.ids[0], first);
    assert_int_equal(last_id(c), first);
    store_rollback(a);
    s = all_after(c, first, SEEN_MAX);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.ids[0], ib);
    store_free(b);
    store_free(c);
}

/* A rolled back append is never seen; its id, which nobody saw, may be
 * handed out again, and ids still only grow. */
static void test_rollback_unseen(void **state)
{
    struct fixture *f = *state;
    int64_t first = append(f->st, 0, 0, NULL, "{}");
    assert_int_equal(store_begin(f->st), STORE_OK);
    int64_t lost = append(f->st, 0, 0, NULL, "{}");
    store_rollback(f->st);
    int64_t next = append(f->st, 0, 0, NULL, "{}");
    assert_true(lost > first);
    assert_true(next >= lost);
    struct seen s = all_after(f->st, 0, SEEN_MAX);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.ids[0], first);
    assert_int_equal(s.ids[1], next);
}

#define STRESS_WRITERS 3
#define STRESS_EVENTS  150      /* per writer */

struct stress {
    const char *url;
    atomic_int writers_done;
    int txn_size[STRESS_WRITERS];   /* appends per transaction; 0: autocommit */
    int rc[STRESS_WRITERS];
    /* the reader's findings */
    int seen, reader_rc;
};

struct writer_arg {
    struct stress *s;
    int k;
};

/* Appends STRESS_EVENTS events, in transactions of txn_size with a pause
 * before each commit so that other writers queue up behind it. */
static void *stress_writer(void *arg)
{
    struct writer_arg *w = arg;
    struct stress *s = w->s;
    int per = s->txn_size[w->k], rc = STORE_OK;
    struct store *st = open_store(s->url);
    for (int i = 0; st && rc == STORE_OK && i < STRESS_EVENTS; i++) {
        int64_t id;
        int created;
        if (per && i % per == 0)
            rc = store_begin(st);
        if (rc == STORE_OK)
            rc = append_rc(st, 0, NULL, &id, &created);
        if (rc == STORE_OK && per && (i % per == per - 1 || i == STRESS_EVENTS - 1)) {
            nap_ms(1);
            rc = store_commit(st);
        }
    }
    s->rc[w->k] = st ? rc : STORE_ERROR;
    store_free(st);
    atomic_fetch_add(&s->writers_done, 1);
    return NULL;
}

struct cursor {
    int64_t at;
    int n;
};

static int advance(void *arg, const struct store_event *ev)
{
    struct cursor *c = arg;
    c->at = ev->id;
    c->n++;
    return 0;
}

/* Follows the log with a cursor, as a client does, until the writers are
 * done and one last read finds nothing new. */
static void *stress_reader(void *arg)
{
    struct stress *s = arg;
    struct store *st = open_store(s->url);
    struct cursor c = {0};
    int rc = st ? STORE_OK : STORE_ERROR;
    for (int last_pass = 0; rc == STORE_OK;) {
        int before = c.n;
        rc = store_events_all_after(st, c.at, 50, advance, &c);
        if (c.n == before && last_pass)
            break;
        if (c.n == before) {    /* conclusive only if read after the writers ended */
            last_pass = atomic_load(&s->writers_done) == STRESS_WRITERS;
            nap_ms(1);
        }
    }
    s->seen = c.n;
    s->reader_rc = rc;
    store_free(st);
    return NULL;
}

/* Writers on several handles, some in transactions, and a reader that moves
 * its cursor past every id it sees: if a smaller id ever became visible after
 * a larger one, the reader would skip it and see fewer than were written. */
static void test_cursor_never_skips(void **state)
{
    struct fixture *f = *state;
    struct stress s = {.url = f->url, .txn_size = {0, 3, 7}};
    struct writer_arg w[STRESS_WRITERS];
    pthread_t tw[STRESS_WRITERS], tr;
    assert_int_equal(pthread_create(&tr, NULL, stress_reader, &s), 0);
    for (int k = 0; k < STRESS_WRITERS; k++) {
        w[k] = (struct writer_arg){&s, k};
        assert_int_equal(pthread_create(&tw[k], NULL, stress_writer, &w[k]), 0);
    }
    for (int k = 0; k < STRESS_WRITERS; k++)
        assert_int_equal(pthread_join(tw[k], NULL), 0);
    assert_int_equal(pthread_join(tr, NULL), 0);
    for (int k = 0; k < STRESS_WRITERS; k++)
        assert_int_equal(s.rc[k], STORE_OK);
    assert_int_equal(s.reader_rc, STORE_OK);
    assert_int_equal(s.seen, STRESS_WRITERS * STRESS_EVENTS);
    assert_int_equal(admin_int(f, "SELECT count(*) FROM events"),
                     STRESS_WRITERS * STRESS_EVENTS);
}

/* ---- the bank across handles ---- */

static int64_t new_transfer(struct store *st, int64_t from, int64_t to, const char *key)
{
    int64_t id = 0;
    int created = 0;
    assert_int_equal(store_transfer_insert(st, from, to, 100, key, NOW, &id, &created), STORE_OK);
    assert_int_equal(created, 1);
    return id;
}

static void test_transfer_lock(void **state)
{
    struct fixture *f = *state;
    struct store *a = f->st, *b = open_store(f->url);
    assert_non_null(b);
    int64_t u1 = mkuser(a, "alice"), u2 = mkuser(a, "bob");
    int64_t t1 = new_transfer(a, u1, u2, "k1"), t2 = new_transfer(a, u1, u2, "k2");

    assert_int_equal(store_transfer_lock(a, t1), STORE_ERROR);     /* not in a transaction */
    assert_int_equal(store_begin(a), STORE_OK);
    assert_int_equal(store_transfer_lock(a, t1), STORE_OK);
    assert_int_equal(store_begin(b), STORE_OK);
    assert_int_equal(store_transfer_lock(b, t1), STORE_EXISTS);    /* at once, no wait */
    assert_int_equal(store_transfer_lock(b, t2), STORE_OK);        /* another row is free */
    assert_int_equal(store_transfer_lock(b, 9999), STORE_NOT_FOUND);
    struct store_transfer t;
    assert_int_equal(store_transfer_get(b, t1, &t), STORE_OK);     /* B's transaction goes on */
    assert_int_equal(store_transfer_set_state(a, t1, TRANSFER_PROCESSING, NULL, NOW + 1), STORE_OK);
    assert_int_equal(store_commit(a), STORE_OK);

    assert_int_equal(store_transfer_lock(b, t1), STORE_OK);        /* released by the commit */
    assert_int_equal(store_transfer_get(b, t1, &t), STORE_OK);
    assert_int_equal(t.state, TRANSFER_PROCESSING);              /* and sees A's change */
    assert_int_equal(store_commit(b), STORE_OK);
    store_free(b);
}

/* The refusals the bank and the feed carry on after do not abort the
 * PostgreSQL transaction they happen in. */
static void test_refusals_keep_transaction(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    int64_t a = mkuser(st, "alice"), b = mkuser(st, "bob"), id, cents, e1, e2;
    int created;
    e1 = 0;
    assert_int_equal(append_rc(st, a, "m-1", &e1, &created), STORE_OK);
    int64_t t1 = new_transfer(st, a, b, "k1");

    assert_int_equal(store_begin(st), STORE_OK);
    assert_int_equal(store_account_move(st, a, -(STORE_OPENING_BALANCE_CENTS + 1), t1, NOW, "x"),
                     STORE_CONSTRAINT);
    assert_int_equal(store_user_create(st, "alice", "other", NOW, &id), STORE_EXISTS);
    assert_int_equal(append_rc(st, a, "m-1", &e2, &created), STORE_OK);
    assert_int_equal(created, 0);
    assert_int_equal(e2, e1);
    assert_int_equal(store_transfer_insert(st, a, b, 5, "k1", NOW, &id, &created), STORE_OK);
    assert_int_equal(created, 0);
    assert_int_equal(id, t1);
    assert_int_equal(store_account_move(st, a, -100, t1, NOW, "out"), STORE_OK);
    assert_int_equal(store_account_move(st, b, 100, t1, NOW, "in"), STORE_OK);
    assert_int_equal(store_transfer_set_state(st, t1, TRANSFER_COMPLETED, NULL, NOW), STORE_OK);
    assert_int_equal(store_commit(st), STORE_OK);

    assert_int_equal(store_account_balance(st, a, &cents), STORE_OK);
    assert_int_equal(cents, STORE_OPENING_BALANCE_CENTS - 100);
    assert_int_equal(admin_int(f, "SELECT sum(delta_cents) FROM ledger"),
                     2 * STORE_OPENING_BALANCE_CENTS);
}

/* A transaction whose statement failed cannot be committed. */
static void test_failed_commit(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    int64_t a = mkuser(st, "alice"), last = -1;
    assert_int_equal(store_begin(st), STORE_OK);
    append(st, a, 0, NULL, "{}");
    assert_int_equal(store_session_create(st, "tok", 9999, NOW, NOW + 1), STORE_NOT_FOUND);
    assert_int_equal(store_commit(st), STORE_ERROR);
    assert_int_equal(store_last_event_id(st, &last), STORE_OK);
    assert_int_equal(last, 0);
    assert_int_equal(store_commit(st), STORE_ERROR);            /* none open now */
    assert_true(append(st, a, 0, NULL, "{}") > 0);
}

/* ---- notifications ---- */

static int readable(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 1;
}

/* Waits for the descriptor and drains it; what notify_drain said. */
static int drain_when_readable(struct store *st, int fd)
{
    assert_true(readable(fd, 10000));
    int n;
    while ((n = store_notify_drain(st)) == 0 && readable(fd, 1000))
        ;
    return n;
}

static void test_notify(void **state)
{
    struct fixture *f = *state;
    struct store *a = f->st, *b = open_store(f->url);
    assert_non_null(b);
    assert_true(store_is_shared(b));
    int fd = store_notify_fd(b);
    assert_true(fd >= 0);
    assert_int_equal(store_notify_drain(b), 0);

    append(a, 0, 0, NULL, "{}");                    /* autocommit: at once */
    assert_int_equal(drain_when_readable(b, fd), 1);
    assert_int_equal(store_notify_drain(b), 0);

    assert_int_equal(store_begin(a), STORE_OK);     /* in a transaction: at commit */
    append(a, 0, 0, NULL, "{}");
    append(a, 0, 0, NULL, "{}");
    assert_false(readable(fd, 200));
    assert_int_equal(store_commit(a), STORE_OK);
    assert_int_equal(drain_when_readable(b, fd), 1);

    assert_int_equal(store_begin(a), STORE_OK);     /* rolled back: never */
    append(a, 0, 0, NULL, "{}");
    store_rollback(a);
    assert_false(readable(fd, 200));
    store_free(b);
}

/* store_notify_fd until it has a descriptor (it reconnects step by step,
 * -1 meanwhile), for at most 10 s. */
static int notify_fd_wait(struct store *st)
{
    for (int i = 0; i < 1000; i++) {
        int fd = store_notify_fd(st);
        if (fd >= 0)
            return fd;
        struct pollfd none = { .fd = -1 };
        poll(&none, 1, 10);
    }
    return -1;
}

/* A lost LISTEN connection: drain says so, notify_fd reconnects, and the
 * next drain reports possible missed events. */
static void test_notify_reconnect(void **state)
{
    struct fixture *f = *state;
    struct store *a = f->st, *b = open_store(f->url);
    assert_non_null(b);
    int fd = store_notify_fd(b);
    assert_true(fd >= 0);
    kill_sessions(f, "chatd-listen");
    assert_int_equal(drain_when_readable(b, fd), -1);
    assert_int_equal(store_notify_drain(b), -1);    /* stays lost until notify_fd */

    append(a, 0, 0, NULL, "{}");                    /* while nobody listens */
    fd = notify_fd_wait(b);                         /* reconnected without blocking */
    assert_true(fd >= 0);
    assert_int_equal(store_notify_drain(b), 1);     /* may have missed some */
    assert_int_equal(store_notify_drain(b), 0);
    append(a, 0, 0, NULL, "{}");
    assert_int_equal(drain_when_readable(b, fd), 1);
    store_free(b);
}

/* ---- connections ---- */

/* Outside a transaction a lost main connection is reset and the statement
 * retried; inside one, the transaction fails. */
static void test_main_reconnect(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    int64_t a = mkuser(st, "alice"), id = 0;
    kill_sessions(f, "chatd");
    assert_int_equal(store_user_get(st, "alice", &id, NULL, 0), STORE_OK);
    assert_int_equal(id, a);
    append(st, a, 0, NULL, "{}");                   /* statements prepared again */

    assert_int_equal(store_begin(st), STORE_OK);
    append(st, a, 0, NULL, "{}");
    kill_sessions(f, "chatd");
    int created;
    assert_int_equal(append_rc(st, a, NULL, &id, &created), STORE_ERROR);
    assert_int_equal(store_commit(st), STORE_ERROR);
    struct seen s = all_after(st, 0, SEEN_MAX);     /* reconnected; only the first */
    assert_int_equal(s.n, 1);
}


/* ---- asynchronous calls, driven by a libuv loop (as chatd's) ---- */

/* The loop's side of store.h's contract: the store's socket watched for
 * what store_io_want asks, a tick every STORE_IO_TICK_MS, the watch moved
 * when the descriptor changes. */
struct driver {
    uv_loop_t loop;
    uv_timer_t tick;
    uv_poll_t *poll;
    int fd, want;
    struct store *st;
    int *finished;              /* stop when *finished */
};

static void drive_rearm(struct driver *d);

static void poll_closed(uv_handle_t *h)
{
    free(h);
}

static void drive_service(struct driver *d)
{
    store_io_service(d->st);
    if (*d->finished)
        uv_stop(&d->loop);
    else
        drive_rearm(d);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    drive_service(h->data);
}

static void on_tick(uv_timer_t *t)
{
    drive_service(t->data);
}

static void drive_unwatch(void *arg)
{
    struct driver *d = arg;
    if (d->poll)
        uv_close((uv_handle_t *)d->poll, poll_closed);
    d->poll = NULL;
}

static void drive_rearm(struct driver *d)
{
    int fd = store_io_fd(d->st), want = store_io_want(d->st);
    if (d->poll && (fd != d->fd || want == 0))
        drive_unwatch(d);
    d->fd = fd;
    if (fd < 0 || want == 0)
        return;
    if (!d->poll) {
        d->poll = calloc(1, sizeof *d->poll);
        assert_non_null(d->poll);
        assert_int_equal(uv_poll_init(&d->loop, d->poll, fd), 0);
        d->poll->data = d;
        d->want = -1;
    }
    if (want != d->want) {
        int ev = ((want & STORE_IO_READ) ? UV_READABLE : 0) | ((want & STORE_IO_WRITE) ? UV_WRITABLE : 0);
        assert_int_equal(uv_poll_start(d->poll, ev, on_poll), 0);
        d->want = want;
    }
}

/* Runs the loop until *finished or 15 s have passed; 0 if finished. */
static int drive(struct store *st, int *finished)
{
    struct driver d = { .st = st, .finished = finished, .fd = -1 };
    assert_int_equal(uv_loop_init(&d.loop), 0);
    uv_timer_init(&d.loop, &d.tick);
    d.tick.data = &d;
    store_io_on_close(st, drive_unwatch, &d);
    uv_timer_start(&d.tick, on_tick, STORE_IO_TICK_MS, STORE_IO_TICK_MS);
    drive_rearm(&d);
    int64_t start = (int64_t)uv_now(&d.loop);
    while (!*finished && (int64_t)uv_now(&d.loop) - start < 15000)
        uv_run(&d.loop, UV_RUN_ONCE);
    store_io_on_close(st, NULL, NULL);
    drive_unwatch(&d);
    uv_close((uv_handle_t *)&d.tick, NULL);
    uv_run(&d.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&d.loop), 0);
    return *finished ? 0 : -1;
}

#define REPLIES_MAX 16
struct many_copy {
    int64_t *ids, *ts;
    int *created;
};
struct replies {
    int n, expect, finished;
    int tag[REPLIES_MAX];
    struct store_reply r[REPLIES_MAX];
    int64_t ids[REPLIES_MAX][8];        /* r[i].ids' first ones, copied */
    struct many_copy *copy;             /* the first reply's per-event arrays */
};
struct tagged {
    struct replies *rs;
    int tag;
};

static void on_reply(void *arg, const struct store_reply *rep)
{
    struct tagged *t = arg;
    struct replies *rs = t->rs;
    if (rs->n < REPLIES_MAX) {
        rs->tag[rs->n] = t->tag;
        rs->r[rs->n] = *rep;
        for (int i = 0; i < rep->n && i < 8 && rep->ids; i++)
            rs->ids[rs->n][i] = rep->ids[i];
        rs->r[rs->n].ids = rs->ids[rs->n];
        rs->r[rs->n].events = NULL;
        for (int i = 0; rs->copy && rs->n == 0 && rep->ts_each && i < rep->n; i++) {
            rs->copy->ids[i] = rep->ids[i];
            rs->copy->ts[i] = rep->ts_each[i];
            rs->copy->created[i] = rep->created_each[i];
        }
    }
    rs->finished = ++rs->n >= rs->expect;
}

static struct store_new_event chat_event(int64_t sender, const char *cmid, const char *payload)
{
    struct store_new_event ev = {
        .type = "chat", .sender_id = sender, .client_msg_id = cmid,
        .payload = payload, .ts_ms = NOW,
    };
    return ev;
}

static void a_append(struct store *st, int64_t txn, const struct store_new_event *ev, void *t)
{
    struct store_args args = { .ev = ev };
    store_call_async(st, txn, STORE_CALL_EVENT_APPEND, &args, on_reply, t);
}

/* begin, appends, commit: nothing completes before the loop runs; then
 * every completion in call order, the ids increasing, the commit last, and
 * the events readable (a duplicate client_msg_id gives the first id); the
 * notification of the commit comes right after it. */
static void test_async_append_commit(void **state)
{
    int64_t txn = 0;
    struct fixture *f = *state;
    struct store *st = f->st, *b = open_store(f->url);
    assert_non_null(b);
    int fd = store_notify_fd(b);
    assert_true(fd >= 0);
    int64_t a = mkuser(st, "alice");
    struct replies rs = { .expect = 6 };
    struct tagged t[6];
    for (int i = 0; i < 6; i++)
        t[i] = (struct tagged){ &rs, i };
    char payload[32];
    txn = store_txn_begin_async(st, on_reply, &t[0]);
    for (int i = 1; i <= 3; i++) {
        snprintf(payload, sizeof payload, "{\"text\":\"m%d\"}", i);
        struct store_new_event ev = chat_event(a, i == 2 ? "c2" : NULL, payload);
        a_append(st, txn, &ev, &t[i]);   /* ev copied */
    }
    struct store_new_event dup = chat_event(a, "c2", "{\"text\":\"again\"}");
    a_append(st, txn, &dup, &t[4]);
    store_txn_end_async(st, txn, 1, on_reply, &t[5]);
    assert_int_equal(rs.n, 0);                    /* PostgreSQL: later, from the loop */
    assert_true(store_io_pending(st));
    assert_int_equal(drive(st, &rs.finished), 0);
    assert_int_equal(rs.n, 6);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(rs.tag[i], i);
        assert_int_equal(rs.r[i].rc, STORE_OK);
    }
    for (int i = 1; i <= 3; i++)
        assert_int_equal(rs.r[i].created, 1);
    assert_true(rs.r[1].id < rs.r[2].id && rs.r[2].id < rs.r[3].id);
    assert_int_equal(rs.r[4].created, 0);
    assert_int_equal(rs.r[4].id, rs.r[2].id);
    assert_int_equal(rs.r[1].ts_ms, NOW);
    struct seen s = all_after(st, 0, SEEN_MAX);   /* committed: visible to the main connection */
    assert_int_equal(s.n, 3);
    assert_int_equal(s.ids[2], rs.r[3].id);
    char reason[128];
    assert_int_equal(store_io_health(st, 1000, reason, sizeof reason), 0);
    /* the notification follows the commit on the same connection: a read
     * queued now completes after it, and the other instances hear of it */
    struct replies more = { .expect = 1 };
    struct tagged m = { &more, 0 };
    store_call_async(st, 0, STORE_CALL_LAST_EVENT_ID, &(struct store_args){ 0 }, on_reply, &m);
    assert_int_equal(drive(st, &more.finished), 0);
    assert_int_equal(more.r[0].id, rs.r[3].id);
    assert_false(store_io_pending(st));
    assert_int_equal(drain_when_readable(b, fd), 1);
    store_free(b);
}

/* The bound on queued requests: beyond it a request is refused at once
 * (STORE_UNAVAILABLE), and a transaction one of whose requests was refused
 * is never acknowledged: its commit is STORE_UNAVAILABLE and nothing of it
 * is stored. The next transaction works. */
static void test_async_bound_breaks_transaction(void **state)
{
    int64_t txn = 0;
    struct fixture *f = *state;
    struct store *st = f->st;
    int64_t a = mkuser(st, "alice");
    store_async_bound(st, 3, 0);
    struct replies rs = { .expect = 5 };
    struct tagged t[5];
    for (int i = 0; i < 5; i++)
        t[i] = (struct tagged){ &rs, i };
    struct store_new_event ev = chat_event(a, NULL, "{}");
    txn = store_txn_begin_async(st, on_reply, &t[0]);
    a_append(st, txn, &ev, &t[1]);
    a_append(st, txn, &ev, &t[2]);
    a_append(st, txn, &ev, &t[3]);        /* the fourth: refused */
    assert_int_equal(rs.n, 1);
    assert_int_equal(rs.tag[0], 3);
    assert_int_equal(rs.r[0].rc, STORE_UNAVAILABLE);
    store_txn_end_async(st, txn, 1, on_reply, &t[4]);                   /* refused too */
    assert_int_equal(drive(st, &rs.finished), 0);
    int commit_rc = -1;
    for (int i = 0; i < rs.n; i++)
        if (rs.tag[i] == 4)
            commit_rc = rs.r[i].rc;
    assert_int_equal(commit_rc, STORE_UNAVAILABLE);
    /* let the engine finish what it sent, then look */
    struct replies rs2 = { .expect = 3 };
    struct tagged u[3] = { { &rs2, 0 }, { &rs2, 1 }, { &rs2, 2 } };
    store_async_bound(st, 0, 0);
    txn = store_txn_begin_async(st, on_reply, &u[0]);
    a_append(st, txn, &ev, &u[1]);
    store_txn_end_async(st, txn, 1, on_reply, &u[2]);
    assert_int_equal(drive(st, &rs2.finished), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rs2.r[i].rc, STORE_OK);
    struct seen s = all_after(st, 0, SEEN_MAX);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.ids[0], rs2.r[1].id);
}

/* The asynchronous connection lost between two transactions: the next one
 * reconnects without blocking and commits. Lost inside a transaction (its
 * BEGIN ran): the rest of it is STORE_UNAVAILABLE, commit included. */
static void test_async_reconnect(void **state)
{
    int64_t txn = 0;
    struct fixture *f = *state;
    struct store *st = f->st;
    int64_t a = mkuser(st, "alice");
    struct store_new_event ev = chat_event(a, NULL, "{}");
    struct replies rs = { .expect = 1 };
    struct tagged t0 = { &rs, 0 };
    txn = store_txn_begin_async(st, on_reply, &t0);
    assert_int_equal(drive(st, &rs.finished), 0);
    assert_int_equal(rs.r[0].rc, STORE_OK);
    kill_sessions(f, "chatd-async");
    rs = (struct replies){ .expect = 2 };
    struct tagged t[2] = { { &rs, 1 }, { &rs, 2 } };
    a_append(st, txn, &ev, &t[0]);
    store_txn_end_async(st, txn, 1, on_reply, &t[1]);
    assert_int_equal(drive(st, &rs.finished), 0);
    assert_int_equal(rs.r[0].rc, STORE_UNAVAILABLE);
    assert_int_equal(rs.r[1].rc, STORE_UNAVAILABLE);

    rs = (struct replies){ .expect = 3 };
    struct tagged u[3] = { { &rs, 0 }, { &rs, 1 }, { &rs, 2 } };
    txn = store_txn_begin_async(st, on_reply, &u[0]);
    a_append(st, txn, &ev, &u[1]);
    store_txn_end_async(st, txn, 1, on_reply, &u[2]);
    assert_int_equal(drive(st, &rs.finished), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rs.r[i].rc, STORE_OK);
    struct seen s = all_after(st, 0, SEEN_MAX);
    assert_int_equal(s.n, 1);
}

/* The database refusing connections: requests wait up to the age bound,
 * then answer STORE_UNAVAILABLE, and the health (from memory) says degraded
 * with a reason; once it accepts them again, the next requests commit. */
static void test_async_database_gone(void **state)
{
    int64_t txn = 0;
    struct fixture *f = *state;
    struct store *st = f->st;
    int64_t a = mkuser(st, "alice");
    struct store_new_event ev = chat_event(a, NULL, "{}");
    char reason[160];
    struct replies up = { .expect = 1 };
    struct tagged t0 = { &up, 0 };
    store_call_async(st, 0, STORE_CALL_LAST_EVENT_ID, &(struct store_args){0}, on_reply, &t0); /* connected */
    assert_int_equal(drive(st, &up.finished), 0);
    assert_int_equal(store_io_health(st, 1000, reason, sizeof reason), 0);
    assert_int_equal(pg_test_admin("ALTER", f->db, " ALLOW_CONNECTIONS false"), 0);
    store_async_bound(st, 0, 300);
    kill_sessions(f, "chatd-async");
    struct replies rs = { .expect = 3 };
    struct tagged t[3] = { { &rs, 0 }, { &rs, 1 }, { &rs, 2 } };
    txn = store_txn_begin_async(st, on_reply, &t[0]);
    a_append(st, txn, &ev, &t[1]);
    store_txn_end_async(st, txn, 1, on_reply, &t[2]);
    assert_int_equal(drive(st, &rs.finished), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rs.r[i].rc, STORE_UNAVAILABLE);
    assert_int_equal(store_io_health(st, 1000, reason, sizeof reason), 1);
    assert_non_null(strstr(reason, "no database connection"));

    assert_int_equal(pg_test_admin("ALTER", f->db, " ALLOW_CONNECTIONS true"), 0);
    store_async_bound(st, 0, 5000);
    rs = (struct replies){ .expect = 3 };
    txn = store_txn_begin_async(st, on_reply, &t[0]);
    a_append(st, txn, &ev, &t[1]);
    store_txn_end_async(st, txn, 1, on_reply, &t[2]);
    assert_int_equal(drive(st, &rs.finished), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rs.r[i].rc, STORE_OK);
    /* connected again; degraded still names the recent failure for a few
     * seconds (so /healthz does not flap between two failures) */
    if (store_io_health(st, 1000, reason, sizeof reason))
        assert_non_null(strstr(reason, "ms ago"));
    assert_int_equal(all_after(st, 0, SEEN_MAX).n, 1);
}

/* One call, driven to its completion; the reply kept (its first ids
 * copied). */
static int64_t kept_ids[8];
static struct store_reply call1(struct store *st, int64_t txn, enum store_call_kind kind,
                                const struct store_args *args)
{
    struct replies rs = { .expect = 1 };
    struct tagged t = { &rs, 0 };
    store_call_async(st, txn, kind, args, on_reply, &t);
    if (!rs.finished)
        assert_int_equal(drive(st, &rs.finished), 0);
    struct store_reply r = rs.r[0];
    for (int i = 0; i < r.n && i < 8; i++)
        kept_ids[i] = r.ids[i];
    r.ids = kept_ids;
    return r;
}

static int txn_end1(struct store *st, int64_t txn, int commit)
{
    struct replies rs = { .expect = 1 };
    struct tagged t = { &rs, 0 };
    store_txn_end_async(st, txn, commit, on_reply, &t);
    if (!rs.finished)
        assert_int_equal(drive(st, &rs.finished), 0);
    return rs.r[0].rc;
}

static int64_t txn_begin1(struct store *st)
{
    struct replies rs = { .expect = 1 };
    struct tagged t = { &rs, 0 };
    int64_t txn = store_txn_begin_async(st, on_reply, &t);
    if (!rs.finished)
        assert_int_equal(drive(st, &rs.finished), 0);
    assert_int_equal(rs.r[0].rc, STORE_OK);
    assert_true(txn != 0);
    return txn;
}

/* Users, sessions and the bank through the asynchronous calls: each answers
 * as its synchronous form does, outcomes found by a follow-up included (a
 * taken name, a reused idempotency key, an overdraft, a held row). */
static void test_async_every_call(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    struct store_args a = { .name = "carol", .pwhash = "h1", .now_ms = NOW };
    struct store_reply r = call1(st, 0, STORE_CALL_USER_CREATE, &a);
    assert_int_equal(r.rc, STORE_OK);
    int64_t carol = r.id;
    assert_int_equal(call1(st, 0, STORE_CALL_USER_CREATE, &a).rc, STORE_EXISTS);
    r = call1(st, 0, STORE_CALL_USER_GET, &a);
    assert_int_equal(r.rc, STORE_OK);
    assert_int_equal(r.id, carol);
    assert_string_equal(r.pwhash, "h1");
    int64_t dave = mkuser(st, "dave");

    struct store_args s = { .token_hash = "t1", .user_id = carol, .now_ms = NOW, .expires_ms = NOW + 1000 };
    assert_int_equal(call1(st, 0, STORE_CALL_SESSION_CREATE, &s).rc, STORE_OK);
    assert_int_equal(call1(st, 0, STORE_CALL_SESSION_CREATE, &s).rc, STORE_EXISTS);
    s.now_ms = NOW + 5;
    assert_int_equal(call1(st, 0, STORE_CALL_SESSION_TOUCH, &s).rc, STORE_OK);
    r = call1(st, 0, STORE_CALL_SESSION_LOOKUP, &s);
    assert_int_equal(r.rc, STORE_OK);
    assert_string_equal(r.session.user, "carol");
    assert_int_equal(r.session.last_used_ms, NOW + 5);
    assert_int_equal(call1(st, 0, STORE_CALL_SESSION_DELETE, &s).rc, STORE_OK);
    assert_int_equal(call1(st, 0, STORE_CALL_SESSION_DELETE, &s).rc, STORE_NOT_FOUND);
    assert_int_equal(call1(st, 0, STORE_CALL_SESSION_LOOKUP, &s).rc, STORE_NOT_FOUND);

    struct store_args t = { .from_id = carol, .to_id = dave, .amount_cents = 100, .key = "k1", .now_ms = NOW };
    r = call1(st, 0, STORE_CALL_TRANSFER_INSERT, &t);
    assert_int_equal(r.rc, STORE_OK);
    assert_int_equal(r.created, 1);
    int64_t tid = r.id;
    r = call1(st, 0, STORE_CALL_TRANSFER_INSERT, &t);         /* the key again */
    assert_int_equal(r.rc, STORE_OK);
    assert_int_equal(r.created, 0);
    assert_int_equal(r.id, tid);

    int64_t txn = txn_begin1(st);
    struct store_args l = { .id = tid };
    assert_int_equal(call1(st, txn, STORE_CALL_TRANSFER_LOCK, &l).rc, STORE_OK);
    struct store_args m = { .user_id = carol, .delta_cents = -STORE_OPENING_BALANCE_CENTS - 1,
                            .id = tid, .now_ms = NOW, .memo = "debit" };
    assert_int_equal(call1(st, txn, STORE_CALL_ACCOUNT_MOVE, &m).rc, STORE_CONSTRAINT);
    m.delta_cents = -100;
    assert_int_equal(call1(st, txn, STORE_CALL_ACCOUNT_MOVE, &m).rc, STORE_OK);
    struct store_args st8 = { .id = tid, .state = TRANSFER_COMPLETED, .now_ms = NOW + 1 };
    assert_int_equal(call1(st, txn, STORE_CALL_TRANSFER_SET_STATE, &st8).rc, STORE_OK);
    l.id = tid + 1000;
    assert_int_equal(call1(st, txn, STORE_CALL_TRANSFER_LOCK, &l).rc, STORE_NOT_FOUND);
    assert_int_equal(txn_end1(st, txn, 1), STORE_OK);

    struct store_args b = { .user_id = carol };
    r = call1(st, 0, STORE_CALL_ACCOUNT_BALANCE, &b);
    assert_int_equal(r.rc, STORE_OK);
    assert_int_equal(r.cents, STORE_OPENING_BALANCE_CENTS - 100);
    struct store_args g = { .id = tid };
    r = call1(st, 0, STORE_CALL_TRANSFER_GET, &g);
    assert_int_equal(r.rc, STORE_OK);
    assert_int_equal(r.transfer.state, TRANSFER_COMPLETED);
    assert_string_equal(r.transfer.to, "dave");
    assert_int_equal(call1(st, 0, STORE_CALL_TRANSFERS_UNFINISHED, &g).n, 0);
}

/* Reads answer rows; a request from outside an open transaction waits
 * until it ends, even when it was queued before the transaction's next
 * request (so it can never see, or be rolled back with, a neighbour's
 * uncommitted work). */
static void test_async_reads_and_isolation(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    int64_t a = mkuser(st, "alice");
    struct replies rs = { .expect = 4 };
    struct tagged t[4] = { { &rs, 0 }, { &rs, 1 }, { &rs, 2 }, { &rs, 3 } };
    struct store_args all = { .after = 0, .limit = 10 };
    int64_t txn = store_txn_begin_async(st, on_reply, &t[0]);
    store_call_async(st, 0, STORE_CALL_EVENTS_ALL_AFTER, &all, on_reply, &t[3]);
    struct store_new_event ev = chat_event(a, "c1", "{\"text\":\"x\"}");
    a_append(st, txn, &ev, &t[1]);
    store_txn_end_async(st, txn, 1, on_reply, &t[2]);
    assert_int_equal(drive(st, &rs.finished), 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(rs.tag[i], i);
        assert_int_equal(rs.r[i].rc, STORE_OK);
    }
    assert_int_equal(rs.r[3].n, 1);          /* the read ran after the commit */
    struct store_args mine = { .user_id = a, .after = 0, .limit = 10 };
    struct store_reply r = call1(st, 0, STORE_CALL_EVENTS_AFTER, &mine);
    assert_int_equal(r.rc, STORE_OK);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.ids[0], rs.r[1].id);
    r = call1(st, 0, STORE_CALL_LAST_EVENT_ID, &mine);
    assert_int_equal(r.id, rs.r[1].id);
}

/* A batch of appends in one call: ids in order, a retried client_msg_id
 * (stored before, or earlier in the same batch) gets its first id and is
 * not created again, and the events are readable. */
static void test_async_append_many(void **state)
{
    struct fixture *f = *state;
    struct store *st = f->st;
    int64_t a = mkuser(st, "alice");
    int64_t first = append(st, a, 0, "c0", "{\"text\":\"before\"}");
    struct store_new_event evs[4] = {
        chat_event(a, "c1", "{\"text\":\"one\"}"),
        chat_event(a, "c0", "{\"text\":\"retry of before\"}"),
        chat_event(a, NULL, "{\"text\":\"no id\"}"),
        chat_event(a, "c1", "{\"text\":\"retry of one\"}"),
    };
    struct replies rs = { .expect = 1 };
    struct tagged t = { &rs, 0 };
    struct store_args args = { .evs = evs, .nev = 4 };
    int64_t ids[4] = {0}, ts[4] = {0};
    int created[4] = {0};
    struct many_copy copy = { ids, ts, created };
    rs.copy = &copy;
    store_call_async(st, 0, STORE_CALL_EVENTS_APPEND_MANY, &args, on_reply, &t);
    assert_int_equal(drive(st, &rs.finished), 0);
    assert_int_equal(rs.r[0].rc, STORE_OK);
    assert_int_equal(rs.r[0].n, 4);
    assert_int_equal(created[0], 1);
    assert_int_equal(created[1], 0);
    assert_int_equal(ids[1], first);
    assert_int_equal(created[2], 1);
    assert_true(ids[0] > first && ids[2] > ids[0]);
    assert_int_equal(created[3], 0);
    assert_int_equal(ids[3], ids[0]);
    assert_int_equal(ts[0], NOW);
    struct seen s = all_after(st, 0, SEEN_MAX);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.ids[1], ids[0]);
    assert_int_equal(s.ids[2], ids[2]);
}

/* The events table's sequential scans so far, as the statistics say once
 * the backends that made them have exited; -1 if they never say that
 * `inserted` rows went into `table` (waited for with a deadline). */
static long long events_seq_scans(PGconn *admin, const char *table, long long inserted)
{
    for (int i = 0; i < 100; i++) {
        PQclear(PQexec(admin, "SELECT pg_stat_clear_snapshot()"));
        const char *v[1] = { table };
        PGresult *r = PQexecParams(admin, "SELECT (SELECT seq_scan FROM pg_stat_user_tables"
                                          " WHERE relname = 'events'), n_tup_ins"
                                          " FROM pg_stat_user_tables WHERE relname = $1",
                                   1, NULL, v, NULL, NULL, 0);
        long long scans = -1, ins = -1;
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
            scans = atoll(PQgetvalue(r, 0, 0));
            ins = atoll(PQgetvalue(r, 0, 1));
        }
        PQclear(r);
        if (ins >= inserted)
            return scans;
        usleep(50 * 1000);
    }
    return -1;
}

/* A batch's cost does not grow with the table: under the event counter's
 * lock, which every instance's appends wait for, a batch never reads the
 * whole events table (its lookup of a retried send's first row goes
 * through the index, and only for a retried send), however many batches
 * run (a prepared statement's generic plan, made while the table was
 * small, once scanned it for every batch). */
static void test_append_many_never_scans_events(void **state)
{
    struct fixture *f = *state;
    int64_t a = mkuser(f->st, "alice");
    store_free(f->st);                  /* its backends report their statistics */
    long long before = events_seq_scans(f->admin, "users", 1);
    f->st = open_store(f->url);
    assert_non_null(f->st);
    char cmids[12][4][32];
    for (int b = 0; b < 12; b++) {
        struct store_new_event evs[4];
        for (int i = 0; i < 4; i++) {
            snprintf(cmids[b][i], sizeof cmids[b][i], "b%d-%d", b, i);
            /* the last batch retries one send of the first */
            evs[i] = chat_event(a, b == 11 && i == 0 ? cmids[0][0] : cmids[b][i], "{\"text\":\"x\"}");
        }
        struct replies rs = { .expect = 1 };
        struct tagged t = { &rs, 0 };
        struct store_args args = { .evs = evs, .nev = 4 };
        store_call_async(f->st, 0, STORE_CALL_EVENTS_APPEND_MANY, &args, on_reply, &t);
        assert_int_equal(drive(f->st, &rs.finished), 0);
        assert_int_equal(rs.r[0].rc, STORE_OK);
    }
    store_free(f->st);
    f->st = NULL;
    long long after = events_seq_scans(f->admin, "events", 12 * 4 - 1);
    assert_true(before >= 0 && after >= 0);
    assert_int_equal(after - before, 0);
}

static int ended_count;
static char ended_hash[65];
static void on_session_end(void *arg, const char *token_hash)
{
    (void)arg;
    ended_count++;
    snprintf(ended_hash, sizeof ended_hash, "%s", token_hash);
}

/* A session deleted by one instance is announced to every instance. */
static void test_session_end_announced(void **state)
{
    struct fixture *f = *state;
    struct store *a = f->st, *b = open_store(f->url);
    assert_non_null(b);
    int64_t u = mkuser(a, "alice");
    const char *hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    assert_int_equal(store_session_create(a, hash, u, NOW, NOW + 1000), STORE_OK);
    ended_count = 0;
    store_set_session_end_cb(b, on_session_end, NULL);
    int fd = store_notify_fd(b);
    assert_true(fd >= 0);
    assert_int_equal(store_session_delete(a, hash), STORE_OK);
    assert_true(readable(fd, 10000));
    for (int i = 0; i < 100 && !ended_count && readable(fd, 100); i++)
        store_notify_drain(b);
    assert_int_equal(ended_count, 1);
    assert_string_equal(ended_hash, hash);
    assert_int_equal(store_session_delete(a, hash), STORE_NOT_FOUND);   /* no row: no news */
    assert_false(readable(fd, 200));
    store_free(b);
}

/* ---- presence leases ---- */

struct renewal {
    int finished, rc, n;
    int64_t ids[4];
    char names[4][33];
};

static void on_renewed(void *arg, const struct store_reply *rep)
{
    struct renewal *r = arg;
    r->rc = rep->rc;
    r->n = rep->n;
    for (int i = 0; i < rep->n && i < 4; i++) {
        r->ids[i] = rep->ids[i];
        snprintf(r->names[i], sizeof r->names[i], "%s", rep->names[i]);
    }
    r->finished = 1;
}

/* owner renews its leases on ids[0..n) for lease_ms: the users under
 * another owner's live lease. */
static struct renewal renew(struct store *st, const char *owner, const int64_t *ids, int n,
                            int64_t lease_ms, int notify)
{
    struct renewal r = {0};
    struct store_args args = { .key = owner, .ids_in = ids, .nids_in = n, .expires_ms = lease_ms,
                               .notify = notify };
    store_call_async(st, 0, STORE_CALL_PRESENCE_RENEW, &args, on_renewed, &r);
    assert_int_equal(drive(st, &r.finished), 0);
    assert_int_equal(r.rc, STORE_OK);
    return r;
}

static int presence_heard;
static char presence_owner[96];
static void on_presence(void *arg, const char *owner)
{
    (void)arg;
    presence_heard++;
    snprintf(presence_owner, sizeof presence_owner, "%s", owner);
}

/* Two instances' leases: each sees the other's users, not its own; a
 * renewal without a user ends its lease there; a lease not renewed in
 * time is over; a renewal with notify is announced with its owner. */
static void test_presence_leases(void **state)
{
    struct fixture *f = *state;
    struct store *a = f->st, *b = open_store(f->url);
    assert_non_null(b);
    int64_t alice = mkuser(a, "alice"), bob = mkuser(a, "bob");
    presence_heard = 0;
    store_set_presence_cb(b, on_presence, NULL);
    int fd = store_notify_fd(b);
    assert_true(fd >= 0);
    struct renewal r = renew(a, "A", &alice, 1, 30000, 1);
    assert_int_equal(r.n, 0);                       /* its own users are not listed */
    assert_true(readable(fd, 10000));
    for (int i = 0; i < 100 && !presence_heard && readable(fd, 100); i++)
        store_notify_drain(b);
    assert_int_equal(presence_heard, 1);
    assert_string_equal(presence_owner, "A");
    r = renew(b, "B", &bob, 1, 30000, 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.ids[0], alice);
    assert_string_equal(r.names[0], "alice");
    r = renew(a, "A", NULL, 0, 30000, 0);           /* alice offline on A */
    assert_int_equal(r.n, 1);
    assert_string_equal(r.names[0], "bob");
    r = renew(b, "B", &bob, 1, 30000, 0);
    assert_int_equal(r.n, 0);
    int64_t both[2] = { alice, bob };
    renew(a, "A", both, 2, 200, 0);                 /* A stops renewing: over after 200 ms */
    r = renew(b, "B", NULL, 0, 30000, 0);
    assert_int_equal(r.n, 2);
    for (int i = 0; i < 100 && r.n; i++) {         /* at most 5 s: polled, not slept */
        readable(fd, 50);
        r = renew(b, "B", NULL, 0, 30000, 0);
    }
    assert_int_equal(r.n, 0);
    store_free(b);
}

struct opener {
    const char *url;
    struct store *st;
};

static void *open_thread(void *arg)
{
    struct opener *o = arg;
    o->st = open_store(o->url);
    return NULL;
}

/* Instances starting at once on an empty database: one migrates, all open. */
static void test_concurrent_open(void **state)
{
    struct fixture *f = *state;
    char db[80], url[600];
    snprintf(db, sizeof db, "%s_fresh", f->db);
    pg_test_url(db, url, sizeof url);
    assert_int_equal(pg_test_admin("CREATE", db, ""), 0);
    struct opener o[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        o[i] = (struct opener){.url = url};
        assert_int_equal(pthread_create(&t[i], NULL, open_thread, &o[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    int ok = 1;
    for (int i = 0; i < 4; i++) {
        ok = ok && o[i].st;
        if (o[i].st)
            mkuser(o[i].st, i == 0 ? "a" : i == 1 ? "b" : i == 2 ? "c" : "d");
        store_free(o[i].st);
    }
    assert_int_equal(pg_test_admin("DROP", db, " WITH (FORCE)"), 0);
    assert_true(ok);
}

/* postgres:// works as well as postgresql://, and both select this backend.
 * (Naming store_pg_ops also links store_pg.c in while store.c refers to it
 * weakly.) */
static void test_url_schemes(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(strncmp(f->url, "postgresql://", 13), 0);
    char url[600];
    snprintf(url, sizeof url, "postgres://%s", f->url + 13);
    struct store *st = open_store(url);
    assert_non_null(st);
    assert_int_equal(store_is_shared(st), store_pg_ops.shared);
    assert_int_equal(store_is_shared(f->st), 1);
    int64_t id = 0;
    assert_int_equal(store_user_create(st, "alice", "h", NOW, &id), STORE_OK);
    assert_int_equal(store_user_get(f->st, "alice", &id, NULL, 0), STORE_OK);
    store_free(st);
}

/* Clear reasons, and never the password from the URL. */
static void test_open_errors(void **state)
{
    struct fixture *f = *state;
    char err[512] = "";
    assert_null(store_open("postgresql://chatd:s3cret-pw@127.0.0.1:1/chat?password=s3cret-q",
                           err, sizeof err));
    assert_non_null(strstr(err, "connect to postgresql://chatd:***@127.0.0.1:1/chat?***"));
    assert_null(strstr(err, "s3cret"));

    /* A schema newer than this chatd's is refused. */
    PGresult *r = PQexec(f->admin, "INSERT INTO schema_version VALUES (999, 0)");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    err[0] = '\0';
    assert_null(store_open(f->url, err, sizeof err));
    assert_non_null(strstr(err, "newer"));
}

/* Stands in for the tests when there is no cluster to run them on. */
static void test_cluster_given(void **state)
{
    (void)state;
    fail_msg("CHAT_TEST_PG is not set: no PostgreSQL to test (run make test-unit-pg)");
}

/* The PostgreSQL tests need CHAT_TEST_PG; without it they are skipped, unless
 * CHAT_TEST_PG_REQUIRED is set (make test-unit-pg): then that is a failure. */
int main(void)
{
    const char *url = getenv("CHAT_TEST_PG"), *req = getenv("CHAT_TEST_PG_REQUIRED");
    const struct CMUnitTest missing[] = {cmocka_unit_test(test_cluster_given)};
    if (!url || !*url) {
        if (req && *req && strcmp(req, "0"))
            return cmocka_run_group_tests_name("store_pg", missing, NULL, NULL) ? 1 : 0;
        printf("CHAT_TEST_PG not set: the PostgreSQL tests are skipped (make test-unit-pg)\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_waits_for_uncommitted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watermark_after_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_unseen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cursor_never_skips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals_keep_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify_reconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_main_reconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_append_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_bound_breaks_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_reconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_database_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_every_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_reads_and_isolation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_append_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_many_never_scans_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_end_announced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presence_leases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_url_schemes, setup, teardown),
    };
    return cmocka_run_group_tests_name("store_pg", tests, NULL, NULL) ? 1 : 0;
}
