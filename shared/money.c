/* money.c — see money.h. */
#include "money.h"

#include <stdio.h>
#include <string.h>

/* Integer part: digits, optionally grouped by commas in threes. */
static int money_parse_units(const char *s, size_t n, int64_t *units)
{
    int64_t v = 0;
    size_t digits = 0, since_comma = 0;     /* digits: significant ones only */
    int grouped = 0;
    if (n == 0 || s[0] == ',')
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ',') {
            if ((grouped && since_comma != 3) || (!grouped && (since_comma < 1 || since_comma > 3)))
                return -1;
            grouped = 1;
            since_comma = 0;
            continue;
        }
        if (s[i] < '0' || s[i] > '9' || ((v > 0 || s[i] != '0') && ++digits > 9))
            return -1;
        v = v * 10 + (s[i] - '0');
        since_comma++;
    }
    if (grouped && since_comma != 3)
        return -1;
    *units = v;
    return 0;
}

int money_parse(const char *s, int64_t *cents)
{
    if (!s)
        return -1;
    const char *dot = strchr(s, '.');
    size_t int_len = dot ? (size_t)(dot - s) : strlen(s);
    int64_t units, frac = 0;
    if (money_parse_units(s, int_len, &units) < 0)
        return -1;
    if (dot) {
        size_t fl = strlen(dot + 1);
        if (fl < 1 || fl > 2)
            return -1;
        for (size_t i = 0; i < fl; i++) {
            char c = dot[1 + i];
            if (c < '0' || c > '9')
                return -1;
            frac = frac * 10 + (c - '0');
        }
        if (fl == 1)
            frac *= 10;
    }
    int64_t total = units * 100 + frac;
    if (total <= 0 || total > MONEY_MAX_CENTS)
        return -1;
    *cents = total;
    return 0;
}

char *money_format(int64_t cents, char *buf, size_t len)
{
    char digits[32], grouped[48];
    uint64_t abs = cents < 0 ? (uint64_t)0 - (uint64_t)cents : (uint64_t)cents;
    int n = snprintf(digits, sizeof digits, "%llu", (unsigned long long)(abs / 100));
    size_t g = 0;
    for (int i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            grouped[g++] = ',';
        grouped[g++] = digits[i];
    }
    grouped[g] = '\0';
    snprintf(buf, len, "%s%s.%02llu", cents < 0 ? "-" : "", grouped, (unsigned long long)(abs % 100));
    return buf;
}
