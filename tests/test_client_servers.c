/* test_client_servers.c — unit tests of the client's server list
 * (client/servers.c): parsing --server URL[,URL...] (schemes, default and
 * explicit ports, IPv6, path prefixes, the errors) and the round-robin move
 * to the next server when the current one fails, once per failure. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "servers.h"

static struct servers *parse_ok(const char *spec)
{
    char err[300] = "";
    struct servers *s = servers_parse(spec, err, sizeof err);
    if (!s)
        fail_msg("\"%s\" refused: %s", spec, err);
    return s;
}

/* Parsing must fail, with a reason naming what is wrong. */
static void parse_bad(const char *spec, const char *why_has)
{
    char err[300] = "";
    struct servers *s = servers_parse(spec, err, sizeof err);
    if (s) {
        servers_free(s);
        fail_msg("\"%s\" was accepted", spec);
    }
    if (!strstr(err, why_has))
        fail_msg("\"%s\": reason \"%s\" lacks \"%s\"", spec, err, why_has);
}

static void test_single_url(void **state)
{
    (void)state;
    struct servers *s = parse_ok("http://127.0.0.1:8080");
    assert_int_equal(servers_count(s), 1);
    const struct server_url *c = servers_current(s);
    assert_string_equal(c->host, "127.0.0.1");
    assert_int_equal(c->port, 8080);
    assert_int_equal(c->tls, 0);
    assert_string_equal(c->prefix, "");
    assert_string_equal(c->url, "http://127.0.0.1:8080");
    assert_false(servers_any_tls(s));
    assert_false(servers_failed(s, c));        /* nowhere else to go */
    assert_ptr_equal(servers_current(s), c);
    servers_free(s);
}

static void test_defaults_and_prefix(void **state)
{
    (void)state;
    struct servers *s = parse_ok("https://chat.example.org//api/v2//, HTTP://example.com/");
    assert_int_equal(servers_count(s), 2);
    const struct server_url *a = servers_get(s, 0), *b = servers_get(s, 1);
    assert_int_equal(a->tls, 1);
    assert_int_equal(a->port, 443);
    assert_string_equal(a->prefix, "/api/v2");
    assert_string_equal(a->url, "https://chat.example.org:443/api/v2");
    assert_int_equal(b->tls, 0);
    assert_int_equal(b->port, 80);
    assert_string_equal(b->prefix, "");
    assert_string_equal(b->host, "example.com");
    assert_true(servers_any_tls(s));
    assert_null(servers_get(s, 2));
    servers_free(s);
}

static void test_ipv6(void **state)
{
    (void)state;
    struct servers *s = parse_ok("http://[::1]:9000/chat");
    const struct server_url *c = servers_current(s);
    assert_string_equal(c->host, "::1");
    assert_int_equal(c->port, 9000);
    assert_string_equal(c->prefix, "/chat");
    assert_string_equal(c->url, "http://[::1]:9000/chat");
    servers_free(s);
}

static void test_errors(void **state)
{
    (void)state;
    parse_bad("", "empty URL");
    parse_bad("http://a:1,", "empty URL");
    parse_bad(",http://a:1", "empty URL");
    parse_bad("http://a:1,,http://b:2", "empty URL");
    parse_bad("ftp://a", "must look like");
    parse_bad("127.0.0.1:8080", "must look like");
    parse_bad("http://", "must look like");
    parse_bad("http://[::1:80", "must look like");
    parse_bad("http://user@host", "bad path");
    parse_bad("http://a:0", "bad port");
    parse_bad("http://a:65536", "bad port");
    parse_bad("http://a:", "bad port");
    parse_bad("http://a:80x", "bad path");
    parse_bad("http://a:99999999999999999999", "bad port");
    parse_bad("http://a/p?q=1", "bad path");
    parse_bad("http://a/p q", "bad path");
    parse_bad("http://a/\x1b[2J", "bad path");
    char many[2048] = "";
    for (int i = 0; i <= SERVERS_MAX; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%shttp://h%d", i ? "," : "", i);
    parse_bad(many, "at most");
}

struct moves {
    int n;
    char now[SERVER_URL_MAX], before[SERVER_URL_MAX];
};

static void on_move(void *arg, const struct server_url *now, const struct server_url *before)
{
    struct moves *m = arg;
    m->n++;
    snprintf(m->now, sizeof m->now, "%s", now->url);
    snprintf(m->before, sizeof m->before, "%s", before->url);
}

static void test_round_robin(void **state)
{
    (void)state;
    struct servers *s = parse_ok("http://a:1,http://b:2,http://c:3");
    struct moves m = { 0 };
    servers_set_hook(s, on_move, &m);
    const struct server_url *a = servers_current(s);
    assert_string_equal(a->host, "a");

    /* two requests on a fail: one move */
    assert_true(servers_failed(s, a));
    assert_false(servers_failed(s, a));
    assert_int_equal(m.n, 1);
    assert_string_equal(m.before, "http://a:1");
    assert_string_equal(m.now, "http://b:2");
    const struct server_url *b = servers_current(s);
    assert_string_equal(b->host, "b");

    /* a late failure of a leaves b alone */
    assert_false(servers_failed(s, a));
    assert_ptr_equal(servers_current(s), b);

    assert_true(servers_failed(s, b));
    assert_true(servers_failed(s, servers_current(s)));
    assert_ptr_equal(servers_current(s), a);          /* and round again */
    assert_int_equal(m.n, 3);
    assert_false(servers_failed(s, NULL));
    servers_free(s);
}

static void test_prefix_fallback_and_one(void **state)
{
    (void)state;
    assert_string_equal(servers_prefix(NULL, "/fixed"), "/fixed");
    struct servers *s = servers_new_one("::1", 8443, 1, "/p");
    assert_non_null(s);
    assert_string_equal(servers_prefix(s, "/fixed"), "/p");
    assert_string_equal(servers_current(s)->url, "https://[::1]:8443/p");
    servers_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_url),
        cmocka_unit_test(test_defaults_and_prefix),
        cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_round_robin),
        cmocka_unit_test(test_prefix_fallback_and_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
