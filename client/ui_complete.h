/* ui_complete.h — Tab completion on the input line, as irssi does it: the
 * word before the cursor is completed from a list of candidates (commands
 * when it starts the line with '/', else user names, the caller's order:
 * most recent speaker first); Tab again cycles through the other matches.
 * A name completed at the start of the line gets ": " (addressing), any
 * other completion a blank. Matching ignores case. Pure: no curses;
 * unit-tested in tests/test_ui_model.c. */
#ifndef CHAT_UI_COMPLETE_H
#define CHAT_UI_COMPLETE_H

#include <stddef.h>
#include <wchar.h>

#include "ui_editor.h"

#define UI_COMPLETE_MAX 64

struct ui_complete {
    int active;                  /* the last key was a completing Tab */
    size_t start, end;           /* the completed text in the line */
    size_t index, count;
    wchar_t *cand[UI_COMPLETE_MAX];
};

/* The word the cursor ends, for the caller to choose candidates: 1 if it is
 * a command (starts the line with '/'), 0 if not, -1 if there is no word. */
int ui_complete_word_kind(const struct ui_editor *e);
/* Tab: completes (or cycles) from words (UTF-8). Returns 0 if the line
 * changed, -1 if nothing matches. */
int ui_complete_tab(struct ui_complete *c, struct ui_editor *e,
                    const char *const *words, size_t n);
/* Any other key: the next Tab starts afresh. */
void ui_complete_reset(struct ui_complete *c);

#endif
