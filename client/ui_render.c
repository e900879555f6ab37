/* ui_render.c — see ui_render.h. */
#define NCURSES_WIDECHAR 1
#include "ui_render.h"
#include "ui_format.h"
#include "ui_text.h"

#include <ncursesw/curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    P_OWN = 1, P_NAME0, P_NAME1, P_NAME2, P_NAME3,
    P_NOTICE, P_ERROR, P_INFO,
    P_PENDING, P_PROCESSING, P_COMPLETED, P_FAILED, P_RECEIVED,
    P_ST_OK, P_ST_WAIT, P_ST_BAD, P_TITLE,
};
#define NAME_COLORS 4
#define TIME_W      6            /* "HH:MM " */
#define POPUP_TEXT_W 46
#define SERVER_SHOWN_MAX 60      /* bytes of the server URL in the status bar */

static int use_colors;

int ui_render_init_colors(void)
{
    if (!has_colors() || start_color() == ERR)
        return use_colors = 0;
    use_default_colors();
    static const short fg[][2] = {
        { P_OWN, COLOR_GREEN }, { P_NAME0, COLOR_CYAN }, { P_NAME1, COLOR_MAGENTA },
        { P_NAME2, COLOR_BLUE }, { P_NAME3, COLOR_YELLOW },
        { P_NOTICE, COLOR_YELLOW }, { P_ERROR, COLOR_RED }, { P_INFO, -1 },
        { P_PENDING, COLOR_YELLOW }, { P_PROCESSING, COLOR_YELLOW },
        { P_COMPLETED, COLOR_GREEN }, { P_FAILED, COLOR_RED }, { P_RECEIVED, COLOR_GREEN },
        { P_TITLE, COLOR_CYAN },
    };
    for (size_t i = 0; i < sizeof fg / sizeof fg[0]; i++)
        init_pair(fg[i][0], fg[i][1], -1);
    init_pair(P_ST_OK, COLOR_BLACK, COLOR_GREEN);
    init_pair(P_ST_WAIT, COLOR_BLACK, COLOR_YELLOW);
    init_pair(P_ST_BAD, COLOR_WHITE, COLOR_RED);
    return use_colors = 1;
}

static attr_t pair(int p)
{
    return use_colors ? (attr_t)COLOR_PAIR(p) : 0;
}

/* ---- text primitives ---- */

/* attr_set takes the colour pair from its second argument, not from the
 * attributes: split them, or every colour is lost. */
static void set_attr(attr_t a)
{
    attr_set(a & ~A_COLOR, (short)PAIR_NUMBER(a), NULL);
}

/* Draws what fits of s in maxw columns at (y, x); returns columns used. */
static int put_w(int y, int x, int maxw, const wchar_t *s, size_t n, attr_t a)
{
    if (maxw <= 0 || n == 0)
        return 0;
    size_t k = ui_text_fit(s, n, maxw);
    if (k == 0)
        return 0;
    set_attr(a);
    mvaddnwstr(y, x, s, (int)k);
    set_attr(A_NORMAL);
    return ui_text_width(s, k);
}

/* The same for UTF-8 text we made ourselves (status words, numbers). */
static int put_s(int y, int x, int maxw, const char *s, attr_t a)
{
    size_t n;
    wchar_t *w = ui_text_from_utf8(s, strlen(s), 0, &n);
    int used = w ? put_w(y, x, maxw, w, n, a) : 0;
    free(w);
    return used;
}

static int width_s(const char *s)
{
    size_t n;
    wchar_t *w = ui_text_from_utf8(s, strlen(s), 0, &n);
    int width = w ? ui_text_width(w, n) : 0;
    free(w);
    return width;
}

static void fill(int y, int x, int w, attr_t a)
{
    if (w <= 0)
        return;
    set_attr(a);
    mvhline(y, x, ' ', w);
    set_attr(A_NORMAL);
}

/* ---- lines of the chat and alerts panes ---- */

struct row_geom {
    int prefix_w;                /* time, who and separator on the first row */
    int first_w, indent, cont_w; /* text widths of the first and later rows */
};

static const char *line_mark(const struct ui_line *l)
{
    switch (l->kind) {
    case UI_LINE_NOTICE: return "* ";
    case UI_LINE_ERROR: return "! ";
    case UI_LINE_INFO: return "· ";
    default: return NULL;
    }
}

static void geometry(const struct ui_line *l, int w, struct row_geom *g)
{
    const char *mark = line_mark(l);
    if (mark)
        g->prefix_w = TIME_W + 2;
    else   /* chat: "alice: ", alert: "completed " */
        g->prefix_w = TIME_W + ui_text_width(l->who, l->who_len) + (l->kind == UI_LINE_ALERT ? 1 : 2);
    if (l->kind == UI_LINE_ALERT)   /* alerts: under the label, panes are narrow */
        g->indent = w > 3 * TIME_W ? TIME_W : 0;
    else
        g->indent = g->prefix_w <= w / 2 ? g->prefix_w : (w > 3 * TIME_W ? TIME_W : 0);
    g->first_w = w - g->prefix_w;
    if (g->first_w < 1)
        g->first_w = 1;
    g->cont_w = w - g->indent > 0 ? w - g->indent : 1;
}

int ui_render_line_rows(const struct ui_line *l, int w)
{
    struct row_geom g;
    if (l->kind == UI_LINE_DAY)
        return 1;
    geometry(l, w, &g);
    return ui_wrap_count(l->text, l->text_len, g.first_w, g.cont_w);
}

static attr_t name_attr(const struct ui_line *l)
{
    unsigned h = 5381;
    if (l->kind == UI_LINE_OWN)
        return pair(P_OWN) | A_BOLD;
    for (size_t i = 0; i < l->who_len; i++)
        h = h * 33 + (unsigned)l->who[i];
    return pair(P_NAME0 + (int)(h % NAME_COLORS)) | A_BOLD;
}

static attr_t alert_attr(enum ui_alert_kind k)
{
    switch (k) {
    case UI_ALERT_PENDING: return pair(P_PENDING);
    case UI_ALERT_PROCESSING: return pair(P_PROCESSING);
    case UI_ALERT_COMPLETED: return pair(P_COMPLETED);
    case UI_ALERT_FAILED: return pair(P_FAILED) | A_BOLD;
    case UI_ALERT_RECEIVED: return pair(P_RECEIVED) | A_BOLD;
    default: return A_NORMAL;
    }
}

static attr_t text_attr(const struct ui_line *l)
{
    switch (l->kind) {
    case UI_LINE_OWN: return A_BOLD;
    case UI_LINE_NOTICE: return pair(P_NOTICE);
    case UI_LINE_ERROR: return pair(P_ERROR) | A_BOLD;
    case UI_LINE_INFO: return pair(P_INFO) | A_DIM;
    case UI_LINE_ALERT: return alert_attr(l->alert);
    default: return A_NORMAL;
    }
}

/* Draws row `row` of line l at screen row y inside r. */
static void draw_line_row(const struct ui_line *l, int row, int y, const struct ui_rect *r)
{
    struct row_geom g;
    size_t pos = 0, len = 0;
    if (l->kind == UI_LINE_DAY) {           /* centred, cut if it must be */
        int tw = ui_text_width(l->text, l->text_len);
        int x = tw < r->w ? r->x + (r->w - tw) / 2 : r->x;
        put_w(y, x, r->x + r->w - x, l->text, l->text_len, pair(P_TITLE) | A_DIM);
        return;
    }
    geometry(l, r->w, &g);
    for (int k = 0; k < row; k++)
        pos = ui_wrap_row(l->text, l->text_len, pos, k ? g.cont_w : g.first_w, &len);
    ui_wrap_row(l->text, l->text_len, pos, row ? g.cont_w : g.first_w, &len);
    int x = r->x, end = r->x + r->w;
    if (row == 0) {
        char clock[16];
        const char *mark = line_mark(l);
        x += put_s(y, x, end - x, ui_fmt_clock(l->ts, clock, sizeof clock), A_DIM);
        x += put_s(y, x, end - x, " ", A_NORMAL);
        if (mark) {
            x += put_s(y, x, end - x, mark, text_attr(l) | A_BOLD);
        } else {
            attr_t a = l->kind == UI_LINE_ALERT ? alert_attr(l->alert) | A_BOLD : name_attr(l);
            x += put_w(y, x, end - x, l->who, l->who_len, a);
            x += put_s(y, x, end - x, l->kind == UI_LINE_ALERT ? " " : ": ", A_NORMAL);
        }
        x = r->x + g.prefix_w < end ? r->x + g.prefix_w : end;
    } else {
        x += g.indent;
    }
    put_w(y, x, end - x, l->text + pos, len, text_attr(l));
}

/* Draws the bottom of list in r, scrolled back *scroll rows (clamped); a
 * list shorter than r sits at its bottom if bottom, else at its top. */
static void draw_list(const struct ui_list *list, const struct ui_rect *r, int *scroll, int bottom)
{
    if (!r->h || !r->w)
        return;
    int need = r->h + *scroll, acc = 0;
    size_t i = list->len;
    while (i > 0 && acc < need)
        acc += ui_render_line_rows(&list->v[--i], r->w);
    if (acc < need) {                       /* reached the oldest line */
        *scroll = acc > r->h ? acc - r->h : 0;
        need = r->h + *scroll;
    }
    int skip = acc > need ? acc - need : 0, y = r->y;
    if (bottom && acc < r->h)
        y += r->h - acc;
    for (; i < list->len && y < r->y + r->h; i++) {
        int rows = ui_render_line_rows(&list->v[i], r->w);
        for (int k = skip; k < rows && y < r->y + r->h; k++)
            draw_line_row(&list->v[i], k, y++, r);
        skip = 0;
    }
}

/* ---- frame parts ---- */

static void draw_title(const struct ui_rect *r, const char *left, const char *right)
{
    if (!r->h)
        return;
    set_attr(A_DIM);
    mvhline(r->y, r->x, ACS_HLINE, r->w);
    set_attr(A_NORMAL);
    int x = r->x + 1, end = r->x + r->w;
    x += put_s(r->y, x, end - x - 1, left, pair(P_TITLE) | A_BOLD);
    if (right && *right) {
        int w = width_s(right);
        if (x + w + 2 <= end)
            put_s(r->y, end - w - 1, w, right, pair(P_NOTICE) | A_BOLD);
    }
}

static void draw_status(const struct ui_view *v, const struct ui_rect *r)
{
    char state[64], left[256], right[SERVER_SHOWN_MAX + 64] = "", where[SERVER_SHOWN_MAX + 8] = "";
    if (!r->h)
        return;
    fill(r->y, r->x, r->w, A_REVERSE);
    if (v->logging_in && v->state == CORE_CONNECTING)   /* a failed try says so instead */
        snprintf(state, sizeof state, "logging in");
    else
        ui_fmt_state(v->state, v->retry_ms, state, sizeof state);
    snprintf(left, sizeof left, " %s · %s ·", v->user, v->transport);
    int x = r->x, end = r->x + r->w;
    x += put_s(r->y, x, end - x, left, A_REVERSE | A_BOLD);
    attr_t sa = v->state == CORE_CONNECTED ? pair(P_ST_OK)
              : v->state == CORE_OFFLINE ? pair(P_ST_BAD) : pair(P_ST_WAIT);
    if (!use_colors)
        sa = A_REVERSE;
    char padded[80];
    snprintf(padded, sizeof padded, " %s ", state);
    x += put_s(r->y, x, end - x, padded, sa | A_BOLD);
    if (v->server)
        snprintf(where, sizeof where, "%.*s · ", SERVER_SHOWN_MAX, v->server);
    if (v->typing && *v->typing)
        snprintf(right, sizeof right, "%s… ", v->typing);
    else if (v->quitting)
        snprintf(right, sizeof right, "%sleaving: sending %zu queued… ", where, v->outbox);
    else if (v->outbox)
        snprintf(right, sizeof right, "%ssending %zu… ", where, v->outbox);
    else if (v->scroll > 0)
        snprintf(right, sizeof right, "%s/help · Alt-End: newest ", where);
    else
        snprintf(right, sizeof right, "%s/help · PgUp/PgDn ", where);
    int w = width_s(right);
    if (x + 1 + w <= end)
        put_s(r->y, end - w, w, right, A_REVERSE);
}

static void draw_stats(const struct ui_view *v, const struct ui_rect *r)
{
    char line[256];
    if (!r->h)
        return;
    for (int level = 0; level < UI_FMT_STATS_LEVELS; level++) {
        char s[240];
        ui_fmt_stats(v->stats, level, s, sizeof s);
        snprintf(line, sizeof line, " %s", s);
        if (width_s(line) <= r->w)
            break;
    }
    put_s(r->y, r->x, r->w, line, A_DIM);
}

/* Returns the cursor column. */
static int draw_input(struct ui_view *v, const struct ui_rect *r)
{
    size_t first, count;
    int col;
    if (!r->h)
        return 0;
    int x = r->x + put_s(r->y, r->x, r->w, r->w > 4 ? "> " : "", A_BOLD);
    ui_editor_view(v->editor, r->x + r->w - x, &first, &count, &col);
    put_w(r->y, x, r->x + r->w - x, v->editor->buf + first, count, A_NORMAL);
    return x + col;
}

static void draw_popup(const struct ui_view *v)
{
    const struct ui_line *l = v->popup;
    struct ui_rect b;
    char title[96], more[64] = "";
    snprintf(title, sizeof title, " alert: transfer %s ", ui_alert_label(l->alert));
    if (v->popup_more)
        snprintf(more, sizeof more, "(+%u more in the alerts pane)", v->popup_more);
    int want = ui_text_width(l->text, l->text_len);
    if (want > POPUP_TEXT_W)
        want = POPUP_TEXT_W;
    if (want < width_s(title))
        want = width_s(title);
    if (*more && want < width_s(more))
        want = width_s(more);
    /* lines for the width we will get */
    int cw = ui_layout_popup(v->layout, want, 1, &b);
    if (cw <= 0)
        return;
    int lines = ui_wrap_count(l->text, l->text_len, cw, cw) + (*more ? 1 : 0);
    cw = ui_layout_popup(v->layout, want, lines, &b);
    attr_t frame = alert_attr(l->alert) | A_BOLD;
    const struct ui_rect *pane = &v->layout->chat;
    for (int y = b.y; y < b.y + b.h; y++)   /* the margin right of it too */
        fill(y, b.x, pane->x + pane->w - b.x, A_NORMAL);
    set_attr(frame);
    mvhline(b.y, b.x + 1, ACS_HLINE, b.w - 2);
    mvhline(b.y + b.h - 1, b.x + 1, ACS_HLINE, b.w - 2);
    mvvline(b.y + 1, b.x, ACS_VLINE, b.h - 2);
    mvvline(b.y + 1, b.x + b.w - 1, ACS_VLINE, b.h - 2);
    mvaddch(b.y, b.x, ACS_ULCORNER);
    mvaddch(b.y, b.x + b.w - 1, ACS_URCORNER);
    mvaddch(b.y + b.h - 1, b.x, ACS_LLCORNER);
    mvaddch(b.y + b.h - 1, b.x + b.w - 1, ACS_LRCORNER);
    set_attr(A_NORMAL);
    put_s(b.y, b.x + 2, b.w - 4, title, frame | A_REVERSE);
    size_t pos = 0, len;
    int y = b.y + 1, last = b.y + b.h - 1 - (*more ? 1 : 0);
    while (pos < l->text_len && y < last) {
        size_t next = ui_wrap_row(l->text, l->text_len, pos, cw, &len);
        put_w(y++, b.x + 2, cw, l->text + pos, len, A_BOLD);
        pos = next;
    }
    if (*more && y < b.y + b.h - 1)
        put_s(y, b.x + 2, cw, more, A_DIM);
}

void ui_render(struct ui_view *v)
{
    const struct ui_layout *L = v->layout;
    char title[600], right[160] = "";
    erase();
    if (L->chat_title.h) {
        /* the room bar, and the room shown with its topic when it fits */
        snprintf(title, sizeof title, " %s ", v->roomlist_bar ? v->roomlist_bar : "");
        const char *topic = v->topic ? v->topic : "";
        size_t tn = strlen(topic);
        if (tn > 40)            /* cut at a character's start */
            for (tn = 40; tn > 0 && ((unsigned char)topic[tn] & 0xc0) == 0x80; tn--)
                ;
        char online[32] = "";
        if (v->online >= 0 && !v->direct)
            snprintf(online, sizeof online, " · %lld online", v->online);
        snprintf(right, sizeof right, " %s%s%s%s%.*s%s ", v->direct ? "@" : "#", v->room, online,
                 *topic ? ": " : "", (int)tn, topic, tn < strlen(topic) ? "…" : "");
        if (v->scroll > 0 && v->new_below)
            snprintf(right, sizeof right, " scrolled back · %llu new below · Alt-End ",
                     (unsigned long long)v->new_below);
        else if (v->scroll > 0)
            snprintf(right, sizeof right, " scrolled back · PgDn/Alt-End ");
        draw_title(&L->chat_title, title, right);
    }
    draw_list(&v->model->chat, &L->chat, &v->scroll, 1);
    if (L->alerts.h && v->model->alerts.len == 0)
        put_s(L->alerts.y, L->alerts.x + 1, L->alerts.w - 1,
              "no alerts yet (try /transfer USER AMOUNT)", A_DIM);
    draw_list(&v->model->alerts, &L->alerts, &v->alerts_scroll, 0);
    if (L->alerts_title.h) {    /* after the list: the scroll is clamped */
        snprintf(title, sizeof title, " alerts (%zu) ", v->model->alerts.len);
        draw_title(&L->alerts_title, title, v->alerts_scroll ? " older · Alt-PgDn " : NULL);
    }
    if (L->separator.h) {
        set_attr(A_DIM);
        mvvline(L->separator.y, L->separator.x, ACS_VLINE, L->separator.h);
        if (L->chat_title.h)
            mvaddch(L->separator.y, L->separator.x, ACS_TTEE);
        set_attr(A_NORMAL);
    }
    draw_status(v, &L->status);
    draw_stats(v, &L->stats);
    if (v->popup)
        draw_popup(v);
    int cx = draw_input(v, &L->input);
    if (L->input.h)
        move(L->input.y, cx < L->cols ? cx : L->cols - 1);
    refresh();
}
