/* ws_beat.h — the heartbeat of an authenticated WebSocket (ws_beat.c): a
 * ping when it has been quiet for --heartbeat-s, a hang-up when the ping
 * goes unanswered as long again. */
#ifndef CHAT_WS_BEAT_H
#define CHAT_WS_BEAT_H

#include "server.h"

void ws_beat_authed(struct session *s);    /* heartbeat from now (after the hello) */
void ws_beat_heard(struct session *s);     /* a frame or a pong came in */
void ws_beat_closed(struct session *s);

#endif
