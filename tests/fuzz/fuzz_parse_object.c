/* fuzz_parse_object.c — proto_parse_object, the entry of every request body
 * and WebSocket frame: no crash, and what it accepts is one JSON object of
 * valid UTF-8 without NUL bytes, at most 64 KiB, that survives
 * a dump/parse round trip; what it refuses comes with a message. The typed
 * field getters proto_get_string / proto_get_int are run on every key. */
#include "fuzz.h"
#include "protocol.h"

#include <jansson.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_input(data, size);
    const char *err = NULL;
    json_t *o = proto_parse_object((const char *)data, size, &err);
    if (!o) {
        FUZZ_CHECK(err && *err, "refused without an error message");
        return 0;
    }
    FUZZ_CHECK(json_is_object(o), "accepted a non-object (type %d)", json_typeof(o));
    FUZZ_CHECK(size > 0 && size <= PROTO_MAX_REQUEST_BYTES,
               "accepted %zu bytes (limit %d)", size, PROTO_MAX_REQUEST_BYTES);
    FUZZ_CHECK(oracle_utf8(data, size), "accepted text that is not valid UTF-8");
    /* jansson 2.14 skips a raw NUL after a number or true/false/null;
     * proto_parse_object refuses any NUL byte itself. */
    FUZZ_CHECK(!memchr(data, '\0', size), "accepted JSON text with a raw NUL byte");

    /* Round trip. */
    char *dump = json_dumps(o, JSON_COMPACT);
    FUZZ_CHECK(dump, "accepted object cannot be dumped");
    const char *err2 = NULL;
    json_t *again = proto_parse_object(dump, strlen(dump), &err2);
    FUZZ_CHECK(!again == (strlen(dump) > PROTO_MAX_REQUEST_BYTES),
               "its own dump is refused: %s", err2 ? err2 : "");
    if (again)
        FUZZ_CHECK(json_equal(o, again), "round trip changed the object: %s", dump);
    json_decref(again);
    free(dump);

    /* Getters on every key: typed access never lies about the type. */
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        const char *s = NULL;
        int64_t i = 0;
        int present = -1;
        int rs = proto_get_string(o, k, &s);
        int ri = proto_get_int(o, k, &i, &present);
        if (json_is_null(v)) {
            FUZZ_CHECK(rs == 0 && !s && ri == 0 && present == 0, "null member \"%s\" not absent", k);
        } else {
            FUZZ_CHECK((rs == 0) == !!json_is_string(v), "proto_get_string type check on \"%s\"", k);
            FUZZ_CHECK(!json_is_string(v) || (s && strcmp(s, json_string_value(v)) == 0 &&
                                              strlen(s) == json_string_length(v)),
                       "string member \"%s\" holds a NUL or differs", k);
            FUZZ_CHECK((ri == 0) == !!json_is_integer(v), "proto_get_int type check on \"%s\"", k);
            FUZZ_CHECK(present == !!json_is_integer(v), "proto_get_int present flag on \"%s\"", k);
        }
    }
    const char *missing = NULL;
    int present = -1;
    int64_t dummy = 7;
    FUZZ_CHECK(proto_get_string(o, "\x01no such key", &missing) == 0 && !missing, "absent key");
    FUZZ_CHECK(proto_get_int(o, "\x01no such key", &dummy, &present) == 0 && dummy == 7 && present == 0,
               "absent int key");
    json_decref(o);
    return 0;
}
