/* test_store_faults.c — chatd with its store stalled: the event loop goes
 * on. On PostgreSQL the database goes out of reach (issue 15): the store's
 * asynchronous connection (store.h) goes through a relay the test cuts and
 * points at a closed port (skipped without CHAT_TEST_PG, scripts/with-pg.sh).
 * On SQLite another process holds the write lock, so the writer thread's
 * commit waits (issue 19). While the store is stuck, /healthz answers at
 * once, from memory, saying the store is "degraded" with a reason, and a
 * WebSocket ping is answered at once; once it is back, /healthz says "ok"
 * again and a send is stored, acknowledged only then. */
#include "harness.h"
#include "relay.h"

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define QUICK_MS 100             /* "answers at once" */

static struct relay *g_relay;

static void nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int setup(void **state)
{
    return h_setup(state);
}

static int teardown(void **state)
{
    relay_stop(g_relay);
    g_relay = NULL;
    return h_teardown(state);
}

/* GET /healthz, asserting it took under QUICK_MS; the "store" field. */
static char *healthz_store(int port, char **reason)
{
    struct h_http_resp r;
    int64_t t0 = h_now_ms();
    h_http_call(port, "GET", "/healthz", NULL, NULL, 0, &r);
    int64_t took = h_now_ms() - t0;
    assert_int_equal(r.status, 200);
    if (took >= QUICK_MS)
        fail_msg("GET /healthz took %lld ms", (long long)took);
    const char *st = json_string_value(json_object_get(r.json, "store"));
    const char *why = json_string_value(json_object_get(r.json, "reason"));
    char *out = strdup(st ? st : "");
    if (reason)
        *reason = why ? strdup(why) : NULL;
    h_http_resp_free(&r);
    return out;
}

/* Polls /healthz (each answer quick) until "store" is want; fails after ms. */
static void wait_store(int port, const char *want, int ms, char **reason)
{
    int64_t dl = h_deadline(ms);
    for (;;) {
        char *why = NULL;
        char *st = healthz_store(port, &why);
        int ok = !strcmp(st, want);
        free(st);
        if (ok) {
            if (reason)
                *reason = why;
            else
                free(why);
            return;
        }
        free(why);
        if (h_now_ms() >= dl)
            fail_msg("/healthz never said store \"%s\" in %d ms", want, ms);
        nap_ms(50);
    }
}

/* A WebSocket ping answered by a pong in under QUICK_MS. */
static void ping_quick(struct h_ws *w)
{
    w->keep_pongs = 1;
    int64_t t0 = h_now_ms();
    assert_int_equal(h_ws_send_frame(w, 0x9, 1, "db", 2), 0);
    for (;;) {
        int op, fin;
        char *payload = NULL;
        size_t len;
        int got = h_ws_recv_frame(w, t0 + QUICK_MS, &op, &fin, &payload, &len);
        if (got != 1)
            fail_msg("no pong within %d ms", QUICK_MS);
        free(payload);
        if (op == 0xA)
            return;
    }
}

/* chatd (extra: its arguments, may be NULL) with alice registered and
 * logged in (her token in token, 80 bytes), the store healthy, and her
 * WebSocket past its hello. */
static struct h_ws *alice_connected(struct h_server *s, const char *const *extra, char *token)
{
    h_server_start(s, NULL, extra);
    assert_int_equal(h_http_register(s->port, "alice", "password1"), 201);
    assert_int_equal(h_http_login(s->port, "alice", "password1", token), 200);
    wait_store(s->port, "ok", 5000, NULL);
    struct h_ws *w = h_ws_connect(s->port);
    json_decref(h_ws_hello(w, token, 0));
    return w;
}

static void test_database_gone_and_back(void **state)
{
    (void)state;
    h_need_pg("a database cut off and back");
    char db[512], via[600];
    h_pg_createdb(db, sizeof db);
    int pg_port;
    h_pg_url_with_port(db, 1, via, sizeof via, &pg_port);      /* learn the port */
    g_relay = relay_start(pg_port);
    h_pg_url_with_port(db, relay_port(g_relay), via, sizeof via, &pg_port);
    const char *extra[] = { "--db", via, NULL };
    struct h_server s;
    char token[80];
    struct h_ws *w = alice_connected(&s, extra, token);

    /* the database goes away: connections cut, new ones refused */
    relay_set_target(g_relay, 1);
    relay_cut_all(g_relay, 1);
    char *reason = NULL;
    wait_store(s.port, "degraded", 5000, &reason);
    assert_non_null(reason);
    assert_non_null(strstr(reason, "no database connection"));
    free(reason);
    ping_quick(w);
    for (int i = 0; i < 5; i++) {             /* still degraded, still quick */
        free(healthz_store(s.port, NULL));
        nap_ms(100);
    }
    ping_quick(w);

    /* back: healthy again (within the 1 s retry), and a send is stored */
    relay_set_target(g_relay, pg_port);
    wait_store(s.port, "ok", 5000, NULL);
    int64_t dl = h_deadline(10000);
    int st = 0;
    while ((st = h_http_post_message(s.port, token, "general", "back", NULL, NULL)) != 201 &&
           h_now_ms() < dl)
        nap_ms(200);
    assert_int_equal(st, 201);
    h_ws_free(w);
    h_server_stop(&s);
}

/* SQLite: another process takes the write lock (as a backup or the sqlite3
 * shell may), so the commit of a send waits on the writer thread (up to
 * the 5 s busy_timeout). The loop does not: pings and /healthz are answered
 * at once, /healthz says why it is degraded, the send is not acknowledged
 * while it is not committed, and is acknowledged once the lock goes. */
static void test_sqlite_write_lock_held(void **state)
{
    (void)state;
    if (h_pg_url()) {
        fprintf(stderr, "    skipped on PostgreSQL: the SQLite case (PostgreSQL's is the held watermark)\n");
        skip();
    }
    struct h_server s;
    char token[80];
    struct h_ws *w = alice_connected(&s, NULL, token);

    sqlite3 *blocker = NULL;
    assert_int_equal(sqlite3_open(s.dbpath, &blocker), SQLITE_OK);
    assert_int_equal(sqlite3_exec(blocker, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(h_ws_send_text(w, "{\"op\":\"send\",\"body\":\"stalled\",\"client_msg_id\":\"s1\"}"), 0);

    char *reason = NULL;
    wait_store(s.port, "degraded", 3000, &reason);       /* each answer quick */
    assert_non_null(reason);
    assert_non_null(strstr(reason, "waiting"));
    free(reason);
    ping_quick(w);
    json_t *early = h_ws_recv_json(w, h_now_ms() + 100);
    if (early)
        fail_msg("a frame while the send could not be committed: %s",
                 json_string_value(json_object_get(early, "op")));

    assert_int_equal(sqlite3_exec(blocker, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(blocker);
    json_t *ack = h_ws_recv_op(w, "ack", h_deadline(5000));
    assert_non_null(ack);
    json_decref(ack);
    wait_store(s.port, "ok", 5000, NULL);
    json_t *events = h_http_get_events(s.port, token, 0);
    int stored = 0;
    for (size_t i = 0; i < json_array_size(events); i++) {
        const char *body = json_string_value(json_object_get(json_array_get(events, i), "body"));
        stored += body && !strcmp(body, "stalled");
    }
    json_decref(events);
    assert_int_equal(stored, 1);
    h_ws_free(w);
    h_server_stop(&s);
}

/* PostgreSQL: another session announces an event id and keeps its
 * transaction open (db/pg/006_event_ids.sql), so every read of the log
 * stops below that id. The send committed meanwhile is not acknowledged
 * (it is not readable yet); /healthz says why, at once; pings are answered;
 * once the other transaction ends, the ack comes and /healthz is ok. */
static void test_pg_watermark_held(void **state)
{
    (void)state;
    h_need_pg("a held read watermark");
    char db[512];
    h_pg_createdb(db, sizeof db);
    const char *extra[] = { "--db", db, NULL };
    struct h_server s;
    char token[80];
    struct h_ws *w = alice_connected(&s, extra, token);

    PGconn *other = PQconnectdb(db);
    assert_int_equal(PQstatus(other), CONNECTION_OK);
    PGresult *r = PQexec(other, "BEGIN; SELECT chat_event_ids(1)");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    assert_int_equal(h_ws_send_text(w, "{\"op\":\"send\",\"body\":\"held\",\"client_msg_id\":\"h1\"}"), 0);

    char *reason = NULL;
    wait_store(s.port, "degraded", 5000, &reason);
    assert_non_null(reason);
    if (!strstr(reason, "watermark"))
        fail_msg("/healthz's reason does not name the held watermark: %s", reason);
    free(reason);
    ping_quick(w);
    json_t *early = h_ws_recv_op(w, "ack", h_now_ms() + 100);
    if (early)
        fail_msg("acknowledged while the message could not be read");

    r = PQexec(other, "ROLLBACK");
    PQclear(r);
    PQfinish(other);
    json_t *ack = h_ws_recv_op(w, "ack", h_deadline(5000));
    assert_non_null(ack);
    json_decref(ack);
    wait_store(s.port, "ok", 5000, NULL);
    h_ws_free(w);
    h_server_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_database_gone_and_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_write_lock_held, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_watermark_held, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
