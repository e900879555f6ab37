/* test_store_faults.c — chatd on PostgreSQL with the database out of reach
 * (issue 15): the store's asynchronous connection (store.h) goes through a
 * relay the test cuts and points at a closed port. While the database is
 * gone, /healthz answers at once, from memory, saying the store is
 * "degraded" with a reason, and a WebSocket ping is answered at once; once
 * it is back, /healthz says "ok" again and a send is stored. Skipped without
 * CHAT_TEST_PG (scripts/with-pg.sh). */
#include "harness.h"
#include "relay.h"

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

static void test_database_gone_and_back(void **state)
{
    (void)state;
    if (!h_pg_url()) {
        skip();
        return;
    }
    char db[512], via[600];
    h_pg_createdb(db, sizeof db);
    int pg_port;
    h_pg_url_with_port(db, 1, via, sizeof via, &pg_port);      /* learn the port */
    g_relay = relay_start(pg_port);
    h_pg_url_with_port(db, relay_port(g_relay), via, sizeof via, &pg_port);
    const char *extra[] = { "--db", via, NULL };
    struct h_server s;
    h_server_start(&s, NULL, extra);
    assert_int_equal(h_http_register(s.port, "alice", "password1"), 201);
    char token[80];
    assert_int_equal(h_http_login(s.port, "alice", "password1", token), 200);
    wait_store(s.port, "ok", 5000, NULL);
    struct h_ws *w = h_ws_connect(s.port);
    json_decref(h_ws_hello(w, token, 0));

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_database_gone_and_back, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
