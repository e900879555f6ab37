/* sse_parse.c — the bounded event-stream parser (sse_parse.h). One line
 * buffer and one data buffer, each at most cap bytes, allocated once at
 * first need; everything else is fixed-size. */
#include "sse_parse.h"

#include <stdlib.h>
#include <string.h>

struct sse_parser {
    size_t cap;
    sse_msg_cb on_msg;
    sse_comment_cb on_comment;
    void *arg;
    char *line;                 /* the line coming in (cap + 1) */
    size_t line_len;
    int after_cr;               /* the last line ended in CR: skip one LF */
    char *data;                 /* the message's data so far (cap + 1) */
    size_t data_len;
    int has_data;
    char event[SSE_EVENT_MAX + 1];
    char id[SSE_ID_MAX + 1];
    long retry_ms;
};

struct sse_parser *sse_parser_new(size_t cap, sse_msg_cb on_msg, sse_comment_cb on_comment, void *arg)
{
    struct sse_parser *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->cap = cap;
    p->on_msg = on_msg;
    p->on_comment = on_comment;
    p->arg = arg;
    p->line = malloc(cap + 1);
    p->data = malloc(cap + 1);
    if (!p->line || !p->data) {
        sse_parser_free(p);
        return NULL;
    }
    return p;
}

void sse_parser_free(struct sse_parser *p)
{
    if (!p)
        return;
    free(p->line);
    free(p->data);
    free(p);
}

static void message_reset(struct sse_parser *p)
{
    p->data_len = 0;
    p->has_data = 0;
    p->event[0] = '\0';
    p->id[0] = '\0';
}

void sse_parser_reset(struct sse_parser *p)
{
    p->line_len = 0;
    p->after_cr = 0;
    message_reset(p);
}

long sse_parser_retry_ms(const struct sse_parser *p)
{
    return p->retry_ms;
}

static void dispatch(struct sse_parser *p)
{
    if (p->has_data) {
        p->data[p->data_len] = '\0';
        p->on_msg(p->arg, p->event[0] ? p->event : "message", p->id, p->data, p->data_len);
    }
    message_reset(p);
}

/* Copies a field value into a fixed buffer: -1 if it does not fit. */
static int copy_value(char *dst, size_t size, const char *v, size_t n)
{
    if (n >= size || memchr(v, '\0', n))
        return -1;
    memcpy(dst, v, n);
    dst[n] = '\0';
    return 0;
}

static long retry_value(const char *v, size_t n)
{
    long ms = 0;
    if (n == 0 || n > 9)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return 0;
        ms = ms * 10 + (v[i] - '0');
    }
    return ms;
}

/* One complete line (without its end). */
static enum sse_result field(struct sse_parser *p, const char *line, size_t len)
{
    if (len == 0) {
        dispatch(p);
        return SSE_OK;
    }
    if (line[0] == ':') {
        if (p->on_comment)
            p->on_comment(p->arg);
        return SSE_OK;
    }
    const char *colon = memchr(line, ':', len);
    size_t nl = colon ? (size_t)(colon - line) : len;
    const char *v = colon ? colon + 1 : line + len;
    size_t vl = len - (size_t)(v - line);
    if (vl && *v == ' ')
        v++, vl--;
    if (nl == 4 && !memcmp(line, "data", 4)) {
        size_t need = vl + (p->has_data ? 1 : 0);
        if (need > p->cap - p->data_len)
            return SSE_TOO_BIG;
        if (p->has_data)
            p->data[p->data_len++] = '\n';
        memcpy(p->data + p->data_len, v, vl);
        p->data_len += vl;
        p->has_data = 1;
    } else if (nl == 5 && !memcmp(line, "event", 5)) {
        if (copy_value(p->event, sizeof p->event, v, vl) < 0)
            return SSE_TOO_BIG;
    } else if (nl == 2 && !memcmp(line, "id", 2)) {
        if (copy_value(p->id, sizeof p->id, v, vl) < 0)
            return SSE_TOO_BIG;
    } else if (nl == 5 && !memcmp(line, "retry", 5)) {
        long ms = retry_value(v, vl);
        if (ms)
            p->retry_ms = ms;
    }                           /* other fields are ignored, as the spec says */
    return SSE_OK;
}

enum sse_result sse_parser_feed(struct sse_parser *p, const char *in, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (p->after_cr) {
            p->after_cr = 0;
            if (c == '\n')
                continue;
        }
        if (c == '\r' || c == '\n') {
            p->after_cr = c == '\r';
            enum sse_result r = field(p, p->line, p->line_len);
            p->line_len = 0;
            if (r != SSE_OK)
                return r;
            continue;
        }
        if (p->line_len >= p->cap)
            return SSE_TOO_BIG;
        p->line[p->line_len++] = c;
    }
    return SSE_OK;
}
