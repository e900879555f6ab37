/* fuzz_money.c — shared/money.c. money_parse against a grammar oracle from
 * money.h (digits, or 1-3 digits then groups of ",ddd"; optionally '.' and
 * one or two digits; more than 0 and at most 1,000,000.00; nothing else),
 * then the round trip: money_format of what was parsed parses back to the
 * same cents. money_format of any int64 matches an independent formatter.
 * Input: first byte even — the rest is the amount text; odd — the next 8
 * bytes are an int64 for money_format. */
#include "fuzz.h"
#include "money.h"

#include <inttypes.h>

static int isdig(char c) { return c >= '0' && c <= '9'; }

/* 1 and *cents, or 0. */
static int oracle_parse(const char *s, int64_t *cents)
{
    size_t n = strlen(s), i = 0;
    int64_t units = 0, frac = 0;
    size_t lead = 0;
    while (i < n && isdig(s[i])) {
        units = units < 100000000000LL ? units * 10 + (s[i] - '0') : units;
        i++;
        lead++;
    }
    if (lead == 0)
        return 0;
    if (i < n && s[i] == ',') {
        if (lead > 3)
            return 0;
        while (i < n && s[i] == ',') {
            if (n - i < 4 || !isdig(s[i + 1]) || !isdig(s[i + 2]) || !isdig(s[i + 3]))
                return 0;
            for (int k = 1; k <= 3; k++)
                units = units < 100000000000LL ? units * 10 + (s[i + k] - '0') : units;
            i += 4;
            if (i < n && isdig(s[i]))
                return 0;                       /* a group of more than three */
        }
    }
    if (i < n) {
        if (s[i] != '.')
            return 0;
        size_t fd = n - i - 1;
        if (fd < 1 || fd > 2 || !isdig(s[i + 1]) || (fd == 2 && !isdig(s[i + 2])))
            return 0;
        frac = (s[i + 1] - '0') * 10 + (fd == 2 ? s[i + 2] - '0' : 0);
    }
    if (units > 1000000)
        return 0;
    int64_t total = units * 100 + frac;
    if (total <= 0 || total > MONEY_MAX_CENTS)
        return 0;
    *cents = total;
    return 1;
}

static void oracle_format(int64_t cents, char *out, size_t len)
{
    uint64_t a = cents < 0 ? (uint64_t)0 - (uint64_t)cents : (uint64_t)cents;
    char digits[32], rev[64];
    int nd = snprintf(digits, sizeof digits, "%" PRIu64, a / 100);
    size_t r = 0;
    for (int i = nd - 1, k = 0; i >= 0; i--, k++) {
        if (k && k % 3 == 0)
            rev[r++] = ',';
        rev[r++] = digits[i];
    }
    char units[64];
    for (size_t i = 0; i < r; i++)
        units[i] = rev[r - 1 - i];
    units[r] = '\0';
    snprintf(out, len, "%s%s.%02u", cents < 0 ? "-" : "", units, (unsigned)(a % 100));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_input(data, size);
    if (size == 0)
        return 0;
    char buf[64], want[64];
    if (data[0] & 1) {
        int64_t v = 0;
        for (size_t i = 1; i < size && i <= 8; i++)
            v = (int64_t)((uint64_t)v << 8 | data[i]);
        char *r = money_format(v, buf, sizeof buf);
        oracle_format(v, want, sizeof want);
        FUZZ_CHECK(r == buf && strcmp(buf, want) == 0, "money_format(%" PRId64 ") = \"%s\", expected \"%s\"",
                   v, buf, want);
        /* a small buffer is cut, never overrun */
        char small[6];
        money_format(v, small, sizeof small);
        FUZZ_CHECK(strlen(small) < sizeof small, "money_format overran a small buffer");
        if (v > 0 && v <= MONEY_MAX_CENTS) {
            int64_t back = -1;
            FUZZ_CHECK(money_parse(buf, &back) == 0 && back == v,
                       "money_parse(money_format(%" PRId64 ") = \"%s\") = %" PRId64, v, buf, back);
        }
        return 0;
    }
    char *s = fuzz_cstr(data + 1, size - 1);
    int64_t got = -7, exp = -7;
    int rc = money_parse(s, &got);
    int ok = oracle_parse(s, &exp);
    FUZZ_CHECK((rc == 0) == ok, "money_parse(\"%.100s\"): expected %s%s, got %s", s,
               ok ? "accepted, cents " : "refused", ok ? (snprintf(want, sizeof want, "%" PRId64, exp), want) : "",
               rc == 0 ? (snprintf(buf, sizeof buf, "accepted, cents %" PRId64, got), buf) : "refused");
    if (rc == 0) {
        FUZZ_CHECK(got == exp, "money_parse(\"%.100s\") = %" PRId64 " cents, expected %" PRId64, s, got, exp);
        money_format(got, buf, sizeof buf);
        int64_t back = -1;
        FUZZ_CHECK(money_parse(buf, &back) == 0 && back == got,
                   "round trip: \"%s\" -> %" PRId64 " -> \"%s\" -> %" PRId64, s, got, buf, back);
    } else {
        FUZZ_CHECK(got == -7, "refused but wrote *cents");
    }
    free(s);
    return 0;
}
