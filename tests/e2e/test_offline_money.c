/* test_offline_money.c — what bin/chat --headless does with money and
 * messages the server cannot take yet (issue 16, defects 2, 3 and 5):
 *  - with the server killed, a /transfer typed twice is refused twice with
 *    a readable line and nothing is paid once the server is back; a chat
 *    line is queued and reported at once ({"sending":CMID}; its ack comes
 *    once stored), and end of input then ends the client with exit
 *    status 4 and {"undelivered":1} instead of 0;
 *  - a piped /transfer read while the login is still under way is held
 *    (its idempotency key fixed when read) and paid once after the login,
 *    exactly once, and the client exits 0 after its answer.
 * Every wait is against a deadline. */
#include "scenario.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEST_MS     30000
#define START_CENTS 100000

static void register_login(const struct h_server *s, const char *user, char token[80])
{
    CHECK(h_http_register(s->port, user, PW) == 201, "register %s: expected 201", user);
    CHECK(h_http_login(s->port, user, PW, token) == 200, "login %s: expected 200", user);
}

/* GET /api/v1/account's balance_cents for this token. */
static json_int_t balance_of(const struct h_server *s, const char *token)
{
    struct h_http_resp r;
    h_http_call(s->port, "GET", "/api/v1/account", token, NULL, 0, &r);
    json_t *j = r.status == 200 ? r.json : NULL;
    json_int_t cents = json_integer_value(json_object_get(j, "balance_cents"));
    CHECK(j, "GET /api/v1/account: %d %s", r.status, r.body ? r.body : "");
    h_http_resp_free(&r);
    return cents;
}

static int transfer_status(const struct h_server *s, const char *token, int id)
{
    char path[64];
    struct h_http_resp r;
    snprintf(path, sizeof path, "/api/v1/transfers/%d", id);
    h_http_call(s->port, "GET", path, token, NULL, 0, &r);
    int st = r.status;
    h_http_resp_free(&r);
    return st;
}

static int count_in(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; p && (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* Closes the client's stdin: end of input. */
static void end_input(struct h_proc *c)
{
    close(c->in_fd);
    c->in_fd = -1;
}

static int exit_status(struct h_proc *c, int64_t dl)
{
    int st = 0;
    if (!h_proc_wait_exit(c, dl, &st)) {
        h_dump_logs();
        CHECK(0, "%s did not exit", c->name);
    }
    CHECK(WIFEXITED(st), "%s ended by signal %d", c->name, WTERMSIG(st));
    return WEXITSTATUS(st);
}

/* ---- the server is gone: transfers refused, messages reported ---------- */

static void test_offline_transfer_refused_and_quit_says_undelivered(void **state)
{
    struct h_server s;
    char alice[80], bob[80];
    int64_t dl = h_deadline(TEST_MS);
    (void)state;
    h_server_start(&s, NULL, NULL);
    register_login(&s, "alice", alice);
    register_login(&s, "bob", bob);
    struct h_proc *c = h_client_spawn(&s, "websocket", "alice", PW, NULL);
    wait_err_from(c, 0, "\"state\":\"connected\"", dl, "alice connected");
    h_server_kill(&s);
    wait_err_from(c, 0, "\"state\":\"reconnecting\"", dl, "alice reconnecting after the kill");
    size_t off = c->err.len;
    h_client_send_line(c, "/transfer bob 10");
    h_client_send_line(c, "/transfer bob 10");
    h_client_send_line(c, "typed while the server is gone");
    while (h_now_ms() < dl && count_in(c->err.data + off, "transfer not sent") < 2)
        h_pump(50);
    CHECK(count_in(c->err.data + off, "transfer not sent") == 2,
          "two refusals expected for two transfers typed offline:\n%s", c->err.data + off);
    wait_err_from(c, off, "{\"sending\":\"", dl, "the queued message is reported as sending");
    end_input(c);
    int code = exit_status(c, dl);
    CHECK(code == 4, "end of input with a message undelivered: exit %d, want 4:\n%s", code,
          c->err.data + off);
    CHECK(strstr(c->err.data + off, "\"undelivered\":1"), "no {\"undelivered\":1} line:\n%s",
          c->err.data + off);
    h_server_start_same_port(&s);
    CHECK(transfer_status(&s, alice, 1) == 404, "a transfer typed offline was paid later");
    CHECK(balance_of(&s, alice) == START_CENTS && balance_of(&s, bob) == START_CENTS,
          "balances moved after transfers typed offline");
    h_server_stop(&s);
}

/* ---- a transfer piped before the login is done ------------------------- */

static int silent_listener(int *port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0, "socket");
    CHECK(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(fd, 16) == 0 &&
          getsockname(fd, (struct sockaddr *)&sa, &len) == 0, "listening");
    *port = ntohs(sa.sin_port);
    return fd;
}

static void test_transfer_piped_before_login_is_paid_once(void **state)
{
    struct h_server s, both;
    char alice[80], bob[80];
    int silent_port;
    int64_t dl = h_deadline(TEST_MS);
    (void)state;
    h_server_start(&s, NULL, NULL);
    register_login(&s, "alice", alice);
    register_login(&s, "bob", bob);
    int silent = silent_listener(&silent_port);
    both = s;
    int n = snprintf(both.url, sizeof both.url, "http://127.0.0.1:%d,%s", silent_port, s.url);
    CHECK(n < (int)sizeof both.url, "the two URLs do not fit");
    struct h_proc *c = h_client_spawn(&both, "websocket", "alice", PW, NULL);
    h_client_send_line(c, "/transfer bob 25.00");
    h_client_send_line(c, "after the transfer");
    wait_stdin_read(c, dl);
    end_input(c);
    close(silent);              /* the login moves on to the real server */
    int code = exit_status(c, dl);
    CHECK(!strstr(c->err.data, "not logged in"), "the transfer was dropped:\n%s", c->err.data);
    CHECK(code == 0, "exit %d after the piped script, want 0:\n%s", code, c->err.data);
    CHECK(strstr(c->err.data, "accepted"), "no transfer accepted notice:\n%s", c->err.data);
    CHECK(transfer_status(&s, alice, 1) == 200, "the piped transfer was not made");
    CHECK(transfer_status(&s, alice, 2) == 404, "the piped transfer was made twice");
    h_server_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_offline_transfer_refused_and_quit_says_undelivered,
                                        h_setup, h_teardown),
        cmocka_unit_test_setup_teardown(test_transfer_piped_before_login_is_paid_once,
                                        h_setup, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
