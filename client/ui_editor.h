/* ui_editor.h — the input line: a wide-character buffer with a cursor,
 * readline-like editing, a history of sent lines (Up/Down, the line being
 * typed is kept while browsing) and horizontal scrolling by display width.
 * Pure: no curses, unit-tested in tests/test_ui_editor.c. */
#ifndef CHAT_UI_EDITOR_H
#define CHAT_UI_EDITOR_H

#include <stddef.h>
#include <wchar.h>

#define UI_EDITOR_MAX_CHARS 4096
#define UI_HISTORY_MAX      500

struct ui_editor {
    wchar_t buf[UI_EDITOR_MAX_CHARS + 1];
    size_t len, cur;             /* characters; 0 <= cur <= len */
    size_t bytes;                /* UTF-8 length of buf */
    size_t max_bytes;            /* a line longer than this is refused */
    size_t scroll;               /* first character shown */
    wchar_t *hist[UI_HISTORY_MAX];   /* oldest first */
    size_t hist_len;
    size_t hist_pos;             /* == hist_len: editing the draft */
    wchar_t *draft;              /* the typed line while browsing history */
};

void ui_editor_init(struct ui_editor *e, size_t max_bytes);
void ui_editor_free(struct ui_editor *e);

/* Inserts a printable character at the cursor; -1 (nothing changes) if it
 * is a control character or the line would pass max_bytes. */
int ui_editor_insert(struct ui_editor *e, wchar_t c);
void ui_editor_backspace(struct ui_editor *e);
void ui_editor_delete(struct ui_editor *e);
void ui_editor_left(struct ui_editor *e);
void ui_editor_right(struct ui_editor *e);
void ui_editor_home(struct ui_editor *e);
void ui_editor_end(struct ui_editor *e);
void ui_editor_kill_to_start(struct ui_editor *e);     /* Ctrl-U */
void ui_editor_kill_to_end(struct ui_editor *e);       /* Ctrl-K */
void ui_editor_kill_word(struct ui_editor *e);         /* Ctrl-W */
void ui_editor_word_left(struct ui_editor *e);         /* Alt-b */
void ui_editor_word_right(struct ui_editor *e);        /* Alt-f */
void ui_editor_history_prev(struct ui_editor *e);      /* Up */
void ui_editor_history_next(struct ui_editor *e);      /* Down */

/* Adds a line of UTF-8 as the newest history entry (the history kept
 * between runs, read at start), unless it repeats the newest. */
void ui_editor_history_push(struct ui_editor *e, const char *line);

/* The line as UTF-8 (malloc'd) and a fresh empty line; the line joins the
 * history unless it repeats the newest entry. NULL if the line is empty (or
 * out of memory). */
char *ui_editor_take(struct ui_editor *e);

/* What shows in width columns: characters [*first, *first + *count) with
 * the cursor at column *cursor_col (always < width); scrolls as little as
 * possible to keep the cursor visible. */
void ui_editor_view(struct ui_editor *e, int width, size_t *first, size_t *count,
                    int *cursor_col);

#endif
