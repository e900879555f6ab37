/* ui_editor.c — see ui_editor.h. */
#include "ui_editor.h"
#include "ui_text.h"

#include <stdlib.h>
#include <string.h>

void ui_editor_init(struct ui_editor *e, size_t max_bytes)
{
    memset(e, 0, sizeof *e);
    e->max_bytes = max_bytes;
}

void ui_editor_free(struct ui_editor *e)
{
    for (size_t i = 0; i < e->hist_len; i++)
        free(e->hist[i]);
    free(e->draft);
    ui_editor_init(e, e->max_bytes);
}

static size_t char_bytes(wchar_t c)
{
    char tmp[4];
    return ui_utf8_encode(c, tmp);
}

int ui_editor_insert(struct ui_editor *e, wchar_t c)
{
    size_t b = char_bytes(c);
    if (c == L'\n' || ui_text_safe_char(c) != c || b == 0)
        return -1;
    if (e->len >= UI_EDITOR_MAX_CHARS || e->bytes + b > e->max_bytes)
        return -1;
    memmove(&e->buf[e->cur + 1], &e->buf[e->cur], (e->len - e->cur) * sizeof e->buf[0]);
    e->buf[e->cur++] = c;
    e->buf[++e->len] = L'\0';
    e->bytes += b;
    return 0;
}

/* Removes characters [from, to). */
static void erase(struct ui_editor *e, size_t from, size_t to)
{
    if (from >= to)
        return;
    for (size_t i = from; i < to; i++)
        e->bytes -= char_bytes(e->buf[i]);
    memmove(&e->buf[from], &e->buf[to], (e->len - to) * sizeof e->buf[0]);
    e->len -= to - from;
    e->buf[e->len] = L'\0';
    if (e->cur > to)
        e->cur -= to - from;
    else if (e->cur > from)
        e->cur = from;
}

void ui_editor_backspace(struct ui_editor *e)
{
    if (e->cur > 0)
        erase(e, e->cur - 1, e->cur);
}

void ui_editor_delete(struct ui_editor *e)
{
    if (e->cur < e->len)
        erase(e, e->cur, e->cur + 1);
}

void ui_editor_left(struct ui_editor *e)
{
    if (e->cur > 0)
        e->cur--;
}

void ui_editor_right(struct ui_editor *e)
{
    if (e->cur < e->len)
        e->cur++;
}

void ui_editor_home(struct ui_editor *e)
{
    e->cur = 0;
}

void ui_editor_end(struct ui_editor *e)
{
    e->cur = e->len;
}

void ui_editor_kill_to_start(struct ui_editor *e)
{
    erase(e, 0, e->cur);
}

void ui_editor_kill_to_end(struct ui_editor *e)
{
    erase(e, e->cur, e->len);
}

/* Like readline's unix-word-rubout: spaces before the cursor, then the word. */
void ui_editor_kill_word(struct ui_editor *e)
{
    size_t i = e->cur;
    while (i > 0 && e->buf[i - 1] == L' ')
        i--;
    while (i > 0 && e->buf[i - 1] != L' ')
        i--;
    erase(e, i, e->cur);
}

/* Like readline's Alt-b: to the start of this word or the one before. */
void ui_editor_word_left(struct ui_editor *e)
{
    while (e->cur > 0 && e->buf[e->cur - 1] == L' ')
        e->cur--;
    while (e->cur > 0 && e->buf[e->cur - 1] != L' ')
        e->cur--;
}

/* Like readline's Alt-f: to the end of this word or the next one. */
void ui_editor_word_right(struct ui_editor *e)
{
    while (e->cur < e->len && e->buf[e->cur] == L' ')
        e->cur++;
    while (e->cur < e->len && e->buf[e->cur] != L' ')
        e->cur++;
}

/* Replaces the line with s (NULL: empty), cursor at the end. */
static void set_line(struct ui_editor *e, const wchar_t *s)
{
    e->len = e->cur = e->bytes = 0;
    e->buf[0] = L'\0';
    e->scroll = 0;
    for (; s && *s; s++) {
        if (e->len >= UI_EDITOR_MAX_CHARS)
            break;
        e->buf[e->len++] = *s;
        e->bytes += char_bytes(*s);
    }
    e->buf[e->len] = L'\0';
    e->cur = e->len;
}

static wchar_t *wdup(const wchar_t *s, size_t n)
{
    wchar_t *d = malloc((n + 1) * sizeof *d);
    if (d) {
        memcpy(d, s, n * sizeof *d);
        d[n] = L'\0';
    }
    return d;
}

void ui_editor_history_prev(struct ui_editor *e)
{
    if (e->hist_pos == 0)
        return;
    if (e->hist_pos == e->hist_len) {
        free(e->draft);
        e->draft = wdup(e->buf, e->len);
    }
    e->hist_pos--;
    set_line(e, e->hist[e->hist_pos]);
}

void ui_editor_history_next(struct ui_editor *e)
{
    if (e->hist_pos >= e->hist_len)
        return;
    e->hist_pos++;
    if (e->hist_pos == e->hist_len) {
        set_line(e, e->draft);
        free(e->draft);
        e->draft = NULL;
    } else {
        set_line(e, e->hist[e->hist_pos]);
    }
}

static void history_add(struct ui_editor *e, const wchar_t *line, size_t len)
{
    if (e->hist_len && wcscmp(e->hist[e->hist_len - 1], line) == 0)
        return;
    wchar_t *copy = wdup(line, len);
    if (!copy)
        return;
    if (e->hist_len == UI_HISTORY_MAX) {
        free(e->hist[0]);
        memmove(&e->hist[0], &e->hist[1], (UI_HISTORY_MAX - 1) * sizeof e->hist[0]);
        e->hist_len--;
    }
    e->hist[e->hist_len++] = copy;
}

void ui_editor_history_push(struct ui_editor *e, const char *line)
{
    size_t n;
    wchar_t *w = ui_text_from_utf8(line, strlen(line), 0, &n);
    if (w && n > 0 && n <= UI_EDITOR_MAX_CHARS) {
        int browsing = e->hist_pos < e->hist_len;
        history_add(e, w, n);
        if (!browsing)
            e->hist_pos = e->hist_len;
    }
    free(w);
}

char *ui_editor_take(struct ui_editor *e)
{
    if (e->len == 0)
        return NULL;
    char *line = ui_text_to_utf8(e->buf, e->len);
    history_add(e, e->buf, e->len);
    e->hist_pos = e->hist_len;
    free(e->draft);
    e->draft = NULL;
    set_line(e, NULL);
    return line;
}

void ui_editor_view(struct ui_editor *e, int width, size_t *first, size_t *count,
                    int *cursor_col)
{
    if (width < 1)
        width = 1;
    if (e->scroll > e->cur)
        e->scroll = e->cur;
    /* the cursor needs a free column after the characters before it */
    while (e->scroll < e->cur && ui_text_width(&e->buf[e->scroll], e->cur - e->scroll) >= width)
        e->scroll++;
    /* show as much as fits: pull back while the text to the end fits */
    while (e->scroll > 0) {
        int w = ui_text_width(&e->buf[e->scroll - 1], e->len - e->scroll + 1);
        if (w + (e->cur == e->len) > width)
            break;
        e->scroll--;
    }
    *first = e->scroll;
    *count = ui_text_fit(&e->buf[e->scroll], e->len - e->scroll, width);
    *cursor_col = ui_text_width(&e->buf[e->scroll], e->cur - e->scroll);
}
