/* test_tls.c — every transport over TLS (https + wss on one port, with a CA
 * made by scripts/make-certs.sh), and a client that refuses a server whose
 * certificate it cannot verify, with a clear message and without retrying. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define PW "tls test password"

static struct h_server srv;
static char certs[512], other[512], ca[600], other_ca[600];

/* Runs scripts/make-certs.sh DIR and checks it worked. */
static void make_certs(const char *dir)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "scripts/make-certs.sh '%s' >/dev/null", dir);
    CHECK(system(cmd) == 0, "scripts/make-certs.sh %s failed", dir);
}

static int group_setup(void **state)
{
    (void)state;
    harness_init();
    snprintf(certs, sizeof certs, "%s/certs", h_tmpdir());
    snprintf(other, sizeof other, "%s/other", h_tmpdir());
    make_certs(certs);
    make_certs(other);                  /* a second, unrelated CA */
    snprintf(ca, sizeof ca, "%s/ca.pem", certs);
    snprintf(other_ca, sizeof other_ca, "%s/ca.pem", other);
    char cert[600], key[600];
    snprintf(cert, sizeof cert, "%s/server.pem", certs);
    snprintf(key, sizeof key, "%s/server.key", certs);
    const char *extra[] = { "--tls-cert", cert, "--tls-key", key, NULL };
    h_server_start(&srv, NULL, extra);
    CHECK(!strncmp(srv.url, "https://", 8), "chatd with a certificate does not say https: %s", srv.url);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (srv.proc)
        h_server_stop(&srv);
    harness_cleanup();
    return 0;
}

static struct h_proc *tls_client(const char *transport, const char *user, int do_register)
{
    const char *reg[] = { "--ca", ca, "--register", NULL };
    const char *plain[] = { "--ca", ca, NULL };
    return h_client_spawn(&srv, transport, user, PW, do_register ? reg : plain);
}

/* Waits until c has shown an event with this body; returns its index or -1. */
static long wait_body(struct h_proc *c, const char *body, int64_t deadline)
{
    for (;;) {
        for (size_t i = 0; i < h_client_nevents(c); i++) {
            const char *b = json_string_value(json_object_get(h_client_event(c, i), "body"));
            if (b && !strcmp(b, body))
                return (long)i;
        }
        if (h_now_ms() >= deadline)
            return -1;
        h_client_wait_events(c, h_client_nevents(c) + 1, deadline);
    }
}

/* alice and bob exchange a message each way over TLS on one transport. */
static void exchange(const char *transport, const char *a_name, const char *b_name)
{
    char hello[64], reply[64];
    struct h_proc *a = tls_client(transport, a_name, 1);
    struct h_proc *b = tls_client(transport, b_name, 1);
    CHECK(h_client_wait_stderr_match(a, "\"state\":\"connected\"", h_deadline(15000)), "%s: alice never connected", transport);
    CHECK(h_client_wait_stderr_match(b, "\"state\":\"connected\"", h_deadline(15000)), "%s: bob never connected", transport);
    snprintf(hello, sizeof hello, "hello over %s and TLS", transport);
    snprintf(reply, sizeof reply, "reply over %s and TLS", transport);
    h_client_send_line(a, hello);
    CHECK(wait_body(b, hello, h_deadline(10000)) >= 0, "%s: bob did not get alice's message", transport);
    h_client_send_line(b, reply);
    long ia = wait_body(a, reply, h_deadline(10000)), ib = wait_body(b, reply, h_deadline(10000));
    CHECK(ia >= 0 && ib >= 0, "%s: the reply did not reach both", transport);
    CHECK(wait_body(a, hello, h_deadline(0)) == ia - 1, "%s: alice did not see hello right before the reply", transport);
    h_client_quit(a, h_deadline(10000));
    h_client_quit(b, h_deadline(10000));
}

static void test_websocket_tls(void **state)
{
    (void)state;
    exchange("websocket", "alice_ws", "bob_ws");
}

static void test_long_poll_tls(void **state)
{
    (void)state;
    exchange("long-poll", "alice_lp", "bob_lp");
}

static void test_short_poll_tls(void **state)
{
    (void)state;
    exchange("short-poll", "alice_sp", "bob_sp");
}

/* Without the CA, or trusting another CA, the client refuses the server at
 * once with a readable reason and exit code 1. */
static void test_untrusted_certificate(void **state)
{
    (void)state;
    const char *none[] = { "--register", NULL };
    const char *wrong[] = { "--ca", other_ca, "--register", NULL };
    const char *const *cases[] = { none, wrong };
    for (int i = 0; i < 2; i++) {
        struct h_proc *c = h_client_spawn(&srv, "websocket", "mallory", PW, cases[i]);
        int status = 0;
        CHECK(h_proc_wait_exit(c, h_deadline(10000), &status), "case %d: the client kept trying", i);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1, "case %d: exit status %d, expected 1", i, status);
        CHECK(h_client_wait_stderr_match(c, "TLS handshake failed", h_deadline(1000)),
              "case %d: no clear message about the certificate", i);
        CHECK(h_client_nevents(c) == 0, "case %d: events arrived from an untrusted server", i);
    }
}

/* Through TLS, what lws' HTTP parser gives up on (garbage, an unknown
 * method) still gets the JSON 400 and a close, encrypted: openssl s_client
 * -quiet sends the request and prints what comes back until the server
 * closes (`timeout` ends it otherwise, status 124). */
static void test_garbage_over_tls(void **state)
{
    (void)state;
    static const char *const raws[] = { "GARBAGE\r\n\r\n", "FOO /healthz HTTP/1.1\r\nHost: x\r\n\r\n" };
    for (size_t i = 0; i < sizeof raws / sizeof raws[0]; i++) {
        char in[600], cmd[1400], out[4096];
        snprintf(in, sizeof in, "%s/garbage.txt", h_tmpdir());
        FILE *f = fopen(in, "w");
        CHECK(f && fputs(raws[i], f) >= 0 && fclose(f) == 0, "cannot write %s", in);
        snprintf(cmd, sizeof cmd, "timeout 10 openssl s_client -connect 127.0.0.1:%d -CAfile '%s' -quiet "
                 "<'%s' 2>/dev/null", srv.port, ca, in);
        FILE *p = popen(cmd, "r");
        CHECK(p, "cannot run openssl s_client");
        size_t n = fread(out, 1, sizeof out - 1, p);
        out[n] = '\0';
        int rc = pclose(p);
        CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) != 124, "case %zu: the server did not close (status %d): %s", i, rc, out);
        const char *body = strstr(out, "\r\n\r\n");
        json_t *j = body ? json_loads(body + 4, 0, NULL) : NULL;
        const char *code = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
        CHECK(!strncmp(out, "HTTP/1.1 400 ", 13) && code && !strcmp(code, "bad_request"),
              "case %zu: want a JSON 400 bad_request over TLS, got: %.400s", i, out);
        json_decref(j);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_websocket_tls),
        cmocka_unit_test(test_long_poll_tls),
        cmocka_unit_test(test_short_poll_tls),
        cmocka_unit_test(test_untrusted_certificate),
        cmocka_unit_test(test_garbage_over_tls),
    };
    return cmocka_run_group_tests_name("tls", tests, group_setup, group_teardown);
}
