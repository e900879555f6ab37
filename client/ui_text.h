/* ui_text.h — text for the terminal, pure (no curses): UTF-8 to wide
 * characters with every control and terminal-affecting character made
 * visible and harmless, display widths (wcwidth; needs a UTF-8 LC_CTYPE),
 * and wrapping by display width. Everything the UI draws from the network
 * or the keyboard passes through ui_text_from_utf8 first. */
#ifndef CHAT_UI_TEXT_H
#define CHAT_UI_TEXT_H

#include <stddef.h>
#include <wchar.h>

#define UI_TEXT_MULTILINE 1      /* keep '\n' as a line break */

/* The character to show for c: C0 controls become control pictures
 * (ESC -> U+241B), DEL U+2421, tab a space, C1 controls, bidi overrides and
 * anything wcwidth() calls unprintable U+FFFD. '\n' is returned unchanged;
 * callers that do not break lines on it never pass it. */
wchar_t ui_text_safe_char(wchar_t c);

/* Decodes len bytes of UTF-8 (invalid sequences become U+FFFD) into a new
 * NUL-terminated wide string of safe characters; *out_len (may be NULL) gets
 * its length. flags: UI_TEXT_MULTILINE keeps '\n', else it shows as U+2424.
 * NULL only when out of memory. */
wchar_t *ui_text_from_utf8(const char *s, size_t len, int flags, size_t *out_len);

/* UTF-8 encoding of one character into out (4 bytes); returns the length,
 * 0 for a surrogate or a value past U+10FFFF. */
size_t ui_utf8_encode(wchar_t c, char out[4]);
/* The UTF-8 string of n wide characters, malloc'd; NULL when out of memory
 * or a character cannot be encoded. */
char *ui_text_to_utf8(const wchar_t *s, size_t n);

/* Columns one character takes: 0 for '\n' and combining marks, 2 for wide
 * (CJK, most emoji), 1 otherwise (unprintable counts as 1, it shows as
 * U+FFFD). */
int ui_char_width(wchar_t c);
int ui_text_width(const wchar_t *s, size_t n);
/* How many of s[0..n) fit in width columns. */
size_t ui_text_fit(const wchar_t *s, size_t n, int width);

/* One display row of s[pos..n) in at most width columns: breaks at the last
 * space that fits, else inside a word, always at '\n'; a row holds at least
 * one character. *row_len gets the characters on the row; returns where the
 * next row starts (spaces at the break are skipped), n at the end. */
size_t ui_wrap_row(const wchar_t *s, size_t n, size_t pos, int width, size_t *row_len);
/* Rows s takes with the first row first_width columns wide and the others
 * width (at least 1). */
int ui_wrap_count(const wchar_t *s, size_t n, int first_width, int width);

#endif
