/* harness_sse.h — a raw Server-Sent Events reader for the end-to-end tests
 * (harness_sse.c): GET /api/v1/stream on a socket of its own, the answer's
 * head, then the stream parsed as the WHATWG rules say (fields `id`,
 * `event`, `data`, `retry`, comments, a message ends at a blank line).
 * Include after harness.h. */
#ifndef E2E_HARNESS_SSE_H
#define E2E_HARNESS_SSE_H

#include "harness.h"

struct h_sse {
    int     fd;
    struct h_buf in;               /* received, not yet parsed */
    int     status;                /* the answer's status, 0 until its head came */
    char   *head;                  /* its status line and headers */
    int     body_started;
    int     closed;                /* the server ended the stream */
    /* Every message so far, oldest first: {"event","id"?,"data"} where data
     * is the parsed JSON object, or the text when it is not JSON. */
    json_t *msgs;
    int     comments;              /* comment lines (heartbeats) */
    int     retry_ms;              /* the last retry: field, 0 if none */
    char    last_id[32];           /* the last id: field, as the browser keeps it */
    /* the message being read */
    char    cur_event[32], cur_id[32];
    int     cur_has_id;
    struct h_buf cur_data;
};

/* Opens the stream: token (Bearer) and last_event_id may be NULL, query
 * (e.g. "after=5") too; extra_headers are more header lines, each ending
 * in \r\n (may be NULL). Waits up to 5 s for the answer's head (status 0
 * if none came). Never NULL. */
struct h_sse *h_sse_open(int port, const char *token, const char *query,
                         const char *last_event_id, const char *extra_headers);
/* Reads until the stream holds n messages named event (NULL: chat or
 * alert), it ended, or deadline. Returns how many such messages it holds. */
size_t h_sse_wait(struct h_sse *e, const char *event, size_t n, int64_t deadline);
/* Reads until at least n comment lines came (or the end, or deadline). */
int  h_sse_wait_comments(struct h_sse *e, int n, int64_t deadline);
/* Reads until the server ends the stream; 1 ended, 0 time-out. */
int  h_sse_wait_closed(struct h_sse *e, int64_t deadline);
/* How many messages named event (NULL: chat or alert) it holds; the i-th
 * of them (borrowed), or NULL. */
size_t  h_sse_count(const struct h_sse *e, const char *event);
json_t *h_sse_msg(const struct h_sse *e, const char *event, size_t i);
void h_sse_close(struct h_sse *e);

#endif
