/* test_security.c — sessions that end, and nobody where they do not belong:
 * logout revokes a token on every transport and closes its open WebSocket
 * (4401); an expired token is refused and its WebSocket closed; forged and
 * other users' tokens see nothing; a foreign browser Origin cannot open a
 * WebSocket; the server's log never holds a password, token or body; and a
 * chatd started as in production hashes passwords at the real cost. */
#include "scenario.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BODY     "the body must never reach the log"

/* The token is refused on all three transports, with no data. */
static void expect_token_refused(int port, const char *tok, const char *why)
{
    const char *paths[] = { "/api/v1/events?after=0&wait=0", "/api/v1/events?after=0&wait=1",
                            "/api/v1/account" };
    for (size_t i = 0; i < 3; i++) {
        struct h_http_resp r;
        h_http_call(port, "GET", paths[i], tok, NULL, 0, &r);
        char what[160];
        snprintf(what, sizeof what, "%s: GET %s", why, paths[i]);
        h_assert_error(what, &r, 401, "unauthorized");
        CHECK(!strstr(r.body, "general"), "%s leaked data: %s", what, r.body);
        h_http_resp_free(&r);
    }
    struct h_ws *w = h_ws_connect(port);
    char hello[160];
    snprintf(hello, sizeof hello, "{\"op\":\"hello\",\"token\":\"%s\",\"after\":0}", tok);
    CHECK(h_ws_send_text(w, hello) == 0, "send hello");
    int code = h_ws_wait_close(w, h_deadline(5000));
    CHECK(code == 4401, "%s: WebSocket hello closed with %d, expected 4401", why, code);
    h_ws_free(w);
}

static void test_logout(void **state)
{
    (void)state;
    struct h_server s;
    char alice[65];
    start_alice_bob(&s, NULL, alice, NULL);
    int64_t id;
    CHECK(h_http_post_message(s.port, alice, NULL, BODY, NULL, &id) == 201, "post");
    struct h_ws *w = h_ws_connect(s.port);
    json_decref(h_ws_hello(w, alice, 0));
    struct h_http_resp r;
    h_http_call(s.port, "POST", "/api/v1/logout", alice, NULL, 0, &r);
    CHECK(r.status == 200, "logout: %d %s", r.status, r.body);
    h_http_resp_free(&r);
    int code = h_ws_wait_close(w, h_deadline(3000));
    CHECK(code == 4401, "the open WebSocket of a logged-out session closed with %d", code);
    h_ws_free(w);
    expect_token_refused(s.port, alice, "revoked token");
    h_http_call(s.port, "POST", "/api/v1/logout", alice, NULL, 0, &r);
    h_assert_error("a second logout", &r, 401, "unauthorized");
    h_http_resp_free(&r);
    h_server_stop(&s);
}

static void test_expired(void **state)
{
    (void)state;
    struct h_server s;
    char alice[65];
    const char *extra[] = { "--session-ttl-s", "2", NULL };
    start_alice_bob(&s, extra, alice, NULL);
    struct h_ws *w = h_ws_connect(s.port);
    json_decref(h_ws_hello(w, alice, 0));
    /* the sweep closes it within a few seconds of the expiry */
    int code = h_ws_wait_close(w, h_deadline(6000));
    CHECK(code == 4401, "the WebSocket of an expired session closed with %d", code);
    h_ws_free(w);
    expect_token_refused(s.port, alice, "expired token");
    h_server_stop(&s);
}

static void test_forged_and_foreign(void **state)
{
    (void)state;
    struct h_server s;
    char alice[65], bob[65], forged[65];
    start_alice_bob(&s, NULL, alice, bob);
    memcpy(forged, alice, sizeof forged);
    forged[0] = forged[0] == 'a' ? 'b' : 'a';
    expect_token_refused(s.port, forged, "forged token");
    expect_token_refused(s.port, "not-even-hex", "malformed token");
    /* bob's token works, but shows bob's account only, never alice's */
    struct h_http_resp r;
    h_http_call(s.port, "GET", "/api/v1/account", bob, NULL, 0, &r);
    CHECK(r.status == 200 && !strcmp(json_string_value(json_object_get(r.json, "user")), "bob"),
          "bob's token: %s", r.body);
    h_http_resp_free(&r);
    h_server_stop(&s);
}

static void test_origin(void **state)
{
    (void)state;
    struct h_server s;
    char alice[65];
    const char *extra[] = { "--allow-origin", "https://chat.example", NULL };
    start_alice_bob(&s, extra, alice, NULL);
    struct h_http_resp r;
    struct h_ws *w = h_ws_connect_raw(s.port, "Sec-WebSocket-Protocol: chat.v1\r\nOrigin: https://evil.example\r\n", &r);
    CHECK(!w, "a WebSocket from a foreign Origin was accepted");
    h_http_resp_free(&r);
    w = h_ws_connect_raw(s.port, "Sec-WebSocket-Protocol: chat.v1\r\nOrigin: https://chat.example\r\n", &r);
    CHECK(w, "a WebSocket from the allowed Origin was refused (%d)", r.status);
    json_decref(h_ws_hello(w, alice, 0));
    h_ws_free(w);
    h_http_resp_free(&r);
    w = h_ws_connect(s.port);         /* no Origin: a terminal client */
    h_ws_free(w);
    h_server_stop(&s);
}

static void test_log_has_no_secrets(void **state)
{
    (void)state;
    struct h_server s;
    char alice[65], bob[65];
    start_alice_bob(&s, NULL, alice, bob);
    int64_t id;
    CHECK(h_http_post_message(s.port, alice, NULL, BODY, NULL, &id) == 201, "post");
    struct h_http_resp r;
    h_http_call(s.port, "POST", "/api/v1/login", NULL, "{\"user\":\"alice\",\"password\":\"wrong-password-9\"}", -1, &r);
    h_http_resp_free(&r);
    h_http_call(s.port, "POST", "/api/v1/transfers", alice,
                "{\"to\":\"bob\",\"amount_cents\":100,\"idempotency_key\":\"k1\"}", -1, &r);
    CHECK(r.status == 202, "transfer: %d", r.status);
    h_http_resp_free(&r);
    /* the audit line of the transfer is the last: wait for it to arrive */
    int64_t deadline = h_deadline(5000);
    while (!(s.proc->err.data && memmem(s.proc->err.data, s.proc->err.len, "transfer.accepted", 17))) {
        CHECK(h_now_ms() < deadline, "no audit line for a transfer");
        h_pump(100);
    }
    char *log = strndup(s.proc->err.data, s.proc->err.len);
    h_server_stop(&s);
    CHECK(strstr(log, "audit login user=alice"), "no audit line for a login:\n%s", log);
    CHECK(strstr(log, "audit login.failed user=alice"), "no audit line for a failed login");
    CHECK(strstr(log, "audit transfer.accepted"), "no audit line for a transfer");
    const char *secrets[] = { PW_ALICE, PW_BOB, "wrong-password-9", alice, bob, BODY };
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
        CHECK(!strstr(log, secrets[i]), "the log contains a secret (#%zu)", i);
    free(log);
}

/* ---- the password-hash cost (--pwhash-cost) ---- */

#define COST_WARNING  "tests only: never in production"
/* libsodium's crypto_pwhash_str with OPSLIMIT/MEMLIMIT_INTERACTIVE, and MIN */
#define HASH_INTERACTIVE "$argon2id$v=19$m=65536,t=2,p=1$"
#define HASH_MIN         "$argon2id$v=19$m=8,t=1,p=1$"

/* The users.pwhash chatd stored for user, read from the database of s (a
 * stopped server) into out: SQLite through its library, PostgreSQL
 * (CHAT_TEST_PG) through psql. */
static void stored_pwhash(const struct h_server *s, const char *user, char *out, size_t len)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT pwhash FROM users WHERE name = '%s'", user);
    if (h_pg_url()) {
        char *argv[] = { "psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", (char *)s->dbpath,
                         "-c", sql, NULL };
        char *got = NULL, *err = NULL;
        int rc = h_tool_run(argv, &got, &err, 20000);
        CHECK(rc == 0 && got, "psql could not read %s's hash (exit %d): %s", user, rc, err ? err : "");
        snprintf(out, len, "%.*s", (int)strcspn(got, "\n"), got);
        free(got);
        free(err);
        return;
    }
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int ok = sqlite3_open_v2(s->dbpath, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
             sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW;
    snprintf(out, len, "%s", ok ? (const char *)sqlite3_column_text(st, 0) : "");
    const char *why = db ? sqlite3_errmsg(db) : "out of memory";
    CHECK(ok, "could not read %s's hash from %s: %s", user, s->dbpath, why);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static int stderr_has(const struct h_proc *p, const char *needle)
{
    return p->err.data && memmem(p->err.data, p->err.len, needle, strlen(needle));
}

/* Every other test runs chatd at --pwhash-cost min (the harness's
 * default, for speed). This one keeps that from reaching production: a
 * chatd started without the flag stores libsodium's interactive argon2id
 * (64 MiB, t=2) and warns of nothing; one started with min warns on stderr
 * at start, still verifies the interactive hash, and stores the cheap one. */
static void test_pwhash_cost(void **state)
{
    (void)state;
    struct h_server s;
    char tok[65], hash[200], dir[256];
    h_set_pwhash_cost(NULL);                    /* no --pwhash-cost: production */
    h_server_start(&s, NULL, NULL);
    CHECK(h_http_register(s.port, "alice", PW_ALICE) == 201, "register alice");
    CHECK(h_http_login(s.port, "alice", PW_ALICE, tok) == 200, "log alice in");
    CHECK(!stderr_has(s.proc, COST_WARNING), "chatd without --pwhash-cost warned of a test-only cost:\n%s",
          s.proc->err.data);
    snprintf(dir, sizeof dir, "%s", s.dbdir);
    h_server_stop(&s);
    stored_pwhash(&s, "alice", hash, sizeof hash);
    CHECK(strncmp(hash, HASH_INTERACTIVE, strlen(HASH_INTERACTIVE)) == 0,
          "chatd's default cost: alice's hash is \"%.40s...\", want the prefix %s", hash, HASH_INTERACTIVE);

    h_set_pwhash_cost("min");
    h_server_start(&s, dir, NULL);              /* the same database */
    CHECK(h_client_wait_stderr_match(s.proc, COST_WARNING, h_deadline(5000)),
          "chatd --pwhash-cost min did not warn on stderr that it is for tests only");
    CHECK(h_http_login(s.port, "alice", PW_ALICE, tok) == 200, "the interactive hash no longer verifies");
    CHECK(h_http_register(s.port, "bob", PW_BOB) == 201, "register bob");
    h_server_stop(&s);
    stored_pwhash(&s, "bob", hash, sizeof hash);
    CHECK(strncmp(hash, HASH_MIN, strlen(HASH_MIN)) == 0,
          "--pwhash-cost min: bob's hash is \"%.40s...\", want the prefix %s", hash, HASH_MIN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logout),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_forged_and_foreign),
        cmocka_unit_test(test_origin),
        cmocka_unit_test(test_log_has_no_secrets),
        cmocka_unit_test_teardown(test_pwhash_cost, h_teardown),   /* forgets its cost */
    };
    int rc = cmocka_run_group_tests_name("security", tests, NULL, NULL);
    harness_cleanup();
    return rc;
}
