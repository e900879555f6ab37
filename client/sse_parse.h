/* sse_parse.h — an event-stream parser with hard bounds (sse_parse.c), for
 * the SSE transport: bytes as they arrive, in pieces of any size, to whole
 * messages (WHATWG HTML "Server-sent events": lines end in CRLF, LF or CR;
 * `data:` lines are joined with LF; `event:`, `id:`, `retry:`; a line
 * starting with ':' is a comment; a blank line ends a message). A line or
 * a message's data over the cap, or a field name or value over its own,
 * is an error: the caller drops the connection. A hostile server cannot
 * make it grow beyond the caps or read out of bounds. */
#ifndef CHAT_SSE_PARSE_H
#define CHAT_SSE_PARSE_H

#include <stddef.h>

#define SSE_EVENT_MAX 31        /* event names we know are shorter */
#define SSE_ID_MAX    31

struct sse_parser;

/* One whole message with data (messages with none are not dispatched, as
 * in browsers). event: "message" when none was named; id: of this
 * message, "" when it had none; data: NUL-terminated, len bytes. */
typedef void (*sse_msg_cb)(void *arg, const char *event, const char *id, const char *data, size_t len);
/* A comment line (a heartbeat). */
typedef void (*sse_comment_cb)(void *arg);

enum sse_result { SSE_OK = 0, SSE_TOO_BIG = -1, SSE_NO_MEMORY = -2 };

/* cap: the longest line and the largest data of one message, in bytes. */
struct sse_parser *sse_parser_new(size_t cap, sse_msg_cb on_msg, sse_comment_cb on_comment, void *arg);
void sse_parser_free(struct sse_parser *p);
/* Forgets any partial line or message (a new connection). */
void sse_parser_reset(struct sse_parser *p);
/* Parses len more bytes; the callbacks run from inside. After an error the
 * parser must be reset before it is fed again. */
enum sse_result sse_parser_feed(struct sse_parser *p, const char *in, size_t len);
/* The last retry: field's value in ms (0: none or invalid). */
long sse_parser_retry_ms(const struct sse_parser *p);

#endif
