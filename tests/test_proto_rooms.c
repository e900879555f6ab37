/* test_proto_rooms.c — unit tests of shared/proto_rooms.c, the client's
 * reading of what a v1.1 server sends: a rooms list, a history page, a
 * presence list and ephemeral items are taken only when every field is of
 * its type and range, names follow the rules (a DM "@a,b" sorted), topics
 * have no control characters, and a history page holds only the room
 * asked for, below `before`, in order. A hostile server gets an error,
 * never a crash or a room it made up. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "proto_rooms.h"

static int rooms_ok(const char *s, size_t *n)
{
    struct proto_room_info *v = NULL;
    const char *err = NULL;
    int rc = proto_parse_rooms_list(s, strlen(s), &v, n, &err);
    if (rc < 0)
        assert_non_null(err);
    free(v);
    return rc == 0;
}

#define ROOM(name, extra) "{\"name\":\"" name "\",\"topic\":\"t\",\"members\":2,\"online\":1," \
                          "\"unread\":3,\"last_id\":9,\"joined\":true" extra "}"

static void test_rooms_list_is_read_strictly(void **state)
{
    size_t n = 0;
    struct proto_room_info *v = NULL;
    const char *err;
    (void)state;
    const char *good = "{\"rooms\":[" ROOM("general", "") "," ROOM("@alice,bob", "") "]}";
    assert_int_equal(proto_parse_rooms_list(good, strlen(good), &v, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(v[1].name, "@alice,bob");
    assert_int_equal(v[0].unread, 3);
    assert_true(v[0].joined);
    free(v);
    assert_true(rooms_ok("{\"rooms\":[]}", &n));
    assert_int_equal(n, 0);
    assert_true(rooms_ok("{\"rooms\":[{\"name\":\"a\",\"topic\":null,\"members\":0,\"online\":0,"
                         "\"unread\":5000,\"last_id\":0,\"joined\":false}]}", &n));
    assert_false(rooms_ok("{\"rooms\":[" ROOM("General", "") "]}", &n));      /* bad name */
    assert_false(rooms_ok("{\"rooms\":[" ROOM("@bob,alice", "") "]}", &n));   /* unsorted DM */
    assert_false(rooms_ok("{\"rooms\":[" ROOM("a", "") "," ROOM("a", "") "]}", &n)); /* twice */
    assert_false(rooms_ok("{\"rooms\":[{\"name\":\"a\",\"topic\":\"t\",\"members\":-1,\"online\":1,"
                          "\"unread\":3,\"last_id\":9,\"joined\":true}]}", &n));
    assert_false(rooms_ok("{\"rooms\":[{\"name\":\"a\",\"topic\":\"t\",\"members\":\"2\","
                          "\"online\":1,\"unread\":3,\"last_id\":9,\"joined\":true}]}", &n));
    assert_false(rooms_ok("{\"rooms\":[{\"name\":\"a\",\"topic\":\"a\\u001bb\",\"members\":2,"
                          "\"online\":1,\"unread\":3,\"last_id\":9,\"joined\":true}]}", &n));
    assert_false(rooms_ok("{\"rooms\":{}}", &n));
    assert_false(rooms_ok("[]", &n));
    assert_false(rooms_ok("{\"rooms\":[1]}", &n));
}

static void test_unread_over_the_cap_reads_as_the_cap(void **state)
{
    struct proto_room_info *v = NULL;
    size_t n;
    const char *err;
    const char *s = "{\"rooms\":[{\"name\":\"a\",\"members\":0,\"online\":0,\"unread\":99999,"
                    "\"last_id\":0,\"joined\":true}]}";
    (void)state;
    assert_int_equal(proto_parse_rooms_list(s, strlen(s), &v, &n, &err), 0);
    assert_int_equal(v[0].unread, PROTO_UNREAD_CAP);
    assert_string_equal(v[0].topic, "");
    free(v);
}

static int page_ok(const char *s, const char *room, int64_t before, int *more)
{
    json_t *ev = NULL;
    const char *err;
    int rc = proto_parse_history_page(s, strlen(s), room, before, &ev, more, &err);
    json_decref(ev);
    return rc == 0;
}

#define EV(id, room) "{\"id\":" #id ",\"type\":\"chat\",\"ts\":1,\"room\":\"" room "\",\"from\":\"b\",\"body\":\"x\"}"

static void test_history_page_holds_only_the_room_below_before(void **state)
{
    int more = -1;
    (void)state;
    assert_true(page_ok("{\"events\":[" EV(3, "rust") "," EV(7, "rust") "],\"more\":true}", "rust", 8, &more));
    assert_int_equal(more, 1);
    assert_true(page_ok("{\"events\":[],\"more\":false}", "rust", 8, &more));
    assert_int_equal(more, 0);
    assert_false(page_ok("{\"events\":[" EV(3, "go") "],\"more\":true}", "rust", 8, &more));
    assert_false(page_ok("{\"events\":[" EV(8, "rust") "],\"more\":true}", "rust", 8, &more));
    assert_false(page_ok("{\"events\":[" EV(7, "rust") "," EV(3, "rust") "],\"more\":true}", "rust", 8, &more));
    assert_false(page_ok("{\"events\":[" EV(3, "rust") "],\"more\":1}", "rust", 8, &more));
    assert_false(page_ok("{\"events\":[{\"id\":0,\"type\":\"chat\",\"room\":\"rust\"}],\"more\":true}",
                         "rust", 8, &more));
    assert_true(page_ok("{\"events\":[" EV(3, "@alice,bob") "],\"more\":false}", "@alice,bob", 0, &more));
}

static void test_presence_list_and_ephemeral_items(void **state)
{
    json_t *names = NULL, *item;
    const char *err;
    struct proto_ephemeral e;
    (void)state;
    const char *ok = "{\"online\":[\"alice\",\"bob\"]}";
    assert_int_equal(proto_parse_presence_list(ok, strlen(ok), &names, &err), 0);
    assert_int_equal(json_array_size(names), 2);
    json_decref(names);
    const char *twice = "{\"online\":[\"bob\",\"bob\"]}";
    assert_int_equal(proto_parse_presence_list(twice, strlen(twice), &names, &err), -1);
    const char *bad = "{\"online\":[\"Bob\"]}";
    assert_int_equal(proto_parse_presence_list(bad, strlen(bad), &names, &err), -1);

    item = json_pack("{s:s,s:s,s:b}", "type", "presence", "user", "bob", "online", 1);
    assert_int_equal(proto_parse_ephemeral(item, &e), 0);
    assert_int_equal(e.kind, PROTO_EPH_PRESENCE);
    assert_true(e.online);
    json_decref(item);
    item = json_pack("{s:s,s:s,s:s}", "op", "typing", "room", "@alice,bob", "user", "bob");
    assert_int_equal(proto_parse_ephemeral(item, &e), 0);
    assert_int_equal(e.kind, PROTO_EPH_TYPING);
    assert_string_equal(e.room, "@alice,bob");
    json_decref(item);
    item = json_pack("{s:s,s:s,s:s}", "type", "presence", "user", "bob", "online", "yes");
    assert_int_equal(proto_parse_ephemeral(item, &e), -1);
    json_decref(item);
    item = json_pack("{s:s,s:s,s:s}", "type", "typing", "room", "no such!", "user", "bob");
    assert_int_equal(proto_parse_ephemeral(item, &e), -1);
    json_decref(item);
    item = json_pack("{s:s,s:s}", "type", "wave", "user", "bob");
    assert_int_equal(proto_parse_ephemeral(item, &e), -1);
    json_decref(item);
    item = json_pack("{s:s,s:s,s:I}", "op", "read", "room", "@alice,bob", "read_id", (json_int_t)42);
    assert_int_equal(proto_parse_ephemeral(item, &e), 0);
    assert_int_equal(e.kind, PROTO_EPH_READ);
    assert_string_equal(e.room, "@alice,bob");
    assert_int_equal(e.read_id, 42);
    json_decref(item);
    item = json_pack("{s:s,s:s,s:I}", "type", "read", "room", "rust", "read_id", (json_int_t)-1);
    assert_int_equal(proto_parse_ephemeral(item, &e), -1);
    json_decref(item);
    item = json_pack("{s:s,s:s,s:s}", "type", "read", "room", "rust", "read_id", "42");
    assert_int_equal(proto_parse_ephemeral(item, &e), -1);
    json_decref(item);
    item = json_pack("{s:s,s:I}", "type", "read", "read_id", (json_int_t)42);
    assert_int_equal(proto_parse_ephemeral(item, &e), -1);
    json_decref(item);
}

static void test_room_names_and_topics(void **state)
{
    char out[PROTO_ROOM_REF_MAX + 1], peer[PROTO_USER_MAX + 1];
    (void)state;
    assert_true(proto_room_ref_valid("rust"));
    assert_true(proto_room_ref_valid("@alice,bob"));
    assert_false(proto_room_ref_valid("@bob,alice"));
    assert_false(proto_room_ref_valid("@bob,bob"));
    assert_false(proto_room_ref_valid("@bob"));
    assert_false(proto_room_ref_valid("@,bob"));
    assert_false(proto_room_ref_valid("@alice,bob,carol"));
    assert_int_equal(proto_dm_name("bob", "alice", out, sizeof out), 0);
    assert_string_equal(out, "@alice,bob");
    assert_int_equal(proto_dm_name("bob", "bob", out, sizeof out), -1);
    assert_int_equal(proto_dm_peer("@alice,bob", "alice", peer), 0);
    assert_string_equal(peer, "bob");
    assert_int_equal(proto_dm_peer("@alice,bob", "carol", peer), -1);
    assert_true(proto_topic_text_valid(""));
    assert_true(proto_topic_text_valid("Ownership \xe2\x80\x94 borrowing"));
    assert_false(proto_topic_text_valid("a\nb"));
    assert_false(proto_topic_text_valid("a\x7f"));
    assert_false(proto_topic_text_valid("a\xc2\x9b" "31m"));   /* C1 CSI */
    assert_false(proto_topic_text_valid("\xff"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rooms_list_is_read_strictly),
        cmocka_unit_test(test_unread_over_the_cap_reads_as_the_cap),
        cmocka_unit_test(test_history_page_holds_only_the_room_below_before),
        cmocka_unit_test(test_presence_list_and_ephemeral_items),
        cmocka_unit_test(test_room_names_and_topics),
    };
    return cmocka_run_group_tests_name("proto_rooms", tests, NULL, NULL);
}
