/* utf8.c — strict UTF-8 validation (RFC 3629), proto_utf8_valid: chat bodies,
 * WebSocket text messages and close reasons, and the headless client's input. */
#include "protocol.h"

/* Length of the sequence started by lead byte c, or 0 if c cannot start one. */
static int utf8_seq_len(unsigned char c)
{
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) return 3;
    if (c >= 0xF0 && c <= 0xF4) return 4;
    return 0;
}

/* The second byte's allowed range excludes overlongs, surrogates and > U+10FFFF. */
static int utf8_second_ok(unsigned char lead, unsigned char c)
{
    switch (lead) {
    case 0xE0: return c >= 0xA0 && c <= 0xBF;
    case 0xED: return c >= 0x80 && c <= 0x9F;
    case 0xF0: return c >= 0x90 && c <= 0xBF;
    case 0xF4: return c >= 0x80 && c <= 0x8F;
    default:   return c >= 0x80 && c <= 0xBF;
    }
}

int proto_utf8_valid(const char *buf, size_t len)
{
    const unsigned char *s = (const unsigned char *)buf;
    size_t i = 0;
    while (i < len) {
        int n = utf8_seq_len(s[i]);
        if (n == 0 || (size_t)n > len - i)
            return 0;
        if (n > 1 && !utf8_second_ok(s[i], s[i + 1]))
            return 0;
        for (int k = 2; k < n; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
        i += (size_t)n;
    }
    return 1;
}
