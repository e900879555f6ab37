/* tmux.h — driving real terminal programs for the UI tests: one private tmux
 * server per test (tmux -L chat-ui-test-PID-N -f /dev/null with TMUX_TMPDIR
 * a fresh temp dir, so a user's own tmux is never touched and no socket is
 * left behind), sessions of a given size running a
 * shell command, keys sent, the screen captured, and waits that poll
 * capture-pane against a deadline (no fixed sleeps). While waiting the e2e
 * harness's children keep being drained (h_pump). tmux_cleanup() kills the
 * server; it also runs at exit and on SIGINT/SIGTERM/SIGHUP. */
#ifndef UI_TMUX_H
#define UI_TMUX_H

#include <stddef.h>
#include <stdint.h>

/* Starts using a fresh tmux server name in a fresh temp dir (the server
 * starts with the first session); its programs get XDG_STATE_HOME in that
 * dir (getenv("XDG_STATE_HOME") says where), never the user's own. */
void tmux_init(void);
/* Kills the server and everything in it; idempotent. */
void tmux_cleanup(void);

/* Runs tmux with these arguments (NULL-terminated); returns its exit status,
 * and its stdout in *out (malloc'd, NUL-terminated) if out is not NULL. */
int tmux_run(char **out, const char *const *args);

/* A detached session `name` of cols x rows running sh -c command. */
void tmux_new_session(const char *name, int cols, int rows, const char *command);
/* Types text literally (no key names), then Enter if enter. */
void tmux_type(const char *name, const char *text, int enter);
/* Sends one key by tmux name ("PageUp", "Up", "C-c", "Enter"...). */
void tmux_key(const char *name, const char *key);
void tmux_resize(const char *name, int cols, int rows);
/* The visible screen, one line per row (malloc'd). NULL if the session is gone. */
char *tmux_capture(const char *name);
/* The same with the attributes as SGR escape sequences (capture-pane -e). */
char *tmux_capture_escapes(const char *name);
/* The attributes a capture with escapes gives the cell `skip` bytes into
 * the first needle (searched in the text without escapes): colours as SGR
 * numbers (30-37 / 40-47, 90-97 / 100-107, or 38/48 * 1000 + n for 256
 * colours), -1 for the default. Returns 0, or -1 if needle is not there. */
struct sgr_cell {
    int fg, bg, bold, reverse;
};
int sgr_at(const char *escaped, const char *needle, size_t skip, struct sgr_cell *cell);

/* A format of the session's pane (e.g. "#{window_bell_flag}"), malloc'd. */
char *tmux_format(const char *name, const char *format);
int tmux_session_alive(const char *name);

/* Waits until the screen contains needle; returns the capture (malloc'd).
 * On time-out prints the last screen and fails the test. */
char *tmux_wait_for(const char *name, const char *needle, int64_t deadline);
/* Waits until pred(screen, arg) is true; the same on time-out, with what. */
char *tmux_wait_until(const char *name, int (*pred)(const char *screen, void *arg), void *arg,
                      const char *what, int64_t deadline);

/* Occurrences of needle in hay. */
int count_of(const char *hay, const char *needle);
/* Row i of a capture (0-based) copied into buf; "" past the end. */
const char *screen_row(const char *screen, int i, char *buf, size_t size);
/* Rows in a capture. */
int screen_rows(const char *screen);

#endif
