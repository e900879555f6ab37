/* fuzz_events_query.c — proto_parse_events_query, the query string of
 * GET /api/v1/events: no crash, and the outcome agrees with an oracle that
 * reads the string the way PROTOCOL.md describes it: key=value pairs joined
 * by '&', keys after / wait / limit, each at most once, values plain decimal
 * digits up to INT64_MAX (after may be "latest", v1.1), limit 1..1000 (default 100), wait clamped to 3600 s,
 * at most 256 characters in all; anything else is bad_query. The empty
 * string means all defaults. */
#include "fuzz.h"
#include "protocol.h"

struct q { int ok; int64_t after; int wait; int limit; int latest; };

static void oracle(const char *s, struct q *o)
{
    o->ok = 1;
    o->after = 0;
    o->wait = 0;
    o->limit = 100;
    o->latest = 0;
    size_t n = strlen(s);
    if (n == 0)
        return;
    if (n > 256) {
        o->ok = 0;
        return;
    }
    int seen[3] = { 0, 0, 0 };
    const char *p = s, *end = s + n;
    for (;;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        /* one pair: [p, stop) */
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        if (!eq) { o->ok = 0; return; }
        size_t kl = (size_t)(eq - p), vl = (size_t)(stop - eq - 1);
        int k = kl == 5 && !memcmp(p, "after", 5) ? 0 : kl == 4 && !memcmp(p, "wait", 4) ? 1
              : kl == 5 && !memcmp(p, "limit", 5) ? 2 : -1;
        if (k < 0 || seen[k]++) { o->ok = 0; return; }
        int latest = k == 0 && vl == 6 && !memcmp(eq + 1, "latest", 6);
        if (latest)
            o->latest = 1;
        else if (vl < 1 || vl > 19) { o->ok = 0; return; }
        uint64_t v = 0;                 /* 19 digits fit: < 10^19 < 2^64 */
        for (size_t i = 0; !latest && i < vl; i++) {
            char c = eq[1 + i];
            if (c < '0' || c > '9') { o->ok = 0; return; }
            v = v * 10 + (uint64_t)(c - '0');
        }
        if (v > INT64_MAX) { o->ok = 0; return; }
        if (k == 0 && !latest) o->after = (int64_t)v;
        if (k == 1) o->wait = v > 3600 ? 3600 : (int)v;
        if (k == 2) {
            if (v < 1 || v > 1000) { o->ok = 0; return; }
            o->limit = (int)v;
        }
        if (!amp)
            return;
        p = amp + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_input(data, size);
    char *s = fuzz_cstr(data, size);   /* chatd passes a C string */
    struct proto_events_query got = { -1, -1, -1, -1 };
    const char *err = NULL;
    int rc = proto_parse_events_query(s, &got, &err);
    struct q want;
    oracle(s, &want);
    if (rc == 0 && !want.ok) {
        /* FINDINGS.md query-trailing-amp: one trailing '&' is taken, while
         * a leading or a doubled one is refused. */
        size_t n = strlen(s);
        struct q cut;
        if (n > 1 && s[n - 1] == '&') {
            s[n - 1] = '\0';
            oracle(s, &cut);
            s[n - 1] = '&';
            if (cut.ok && cut.after == got.after && cut.wait == got.wait_s && cut.limit == got.limit) {
                FUZZ_CHECK(0, "query \"%.300s\": a trailing '&' was accepted", s);
                free(s);
                return 0;
            }
        }
    }
    FUZZ_CHECK((rc == 0) == want.ok, "query \"%.300s\": expected %s, got %s%s", s,
               want.ok ? "accepted" : "bad_query", rc == 0 ? "accepted" : "bad_query: ",
               rc == 0 ? "" : (err ? err : "(no message)"));
    if (rc == 0)
        FUZZ_CHECK(got.after == want.after && got.wait_s == want.wait && got.limit == want.limit &&
                   got.latest == want.latest,
                   "query \"%.300s\": expected after=%lld wait=%d limit=%d, got %lld %d %d", s,
                   (long long)want.after, want.wait, want.limit, (long long)got.after, got.wait_s,
                   got.limit);
    else
        FUZZ_CHECK(err && *err, "query refused without a message");
    /* NULL is "no query": defaults */
    struct proto_events_query d;
    FUZZ_CHECK(proto_parse_events_query(NULL, &d, &err) == 0 && d.after == 0 && d.wait_s == 0 &&
               d.limit == 100, "NULL query");
    free(s);
    return 0;
}
