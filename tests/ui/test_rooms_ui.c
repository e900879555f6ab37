/* test_rooms_ui.c — rooms, direct messages, presence and history in the
 * terminal UI (protocol v1.1), real bin/chatd and bin/chat in tmux, read
 * with capture-pane:
 * - joining: "/join rust" shows the room bar with "[2:rust]", the title
 *   "#rust · N online: <topic>" and a message posted there;
 * - switching and unread counts: Alt-1 shows general; two messages to
 *   rust make the bar say "2:rust(2)"; Ctrl-N shows rust (messages there,
 *   the count gone) and its read marker reaches the server (the rooms list
 *   of another session of the same user says unread 0);
 * - read on one client, read on the other: alice's second bin/chat (long
 *   poll) shows "2:rust(2)" too, and drops the count once her first one
 *   shows rust (the server's "read" item);
 * - a room not shown at the start: three messages to rust while alice is
 *   away, then one while she shows general: the bar says "2:rust(3)", then
 *   "2:rust(4)" (the list's count, not counted again); Ctrl-N shows rust
 *   with its history, loaded only now, and the live line, each once;
 * - a DM: "/msg bob ..." adds "3:@bob*" (bob online) to alice's bar and
 *   "2:@alice*(1)" to bob's; Alt-2 shows it; alice typing in it shows
 *   "alice is typing" on bob's screen; when bob quits alice's mark goes
 *   (presence offline, within the grace + a margin);
 * - history paging at 60 columns: 150 messages posted before alice starts;
 *   she sees the newest, not the oldest; PgUp past the top fetches the
 *   older page and "m001" shows, each message once.
 * Every client quits with /quit and must exit 0. */
#include "../e2e/harness.h"
#include "tmux.h"
#include "ui_client.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WAIT_MS UI_WAIT_MS
#define PRESENCE_MS 40000       /* offline: the 10 s grace, and slack */

static int setup(void **state)
{
    (void)state;
    ui_setup();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ui_teardown();
    return 0;
}

/* bin/chat for user (registering it if do_register). */
static void ui_start(struct ui_client *c, const struct h_server *s, const char *user,
                     const char *transport, int cols, int rows, int do_register)
{
    ui_spawn(c, s, user, transport, cols, rows, do_register ? "--register" : "");
}

/* A scripted user over plain HTTP: registered (unless already) and logged in. */
static void http_user(const struct h_server *s, const char *user, char token[80], int do_register)
{
    char pw[64];
    ui_password_of(user, pw, sizeof pw);
    if (do_register)
        CHECK(h_http_register(s->port, user, pw) == 201, "register %s", user);
    CHECK(h_http_login(s->port, user, pw, token) == 200, "login %s", user);
}

static void call(const struct h_server *s, const char *token, const char *method, const char *path,
                 const char *body, int want)
{
    struct h_http_resp r;
    h_http_call(s->port, method, path, token, body, -1, &r);
    CHECK(r.status == want, "%s %s: %d, want %d: %s", method, path, r.status, want,
          r.body ? r.body : "");
    h_http_resp_free(&r);
}

static void post_to(const struct h_server *s, const char *token, const char *room, const char *body)
{
    int st = h_http_post_message(s->port, token, room, body, NULL, NULL);
    CHECK(st == 201, "posting \"%s\" to %s: %d", body, room, st);
}

static char *wait_for(struct ui_client *c, const char *needle)
{
    return tmux_wait_for(c->name, needle, h_deadline(WAIT_MS));
}

/* ---- joining, switching, unread counts, read markers ---- */

static int64_t unread_of(const struct h_server *s, const char *token, const char *room)
{
    struct h_http_resp r;
    size_t i;
    json_t *row;
    int64_t n = -1;
    h_http_call(s->port, "GET", "/api/v1/rooms", token, NULL, -1, &r);
    json_array_foreach(json_object_get(r.json, "rooms"), i, row)
        if (strcmp(json_string_value(json_object_get(row, "name")), room) == 0)
            n = json_integer_value(json_object_get(row, "unread"));
    h_http_resp_free(&r);
    return n;
}

/* A server where bob (over HTTP: his token in bob) made rust, and alice's
 * bin/chat (WebSocket, 80x24) joined it with /join. */
static void alice_joins_rust(struct h_server *s, struct ui_client *alice, char bob[80])
{
    h_server_start(s, NULL, NULL);
    http_user(s, "bob", bob, 1);
    call(s, bob, "POST", "/api/v1/rooms", "{\"name\":\"rust\",\"topic\":\"Ownership\"}", 201);
    ui_start(alice, s, "alice", "websocket", 80, 24, 1);
    free(wait_for(alice, "websocket · connected"));
    tmux_type("alice", "/join rust", 1);
    free(wait_for(alice, "[2:rust]"));
}

static void test_join_switch_and_unread(void **state)
{
    struct h_server s;
    struct ui_client alice;
    char bob[80], alice2[80];
    (void)state;
    alice_joins_rust(&s, &alice, bob);
    free(wait_for(&alice, ": Ownership"));
    post_to(&s, bob, "rust", "borrow checker says hi");
    free(wait_for(&alice, "bob: borrow checker says hi"));

    tmux_key("alice", "M-1");
    char *screen = wait_for(&alice, "[1:general]");
    CHECK(!strstr(screen, "borrow checker"), "rust's message shown in general:\n%s", screen);
    free(screen);
    post_to(&s, bob, "rust", "second");
    post_to(&s, bob, "rust", "third");
    free(wait_for(&alice, "2:rust(2)"));

    tmux_key("alice", "C-n");
    screen = wait_for(&alice, "bob: third");
    CHECK(strstr(screen, "[2:rust]") && !strstr(screen, "rust(2)"), "unread not cleared:\n%s", screen);
    free(screen);
    /* the read marker reaches the server: another session sees 0 unread */
    http_user(&s, "alice", alice2, 0);
    int64_t deadline = h_deadline(WAIT_MS), n;
    while ((n = unread_of(&s, alice2, "rust")) != 0 && h_now_ms() < deadline)
        h_pump(100);
    CHECK(n == 0, "rust still has %lld unread for alice's other session", (long long)n);
    ui_quit(&alice);
    h_server_stop(&s);
}

static void test_read_on_one_client_clears_the_other(void **state)
{
    struct h_server s;
    struct ui_client alice, alice2;
    char bob[80];
    (void)state;
    alice_joins_rust(&s, &alice, bob);
    tmux_key("alice", "M-1");
    free(wait_for(&alice, "[1:general]"));
    ui_spawn_as(&alice2, "alice2", &s, "alice", "long-poll", 80, 24, "");
    free(wait_for(&alice2, "long-poll · connected"));
    free(wait_for(&alice2, "2:rust"));
    post_to(&s, bob, "rust", "one");
    post_to(&s, bob, "rust", "two");
    free(wait_for(&alice, "2:rust(2)"));
    free(wait_for(&alice2, "2:rust(2)"));
    tmux_key("alice", "C-n");
    free(wait_for(&alice, "bob: two"));
    int64_t deadline = h_deadline(WAIT_MS);
    char *screen = NULL;
    do {
        free(screen);
        h_pump(100);
        screen = tmux_capture("alice2");
    } while (screen && strstr(screen, "rust(2)") && h_now_ms() < deadline);
    CHECK(screen && strstr(screen, "2:rust") && !strstr(screen, "rust(2)"),
          "alice read rust on one client; the other still counts it:\n%s", screen ? screen : "");
    free(screen);
    ui_quit(&alice2);
    ui_quit(&alice);
    h_server_stop(&s);
}

static void test_a_room_not_shown_loads_when_first_shown(void **state)
{
    struct h_server s;
    struct ui_client alice;
    char bob[80], alice_http[80];
    (void)state;
    h_server_start(&s, NULL, NULL);
    http_user(&s, "bob", bob, 1);
    http_user(&s, "alice", alice_http, 1);
    call(&s, bob, "POST", "/api/v1/rooms", "{\"name\":\"rust\"}", 201);
    call(&s, alice_http, "POST", "/api/v1/rooms/rust/join", "{}", 200);
    post_to(&s, bob, "rust", "away one");
    post_to(&s, bob, "rust", "away two");
    post_to(&s, bob, "rust", "away three");
    ui_start(&alice, &s, "alice", "long-poll", 80, 24, 0);
    free(wait_for(&alice, "long-poll · connected"));
    free(wait_for(&alice, "2:rust(3)"));
    post_to(&s, bob, "rust", "live four");
    free(wait_for(&alice, "2:rust(4)"));
    tmux_key("alice", "C-n");
    char *screen = wait_for(&alice, "bob: away one");
    free(screen);
    screen = wait_for(&alice, "bob: live four");
    CHECK(count_of(screen, "away one") == 1 && count_of(screen, "away three") == 1 &&
          count_of(screen, "live four") == 1 && strstr(screen, "[2:rust]"),
          "rust's history and live line, each once:\n%s", screen);
    free(screen);
    ui_quit(&alice);
    h_server_stop(&s);
}

/* ---- a DM, typing and presence marks ---- */

static void test_dm_typing_and_presence(void **state)
{
    struct h_server s;
    struct ui_client alice, bob;
    (void)state;
    h_server_start(&s, NULL, NULL);
    ui_start(&bob, &s, "bob", "long-poll", 80, 24, 1);
    free(wait_for(&bob, "long-poll · connected"));
    ui_start(&alice, &s, "alice", "sse", 60, 20, 1);
    free(wait_for(&alice, "sse · connected"));

    tmux_type("alice", "/msg bob psst, bob", 1);
    free(wait_for(&alice, "2:@bob*"));
    free(wait_for(&bob, "2:@alice*(1)"));
    tmux_key("bob", "M-2");
    free(wait_for(&bob, "alice: psst, bob"));

    tmux_key("alice", "M-2");
    free(wait_for(&alice, "[2:@bob*]"));
    tmux_type("alice", "are you th", 0);
    free(wait_for(&bob, "alice is typing"));
    tmux_key("alice", "C-u");

    ui_quit(&bob);
    char *screen = tmux_wait_for("alice", "[2:@bob]", h_deadline(PRESENCE_MS));
    free(screen);
    ui_quit(&alice);
    h_server_stop(&s);
}

/* ---- history paging ---- */

static void test_history_paging(void **state)
{
    struct h_server s;
    struct ui_client alice;
    char bob[80], alice_token[80], body[32];
    static const char *const fast[] = { "--msg-rate", "1000", NULL };
    (void)state;
    h_server_start(&s, NULL, fast);
    http_user(&s, "bob", bob, 1);
    http_user(&s, "alice", alice_token, 1);
    for (int i = 1; i <= 150; i++) {
        snprintf(body, sizeof body, "m%03d", i);
        post_to(&s, bob, "general", body);
    }
    ui_start(&alice, &s, "alice", "short-poll", 60, 20, 0);
    char *screen = wait_for(&alice, "bob: m150");
    CHECK(!strstr(screen, "m001"), "the oldest message shown at the start:\n%s", screen);
    free(screen);
    int found = 0;
    for (int i = 0; i < 60 && !found; i++) {
        tmux_key("alice", "PageUp");
        h_pump(100);
        screen = tmux_capture("alice");
        found = screen && strstr(screen, "bob: m001") != NULL;
        if (screen && strstr(screen, "bob: m040"))
            CHECK(count_of(screen, "bob: m040") == 1, "m040 twice:\n%s", screen);
        free(screen);
    }
    CHECK(found, "PgUp never reached m001 (older page not fetched)");
    ui_quit(&alice);
    h_server_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_join_switch_and_unread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_on_one_client_clears_the_other, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_room_not_shown_loads_when_first_shown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dm_typing_and_presence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_paging, setup, teardown),
    };
    return cmocka_run_group_tests_name("rooms_ui", tests, NULL, NULL);
}
