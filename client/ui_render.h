/* ui_render.h — draws one frame on stdscr from the UI's state: the chat
 * pane (bottom-aligned, scrolled back by a number of rows), the alerts
 * pane, the status bar, the cost line, the input line and the pop-up. All
 * text comes from the model and the editor, already made safe (ui_text.h),
 * and is placed by display width. ncurses does the diffing. */
#ifndef CHAT_UI_RENDER_H
#define CHAT_UI_RENDER_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "ui_editor.h"
#include "ui_layout.h"
#include "ui_model.h"

struct ui_view {
    const struct ui_layout *layout;
    const struct ui_model *model;
    struct ui_editor *editor;
    const char *user, *transport, *room;
    const char *server;          /* shown on the right if not NULL */
    int direct;                  /* room is a DM: room is the other user */
    const char *topic;           /* of the room shown, "" if none */
    long long online;            /* of its members online (a public room), -1: not shown */
    const char *roomlist_bar;       /* "[1:general] 2:rust(3) 3:@bob*" (roomlist.h) */
    const char *typing;          /* "bob is typing", "" if nobody is */
    int logging_in;              /* no transport yet */
    enum core_state state;
    int64_t retry_ms;            /* CORE_RECONNECTING: time left */
    int quitting;
    size_t outbox;               /* messages not yet acknowledged */
    const struct core_stats *stats;
    int scroll;                  /* chat rows scrolled back; clamped here */
    int alerts_scroll;           /* alerts rows scrolled back; clamped here */
    uint64_t new_below;          /* lines added since scrolling back */
    const struct ui_line *popup; /* alert shown in the pop-up, or NULL */
    unsigned popup_more;         /* alerts that came with it */
    int colors;
};

/* Sets up colour pairs (after start_color); returns 1 if colours are used. */
int ui_render_init_colors(void);
/* Rows a line of the chat pane takes at width w. */
int ui_render_line_rows(const struct ui_line *l, int w);
/* Draws the frame and refreshes the terminal. */
void ui_render(struct ui_view *v);

#endif
