/* ws_reasm.h — reassembly of one WebSocket message from the pieces lws
 * hands over (lws does not reassemble: a message comes as frames, and a
 * frame as several reads), with a cap on the size and on the number of
 * pieces. Pure (no lws), so tests/fuzz/fuzz_ws_reassembly.c drives the same
 * code as transport_websocket.c. Once a message is over a limit the rest of
 * it is dropped until the caller resets (it closes the connection, 1009). */
#ifndef CHAT_WS_REASM_H
#define CHAT_WS_REASM_H

#include <stddef.h>

enum ws_reasm_result {
    WS_REASM_MORE = 0,          /* keep feeding */
    WS_REASM_WHOLE = 1,         /* ws_reasm_message() is a whole message */
    WS_REASM_TOO_BIG = -1,      /* over a limit: dropped, and so is the rest */
    WS_REASM_NO_MEMORY = -2,
};

struct ws_reasm;

/* cap: most bytes of a message; max_pieces: most pieces per message. */
struct ws_reasm *ws_reasm_new(size_t cap, unsigned max_pieces);
void ws_reasm_free(struct ws_reasm *r);
/* Adds one piece; final: it ends the message. len may be anything. */
enum ws_reasm_result ws_reasm_add(struct ws_reasm *r, const void *in, size_t len, int final);
/* The message just completed (valid until the next add or reset). */
const char *ws_reasm_message(const struct ws_reasm *r, size_t *len);
/* 1 between messages (the next piece starts one). */
int ws_reasm_idle(const struct ws_reasm *r);
/* Forgets any partial message (a new connection). */
void ws_reasm_reset(struct ws_reasm *r);

#endif
