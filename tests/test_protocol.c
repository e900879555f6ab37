/* Unit tests for shared/protocol.c and shared/utf8.c: validation rules,
 * query parsing, event/error encoding and WS/HTTP response decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "protocol.h"

static void test_utf8(void **state)
{
    (void)state;
    assert_true(proto_utf8_valid("", 0));
    assert_true(proto_utf8_valid("hello", 5));
    assert_true(proto_utf8_valid("caf\xc3\xa9", 5));                 /* é */
    assert_true(proto_utf8_valid("\xe6\x97\xa5\xe6\x9c\xac", 6));     /* 日本 */
    assert_true(proto_utf8_valid("\xf0\x9f\x98\x80", 4));             /* emoji */
    assert_false(proto_utf8_valid("\xff", 1));
    assert_false(proto_utf8_valid("\xc3", 1));                        /* truncated */
    assert_false(proto_utf8_valid("\xc0\xaf", 2));                    /* overlong '/' */
    assert_false(proto_utf8_valid("\xe0\x80\xaf", 3));                /* overlong */
    assert_false(proto_utf8_valid("\xed\xa0\x80", 3));                /* surrogate */
    assert_false(proto_utf8_valid("\xf4\x90\x80\x80", 4));            /* > U+10FFFF */
    assert_false(proto_utf8_valid("\xe6\x97", 2));
    assert_false(proto_utf8_valid("a\x80", 2));                       /* lone continuation */
}

static void test_names_and_passwords(void **state)
{
    (void)state;
    assert_true(proto_name_valid("alice"));
    assert_true(proto_name_valid("a_b-9"));
    assert_true(proto_name_valid("abcdefghijklmnopqrstuvwxyz012345"));  /* 32 */
    assert_false(proto_name_valid("abcdefghijklmnopqrstuvwxyz0123456")); /* 33 */
    assert_false(proto_name_valid(""));
    assert_false(proto_name_valid(NULL));
    assert_false(proto_name_valid("Alice"));
    assert_false(proto_name_valid("al ice"));
    assert_false(proto_name_valid("al\xc3\xa9"));
    assert_true(proto_password_valid("12345678"));
    assert_false(proto_password_valid("1234567"));
    char longpw[130];
    memset(longpw, 'x', 129);
    longpw[129] = '\0';
    assert_false(proto_password_valid(longpw));
    longpw[128] = '\0';
    assert_true(proto_password_valid(longpw));
}

static void test_body_and_msg_id(void **state)
{
    (void)state;
    char big[PROTO_BODY_MAX + 2];
    memset(big, 'a', sizeof big);
    big[PROTO_BODY_MAX] = '\0';
    assert_true(proto_body_valid(big));
    big[PROTO_BODY_MAX] = 'a';
    big[PROTO_BODY_MAX + 1] = '\0';
    assert_false(proto_body_valid(big));
    assert_false(proto_body_valid(""));
    assert_false(proto_body_valid("bad \xff"));
    assert_true(proto_client_msg_id_valid("abc-123"));
    assert_false(proto_client_msg_id_valid("has space"));
    assert_false(proto_client_msg_id_valid(""));
}

static void test_events_query(void **state)
{
    (void)state;
    struct proto_events_query q;
    const char *err;
    assert_int_equal(proto_parse_events_query(NULL, &q, &err), 0);
    assert_int_equal(q.after, 0);
    assert_int_equal(q.wait_s, 0);
    assert_int_equal(q.limit, 100);
    assert_int_equal(proto_parse_events_query("after=42&wait=25&limit=1000", &q, &err), 0);
    assert_int_equal(q.after, 42);
    assert_int_equal(q.wait_s, 25);
    assert_int_equal(q.limit, 1000);
    assert_int_equal(proto_parse_events_query("limit=7", &q, &err), 0);
    assert_int_equal(q.limit, 7);
    assert_int_equal(q.after, 0);
    /* the largest cursor is a cursor */
    assert_int_equal(proto_parse_events_query("after=9223372036854775807", &q, &err), 0);
    assert_true(q.after == INT64_MAX);
    const char *bad[] = { "after=abc", "after=-1", "limit=0", "limit=1001", "wait=",
                          "after", "foo=1", "after=1&after=2", "after=1x",
                          "after=9223372036854775808", "after=12345678901234567890", "after=+1", "after=1&", "&after=1",
                          "after=1&&wait=0" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err = NULL;
        assert_int_equal(proto_parse_events_query(bad[i], &q, &err), -1);
        assert_non_null(err);
    }
}

static void test_error_json(void **state)
{
    (void)state;
    char *s = proto_error_json("not_found", "no such \"path\"");
    json_t *o = json_loads(s, 0, NULL);
    assert_non_null(o);
    json_t *e = json_object_get(o, "error");
    assert_string_equal(json_string_value(json_object_get(e, "code")), "not_found");
    assert_string_equal(json_string_value(json_object_get(e, "message")), "no such \"path\"");
    json_decref(o);
    free(s);
}

static void test_event_encoding(void **state)
{
    (void)state;
    json_t *obj = proto_chat_payload_new("general", "alice", "hi \"there\"");
    char *payload = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    json_t *ev = proto_event_new(7, "chat", 1234, payload);
    assert_non_null(ev);
    assert_int_equal(json_integer_value(json_object_get(ev, "id")), 7);
    assert_string_equal(json_string_value(json_object_get(ev, "type")), "chat");
    assert_int_equal(json_integer_value(json_object_get(ev, "ts")), 1234);
    assert_string_equal(json_string_value(json_object_get(ev, "from")), "alice");
    assert_string_equal(json_string_value(json_object_get(ev, "body")), "hi \"there\"");
    json_decref(ev);
    free(payload);
    /* A payload can never override the envelope. */
    ev = proto_event_new(8, "chat", 1, "{\"id\":999,\"type\":\"x\"}");
    assert_int_equal(json_integer_value(json_object_get(ev, "id")), 8);
    assert_string_equal(json_string_value(json_object_get(ev, "type")), "chat");
    json_decref(ev);
    assert_null(proto_event_new(9, "chat", 1, "not json"));
    assert_null(proto_event_new(9, "chat", 1, "[1]"));
}

/* The sender's instance builds a chat event from the payload it still
 * holds, not from the stored text: the frame its subscribers get must be
 * byte for byte the one a reader of the stored row makes. */
static void test_event_from_kept_payload(void **state)
{
    (void)state;
    json_t *kept = proto_chat_payload_new("général", "alice", "hi \"there\" \\ \u00e9\u2028");
    assert_non_null(kept);
    char *stored = json_dumps(kept, JSON_COMPACT);
    json_t *read_back = proto_event_new(7, "chat", 1234, stored);
    char *from_text = proto_ws_event_text(read_back);
    json_decref(read_back);
    json_t *ev = proto_event_of(7, "chat", 1234, kept);
    char *from_kept = proto_ws_event_text(ev);
    assert_non_null(from_text);
    assert_non_null(from_kept);
    assert_string_equal(from_kept, from_text);
    json_decref(ev);
    /* the envelope still wins over a payload's own id or type */
    json_t *odd = json_pack("{s:I,s:s,s:s}", "id", (json_int_t)999, "type", "x", "body", "b");
    ev = proto_event_of(8, "chat", 1, odd);
    assert_int_equal(json_integer_value(json_object_get(ev, "id")), 8);
    assert_string_equal(json_string_value(json_object_get(ev, "type")), "chat");
    assert_int_equal(json_integer_value(json_object_get(odd, "id")), 999);  /* borrowed, unchanged */
    json_decref(ev);
    json_decref(odd);
    assert_null(proto_event_of(9, "chat", 1, NULL));
    json_t *arr = json_array();
    assert_null(proto_event_of(9, "chat", 1, arr));
    json_decref(arr);
    free(from_text);
    free(from_kept);
    free(stored);
    json_decref(kept);
}

/* The WebSocket delivery frame wraps the event as served, unchanged. */
static void test_ws_event_frame(void **state)
{
    (void)state;
    json_t *ev = proto_event_new(7, "chat", 1234, "{\"room\":\"general\",\"from\":\"a\",\"body\":\"hi\"}");
    char *text = proto_ws_event_text(ev);
    assert_non_null(text);
    json_t *frame = json_loads(text, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(frame, "op")), "event");
    assert_true(json_equal(json_object_get(frame, "event"), ev));
    assert_int_equal(json_object_size(frame), 2);
    json_decref(frame);
    free(text);
    json_decref(ev);
}

static int parse_frame(const char *text, struct proto_ws_frame *f, json_t **root, const char **code)
{
    const char *err;
    return proto_parse_ws_frame(text, strlen(text), root, f, code, &err);
}

static void test_ws_frames(void **state)
{
    (void)state;
    struct proto_ws_frame f;
    json_t *root;
    const char *code;
    assert_int_equal(parse_frame("{\"op\":\"hello\",\"token\":\"t\",\"after\":5}", &f, &root, &code), 0);
    assert_int_equal(f.op, PROTO_OP_HELLO);
    assert_string_equal(f.token, "t");
    assert_int_equal(f.after, 5);
    json_decref(root);
    assert_int_equal(parse_frame("{\"op\":\"send\",\"body\":\"x\",\"client_msg_id\":\"m1\"}", &f, &root, &code), 0);
    assert_int_equal(f.op, PROTO_OP_SEND);
    assert_string_equal(f.room, "general");
    assert_string_equal(f.client_msg_id, "m1");
    json_decref(root);
    assert_int_equal(parse_frame("garbage", &f, &root, &code), -1);
    assert_string_equal(code, "bad_json");
    assert_null(root);
    assert_int_equal(parse_frame("{\"op\":\"dance\"}", &f, &root, &code), -1);
    assert_string_equal(code, "unknown_op");
    assert_int_equal(parse_frame("{\"op\":\"send\",\"body\":\"\"}", &f, &root, &code), -1);
    assert_string_equal(code, "bad_request");
    assert_int_equal(parse_frame("{\"op\":\"hello\",\"token\":\"t\",\"after\":-1}", &f, &root, &code), -1);
    assert_int_equal(parse_frame("{\"op\":\"hello\",\"token\":7,\"after\":0}", &f, &root, &code), -1);
    assert_int_equal(parse_frame("{\"op\":\"send\",\"body\":\"x\",\"room\":\"No Room\"}", &f, &root, &code), -1);
    assert_int_equal(parse_frame("{\"op\":\"send\",\"op\":\"hello\"}", &f, &root, &code), -1);
    assert_string_equal(code, "bad_json");     /* duplicate keys rejected */
    assert_int_equal(parse_frame("[1,2]", &f, &root, &code), -1);
}

static void test_parse_object(void **state)
{
    (void)state;
    const char *err = NULL;
    assert_null(proto_parse_object("", 0, &err));
    assert_non_null(err);
    assert_null(proto_parse_object("{\"a\":\"\xff\"}", 8, &err));
    assert_null(proto_parse_object("{\"a\":\"x\\u0000y\"}", 16, &err));  /* NUL in string */
    assert_null(proto_parse_object("{\"a\":1\0}", 8, &err));               /* raw NUL byte */
    json_t *o = proto_parse_object("{\"a\":1} trailing", 7, &err);       /* length bounds the parse */
    assert_non_null(o);
    json_decref(o);
}

static void test_events_response(void **state)
{
    (void)state;
    json_t *events;
    int64_t next;
    const char *err;
    const char *ok = "{\"events\":[{\"id\":1,\"type\":\"chat\"},{\"id\":3,\"type\":\"chat\"}],\"next\":3}";
    assert_int_equal(proto_parse_events_response(ok, strlen(ok), &events, &next, &err), 0);
    assert_int_equal(json_array_size(events), 2);
    assert_int_equal(next, 3);
    json_decref(events);
    const char *bad[] = {
        "{\"events\":[{\"id\":3,\"type\":\"chat\"},{\"id\":1,\"type\":\"chat\"}],\"next\":3}",
        "{\"events\":[{\"id\":0,\"type\":\"chat\"}],\"next\":0}",
        "{\"events\":[{\"id\":\"1\",\"type\":\"chat\"}],\"next\":1}",
        "{\"events\":[{\"id\":1}],\"next\":1}",
        "{\"events\":{},\"next\":1}",
        "{\"events\":[]}",
        "nonsense",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(proto_parse_events_response(bad[i], strlen(bad[i]), &events, &next, &err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_names_and_passwords),
        cmocka_unit_test(test_body_and_msg_id),
        cmocka_unit_test(test_events_query),
        cmocka_unit_test(test_error_json),
        cmocka_unit_test(test_event_encoding),
        cmocka_unit_test(test_event_from_kept_payload),
        cmocka_unit_test(test_ws_event_frame),
        cmocka_unit_test(test_ws_frames),
        cmocka_unit_test(test_parse_object),
        cmocka_unit_test(test_events_response),
    };
    return cmocka_run_group_tests_name("protocol", tests, NULL, NULL);
}
