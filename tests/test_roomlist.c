/* test_roomlist.c — unit tests of client/roomlist.c, the room model a user sees
 * in the room bar: unread counts that go up for other people's messages
 * in rooms not shown and to zero when shown, the read marker owed once per
 * new message shown, DMs named after the other user with an online mark,
 * "bob is typing" for 5 s, read markers from the user's other clients, typing notices at most every 3 s, and the
 * history paging cache (each older page asked once). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "roomlist.h"

static json_t *chat(int64_t id, const char *room, const char *from)
{
    return json_pack("{s:I,s:s,s:I,s:s,s:s,s:s}", "id", (json_int_t)id, "type", "chat", "ts",
                     (json_int_t)1, "room", room, "from", from, "body", "hi");
}

static void feed(struct roomlist *r, json_t *ev, int history)
{
    roomlist_on_event(r, ev, history);
    json_decref(ev);
}

static struct roomlist *with_rust(void)
{
    struct roomlist *r = roomlist_new("alice");
    struct proto_room_info v[3] = {
        { .name = "general", .members = 3, .online = 2, .unread = 0, .last_id = 9, .joined = 1 },
        { .name = "rust", .topic = "Ownership", .members = 2, .online = 1, .unread = 4,
          .last_id = 8, .joined = 1 },
        { .name = "go", .members = 5, .joined = 0 },
    };
    assert_non_null(r);
    roomlist_load_list(r, v, 3);
    return r;
}

static void test_list_keeps_joined_rooms_in_order(void **state)
{
    (void)state;
    struct roomlist *r = with_rust();
    assert_int_equal(roomlist_count(r), 2);
    assert_string_equal(roomlist_at(r, 0)->name, "general");
    assert_string_equal(roomlist_at(r, 1)->name, "rust");
    assert_string_equal(roomlist_at(r, 1)->topic, "Ownership");
    assert_int_equal(roomlist_at(r, 1)->unread, 4);
    assert_null(roomlist_find(r, "go"));
    assert_string_equal(roomlist_current(r)->name, "general");
    roomlist_free(r);
}

static void test_unread_counts_others_messages_in_rooms_not_shown(void **state)
{
    (void)state;
    struct roomlist *r = with_rust();
    feed(r, chat(10, "rust", "bob"), 0);
    feed(r, chat(12, "general", "bob"), 0);       /* shown: not unread */
    feed(r, chat(5, "rust", "bob"), 1);           /* history: not unread */
    assert_int_equal(roomlist_find(r, "rust")->unread, 5);
    assert_int_equal(roomlist_find(r, "general")->unread, 0);
    /* shown: read; the marker owed is the newest id, once */
    assert_int_equal(roomlist_read_due(r), 12);
    assert_int_equal(roomlist_read_due(r), 0);
    assert_int_equal(roomlist_switch_name(r, "rust"), 0);
    assert_int_equal(roomlist_find(r, "rust")->unread, 0);
    assert_int_equal(roomlist_read_due(r), 10);
    assert_int_equal(roomlist_read_due(r), 0);
    feed(r, chat(13, "rust", "bob"), 0);
    assert_int_equal(roomlist_read_due(r), 13);
    roomlist_free(r);
}

/* The list counted a room's unread up to its last_id; the live feed starts
 * at the cursor, taken before the list, so it brings some of those again:
 * they are not counted twice. */
static void test_the_lists_unread_is_not_counted_again(void **state)
{
    (void)state;
    struct roomlist *r = with_rust();             /* rust: 4 unread up to id 8 */
    feed(r, chat(7, "rust", "bob"), 0);           /* between the cursor and the list */
    feed(r, chat(8, "rust", "bob"), 0);
    assert_int_equal(roomlist_find(r, "rust")->unread, 4);
    feed(r, chat(10, "rust", "bob"), 0);          /* after the list: new */
    assert_int_equal(roomlist_find(r, "rust")->unread, 5);
    roomlist_free(r);
}

/* Only the room on screen is loaded at the start; another room's newest
 * page is asked once, the first time it is shown, up to the cursor or up
 * to the oldest event the live feed brought there. */
static void test_a_room_first_shown_asks_its_newest_page_once(void **state)
{
    (void)state;
    struct roomlist *r = with_rust();
    json_t *page = json_pack("[{s:I,s:s,s:s,s:s}]", "id", 6, "type", "chat", "room", "rust",
                             "from", "bob");
    roomlist_on_page(r, "general", page, 0);      /* the start's page: loaded */
    assert_int_equal(roomlist_view_due(r, "general", 20), 0);
    assert_int_equal(roomlist_view_due(r, "rust", 20), 21);
    assert_int_equal(roomlist_view_due(r, "rust", 20), 0);      /* asked: not again */
    roomlist_page_failed(r, "rust");
    assert_int_equal(roomlist_view_due(r, "rust", 22), 23);     /* failed: may ask again */
    roomlist_on_page(r, "rust", page, 1);
    assert_int_equal(roomlist_view_due(r, "rust", 22), 0);
    assert_int_equal(roomlist_page_due(r, "rust"), 6);          /* then older pages */
    json_t *join = json_pack("{s:I,s:s,s:I,s:s,s:s,s:s}", "id", 30, "type", "member", "ts", 1,
                             "room", "go", "user", "alice", "action", "join");
    feed(r, join, 0);                             /* joined elsewhere: live from 30 */
    feed(r, chat(31, "go", "bob"), 0);
    assert_int_equal(roomlist_view_due(r, "go", 40), 30);
    assert_int_equal(roomlist_view_due(r, "nosuch", 40), 0);
    json_decref(page);
    roomlist_free(r);
}

/* Our own message in a room not shown here came from another of our
 * clients, which shows that room: what was before it is read there. */
static void test_our_message_from_another_client_reads_the_room(void **state)
{
    (void)state;
    struct roomlist *r = with_rust();             /* rust: 4 unread */
    feed(r, chat(10, "rust", "bob"), 0);
    feed(r, chat(11, "rust", "alice"), 0);
    assert_int_equal(roomlist_find(r, "rust")->unread, 0);
    feed(r, chat(12, "rust", "bob"), 0);
    assert_int_equal(roomlist_find(r, "rust")->unread, 1);
    feed(r, chat(3, "rust", "alice"), 1);         /* history: nothing */
    assert_int_equal(roomlist_find(r, "rust")->unread, 1);
    roomlist_free(r);
}

/* A read marker from another of our clients (a "read" item): read up to
 * the newest event known here is read; one below it leaves the events
 * counted here after it, or, below what the list counted (ids unknown
 * here), the count; either way we owe no marker up to it. */
static void test_a_read_item_from_another_client_reads_the_room(void **state)
{
    (void)state;
    struct roomlist *r = with_rust();             /* rust: 4 unread up to id 8 */
    feed(r, chat(10, "rust", "bob"), 0);
    feed(r, chat(11, "rust", "bob"), 0);
    feed(r, chat(12, "rust", "bob"), 0);
    assert_int_equal(roomlist_find(r, "rust")->unread, 7);
    roomlist_on_read(r, "rust", 7);               /* below the list's: unknown */
    assert_int_equal(roomlist_find(r, "rust")->unread, 7);
    roomlist_on_read(r, "rust", 9);               /* the list's four, not 10-12 */
    assert_int_equal(roomlist_find(r, "rust")->unread, 3);
    roomlist_on_read(r, "rust", 11);
    assert_int_equal(roomlist_find(r, "rust")->unread, 1);
    roomlist_on_read(r, "rust", 10);              /* behind: nothing changes */
    assert_int_equal(roomlist_find(r, "rust")->unread, 1);
    feed(r, chat(13, "rust", "bob"), 0);
    assert_int_equal(roomlist_find(r, "rust")->unread, 2);
    roomlist_on_read(r, "rust", 13);
    assert_int_equal(roomlist_find(r, "rust")->unread, 0);
    assert_int_equal(roomlist_switch_name(r, "rust"), 0);
    assert_int_equal(roomlist_read_due(r), 0);    /* the server has 13 */
    feed(r, chat(14, "rust", "bob"), 0);
    assert_int_equal(roomlist_read_due(r), 14);
    roomlist_on_read(r, "nosuchroom", 99);        /* ignored */
    roomlist_free(r);
}

static void test_membership_follows_our_member_events(void **state)
{
    (void)state;
    struct roomlist *r = with_rust();
    json_t *join = json_pack("{s:I,s:s,s:I,s:s,s:s,s:s}", "id", 20, "type", "member", "ts", 1,
                             "room", "go", "user", "alice", "action", "join");
    json_t *leave = json_pack("{s:I,s:s,s:I,s:s,s:s,s:s}", "id", 21, "type", "member", "ts", 1,
                              "room", "rust", "user", "alice", "action", "leave");
    json_t *topic = json_pack("{s:I,s:s,s:I,s:s,s:s,s:s}", "id", 22, "type", "topic", "ts", 1,
                              "room", "go", "from", "bob", "topic", "Goroutines");
    feed(r, join, 0);
    assert_non_null(roomlist_find(r, "go"));
    roomlist_switch_name(r, "rust");
    feed(r, leave, 0);
    assert_null(roomlist_find(r, "rust"));
    assert_non_null(roomlist_current(r));         /* another room is shown */
    feed(r, topic, 0);
    assert_string_equal(roomlist_find(r, "go")->topic, "Goroutines");
    roomlist_remove(r, "general");                /* never */
    assert_non_null(roomlist_find(r, "general"));
    roomlist_free(r);
}

static void test_direct_messages_are_named_by_the_other_user(void **state)
{
    (void)state;
    char bar[200];
    struct roomlist *r = with_rust();
    feed(r, chat(30, "@alice,bob", "bob"), 0);
    feed(r, chat(31, "@bob,carol", "bob"), 0);  /* not ours: never kept */
    const struct room *dm = roomlist_find(r, "@alice,bob");
    assert_non_null(dm);
    assert_null(roomlist_find(r, "@bob,carol"));
    assert_string_equal(dm->peer, "bob");
    assert_int_equal(dm->unread, 1);
    roomlist_on_presence(r, "bob", 1);
    roomlist_bar_text(r, 80, bar, sizeof bar);
    assert_string_equal(bar, "[1:general] 2:rust(4) 3:@bob*(1)");
    roomlist_on_presence(r, "bob", 0);
    roomlist_bar_text(r, 80, bar, sizeof bar);
    assert_string_equal(bar, "[1:general] 2:rust(4) 3:@bob(1)");
    roomlist_free(r);
}

static void test_switching_wraps_and_the_bar_fits(void **state)
{
    (void)state;
    char bar[200];
    struct roomlist *r = with_rust();
    roomlist_add(r, "a-very-long-room-name-for-tests");
    roomlist_add(r, "zz");
    roomlist_switch_step(r, -1);
    assert_string_equal(roomlist_current(r)->name, "zz");
    roomlist_switch_step(r, 1);
    assert_string_equal(roomlist_current(r)->name, "general");
    roomlist_switch_step(r, 1);
    assert_string_equal(roomlist_current(r)->name, "a-very-long-room-name-for-tests");
    assert_int_equal(roomlist_switch(r, 9), -1);
    roomlist_bar_text(r, 40, bar, sizeof bar);
    assert_true(strlen(bar) <= 40);
    assert_non_null(strstr(bar, "1:general"));
    roomlist_bar_text(r, 20, bar, sizeof bar);
    assert_true(strlen(bar) <= 20);
    roomlist_free(r);
}

static void test_typing_shows_for_five_seconds_and_is_sent_every_three(void **state)
{
    (void)state;
    char text[100];
    struct roomlist *r = with_rust();
    roomlist_on_typing(r, "rust", "bob", 1000);
    assert_int_equal(roomlist_typing_text(r, "rust", 1000, text, sizeof text), 1);
    assert_string_equal(text, "bob is typing");
    roomlist_on_typing(r, "rust", "carol", 2000);
    roomlist_typing_text(r, "rust", 2000, text, sizeof text);
    assert_string_equal(text, "bob and carol are typing");
    roomlist_typing_text(r, "rust", 6500, text, sizeof text);
    assert_string_equal(text, "carol is typing");
    assert_int_equal(roomlist_typing_text(r, "rust", 7000, text, sizeof text), 0);
    roomlist_on_typing(r, "rust", "alice", 7000);             /* ourselves: never shown */
    assert_int_equal(roomlist_typing_text(r, "rust", 7000, text, sizeof text), 0);
    assert_int_equal(roomlist_typing_due(r, 10000), 1);
    assert_int_equal(roomlist_typing_due(r, 12999), 0);
    assert_int_equal(roomlist_typing_due(r, 13000), 1);
    roomlist_free(r);
}

static void test_each_older_page_is_asked_once(void **state)
{
    (void)state;
    struct roomlist *r = with_rust();
    json_t *page = json_pack("[{s:I,s:s,s:s,s:s},{s:I,s:s,s:s,s:s}]",
                             "id", 40, "type", "chat", "room", "rust", "from", "bob",
                             "id", 45, "type", "chat", "room", "rust", "from", "carol");
    json_t *older = json_pack("[{s:I,s:s,s:s,s:s}]", "id", 3, "type", "chat", "room", "rust",
                              "from", "dave");
    assert_int_equal(roomlist_page_due(r, "rust"), 0);        /* nothing loaded yet */
    roomlist_on_page(r, "rust", page, 1);
    assert_int_equal(roomlist_find(r, "rust")->oldest, 40);
    assert_int_equal(roomlist_page_due(r, "rust"), 40);
    assert_int_equal(roomlist_page_due(r, "rust"), 0);        /* asked: not again */
    roomlist_page_failed(r, "rust");
    assert_int_equal(roomlist_page_due(r, "rust"), 40);       /* failed: may ask again */
    roomlist_on_page(r, "rust", older, 0);
    assert_int_equal(roomlist_find(r, "rust")->oldest, 3);
    assert_int_equal(roomlist_page_due(r, "rust"), 0);        /* no more */
    /* presence: a room's list, then a live item for someone seen there */
    json_t *names = json_pack("[s]", "bob");
    roomlist_set_online(r, "rust", names);
    assert_int_equal(roomlist_find(r, "rust")->online, 1);
    roomlist_on_presence(r, "carol", 1);
    assert_int_equal(roomlist_find(r, "rust")->online, 2);
    roomlist_on_presence(r, "zed", 1);                         /* not known there */
    assert_int_equal(roomlist_find(r, "rust")->online, 2);
    roomlist_on_presence(r, "bob", 0);
    assert_int_equal(roomlist_find(r, "rust")->online, 1);
    json_decref(names);
    json_decref(page);
    json_decref(older);
    roomlist_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_keeps_joined_rooms_in_order),
        cmocka_unit_test(test_unread_counts_others_messages_in_rooms_not_shown),
        cmocka_unit_test(test_the_lists_unread_is_not_counted_again),
        cmocka_unit_test(test_a_room_first_shown_asks_its_newest_page_once),
        cmocka_unit_test(test_our_message_from_another_client_reads_the_room),
        cmocka_unit_test(test_a_read_item_from_another_client_reads_the_room),
        cmocka_unit_test(test_membership_follows_our_member_events),
        cmocka_unit_test(test_direct_messages_are_named_by_the_other_user),
        cmocka_unit_test(test_switching_wraps_and_the_bar_fits),
        cmocka_unit_test(test_typing_shows_for_five_seconds_and_is_sent_every_three),
        cmocka_unit_test(test_each_older_page_is_asked_once),
    };
    return cmocka_run_group_tests_name("rooms", tests, NULL, NULL);
}
