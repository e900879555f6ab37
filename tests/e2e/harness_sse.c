/* harness_sse.c — the raw Server-Sent Events reader (harness_sse.h): one
 * socket per stream, the answer's head, then the event-stream parsed line
 * by line into messages. */
#include "harness_internal.h"
#include "harness_sse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct h_sse *h_sse_open(int port, const char *token, const char *query,
                         const char *last_event_id, const char *extra_headers)
{
    struct h_sse *e = calloc(1, sizeof *e);
    char req[2048];
    CHECK(e != NULL, "h_sse_open: out of memory");
    e->msgs = json_array();
    int n = snprintf(req, sizeof req,
                     "GET /api/v1/stream%s%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: text/event-stream\r\n"
                     "%s%s%s%s%s%s\r\n",
                     query ? "?" : "", query ? query : "", port,
                     token ? "Authorization: Bearer " : "", token ? token : "", token ? "\r\n" : "",
                     last_event_id ? "Last-Event-ID: " : "", last_event_id ? last_event_id : "",
                     last_event_id ? "\r\n" : "");
    CHECK(n > 0 && (size_t)n < sizeof req, "h_sse_open: request too long");
    if (extra_headers) {    /* before the blank line that ends the head */
        size_t at = (size_t)n - 2, xl = strlen(extra_headers);
        CHECK(at + xl + 2 < sizeof req, "h_sse_open: request too long");
        memcpy(req + at, extra_headers, xl);
        memcpy(req + at + xl, "\r\n", 3);
        n = (int)(at + xl + 2);
    }
    e->fd = h_http_send_request(port, req, (size_t)n);
    if (e->fd < 0) {
        e->closed = 1;
        return e;
    }
    int64_t dl = h_deadline(5000);
    while (!e->status && !e->closed && h_now_ms() < dl)
        h_sse_wait(e, "-", 1, dl > h_now_ms() + 50 ? h_now_ms() + 50 : dl);
    return e;
}

/* One complete message: kept if it has data (as the browser dispatches). */
static void sse_dispatch(struct h_sse *e)
{
    if (e->cur_data.len) {
        char *text = strndup(e->cur_data.data, e->cur_data.len - 1);   /* the last \n */
        json_t *data = json_loads(text, 0, NULL);
        json_t *m = json_pack("{s:s,s:o}", "event", e->cur_event[0] ? e->cur_event : "message",
                              "data", data ? data : json_string(text));
        if (e->cur_has_id)
            json_object_set_new(m, "id", json_string(e->cur_id));
        json_array_append_new(e->msgs, m);
        free(text);
    }
    h_buf_free(&e->cur_data);
    e->cur_event[0] = e->cur_id[0] = '\0';
    e->cur_has_id = 0;
}

static void sse_field(struct h_sse *e, const char *line, size_t len)
{
    const char *colon = memchr(line, ':', len);
    size_t nl = colon ? (size_t)(colon - line) : len;
    const char *v = colon ? colon + 1 : line + len;
    size_t vl = len - (size_t)(v - line);
    if (vl && *v == ' ')
        v++, vl--;
    if (nl == 4 && !memcmp(line, "data", 4)) {
        h_buf_add(&e->cur_data, v, vl);
        h_buf_add(&e->cur_data, "\n", 1);
    } else if (nl == 5 && !memcmp(line, "event", 5)) {
        snprintf(e->cur_event, sizeof e->cur_event, "%.*s", (int)vl, v);
    } else if (nl == 2 && !memcmp(line, "id", 2)) {
        snprintf(e->cur_id, sizeof e->cur_id, "%.*s", (int)vl, v);
        snprintf(e->last_id, sizeof e->last_id, "%.*s", (int)vl, v);
        e->cur_has_id = 1;
    } else if (nl == 5 && !memcmp(line, "retry", 5)) {
        e->retry_ms = atoi(v);
    }
}

/* Parses every complete line in e->in. */
static void sse_parse(struct h_sse *e)
{
    if (!e->body_started) {
        const char *he = h_find_hdr_end(&e->in);
        if (!he)
            return;
        size_t hl = (size_t)(he - e->in.data);
        e->head = strndup(e->in.data, hl);
        sscanf(e->head, "HTTP/1.%*d %d", &e->status);
        h_buf_consume(&e->in, hl);
        e->body_started = 1;
    }
    char *nl;
    while (e->in.len && (nl = memchr(e->in.data, '\n', e->in.len))) {
        size_t len = (size_t)(nl - e->in.data);
        size_t ll = len && e->in.data[len - 1] == '\r' ? len - 1 : len;
        if (ll == 0)
            sse_dispatch(e);
        else if (e->in.data[0] == ':')
            e->comments++;
        else
            sse_field(e, e->in.data, ll);
        h_buf_consume(&e->in, len + 1);
    }
}

/* Reads what comes until cond holds or deadline; pumps the children. */
static void sse_read_until(struct h_sse *e, int (*cond)(struct h_sse *, const void *, size_t),
                           const void *arg, size_t n, int64_t deadline)
{
    while (!cond(e, arg, n) && !e->closed && h_now_ms() < deadline) {
        int rc = h_recv_some(e->fd, &e->in, h_now_ms() + 20 < deadline ? h_now_ms() + 20 : deadline);
        if (rc == 0 || rc == -2)
            e->closed = 1;
        sse_parse(e);
    }
}

static int sse_is_data(const char *name, const char *event)
{
    if (event)
        return strcmp(name, event) == 0;
    return !strcmp(name, "chat") || !strcmp(name, "alert");
}

size_t h_sse_count(const struct h_sse *e, const char *event)
{
    size_t c = 0;
    for (size_t i = 0; i < json_array_size(e->msgs); i++)
        c += sse_is_data(json_string_value(json_object_get(json_array_get(e->msgs, i), "event")), event);
    return c;
}

json_t *h_sse_msg(const struct h_sse *e, const char *event, size_t k)
{
    for (size_t i = 0; i < json_array_size(e->msgs); i++) {
        json_t *m = json_array_get(e->msgs, i);
        if (sse_is_data(json_string_value(json_object_get(m, "event")), event) && k-- == 0)
            return m;
    }
    return NULL;
}

static int have_msgs(struct h_sse *e, const void *event, size_t n)
{
    return (event && !strcmp(event, "-")) ? e->status != 0 : h_sse_count(e, event) >= n;
}

size_t h_sse_wait(struct h_sse *e, const char *event, size_t n, int64_t deadline)
{
    sse_read_until(e, have_msgs, event, n, deadline);
    return h_sse_count(e, event);
}

static int have_comments(struct h_sse *e, const void *arg, size_t n)
{
    (void)arg;
    return e->comments >= (int)n;
}

int h_sse_wait_comments(struct h_sse *e, int n, int64_t deadline)
{
    sse_read_until(e, have_comments, NULL, (size_t)n, deadline);
    return e->comments;
}

static int never(struct h_sse *e, const void *arg, size_t n)
{
    (void)e, (void)arg, (void)n;
    return 0;
}

int h_sse_wait_closed(struct h_sse *e, int64_t deadline)
{
    sse_read_until(e, never, NULL, 0, deadline);
    return e->closed;
}

void h_sse_close(struct h_sse *e)
{
    if (!e)
        return;
    if (e->fd >= 0)
        close(e->fd);
    h_buf_free(&e->in);
    h_buf_free(&e->cur_data);
    json_decref(e->msgs);
    free(e->head);
    free(e);
}
