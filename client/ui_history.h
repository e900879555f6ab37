/* ui_history.h — the input line's history kept between runs (irssi and
 * weechat do): one file per user, $XDG_STATE_HOME/chat/history-<user>
 * (~/.local/state/chat/ without it), the directories made 0700, the file
 * 0600, one line per entry, oldest first. Each line is appended as it is
 * sent, so a crash or a kill loses nothing already typed; the file is
 * rewritten with only the newest `keep` lines when it is opened and when it
 * has grown past twice that. A line that could break the format or a
 * terminal (empty or blank, a newline or any control character, invalid
 * UTF-8, over UI_HISTORY_LINE_MAX bytes) is never written and is skipped
 * when read, so a damaged file costs its bad lines only. Two clients of one
 * user may both append; a rewrite by one may drop the other's newest lines,
 * which history can afford. Only the terminal UI keeps a history (not
 * headless mode), and only lines typed into the input line: the password is
 * read by main.c before the UI starts, and the y/n of a transfer is a key,
 * not a line. No curses: unit-tested in tests/test_ui_history.c. */
#ifndef CHAT_UI_HISTORY_H
#define CHAT_UI_HISTORY_H

#include <stddef.h>

#define UI_HISTORY_LINE_MAX 4096    /* bytes: the longest message */

struct ui_history;

/* The history file of user (malloc'd), its directory created. NULL, with
 * the reason in err, if there is no place for it (no HOME, a directory that
 * cannot be made, a user name that is no file name). */
char *ui_history_path(const char *user, char *err, size_t err_size);

/* Opens (creating it, 0600) the file at path and reads its newest `keep`
 * good lines. NULL, with the reason in err, if it cannot be opened for
 * writing or memory is short. */
struct ui_history *ui_history_open(const char *path, size_t keep, char *err, size_t err_size);
void ui_history_free(struct ui_history *h);

size_t ui_history_len(const struct ui_history *h);
/* Line i, oldest first. */
const char *ui_history_line(const struct ui_history *h, size_t i);

/* Appends line to the history and to the file. 0 when kept, 1 when not
 * (a line never written, or the same as the newest), -1 (reason in err)
 * when the file could not be written. */
int ui_history_add(struct ui_history *h, const char *line, char *err, size_t err_size);

/* Whether line may be kept: non-blank valid UTF-8 of at most
 * UI_HISTORY_LINE_MAX bytes without control characters. */
int ui_history_line_ok(const char *line);

#endif
