/* Unit tests for server/presence.c's state machine, on an injected clock
 * and with fake sessions (no sockets, no timers: presence_tick is run by
 * hand): a user goes offline only the grace after their last connection
 * ends; a transport switch within the grace shows no offline/online flap;
 * a short poll keeps its user online for the poll window; items for
 * pollers are kept per session token, at most 64, for 10 s; a polling
 * token's answers keep their pace; typing is
 * relayed once per 3 s per user and room, never to the typer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "presence.h"

#define GRACE 1000
#define POLL  2000

static int64_t fake_now = 1000000;
static int64_t fake_clock(void) { return fake_now; }

/* Every change presence shows, in order. */
struct changes {
    int n;
    char user[16][33];
    int online[16];
};

static void observe(void *arg, const char *user, int online)
{
    struct changes *c = arg;
    assert_true(c->n < 16);
    snprintf(c->user[c->n], sizeof c->user[0], "%s", user);
    c->online[c->n++] = online;
}

/* What reached a live connection. */
struct fake_conn {
    struct session s;
    int n;
    char last[256];
};

static void fake_ephemeral(struct session *s, const struct ephemeral *e)
{
    struct fake_conn *c = (struct fake_conn *)s;
    c->n++;
    snprintf(c->last, sizeof c->last, "%s", e->frame);
}

static const struct session_ops fake_ops = { NULL, NULL, NULL, fake_ephemeral };

struct fixture {
    struct server srv;
    struct changes ch;
    struct fake_conn conn[4];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->srv.presence = presence_new(&f->srv, GRACE, POLL, 0);
    assert_non_null(f->srv.presence);
    presence_set_clock(f->srv.presence, fake_clock);
    presence_set_observer(f->srv.presence, observe, &f->ch);
    fake_now = 1000000;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    presence_free(f->srv.presence);
    free(f);
    return 0;
}

/* Connection i of user (id uid) with token tok; live: it listens (a
 * WebSocket or SSE stream). */
static struct session *conn(struct fixture *f, int i, int64_t uid, const char *user,
                            const char *tok, int live)
{
    struct fake_conn *c = &f->conn[i];
    c->s.srv = &f->srv;
    c->s.ops = &fake_ops;
    c->s.user_id = uid;
    snprintf(c->s.user, sizeof c->s.user, "%s", user);
    snprintf(c->s.token_hash, sizeof c->s.token_hash, "%s", tok);
    if (live)
        lws_dll2_add_tail(&c->s.sub_node, &f->srv.subscribers);
    return &c->s;
}

static void at(struct fixture *f, int64_t t)
{
    fake_now = 1000000 + t;
    presence_tick(f->srv.presence);
}

/* Online at once; offline exactly the grace after the connection ends. */
static void test_grace(void **state)
{
    struct fixture *f = *state;
    struct session *ws = conn(f, 0, 1, "bob", "t1", 1);
    assert_int_equal(presence_hold(ws), 0);
    assert_int_equal(f->ch.n, 1);
    assert_string_equal(f->ch.user[0], "bob");
    assert_int_equal(f->ch.online[0], 1);
    assert_true(presence_online(f->srv.presence, 1));
    at(f, 100);
    presence_release(ws);
    at(f, 100 + GRACE - 1);
    assert_int_equal(f->ch.n, 1);
    assert_true(presence_online(f->srv.presence, 1));
    at(f, 100 + GRACE);
    assert_int_equal(f->ch.n, 2);
    assert_int_equal(f->ch.online[1], 0);
    assert_false(presence_online(f->srv.presence, 1));
}

/* A WebSocket closes, an SSE stream opens within the grace, later a long
 * poll parks and the stream closes: one change in all (online). */
static void test_no_flap_on_switch(void **state)
{
    struct fixture *f = *state;
    struct session *ws = conn(f, 0, 1, "bob", "t1", 1);
    struct session *sse = conn(f, 1, 1, "bob", "t1", 1);
    struct session *lp = conn(f, 2, 1, "bob", "t1", 0);
    presence_hold(ws);
    at(f, 10);
    presence_release(ws);
    at(f, GRACE - 10);
    presence_hold(sse);
    at(f, 3 * GRACE);
    presence_polled(lp);
    presence_hold(lp);
    presence_release(sse);
    at(f, 10 * GRACE);
    assert_int_equal(f->ch.n, 1);
    assert_true(presence_online(f->srv.presence, 1));
    presence_release(lp);
    at(f, 10 * GRACE + GRACE - 1);
    assert_int_equal(f->ch.n, 1);
    at(f, 10 * GRACE + GRACE);
    assert_int_equal(f->ch.n, 2);
    assert_int_equal(f->ch.online[1], 0);
}

/* A short poller is online for the poll window after each poll. */
static void test_short_poll_window(void **state)
{
    struct fixture *f = *state;
    struct session *sp = conn(f, 0, 1, "bob", "t1", 0);
    presence_polled(sp);
    assert_int_equal(f->ch.n, 1);
    at(f, POLL - 1);
    presence_polled(sp);             /* the next poll, just in time */
    at(f, 2 * POLL - 2);
    assert_int_equal(f->ch.n, 1);
    at(f, 2 * POLL - 1);
    assert_int_equal(f->ch.n, 2);
    assert_int_equal(f->ch.online[1], 0);
}

/* A polling token's next answer waits out the pace from its last answer
 * with something in it; another token of the same user, a token never
 * answered and a pace of 0 wait for nothing. */
static void test_poll_pace(void **state)
{
    struct fixture *f = *state;
    struct session *lp = conn(f, 0, 1, "bob", "t1", 0);
    struct session *other = conn(f, 1, 1, "bob", "t2", 0);
    presence_polled(lp);
    presence_polled(other);
    assert_int_equal(presence_pace_wait_ms(lp, 5), 0);      /* never answered */
    at(f, 100);
    presence_answered(lp);
    assert_int_equal(presence_pace_wait_ms(lp, 5), 5);
    assert_int_equal(presence_pace_wait_ms(lp, 0), 0);
    assert_int_equal(presence_pace_wait_ms(other, 5), 0);
    at(f, 103);
    assert_int_equal(presence_pace_wait_ms(lp, 5), 2);
    at(f, 105);
    assert_int_equal(presence_pace_wait_ms(lp, 5), 0);
}

/* A poller's items wait for its next poll under its token: at most 64,
 * none older than 10 s, and taken once. */
static void test_poller_queue(void **state)
{
    struct fixture *f = *state;
    presence_set_observer(f->srv.presence, NULL, NULL);     /* many changes here */
    struct session *alice = conn(f, 0, 1, "alice", "ta", 0);
    struct session *other = conn(f, 3, 1, "alice", "tb", 0);
    presence_polled(alice);
    char name[16];
    for (int i = 0; i < 70; i++) {   /* 70 users come online */
        snprintf(name, sizeof name, "u%d", i);
        struct session *u = conn(f, 1, 100 + i, name, "tu", 0);
        presence_polled(u);
    }
    assert_false(presence_has_items(other));   /* another token of alice's: from its first poll */
    json_t *items = presence_take(alice);
    assert_non_null(items);
    assert_int_equal(json_array_size(items), PRESENCE_QUEUE_MAX);
    json_t *last = json_array_get(items, PRESENCE_QUEUE_MAX - 1);
    assert_string_equal(json_string_value(json_object_get(last, "type")), "presence");
    assert_string_equal(json_string_value(json_object_get(last, "user")), "u69");
    json_decref(items);
    assert_null(presence_take(alice));
    struct session *late = conn(f, 2, 500, "zed", "tz", 0);
    presence_polled(late);
    at(f, PRESENCE_ITEM_TTL_MS);     /* not fetched in time: dropped */
    items = presence_take(alice);    /* only the offline changes of the tick itself */
    for (size_t i = 0; i < json_array_size(items); i++)
        assert_false(json_is_true(json_object_get(json_array_get(items, i), "online")));
    json_decref(items);
}

/* Typing reaches the others' connections once per 3 s, not the typer's,
 * and a room's only its members'; its presence list is its members'. */
static int rust_member(void *arg, int64_t user_id)
{
    (void)arg;
    return user_id == 1 || user_id == 2;    /* alice and bob; not carol */
}

static void test_typing_rate(void **state)
{
    struct fixture *f = *state;
    const struct presence_room rust = { rust_member, NULL, NULL };
    struct session *alice = conn(f, 0, 1, "alice", "ta", 1);
    struct session *bob = conn(f, 1, 2, "bob", "tb", 1);
    struct session *carol = conn(f, 2, 3, "carol", "tc", 1);
    presence_hold(alice);
    presence_hold(bob);
    presence_hold(carol);
    int alice_before = f->conn[0].n, bob_before = f->conn[1].n, carol_before = f->conn[2].n;
    assert_int_equal(presence_typing(alice, "general", 1, NULL), 1);
    assert_int_equal(presence_typing(alice, "general", 1, NULL), 0);
    at(f, PRESENCE_TYPING_MS - 1);
    assert_int_equal(presence_typing(alice, "general", 1, NULL), 0);
    assert_int_equal(f->conn[1].n, bob_before + 1);
    assert_string_equal(f->conn[1].last, "{\"op\":\"typing\",\"room\":\"general\",\"user\":\"alice\"}");
    assert_int_equal(f->conn[0].n, alice_before);
    at(f, PRESENCE_TYPING_MS);
    assert_int_equal(presence_typing(alice, "general", 1, NULL), 1);
    assert_int_equal(presence_typing(alice, "rust", 7, &rust), 1);    /* per room */
    assert_int_equal(f->conn[1].n, bob_before + 3);
    assert_int_equal(f->conn[2].n, carol_before + 2);              /* not rust's */
    json_t *names = presence_online_names(f->srv.presence, &rust);
    char *text = json_dumps(names, JSON_COMPACT);
    assert_string_equal(text, "[\"alice\",\"bob\"]");
    free(text);
    json_decref(names);
}

/* Live connections get the change as a WebSocket frame; the sorted list
 * shows who is online. */
static void test_live_delivery_and_list(void **state)
{
    struct fixture *f = *state;
    struct session *alice = conn(f, 0, 1, "alice", "ta", 1);
    presence_hold(alice);
    struct session *carol = conn(f, 1, 3, "carol", "tc", 0);
    presence_polled(carol);
    struct session *bob = conn(f, 2, 2, "bob", "tb", 0);
    presence_hold(bob);
    assert_string_equal(f->conn[0].last, "{\"op\":\"presence\",\"user\":\"bob\",\"online\":true}");
    json_t *names = presence_online_names(f->srv.presence, NULL);
    char *text = json_dumps(names, JSON_COMPACT);
    assert_string_equal(text, "[\"alice\",\"bob\",\"carol\"]");
    free(text);
    json_decref(names);
    assert_int_equal(presence_room_online(f->srv.presence, NULL, 1), 3);   /* general */
    presence_release(bob);
    presence_release(alice);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_grace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_flap_on_switch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_poll_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_poller_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_poll_pace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_typing_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_delivery_and_list, setup, teardown),
    };
    return cmocka_run_group_tests_name("presence", tests, NULL, NULL);
}
