/* ws_frame.c — RFC 6455 (5.2) framing of the text frames chatd sends
 * (ws_frame.h): the shortest length encoding, as a strict client demands. */
#include "ws_frame.h"

#include <stdint.h>
#include <string.h>

size_t ws_text_header(unsigned char *h, size_t len)
{
    h[0] = 0x81;                /* FIN, text */
    if (len < 126) {
        h[1] = (unsigned char)len;
        return 2;
    }
    if (len <= 0xffff) {
        h[1] = 126;
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
        return 4;
    }
    h[1] = 127;
    for (int i = 0; i < 8; i++)
        h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

size_t ws_text_frame(unsigned char *dst, const void *text, size_t len)
{
    size_t hl = ws_text_header(dst, len);
    memcpy(dst + hl, text, len);
    return hl + len;
}
