/* body_buf.h — a growing byte buffer for an HTTP response body, with a hard
 * cap. Pure (no lws), so the fuzz target tests/fuzz/fuzz_http_body.c drives
 * the same code as http.c. Lengths come from the network (lws has been seen
 * to report a chunk of (size_t)-1 bytes): every check is written so that it
 * cannot wrap around. */
#ifndef CHAT_BODY_BUF_H
#define CHAT_BODY_BUF_H

#include <stddef.h>

enum body_buf_result {
    BODY_BUF_OK = 0,
    BODY_BUF_TOO_LARGE = -1,    /* the body would pass the cap: nothing added */
    BODY_BUF_NO_MEMORY = -2,
};

struct body_buf;

/* cap: the most bytes a body may have (excluding the terminating NUL). */
struct body_buf *body_buf_new(size_t cap);
void body_buf_free(struct body_buf *b);
/* Appends len bytes of in; on failure the buffer is unchanged. */
enum body_buf_result body_buf_append(struct body_buf *b, const void *in, size_t len);
/* The body so far, NUL-terminated ("" if empty), and its length. */
const char *body_buf_data(const struct body_buf *b);
size_t body_buf_len(const struct body_buf *b);

#endif
