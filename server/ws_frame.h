/* ws_frame.h — a WebSocket text frame as chatd sends it (ws_frame.c):
 * final, unmasked (server to client, RFC 6455 5.1), no extension. The feed
 * frames each event once for every subscriber; the WebSocket writer frames
 * control messages and packs frames into one write. */
#ifndef CHAT_WS_FRAME_H
#define CHAT_WS_FRAME_H

#include <stddef.h>

#define WS_HEADER_MAX 10

/* A queued server->client frame (ready, ack, error), whole: header and
 * text, as ws_out.c writes it. */
struct ws_frame {
    struct ws_frame *next;
    size_t len;
    unsigned char buf[];
};

/* The header of an unmasked final text frame of len bytes into h
 * (WS_HEADER_MAX bytes of room); returns its length. */
size_t ws_text_header(unsigned char *h, size_t len);
/* That header, then the text, into dst (len + WS_HEADER_MAX bytes of room);
 * returns the frame's length. */
size_t ws_text_frame(unsigned char *dst, const void *text, size_t len);

#endif
