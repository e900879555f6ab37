/* ws_out.h — the WebSocket writer (ws_out.c): one write per socket per loop
 * turn of whole frames, its queued control frames, then its events. */
#ifndef CHAT_WS_OUT_H
#define CHAT_WS_OUT_H

#include "server.h"

/* Control frames queued before reading pauses (ws_api.c pauses, the writer
 * resumes once half are written). */
#define WS_MAX_QUEUED 256

struct ws_out *ws_out_new(void);
void ws_out_free(struct ws_out *p);     /* after ws_out_stop and the loop's close */
void ws_out_start(struct server *srv);
void ws_out_stop(struct server *srv);
/* s has something to send: written at the end of this loop turn. */
void ws_out_schedule(struct session *s);
void ws_out_unschedule(struct session *s);   /* s is closing */
/* Writes every scheduled session (main.c's turn end, after the group commit). */
void ws_out_turn_end(struct server *srv);
/* From WRITEABLE: writes what s has; -1 if the connection must close. */
int ws_out_on_writeable(struct session *s);

#endif
