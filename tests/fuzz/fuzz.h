/* fuzz.h — shared helpers for the libFuzzer targets in tests/fuzz/.
 *
 * Every target checks the code under test against an oracle written here
 * independently from the spec (shared/PROTOCOL.md and the headers in shared/), not copied
 * from the implementation. A disagreement or a broken invariant prints
 * "FUZZ FINDING: what, expected, got" with the input in hex and aborts, so
 * libFuzzer saves the input as a crash artifact. */
#ifndef FUZZ_H
#define FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t *fuzz_in;
static size_t fuzz_in_len;

static inline void fuzz_input(const uint8_t *d, size_t n)
{
    fuzz_in = d;
    fuzz_in_len = n;
}

static inline void fuzz_hexdump(const void *p, size_t n)
{
    const unsigned char *s = p;
    fprintf(stderr, "input (%zu bytes):", n);
    for (size_t i = 0; i < n && i < 4096; i++)
        fprintf(stderr, "%s%02x", i % 32 ? " " : "\n  ", s[i]);
    fprintf(stderr, "\ninput as C string: \"");
    for (size_t i = 0; i < n && i < 4096; i++) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\')
            fprintf(stderr, "\\%c", c);
        else if (c >= 0x20 && c < 0x7f)
            fputc(c, stderr);
        else
            fprintf(stderr, "\\x%02x\"\"", c);
    }
    fprintf(stderr, "\"\n");
}

#define FUZZ_CHECK(cond, ...)                                                 \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "FUZZ FINDING (%s:%d): ", __FILE__, __LINE__);    \
            fprintf(stderr, __VA_ARGS__);                                     \
            fputc('\n', stderr);                                              \
            fuzz_hexdump(fuzz_in, fuzz_in_len);                               \
            abort();                                                          \
        }                                                                     \
    } while (0)

/* A disagreement already reported (tests/fuzz/FINDINGS.md names each id)
 * and not yet decided on: printed once per run with the input, not fatal, so
 * that the fuzzers keep looking for new ones and `make check` stays usable.
 * FUZZ_STRICT=1 in the environment makes it fatal like FUZZ_CHECK (to check
 * a fix: the reproducer in FINDINGS.md must then pass). */
#define FUZZ_KNOWN(id, cond, ...)                                             \
    do {                                                                      \
        if (!(cond)) {                                                        \
            static int said_;                                                 \
            const char *strict_ = getenv("FUZZ_STRICT");                      \
            if (strict_ && *strict_ == '1')                                   \
                FUZZ_CHECK(cond, "[known " id "] " __VA_ARGS__);              \
            if (!said_++) {                                                   \
                fprintf(stderr, "FUZZ KNOWN FINDING " id " (not fatal; see "  \
                        "tests/fuzz/FINDINGS.md): ");                         \
                fprintf(stderr, __VA_ARGS__);                                 \
                fputc('\n', stderr);                                          \
                fuzz_hexdump(fuzz_in, fuzz_in_len);                           \
            }                                                                 \
        }                                                                     \
    } while (0)

/* NUL-terminated copy of d[0..n) (may contain earlier NULs); free(). */
static inline char *fuzz_cstr(const uint8_t *d, size_t n)
{
    char *s = malloc(n + 1);
    if (!s)
        abort();
    if (n)
        memcpy(s, d, n);
    s[n] = '\0';
    return s;
}

/* ---- oracles ------------------------------------------------------------ */

/* RFC 3629 UTF-8, decoded code point by code point: the lead byte gives the
 * length, every continuation byte must be 10xxxxxx, and the decoded value
 * must need that length (no overlongs), not be a surrogate, and be at most
 * U+10FFFF. */
static inline int oracle_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) { i++; continue; }
        else if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
        else return 0;
        if (n - i < len)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

/* User and room names: 1-32 bytes of a-z 0-9 _ - (PROTOCOL.md). */
static inline int oracle_name(const char *s, size_t n)
{
    if (n < 1 || n > 32)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789_-", s[i]) || s[i] == '\0')
            return 0;
    return 1;
}

/* Passwords: 8-128 bytes. */
static inline int oracle_password(const char *s, size_t n)
{
    return n >= 8 && n <= 128 && !memchr(s, '\0', n);
}

/* Bodies: 1-4096 bytes of valid UTF-8 (JSON strings here never hold NUL). */
static inline int oracle_body(const char *s, size_t n)
{
    return n >= 1 && n <= 4096 && !memchr(s, '\0', n) &&
           oracle_utf8((const unsigned char *)s, n);
}

/* client_msg_id: 1-64 printable ASCII characters, no space. */
static inline int oracle_cmid(const char *s, size_t n)
{
    if (n < 1 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

/* ---- building JSON text from fuzzer bytes ------------------------------- */

struct fuzz_text { char *p; size_t len, cap; };

static inline void ft_add(struct fuzz_text *t, const void *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        while (cap < t->len + n + 1)
            cap *= 2;
        t->p = realloc(t->p, cap);
        if (!t->p)
            abort();
        t->cap = cap;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
}

static inline void ft_str(struct fuzz_text *t, const char *s) { ft_add(t, s, strlen(s)); }

/* A JSON string literal of the raw bytes: quotes, backslashes and control
 * characters escaped (NUL as \u0000), every other byte copied as is — so
 * invalid UTF-8 reaches the parser. */
static inline void ft_json_string(struct fuzz_text *t, const uint8_t *s, size_t n)
{
    ft_add(t, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        char esc[8];
        if (s[i] == '"' || s[i] == '\\') {
            esc[0] = '\\';
            esc[1] = (char)s[i];
            ft_add(t, esc, 2);
        } else if (s[i] < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", s[i]);
            ft_add(t, esc, 6);
        } else {
            ft_add(t, &s[i], 1);
        }
    }
    ft_add(t, "\"", 1);
}

/* Splits the input into fields at 0xFF bytes (never part of UTF-8). */
struct fuzz_fields {
    const uint8_t *f[16];
    size_t n[16];
    int count;
};

static inline void fuzz_split(const uint8_t *d, size_t n, struct fuzz_fields *out)
{
    out->count = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n && out->count < 16; i++) {
        if (i == n || d[i] == 0xFF) {
            out->f[out->count] = d + start;
            out->n[out->count] = i - start;
            out->count++;
            start = i + 1;
        }
    }
}

/* Builds a JSON object text from fuzzer bytes: field 0 is a plan, one byte
 * per member: key keys[b & 7], value kind (b >> 3) & 7:
 *   0 the next field as a string   1 null        2 an integer (from the next
 *   field's bytes, may be negative) 3 true       4 [the next field as a string]
 *   5 {}                            6 the next field repeated up to 300 times
 *   7 a literal: "hello", "send", "general", "" (by the next field's length)
 * Repeated keys, invalid UTF-8 and escaped NULs all reach the parser. The
 * plan's top bit on the first byte leaves out the closing brace. */
static inline void fuzz_build_object(const uint8_t *d, size_t n, const char *const keys[8],
                                     struct fuzz_text *t)
{
    struct fuzz_fields ff;
    fuzz_split(d, n, &ff);
    const uint8_t *plan = ff.f[0];
    size_t plen = ff.n[0] > 12 ? 12 : ff.n[0];
    int next = 1;
    ft_str(t, "{");
    for (size_t m = 0; m < plen; m++) {
        const uint8_t *f = next < ff.count ? ff.f[next] : (const uint8_t *)"";
        size_t fl = next < ff.count ? ff.n[next] : 0;
        unsigned kind = (plan[m] >> 3) & 7;
        if (m)
            ft_str(t, ",");
        ft_json_string(t, (const uint8_t *)keys[plan[m] & 7], strlen(keys[plan[m] & 7]));
        ft_str(t, ":");
        switch (kind) {
        case 0: ft_json_string(t, f, fl); next++; break;
        case 1: ft_str(t, "null"); break;
        case 2: {
            long long v = 0;
            for (size_t i = 0; i < fl && i < 8; i++)
                v = (long long)((unsigned long long)v << 8 | f[i]);
            char num[32];
            snprintf(num, sizeof num, "%lld", v);
            ft_str(t, num);
            next++;
            break;
        }
        case 3: ft_str(t, "true"); break;
        case 4: ft_str(t, "["); ft_json_string(t, f, fl); ft_str(t, "]"); next++; break;
        case 5: ft_str(t, "{}"); break;
        case 6: {
            struct fuzz_text rep = { 0 };
            size_t times = fl ? 1 + (f[0] % 255) + (fl > 1 ? f[1] % 46 : 0) : 1;
            for (size_t i = 0; i < times; i++)
                ft_add(&rep, f, fl);
            ft_json_string(t, rep.len ? (const uint8_t *)rep.p : (const uint8_t *)"", rep.len);
            free(rep.p);
            next++;
            break;
        }
        default: {
            static const char *const lit[] = { "hello", "send", "general", "" };
            const char *l = lit[fl % 4];
            ft_json_string(t, (const uint8_t *)l, strlen(l));
            next++;
            break;
        }
        }
    }
    if (!(plen && (plan[0] & 0x80)))
        ft_str(t, "}");
}

#endif
