/* ws_reasm.c — see ws_reasm.h. Room is checked as "len > what is left", so a
 * huge len cannot wrap the sum; the buffer grows by doubling up to the cap. */
#include "ws_reasm.h"

#include <stdlib.h>
#include <string.h>

#define WS_REASM_FIRST 4096

struct ws_reasm {
    char *buf;
    size_t len, alloc, cap;
    unsigned pieces, max_pieces;
    int in_message;              /* a piece came, the final one not yet */
    int dropping;                /* over a limit until reset */
};

struct ws_reasm *ws_reasm_new(size_t cap, unsigned max_pieces)
{
    struct ws_reasm *r = calloc(1, sizeof *r);
    if (r) {
        r->cap = cap;
        r->max_pieces = max_pieces;
    }
    return r;
}

void ws_reasm_free(struct ws_reasm *r)
{
    if (!r)
        return;
    free(r->buf);
    free(r);
}

void ws_reasm_reset(struct ws_reasm *r)
{
    r->len = 0;
    r->pieces = 0;
    r->in_message = 0;
    r->dropping = 0;
}

/* Room for need bytes; need <= cap. */
static int reserve(struct ws_reasm *r, size_t need)
{
    if (need <= r->alloc)
        return 0;
    size_t n = r->alloc ? r->alloc : WS_REASM_FIRST;
    while (n < need)
        n = n > r->cap / 2 ? r->cap : n * 2;
    char *p = realloc(r->buf, n);
    if (!p)
        return -1;
    r->buf = p;
    r->alloc = n;
    return 0;
}

enum ws_reasm_result ws_reasm_add(struct ws_reasm *r, const void *in, size_t len, int final)
{
    if (r->dropping)
        return WS_REASM_TOO_BIG;
    if (!r->in_message) {
        r->in_message = 1;
        r->len = 0;
        r->pieces = 0;
    }
    if (len > r->cap - r->len || ++r->pieces > r->max_pieces) {
        r->dropping = 1;
        return WS_REASM_TOO_BIG;
    }
    if (reserve(r, r->len + len) < 0) {
        r->dropping = 1;
        return WS_REASM_NO_MEMORY;
    }
    if (len)
        memcpy(r->buf + r->len, in, len);
    r->len += len;
    if (!final)
        return WS_REASM_MORE;
    r->in_message = 0;
    return WS_REASM_WHOLE;
}

const char *ws_reasm_message(const struct ws_reasm *r, size_t *len)
{
    *len = r->len;
    return r->buf ? r->buf : "";
}

int ws_reasm_idle(const struct ws_reasm *r)
{
    return !r->in_message;
}
