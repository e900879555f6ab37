/* body_buf.c — see body_buf.h. Room is checked as "len > what is left", never
 * as "used + len > cap", so a huge len cannot wrap the sum. */
#include "body_buf.h"

#include <stdlib.h>
#include <string.h>

#define BODY_BUF_FIRST 1024

struct body_buf {
    char *data;
    size_t len, alloc, cap;
};

struct body_buf *body_buf_new(size_t cap)
{
    struct body_buf *b = calloc(1, sizeof *b);
    if (b)
        b->cap = cap;
    return b;
}

void body_buf_free(struct body_buf *b)
{
    if (!b)
        return;
    free(b->data);
    free(b);
}

/* Makes room for need bytes plus the NUL; need <= cap. */
static int reserve(struct body_buf *b, size_t need)
{
    if (need < b->alloc)
        return 0;
    size_t n = b->alloc ? b->alloc : BODY_BUF_FIRST;
    while (n <= need)
        n = n > (size_t)-1 / 2 ? need + 1 : n * 2;
    if (n > b->cap + 1)
        n = b->cap + 1;
    char *p = realloc(b->data, n);
    if (!p)
        return -1;
    b->data = p;
    b->alloc = n;
    return 0;
}

enum body_buf_result body_buf_append(struct body_buf *b, const void *in, size_t len)
{
    if (b->len > b->cap || len > b->cap - b->len)
        return BODY_BUF_TOO_LARGE;
    if (reserve(b, b->len + len) < 0)
        return BODY_BUF_NO_MEMORY;
    if (len)
        memcpy(b->data + b->len, in, len);
    b->len += len;
    b->data[b->len] = '\0';
    return BODY_BUF_OK;
}

const char *body_buf_data(const struct body_buf *b)
{
    return b->data ? b->data : "";
}

size_t body_buf_len(const struct body_buf *b)
{
    return b->len;
}
