/* test_room_index.c — unit tests of the room index (server/rooms.c): a
 * membership's span decides what a user sees, member events are applied
 * once and in order, a DM is unknown to anyone but its two parties, and a
 * room's sessions are those of its online members only. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "rooms.h"

static void test_spans(void **state)
{
    (void)state;
    struct rooms *r = rooms_new();
    rooms_apply_member(r, 5, "rust", 10, 100, 1);
    rooms_apply_member(r, 5, "rust", 11, 105, 1);
    assert_false(rooms_visible(r, 10, 5, 99));
    assert_true(rooms_visible(r, 10, 5, 100));
    assert_false(rooms_visible(r, 11, 5, 104));
    assert_false(rooms_visible(r, 12, 5, 200));          /* never a member */
    assert_true(rooms_visible(r, 12, STORE_GENERAL_ROOM_ID, 1));
    rooms_apply_member(r, 5, "rust", 10, 110, 0);        /* leaves */
    assert_true(rooms_visible(r, 10, 5, 110));           /* the leave event itself */
    assert_false(rooms_visible(r, 10, 5, 111));
    rooms_apply_member(r, 5, "rust", 10, 100, 1);        /* seen again (a reload): ignored */
    assert_false(rooms_visible(r, 10, 5, 111));
    int member = -1;
    assert_int_equal(rooms_lookup(r, "rust", 10, &member), 5);
    assert_int_equal(member, 0);
    assert_int_equal(rooms_lookup(r, "rust", 11, &member), 5);
    assert_int_equal(member, 1);
    assert_int_equal(rooms_lookup(r, "general", 99, &member), STORE_GENERAL_ROOM_ID);
    assert_int_equal(member, 1);
    assert_int_equal(rooms_lookup(r, "nope", 10, &member), 0);
    rooms_apply_member(r, 6, "@alice,bob", 10, 120, 1);
    assert_int_equal(rooms_lookup(r, "@alice,bob", 10, &member), 6);
    assert_int_equal(rooms_lookup(r, "@alice,bob", 11, &member), 0);   /* not a party: unknown */
    rooms_apply_member(r, 5, "rust", 10, 130, 1);        /* rejoins */
    assert_true(rooms_visible(r, 10, 5, 130));
    assert_false(rooms_visible(r, 10, 5, 111));
    rooms_free(r);
}

struct got {
    int n;
    struct session *s[8];
};

static void got_one(void *arg, struct session *s)
{
    struct got *g = arg;
    if (g->n < 8)
        g->s[g->n] = s;
    g->n++;
}

static int members_n;
static void count_member(void *arg, int64_t user_id, int64_t room_id, const char *room)
{
    (void)arg;
    (void)user_id;
    (void)room_id;
    (void)room;
    members_n++;
}

static void test_sessions_by_room(void **state)
{
    (void)state;
    struct rooms *r = rooms_new();
    rooms_apply_member(r, 5, "rust", 10, 100, 1);
    rooms_apply_member(r, 5, "rust", 11, 101, 1);
    rooms_apply_member(r, 7, "ops", 12, 102, 1);
    struct session a, b, c, a2;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    memset(&c, 0, sizeof c);
    memset(&a2, 0, sizeof a2);
    a.user_id = a2.user_id = 10;
    b.user_id = 11;
    c.user_id = 12;
    rooms_session_add(r, &a);
    rooms_session_add(r, &a2);
    rooms_session_add(r, &c);
    struct got g = {0};
    rooms_each_session(r, 5, got_one, &g);
    assert_int_equal(g.n, 2);                    /* alice's two, not bob (offline) nor carol */
    memset(&g, 0, sizeof g);
    rooms_each_session(r, STORE_GENERAL_ROOM_ID, got_one, &g);
    assert_int_equal(g.n, 3);
    rooms_session_add(r, &b);
    rooms_apply_member(r, 5, "rust", 10, 103, 0);   /* alice leaves: her sessions go */
    memset(&g, 0, sizeof g);
    rooms_each_session(r, 5, got_one, &g);
    assert_int_equal(g.n, 1);
    assert_ptr_equal(g.s[0], &b);
    rooms_session_remove(r, &b);
    memset(&g, 0, sizeof g);
    rooms_each_session(r, 5, got_one, &g);
    assert_int_equal(g.n, 0);
    memset(&g, 0, sizeof g);
    rooms_each_user_session(r, 10, got_one, &g);
    assert_int_equal(g.n, 2);
    rooms_session_remove(r, &a);
    rooms_session_remove(r, &a2);
    rooms_session_remove(r, &c);
    members_n = 0;
    rooms_each_member(r, 5, count_member, NULL);
    assert_int_equal(members_n, 1);              /* bob: alice left */
    members_n = 0;
    rooms_each_room_of(r, 12, count_member, NULL);
    assert_int_equal(members_n, 1);
    rooms_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spans),
        cmocka_unit_test(test_sessions_by_room),
    };
    return cmocka_run_group_tests_name("rooms", tests, NULL, NULL);
}
