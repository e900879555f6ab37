/* test_delivery.c — how chatd writes what it delivers, checked on raw
 * sockets: a WebSocket that falls behind gets its backlog packed several
 * frames to a write and split across writes when the socket fills, from
 * memory and from the store, every event once and in order, with large and
 * small frames mixed; a WebSocket that answers pings outlives several
 * heartbeats; an HTTP keep-alive connection gets every answer; a client
 * that asks for a close gets the whole answer before it; answers larger
 * than one write arrive whole; a token's long polls keep their pace (and
 * a shutdown answers them at once). */
#include "harness.h"

#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PW "correct horse battery"
#define BIG_BODY 4000           /* a frame with a 16-bit length */

/* Message i's body: three in four large, the others short. */
static char *body_of(int i)
{
    size_t n = i % 4 != 3 ? BIG_BODY : 16;
    char *b = malloc(n + 1);
    int k = snprintf(b, n + 1, "m%d:", i);
    memset(b + k, 'a' + i % 26, n - (size_t)k);
    b[n] = '\0';
    return b;
}

/* Sends messages first..first+n-1 on w, pipelined, and waits for their
 * acks (reading, and dropping, w's own events meanwhile). */
static void send_window(struct h_ws *w, int first, int n)
{
    for (int i = first; i < first + n; i++) {
        char *body = body_of(i), cmid[16];
        snprintf(cmid, sizeof cmid, "d%d", i);
        json_t *o = json_pack("{s:s,s:s,s:s}", "op", "send", "body", body, "client_msg_id", cmid);
        char *text = json_dumps(o, JSON_COMPACT);
        CHECK(h_ws_send_text(w, text) == 0, "send %d: the server closed the connection", i);
        free(text);
        json_decref(o);
        free(body);
    }
    int acks = 0;
    int64_t deadline = h_deadline(30000);
    while (acks < n) {
        json_t *m = h_ws_recv_json(w, deadline);
        CHECK(m, "%d of %d acks, then nothing (close %d)", acks, n, w->close_code);
        const char *op = json_string_value(json_object_get(m, "op"));
        acks += op && !strcmp(op, "ack");
        json_decref(m);
    }
}

/* Messages 0..n-1 in windows of 500: the sender gets every event too, and
 * a sender that never reads would stall itself. */
static void send_pipelined(struct h_ws *w, int n)
{
    for (int first = 0; first < n; first += 500)
        send_window(w, first, n - first < 500 ? n - first : 500);
}

/* Reads n events from w: ids rising, bodies those of messages 0..n-1. */
static void expect_events(struct h_ws *w, int n, const char *what)
{
    int64_t last = 0, deadline = h_deadline(30000);
    for (int i = 0; i < n; i++) {
        json_t *m = h_ws_recv_op(w, "event", deadline);
        CHECK(m, "%s: event %d of %d did not come (close %d)", what, i, n, w->close_code);
        json_t *ev = json_object_get(m, "event");
        int64_t id = json_integer_value(json_object_get(ev, "id"));
        const char *body = json_string_value(json_object_get(ev, "body"));
        char *want = body_of(i);
        CHECK(id > last, "%s: event %d has id %lld after %lld", what, i, (long long)id, (long long)last);
        CHECK(body && !strcmp(body, want), "%s: event %d has the body of another message", what, i);
        free(want);
        last = id;
        json_decref(m);
    }
}

/* A subscriber that does not read while 2,000 messages (6 MB) are sent:
 * the server keeps writing as far as the socket takes it (its send buffer
 * grows to 4 MB at most), then finishes after it drains. Everything arrives once, in order, intact. */
static void test_websocket_backlog_from_memory(void **state)
{
    (void)state;
    enum { N = 2000 };
    struct h_server s;
    char tok[65];
    const char *extra[] = { "--msg-rate", "100000", NULL };
    h_server_start_with_user(&s, extra, "alice", PW, tok);
    struct h_ws *reader = h_ws_connect(s.port), *sender = h_ws_connect(s.port);
    int small = 65536;          /* well below the backlog: the server's writes fill it */
    setsockopt(reader->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    json_decref(h_ws_hello(reader, tok, 0));
    json_decref(h_ws_hello(sender, tok, 0));
    send_pipelined(sender, N);
    expect_events(reader, N, "a reader that fell behind");
    h_ws_free(sender);
    h_ws_free(reader);
    h_server_stop(&s);
}

/* More events than the server keeps in memory (4,096): a new subscriber
 * from the start is served from the store, in batches, packed the same
 * way. */
static void test_websocket_backlog_from_store(void **state)
{
    (void)state;
    enum { N = 4500 };
    struct h_server s;
    char tok[65];
    const char *extra[] = { "--msg-rate", "100000", NULL };
    h_server_start_with_user(&s, extra, "alice", PW, tok);
    struct h_ws *sender = h_ws_connect(s.port);
    json_decref(h_ws_hello(sender, tok, 0));
    send_pipelined(sender, N);
    struct h_ws *late = h_ws_connect(s.port);
    json_decref(h_ws_hello(late, tok, 0));
    expect_events(late, N, "a subscriber from the start");
    h_ws_free(late);
    h_ws_free(sender);
    h_server_stop(&s);
}

/* chatd pings a quiet WebSocket every --heartbeat-s and hangs up after
 * twice that without an answer; a peer that answers (the harness answers
 * every ping while it reads) stays connected through several rounds. */
static void test_answering_peer_kept(void **state)
{
    (void)state;
    struct h_server s;
    char tok[65];
    const char *extra[] = { "--heartbeat-s", "2", NULL };
    h_server_start_with_user(&s, extra, "alice", PW, tok);
    struct h_ws *w = h_ws_connect(s.port);
    json_decref(h_ws_hello(w, tok, 0));
    int64_t until = h_now_ms() + 2 * 2000 + 1500;   /* past the hang-up, had it not answered */
    while (h_now_ms() < until) {
        int op, fin;
        char *payload = NULL;
        size_t len;
        int got = h_ws_recv_frame(w, h_now_ms() + 100, &op, &fin, &payload, &len);
        if (got == 1)
            free(payload);
        CHECK(got == 0, "a quiet WebSocket that answers pings got a frame or was closed "
              "(close %d)", w->close_code);
    }
    CHECK(h_http_post_message(s.port, tok, NULL, "still there?", NULL, NULL) == 201, "post");
    json_t *ev = h_ws_recv_op(w, "event", h_deadline(5000));
    CHECK(ev, "the WebSocket that answered every ping was dropped (close %d)", w->close_code);
    json_decref(ev);
    h_ws_free(w);
    h_server_stop(&s);
}

/* Reads one response on fd (head, then content-length bytes) into buf;
 * returns its length, or -1 on time-out or a closed connection. */
static int read_one_response(int fd, char *buf, size_t cap, int64_t deadline)
{
    size_t have = 0;
    for (;;) {
        buf[have] = '\0';
        char *eoh = strstr(buf, "\r\n\r\n");
        const char *cl = eoh ? strcasestr(buf, "content-length:") : NULL;
        if (cl && cl < eoh) {
            size_t want = (size_t)(eoh + 4 - buf) + strtoul(cl + 15, NULL, 10);
            if (have >= want)
                return (int)want;
        }
        int64_t left = deadline - h_now_ms();
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (left <= 0 || have + 1 >= cap || poll(&p, 1, (int)left) <= 0)
            return -1;
        ssize_t n = read(fd, buf + have, cap - 1 - have);
        if (n <= 0)
            return -1;
        have += (size_t)n;
    }
}

/* 1 if the peer closed fd before deadline. */
static int peer_closed(int fd, int64_t deadline)
{
    char c;
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int64_t left = deadline - h_now_ms();
    return left > 0 && poll(&p, 1, (int)left) > 0 && read(fd, &c, 1) == 0;
}

/* Keep-alive: three requests in turn on one connection, three whole
 * answers; then one that asks for a close gets its whole answer, and only
 * then is the connection closed. */
static void test_http_keep_alive_and_close(void **state)
{
    (void)state;
    struct h_server s;
    char tok[65], req[512], buf[8192];
    h_server_start_with_user(&s, NULL, "alice", PW, tok);
    CHECK(h_http_post_message(s.port, tok, NULL, "one event", NULL, NULL) == 201, "post");
    int fd = h_tcp_connect(s.port);
    CHECK(fd >= 0, "connect");
    snprintf(req, sizeof req, "GET /api/v1/events?after=0&wait=0 HTTP/1.1\r\nHost: x\r\n"
             "Authorization: Bearer %s\r\n\r\n", tok);
    for (int i = 0; i < 3; i++) {
        CHECK(write(fd, req, strlen(req)) == (ssize_t)strlen(req), "request %d: write", i);
        int n = read_one_response(fd, buf, sizeof buf, h_deadline(5000));
        CHECK(n > 0, "request %d on a kept-alive connection: no whole answer", i);
        CHECK(!strncmp(buf, "HTTP/1.1 200", 12) && strstr(buf, "one event"),
              "request %d: unexpected answer: %.200s", i, buf);
    }
    snprintf(req, sizeof req, "GET /api/v1/events?after=0&wait=0 HTTP/1.1\r\nHost: x\r\n"
             "Authorization: Bearer %s\r\nConnection: close\r\n\r\n", tok);
    CHECK(write(fd, req, strlen(req)) == (ssize_t)strlen(req), "closing request: write");
    int n = read_one_response(fd, buf, sizeof buf, h_deadline(5000));
    CHECK(n > 0 && strstr(buf, "one event"), "Connection: close: the answer was cut short");
    CHECK(peer_closed(fd, h_deadline(5000)), "Connection: close: the connection stayed open");
    close(fd);
    h_server_stop(&s);
}

/* An answer larger than one write (16 KiB): a long poll that finds 30
 * large events pending gets them all in one answer. */
static void test_large_poll_answer(void **state)
{
    (void)state;
    enum { N = 30 };
    struct h_server s;
    char tok[65];
    const char *extra[] = { "--msg-rate", "100000", NULL };
    h_server_start_with_user(&s, extra, "alice", PW, tok);
    for (int i = 0; i < N; i++) {
        char *body = body_of(4 * i);            /* all large */
        CHECK(h_http_post_message(s.port, tok, NULL, body, NULL, NULL) == 201, "post %d", i);
        free(body);
    }
    json_t *events = h_http_get_events(s.port, tok, 0);
    CHECK(json_array_size(events) == N, "%zu of %d events in one answer", json_array_size(events), N);
    for (int i = 0; i < N; i++) {
        const char *body = json_string_value(
            json_object_get(json_array_get(events, (size_t)i), "body"));
        char *want = body_of(4 * i);
        CHECK(body && !strcmp(body, want), "event %d of the large answer is not intact", i);
        free(want);
    }
    json_decref(events);
    h_server_stop(&s);
}

/* The long poll's answer on fd (closed then): 200 with exactly the bodies
 * want (n of them), in order; returns its "next". */
static int64_t expect_answer(int fd, const char *what, const char *const *want, size_t n)
{
    struct h_http_resp r;
    CHECK(h_http_read_response(fd, &r, 15000) == 0 && r.status == 200, "%s: no 200 answer", what);
    json_t *ev = json_object_get(r.json, "events");
    CHECK(json_array_size(ev) == n, "%s: %zu events, expected %zu: %s", what, json_array_size(ev), n, r.body);
    for (size_t i = 0; i < n; i++) {
        const char *body = json_string_value(json_object_get(json_array_get(ev, i), "body"));
        CHECK(body && !strcmp(body, want[i]), "%s: event %zu is not \"%s\": %s", what, i, want[i], r.body);
    }
    int64_t next = json_integer_value(json_object_get(r.json, "next"));
    h_http_resp_free(&r);
    return next;
}

/* The long-poll pace (--long-poll-pace-ms PACE): a token's first answer
 * comes at once; its next, though an event already waits, not before PACE
 * after the first, and then with everything sent meanwhile in one answer;
 * another token of the same user is answered at once meanwhile; a shutdown
 * answers a paced poll at once. */
static void test_long_poll_pace(void **state)
{
    (void)state;
    enum { PACE = 3000 };
    struct h_server s;
    char tok[65], tok2[65];
    const char *extra[] = { "--long-poll-pace-ms", "3000", NULL };
    h_server_start_with_user(&s, extra, "alice", PW, tok);
    CHECK(h_http_login(s.port, "alice", PW, tok2) == 200, "second login");
    CHECK(h_http_post_message(s.port, tok, NULL, "one", NULL, NULL) == 201, "post one");
    const char *one[] = { "one" }, *two_three[] = { "two", "three" }, *all[] = { "one", "two", "three" };
    int64_t t0 = h_now_ms();
    int64_t next = expect_answer(h_long_poll_send(s.port, tok, 0), "first long poll", one, 1);
    int64_t t1 = h_now_ms();
    CHECK(t1 - t0 < PACE / 2, "a token's first long poll, an event waiting, took %lld ms", (long long)(t1 - t0));
    CHECK(h_http_post_message(s.port, tok, NULL, "two", NULL, NULL) == 201, "post two");
    int paced = h_long_poll_send(s.port, tok, next);
    CHECK(h_http_post_message(s.port, tok, NULL, "three", NULL, NULL) == 201, "post three");
    expect_answer(h_long_poll_send(s.port, tok2, 0), "another token's long poll", all, 3);
    CHECK(h_now_ms() - t1 < PACE / 2, "another token's long poll waited for the first token's pace");
    next = expect_answer(paced, "the paced long poll", two_three, 2);
    int64_t dt = h_now_ms() - t1;
    CHECK(dt >= PACE - 250 && dt < 10000, "the next answer came %lld ms after the first (pace %d ms, hold 20 s)",
          (long long)dt, PACE);
    /* Parked right after an answer, so paced when SIGTERM wakes it: it is
     * answered before chatd exits (its pace is longer than the 2 s grace). */
    int at_stop = h_long_poll_send(s.port, tok, next);
    h_wait_parked(s.port, 1, h_deadline(5000));
    h_server_stop(&s);
    expect_answer(at_stop, "a paced long poll at SIGTERM", NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_websocket_backlog_from_memory),
        cmocka_unit_test(test_websocket_backlog_from_store),
        cmocka_unit_test(test_answering_peer_kept),
        cmocka_unit_test(test_http_keep_alive_and_close),
        cmocka_unit_test(test_large_poll_answer),
        cmocka_unit_test(test_long_poll_pace),
    };
    int rc = cmocka_run_group_tests_name("delivery", tests, NULL, NULL);
    harness_cleanup();
    return rc;
}
