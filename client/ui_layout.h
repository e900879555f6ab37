/* ui_layout.h — where each part of the screen goes, as pure arithmetic on
 * the terminal size (unit-tested in tests/test_ui_layout.c).
 *
 * Wide terminals (>= UI_WIDE_COLS) put the alerts pane right of the chat,
 * behind a one-column separator; narrower ones stack it under the chat. The
 * bottom rows are always the status bar, the cost line and the input line;
 * on tiny terminals the panes' titles, then the alerts, then the cost line,
 * then the status bar give way, in that order, and the input line stays. */
#ifndef CHAT_UI_LAYOUT_H
#define CHAT_UI_LAYOUT_H

#define UI_WIDE_COLS   100

struct ui_rect {
    int y, x, h, w;              /* h or w 0: not shown */
};

struct ui_layout {
    int rows, cols;
    int side_by_side;            /* alerts right of the chat */
    struct ui_rect chat_title, chat;
    struct ui_rect alerts_title, alerts;
    struct ui_rect separator;    /* the column between the panes, if side by side */
    struct ui_rect status, stats, input;
};

void ui_layout_compute(int rows, int cols, struct ui_layout *l);
/* The same, with the cost line left out (its row goes to the panes) when
 * show_stats is 0 (/stats). */
void ui_layout_compute_with(int rows, int cols, int show_stats, struct ui_layout *l);

/* A pop-up box over the chat pane (top right, inside the pane) for content
 * lines of at most want_w columns; the box includes a one-cell border on
 * each side. When fewer than UI_POPUP_MIN_SIDE columns of chat would stay
 * left of it, the box takes the pane's whole width (a few letters beside a
 * box are fragments, not text). Returns the width available for content
 * (0 if the pane is too small: no pop-up). */
#define UI_POPUP_MIN_SIDE 12
int ui_layout_popup(const struct ui_layout *l, int want_w, int lines, struct ui_rect *box);

#endif
