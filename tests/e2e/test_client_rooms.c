/* test_client_rooms.c — bin/chat --headless against a v1.1 server, on each
 * of its four transports: how a client starts and what it shows of rooms.
 * - 150 messages in general and 5 in rust before alice starts: she gets
 *   the newest 100 of general, the room on screen (m051..m150, never m001:
 *   no replay from id 0), and nothing of rust yet, then the live feed after
 *   them, each event once, ids strictly increasing (no gap, no overlap);
 * - a message to rust after the start arrives once, with "room":"rust";
 * - shown for the first time ("/join rust", already a member), rust gets
 *   its newest page: r1..r5, as a history line (older than the live one);
 * - a second client of carol's comes online: alice's stderr shows a
 *   presence line for carol (ephemeral items reach every transport);
 * - "/msg bob ..." is stored as a DM: bob's feed has it in "@alice,bob";
 * - "/join go" makes room go and "joined go" is said. */
#include "scenario.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST_MS 30000

static const char *const transports[4] = { "websocket", "long-poll", "short-poll", "sse" };

static void pw_of(const char *user, char *buf, size_t n)
{
    snprintf(buf, n, "%s-rooms-e2e-password", user);
}

static void user(const struct h_server *s, const char *name, char token[80])
{
    char pw[64];
    pw_of(name, pw, sizeof pw);
    CHECK(h_http_register(s->port, name, pw) == 201, "register %s", name);
    CHECK(h_http_login(s->port, name, pw, token) == 200, "login %s", name);
}

static void call(const struct h_server *s, const char *token, const char *method, const char *path,
                 const char *body, int want)
{
    struct h_http_resp r;
    h_http_call(s->port, method, path, token, body, -1, &r);
    CHECK(r.status == want, "%s %s: %d, want %d: %s", method, path, r.status, want, r.body ? r.body : "");
    h_http_resp_free(&r);
}

static void post(const struct h_server *s, const char *token, const char *room, const char *body)
{
    CHECK(h_http_post_message(s->port, token, room, body, NULL, NULL) == 201, "post %s", body);
}

/* The start: newest 100 of general, the room on screen, in id order; none of rust's. */
static void check_start(struct h_proc *c, size_t n)
{
    json_int_t last = 0;
    int general = 0, rust = 0, m001 = 0, m051 = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *ev = h_client_event(c, i);
        CHECK(ev_int(ev, "id") > last, "%s: ids not increasing at %zu", c->name, i);
        last = ev_int(ev, "id");
        if (strcmp(ev_str(ev, "type"), "chat") != 0)
            continue;
        general += strcmp(ev_str(ev, "room"), "general") == 0;
        rust += strcmp(ev_str(ev, "room"), "rust") == 0;
        m001 += strcmp(ev_str(ev, "body"), "m001") == 0;
        m051 += strcmp(ev_str(ev, "body"), "m051") == 0;
    }
    if (general != 100 || rust != 0 || m001 || m051 != 1)
        print_events(c->name, c->events);
    CHECK(general == 100 && rust == 0 && !m001 && m051 == 1,
          "%s: the start gave %d of general, %d of rust (m001 %d, m051 %d)", c->name, general, rust,
          m001, m051);
}

static void one_transport(const char *transport)
{
    struct h_server s;
    char bob[80], alice[80], carol[80], body[32], pw[64];
    static const char *const fast[] = { "--msg-rate", "1000", NULL };
    h_server_start(&s, NULL, fast);
    user(&s, "bob", bob);
    user(&s, "alice", alice);
    user(&s, "carol", carol);
    call(&s, bob, "POST", "/api/v1/rooms", "{\"name\":\"rust\",\"topic\":\"Ownership\"}", 201);
    call(&s, alice, "POST", "/api/v1/rooms/rust/join", "{}", 200);
    for (int i = 1; i <= 150; i++) {
        snprintf(body, sizeof body, "m%03d", i);
        post(&s, bob, "general", body);
    }
    for (int i = 1; i <= 5; i++) {
        snprintf(body, sizeof body, "r%d", i);
        post(&s, bob, "rust", body);
    }
    pw_of("alice", pw, sizeof pw);
    struct h_proc *c = h_client_spawn(&s, transport, "alice", pw, NULL);
    int64_t dl = h_deadline(TEST_MS);
    CHECK(h_client_wait_stderr_match(c, "\"state\":\"connected\"", dl), "%s: never connected", transport);
    size_t start = h_client_nevents(c);
    check_start(c, start);

    post(&s, bob, "rust", "live in rust");
    CHECK(h_client_wait_events(c, start + 1, dl) >= start + 1, "%s: live message not shown", transport);
    json_t *ev = h_client_event(c, start);
    CHECK(strcmp(ev_str(ev, "body"), "live in rust") == 0 && strcmp(ev_str(ev, "room"), "rust") == 0,
          "%s: live event is %s", transport, h_json_str(ev));

    h_client_send_line(c, "/join rust");
    CHECK(h_client_wait_stderr_match(c, "{\"history\":{\"room\":\"rust\"", dl) &&
          h_client_wait_stderr_match(c, "\"body\":\"r1\"", dl) &&
          h_client_wait_stderr_match(c, "\"body\":\"r5\"", dl),
          "%s: rust's newest page not loaded when first shown", transport);

    pw_of("carol", pw, sizeof pw);
    struct h_proc *cc = h_client_spawn(&s, "websocket", "carol", pw, NULL);
    CHECK(h_client_wait_stderr_match(c, "{\"presence\":{", dl) &&
          h_client_wait_stderr_match(c, "\"carol\"", dl), "%s: no presence line for carol", transport);

    h_client_send_line(c, "/msg bob just between us");
    CHECK(h_client_wait_stderr_match(c, "\"ack\"", dl), "%s: DM not acknowledged", transport);
    json_t *feed = h_http_get_events(s.port, bob, ev_int(ev, "id"));
    int dm = 0;
    size_t i;
    json_t *e;
    json_array_foreach(feed, i, e)
        dm += strcmp(ev_str(e, "room"), "@alice,bob") == 0 && strcmp(ev_str(e, "body"), "just between us") == 0;
    json_decref(feed);
    CHECK(dm == 1, "%s: bob's feed has the DM %d times", transport, dm);

    h_client_send_line(c, "/join go");
    CHECK(h_client_wait_stderr_match(c, "joined go", dl), "%s: /join go not done", transport);
    h_client_quit(cc, h_deadline(5000));
    h_client_quit(c, h_deadline(5000));
    h_server_stop(&s);
}

static void test_websocket(void **state) { (void)state; one_transport(transports[0]); }
static void test_long_poll(void **state) { (void)state; one_transport(transports[1]); }
static void test_short_poll(void **state) { (void)state; one_transport(transports[2]); }
static void test_sse(void **state) { (void)state; one_transport(transports[3]); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_websocket, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_long_poll, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_short_poll, h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_sse, h_setup, h_teardown),
    };
    return cmocka_run_group_tests_name("client_rooms", tests, NULL, NULL);
}
