/* fuzz_ws_frame.c — proto_parse_ws_frame, every client frame chatd reads on
 * a WebSocket: no crash, no leak, and the result (0 or the error code) and
 * the extracted fields agree with an oracle written from PROTOCOL.md:
 *   not one JSON object (or > 64 KiB)          -> bad_json
 *   "op" missing, null or not a string           -> bad_request
 *   hello: "token" a string, "after" absent/null
 *          or an integer >= 0                    -> ok, else bad_request
 *   send: "room" absent/null (general) or a name, "body" 1-4096 bytes of
 *         UTF-8, "client_msg_id" absent/null or 1-64 printable ASCII
 *                                                -> ok, else bad_request
 *   any other op                                 -> unknown_op
 * Input: first byte even — the rest is the frame; odd — the rest is built
 * into an object by fuzz_build_object (see fuzz.h). */
#include "fuzz.h"
#include "protocol.h"

#include <jansson.h>

struct expect {
    const char *code;          /* NULL: accepted */
    enum proto_op op;
    const char *token, *room, *body, *cmid;
    int64_t after;
};

static int member(const json_t *o, const char *k, json_t **v)
{
    *v = json_object_get(o, k);
    if (!*v || json_is_null(*v))
        return 0;
    return 1;
}

static void oracle(const char *buf, size_t len, json_t **keep, struct expect *e)
{
    memset(e, 0, sizeof *e);
    json_t *o = len && len <= PROTO_MAX_REQUEST_BYTES
                ? json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    *keep = o;
    if (!json_is_object(o)) {
        e->code = "bad_json";
        return;
    }
    json_t *op, *v;
    if (!member(o, "op", &op) || !json_is_string(op)) {
        e->code = "bad_request";
        return;
    }
    const char *ops = json_string_value(op);
    if (strcmp(ops, "hello") == 0) {
        e->op = PROTO_OP_HELLO;
        if (!member(o, "token", &v) || !json_is_string(v)) {
            e->code = "bad_request";
            return;
        }
        e->token = json_string_value(v);
        if (member(o, "after", &v)) {
            if (!json_is_integer(v) || json_integer_value(v) < 0) {
                e->code = "bad_request";
                return;
            }
            e->after = json_integer_value(v);
        }
        return;
    }
    if (strcmp(ops, "send") == 0) {
        e->op = PROTO_OP_SEND;
        e->room = "general";
        if (member(o, "room", &v)) {
            if (!json_is_string(v) || !oracle_name(json_string_value(v), json_string_length(v))) {
                e->code = "bad_request";
                return;
            }
            e->room = json_string_value(v);
        }
        if (!member(o, "body", &v) || !json_is_string(v) ||
            !oracle_body(json_string_value(v), json_string_length(v))) {
            e->code = "bad_request";
            return;
        }
        e->body = json_string_value(v);
        if (member(o, "client_msg_id", &v)) {
            if (!json_is_string(v) || !oracle_cmid(json_string_value(v), json_string_length(v))) {
                e->code = "bad_request";
                return;
            }
            e->cmid = json_string_value(v);
        }
        return;
    }
    e->code = "unknown_op";
}

static int same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static const char *const keys[8] = { "op", "token", "after", "room", "body", "client_msg_id",
                                     "event", "Op" };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_input(data, size);
    if (size == 0)
        return 0;
    struct fuzz_text t = { 0 };
    if (data[0] & 1)
        fuzz_build_object(data + 1, size - 1, keys, &t);
    else
        ft_add(&t, data + 1, size - 1);
    const char *buf = t.p ? t.p : "";
    size_t len = t.len;

    json_t *root = (json_t *)1, *keep;
    struct proto_ws_frame f;
    const char *code = NULL, *err = NULL;
    int rc = proto_parse_ws_frame(buf, len, &root, &f, &code, &err);
    struct expect e;
    oracle(buf, len, &keep, &e);

    if (e.code) {
        FUZZ_CHECK(rc == -1, "frame %.300s: expected error %s, got accepted (op %d)", buf, e.code, f.op);
        FUZZ_CHECK(code && strcmp(code, e.code) == 0, "frame %.300s: expected error %s, got %s", buf,
                   e.code, code ? code : "(null)");
        FUZZ_CHECK(err && *err, "frame %.300s: error %s without a message", buf, code);
        FUZZ_CHECK(root == NULL, "frame refused but *root left non-NULL");
    } else {
        FUZZ_CHECK(rc == 0, "frame %.300s: expected accepted (op %d), got %s: %s", buf, e.op,
                   code ? code : "(null)", err ? err : "(null)");
        FUZZ_CHECK(root && json_is_object(root), "accepted without a root object");
        FUZZ_CHECK(f.op == e.op, "frame %.300s: op %d, expected %d", buf, f.op, e.op);
        if (e.op == PROTO_OP_HELLO) {
            FUZZ_CHECK(same(f.token, e.token) && f.after == e.after,
                       "hello fields differ: token %s after %lld, expected %s %lld",
                       f.token ? f.token : "(null)", (long long)f.after, e.token, (long long)e.after);
        } else {
            FUZZ_CHECK(same(f.room, e.room) && same(f.body, e.body) && same(f.client_msg_id, e.cmid),
                       "send fields differ: room %s body %.80s cmid %s, expected %s %.80s %s",
                       f.room ? f.room : "(null)", f.body ? f.body : "(null)",
                       f.client_msg_id ? f.client_msg_id : "(null)", e.room, e.body,
                       e.cmid ? e.cmid : "(null)");
            FUZZ_CHECK(f.room && strlen(f.room) <= PROTO_ROOM_MAX && f.body &&
                       strlen(f.body) <= PROTO_BODY_MAX, "send fields exceed the limits");
        }
        json_decref(root);
    }
    json_decref(keep);
    free(t.p);
    return 0;
}
