/* ui_layout.c — see ui_layout.h. */
#include "ui_layout.h"

#include <string.h>

static struct ui_rect rect(int y, int x, int h, int w)
{
    struct ui_rect r = { y, x, h > 0 ? h : 0, w > 0 ? w : 0 };
    if (!r.h || !r.w)
        r.h = r.w = 0;
    return r;
}

static int clamp(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

void ui_layout_compute(int rows, int cols, struct ui_layout *l)
{
    ui_layout_compute_with(rows, cols, 1, l);
}

void ui_layout_compute_with(int rows, int cols, int show_stats, struct ui_layout *l)
{
    memset(l, 0, sizeof *l);
    if (rows < 1 || cols < 1)
        return;
    l->rows = rows;
    l->cols = cols;

    /* bottom rows, from the bottom up: input, cost line, status bar */
    int stats = show_stats && rows >= 5;
    int bottom = 1 + (rows >= 3) + stats;
    l->input = rect(rows - 1, 0, 1, cols);
    if (stats)
        l->stats = rect(rows - 2, 0, 1, cols);
    if (rows >= 3)
        l->status = rect(rows - bottom, 0, 1, cols);
    else if (rows == 2)
        l->status = rect(0, 0, 1, cols);

    int top = rows - bottom;               /* rows for the panes */
    if (rows < 3 || top < 1)
        return;
    int titles = top >= 6;

    if (cols >= UI_WIDE_COLS && top >= 3) {
        int aw = clamp(cols * 35 / 100, 30, 60);
        int cw = cols - aw - 1;
        l->side_by_side = 1;
        l->chat_title = rect(0, 0, titles, cw);
        l->chat = rect(titles, 0, top - titles, cw);
        l->separator = rect(0, cw, top, 1);
        l->alerts_title = rect(0, cw + 1, titles, aw);
        l->alerts = rect(titles, cw + 1, top - titles, aw);
        return;
    }
    /* stacked: the alerts band takes a quarter, at most 6 rows with its title */
    int band = top >= 16 ? clamp(top / 4, 4, 6) : top >= 10 ? 3 : 0;
    int chat_h = top - band;
    l->chat_title = rect(0, 0, titles, cols);
    l->chat = rect(titles, 0, chat_h - titles, cols);
    if (band) {
        l->alerts_title = rect(chat_h, 0, 1, cols);
        l->alerts = rect(chat_h + 1, 0, band - 1, cols);
    }
}

int ui_layout_popup(const struct ui_layout *l, int want_w, int lines, struct ui_rect *box)
{
    const struct ui_rect *c = &l->chat;
    memset(box, 0, sizeof *box);
    if (c->w < 16 || c->h < 3 || lines < 1 || want_w < 1)
        return 0;
    int w = want_w + 4;                     /* border and one space each side */
    int maxw = c->w - 2 < 60 ? c->w - 2 : 60;
    if (w > maxw)
        w = maxw;
    int h = lines + 2;
    if (h > c->h)
        h = c->h;
    int x = c->x + c->w - w - 1;
    if (x - c->x < UI_POPUP_MIN_SIDE) {     /* a sliver of chat beside it: take it all */
        x = c->x;
        w = c->w;
    }
    *box = rect(c->y, x, h, w);
    return w - 4;
}
