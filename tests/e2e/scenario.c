/* scenario.c — the steps and checks the end-to-end scenarios share
 * (scenario.h): one copy of each, the strictest of those the test files
 * used to carry. */
#include "scenario.h"

int scenario_mismatches;

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

/* ---- time ---------------------------------------------------------------- */

static int64_t g_started;

void took_start(void)
{
    g_started = h_now_ms();
}

void took(const char *name)
{
    fprintf(stderr, "    %s: %.1f s\n", name, (double)(h_now_ms() - g_started) / 1000.0);
}

void pump_until(int64_t t)
{
    while (h_now_ms() < t)
        h_pump((int)(t - h_now_ms()));
}

void pump_upto(int64_t deadline)
{
    int64_t r = deadline - h_now_ms();
    h_pump(r < 0 ? 0 : (int)r);
}

/* ---- events -------------------------------------------------------------- */

const char *ev_str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

json_int_t ev_int(const json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? json_integer_value(v) : -1;
}

void print_events(const char *what, const json_t *evs)
{
    size_t i;
    json_t *ev;
    fprintf(stderr, "%s (%zu events):\n", what, json_array_size(evs));
    json_array_foreach(evs, i, ev) {
        char *d = h_json_str(ev);
        fprintf(stderr, "  %s\n", d);
        free(d);
    }
}

int is_alert(const json_t *ev, const char *kind, json_int_t tid)
{
    return strcmp(ev_str(ev, "type"), "alert") == 0 && (!kind || strcmp(ev_str(ev, "kind"), kind) == 0) &&
           (tid < 0 || ev_int(ev, "transfer_id") == tid);
}

size_t count_alerts(const json_t *events, const char *kind, json_int_t tid)
{
    size_t n = 0, i;
    json_t *ev;
    json_array_foreach(events, i, ev)
        n += (size_t)is_alert(ev, kind, tid);
    return n;
}

/* ---- a client's stderr lines ---------------------------------------------- */

int err_has_from(const struct h_proc *c, size_t off, const char *needle)
{
    return c->err.data && off <= c->err.len && strstr(c->err.data + off, needle) != NULL;
}

void wait_err_from(struct h_proc *c, size_t off, const char *needle, int64_t dl, const char *why)
{
    while (!err_has_from(c, off, needle) && h_now_ms() < dl && !(c->exited && c->err_fd < 0))
        h_pump((int)(dl - h_now_ms()));
    CHECK(err_has_from(c, off, needle), "%s: no %s on stderr (%s)%s", c->name, needle, why,
          c->exited ? " — the client exited" : "");
}

int each_err_line(const struct h_proc *c, size_t off, int (*fn)(json_t *j, void *arg), void *arg)
{
    const char *p = c->err.data && off <= c->err.len ? c->err.data + off : NULL;
    int rc = 0;
    while (p && *p && !rc) {
        const char *nl = strchr(p, '\n');
        if (!nl)
            break;                         /* an incomplete last line */
        json_t *j = json_loadb(p, (size_t)(nl - p), 0, NULL);
        if (json_is_object(j))
            rc = fn(j, arg);
        json_decref(j);
        p = nl + 1;
    }
    return rc;
}

/* Bytes written to c's stdin that c has not read yet (FIONREAD works on
 * either end of a pipe); -1 if it cannot tell. */
static int stdin_unread(const struct h_proc *c)
{
    int n = -1;
    if (c->in_fd < 0 || ioctl(c->in_fd, FIONREAD, &n) < 0)
        return -1;
    return n;
}

void wait_stdin_read(struct h_proc *c, int64_t dl)
{
    while (stdin_unread(c) > 0 && h_now_ms() < dl && !c->exited)
        h_pump((int)(dl - h_now_ms()));
    CHECK(stdin_unread(c) == 0, "%s did not read the lines typed on its stdin (%d bytes left)%s", c->name,
          stdin_unread(c), c->exited ? " — it exited" : "");
}

/* ---- acknowledgements ------------------------------------------------------ */

struct acks {
    const struct h_proc *c;
    json_t *by_cmid;
};

static int add_ack(json_t *j, void *arg)
{
    struct acks *a = arg;
    json_t *cmid = json_object_get(j, "ack"), *id = json_object_get(j, "id");
    if (!json_is_string(cmid))
        return 0;
    int twice = json_object_get(a->by_cmid, json_string_value(cmid)) != NULL;
    if (!json_is_integer(id) || twice) {
        char *line = h_json_str(j);
        fprintf(stderr, "%s: %s\n", a->c->name, line);
        free(line);
        CHECK(0, "%s: %s (the line above)", a->c->name,
              twice ? "a message acknowledged twice" : "an acknowledgement without an integer id");
    }
    json_object_set(a->by_cmid, json_string_value(cmid), id);
    return 0;
}

json_t *acks_of(const struct h_proc *c)
{
    struct acks a = { c, json_object() };
    each_err_line(c, 0, add_ack, &a);
    return a.by_cmid;
}

size_t count_acks(const struct h_proc *c)
{
    json_t *a = acks_of(c);
    size_t n = json_object_size(a);
    json_decref(a);
    return n;
}

void wait_acks(struct h_proc *c, size_t n, int64_t dl)
{
    size_t got;
    while ((got = count_acks(c)) < n && h_now_ms() < dl && !c->exited)
        h_pump((int)(dl - h_now_ms()));
    got = count_acks(c);
    CHECK(got >= n, "%s: %zu of the %zu typed messages acknowledged before the deadline%s", c->name, got, n,
          c->exited ? " (the client exited)" : "");
    CHECK(got == n, "%s: %zu acknowledgements for %zu typed messages", c->name, got, n);
}

/* ---- typing ---------------------------------------------------------------- */

void send_next(struct sender *s)
{
    char line[96];
    snprintf(line, sizeof line, "%s #%d", s->tag, ++s->sent);
    h_client_send_line(s->c, line);
}

void send_for(struct sender *ss, int n, int ms, int every_ms)
{
    int64_t end = h_now_ms() + ms, tick = h_now_ms();
    while (h_now_ms() < end) {
        for (int i = 0; i < n; i++)
            send_next(&ss[i]);
        tick += every_ms;
        pump_until(tick);
    }
}

/* ---- checks ---------------------------------------------------------------- */

void alice_bob_on(int port, char *alice, char *bob)
{
    CHECK(h_http_register(port, "alice", PW_ALICE) == 201, "register alice");
    CHECK(h_http_register(port, "bob", PW_BOB) == 201, "register bob");
    CHECK(h_http_login(port, "alice", PW_ALICE, alice) == 200, "login alice");
    if (bob)
        CHECK(h_http_login(port, "bob", PW_BOB, bob) == 200, "login bob");
}

void start_alice_bob(struct h_server *s, const char *const *extra, char *alice, char *bob)
{
    harness_init();
    h_server_start(s, NULL, extra);
    alice_bob_on(s->port, alice, bob);
}

void register_users(const struct h_server *s, const char *const *users)
{
    for (; *users; users++)
        CHECK(h_http_register(s->port, *users, PW) == 201, "register %s: expected 201", *users);
}

void check_sent_once(const json_t *feed, const char *user, const char *tag, int n)
{
    size_t tl = strlen(tag), i;
    json_t *ev;
    int next = 1;
    json_array_foreach(feed, i, ev) {
        const char *b = ev_str(ev, "body");
        if (strncmp(b, tag, tl) != 0 || strncmp(b + tl, " #", 2) != 0)
            continue;
        int k = atoi(b + tl + 2);
        if (k != next) {
            print_events("server feed", feed);
            CHECK(0, "\"%s\": expected \"%s #%d\" next in the feed, found \"%s\" (%s)", tag, tag, next, b,
                  k < next ? "a duplicate or out of order" : "a message lost");
        }
        CHECK(strcmp(ev_str(ev, "from"), user) == 0, "\"%s\" stored as from %s, expected %s", b,
              ev_str(ev, "from"), user);
        next++;
    }
    if (next != n + 1)
        print_events("server feed", feed);
    CHECK(next == n + 1, "\"%s\": %d lines typed, %d found in the server's feed", tag, n, next - 1);
}

void check_same_as_feed(struct h_proc *c, const json_t *feed, int64_t dl)
{
    size_t want = json_array_size(feed);
    h_client_wait_events(c, want, dl);
    h_pump(50);                            /* anything extra would show up now */
    size_t got = h_client_nevents(c);
    int same = got == want;
    for (size_t i = 0; same && i < want; i++)
        same = json_equal(h_client_event(c, i), json_array_get(feed, i));
    if (!same) {
        print_events("server feed", feed);
        print_events(c->name, c->events);
        CHECK(0, "%s printed %zu events, the server's feed has %zu%s", c->name, got, want,
              got == want ? " (but they differ)" : got > want ? " (duplicates or extras)" : " (lost)");
    }
    CHECK(c->bad_lines == 0, "%s printed %d non-JSON lines on stdout, first: %s", c->name, c->bad_lines,
          c->first_bad);
}

void start_with_bob(struct h_server *s, char bob[65])
{
    static const char *const users[] = { "alice", "bob", NULL };
    h_server_start(s, NULL, NULL);
    register_users(s, users);
    CHECK(h_http_login(s->port, "bob", PW, bob) == 200, "login bob");
}

json_t *feed_all(int port, const char *token)
{
    json_t *all = json_array();
    int64_t after = 0;
    for (;;) {
        json_t *page = h_http_get_events(port, token, after);
        size_t n = json_array_size(page);
        if (n)
            after = ev_int(json_array_get(page, n - 1), "id");
        json_array_extend(all, page);
        json_decref(page);
        if (n < 1000)
            return all;
    }
}
