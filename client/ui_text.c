/* ui_text.c — see ui_text.h. */
#include "ui_text.h"

#include <stdint.h>
#include <stdlib.h>

#define REPLACEMENT 0xFFFD

static int is_bidi_control(wchar_t c)
{
    return (c >= 0x202A && c <= 0x202E) || (c >= 0x2066 && c <= 0x2069) ||
           c == 0x200E || c == 0x200F || c == 0x061C;
}

wchar_t ui_text_safe_char(wchar_t c)
{
    if (c == L'\n')
        return c;
    if (c == L'\t')
        return L' ';
    if (c >= 0 && c < 0x20)
        return (wchar_t)(0x2400 + c);       /* control pictures: ESC -> U+241B */
    if (c == 0x7F)
        return 0x2421;
    if ((c >= 0x80 && c < 0xA0) || is_bidi_control(c) || wcwidth(c) < 0)
        return REPLACEMENT;
    return c;
}

/* Decodes one character at s[*i]; advances *i; invalid input gives U+FFFD
 * and consumes one byte. */
static uint32_t utf8_next(const unsigned char *s, size_t len, size_t *i)
{
    unsigned char b = s[*i];
    uint32_t cp, min;
    size_t need;
    if (b < 0x80) {
        (*i)++;
        return b;
    }
    if ((b & 0xE0) == 0xC0) { need = 1; cp = b & 0x1F; min = 0x80; }
    else if ((b & 0xF0) == 0xE0) { need = 2; cp = b & 0x0F; min = 0x800; }
    else if ((b & 0xF8) == 0xF0) { need = 3; cp = b & 0x07; min = 0x10000; }
    else { (*i)++; return REPLACEMENT; }
    for (size_t k = 1; k <= need; k++) {
        if (*i + k >= len || (s[*i + k] & 0xC0) != 0x80) {
            (*i)++;
            return REPLACEMENT;
        }
        cp = cp << 6 | (s[*i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        (*i)++;
        return REPLACEMENT;
    }
    *i += need + 1;
    return cp;
}

wchar_t *ui_text_from_utf8(const char *s, size_t len, int flags, size_t *out_len)
{
    const unsigned char *u = (const unsigned char *)(s ? s : "");
    wchar_t *w = malloc((len + 1) * sizeof *w);     /* never more chars than bytes */
    size_t n = 0, i = 0;
    if (!w)
        return NULL;
    while (i < len) {
        wchar_t c = (wchar_t)utf8_next(u, len, &i);
        if (c == L'\n' && !(flags & UI_TEXT_MULTILINE))
            c = 0x2424;                              /* SYMBOL FOR NEWLINE */
        else if (c == L'\r' && (flags & UI_TEXT_MULTILINE) && i < len && u[i] == '\n')
            continue;                                /* CRLF: one break */
        w[n++] = ui_text_safe_char(c);
    }
    w[n] = L'\0';
    if (out_len)
        *out_len = n;
    return w;
}

size_t ui_utf8_encode(wchar_t c, char out[4])
{
    uint32_t cp = (uint32_t)c;
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
        return 0;
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

char *ui_text_to_utf8(const wchar_t *s, size_t n)
{
    char *out = malloc(n * 4 + 1), *p = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        size_t k = ui_utf8_encode(s[i], p);
        if (k == 0) {
            free(out);
            return NULL;
        }
        p += k;
    }
    *p = '\0';
    return out;
}

int ui_char_width(wchar_t c)
{
    if (c == L'\n')
        return 0;
    int w = wcwidth(c);
    return w < 0 ? 1 : w > 2 ? 2 : w;
}

int ui_text_width(const wchar_t *s, size_t n)
{
    int w = 0;
    for (size_t i = 0; i < n; i++)
        w += ui_char_width(s[i]);
    return w;
}

size_t ui_text_fit(const wchar_t *s, size_t n, int width)
{
    int col = 0;
    size_t i = 0;
    while (i < n && s[i] != L'\n') {
        int w = ui_char_width(s[i]);
        if (col + w > width)
            break;
        col += w;
        i++;
    }
    return i;
}

static size_t skip_spaces(const wchar_t *s, size_t n, size_t i)
{
    while (i < n && s[i] == L' ')
        i++;
    return i;
}

size_t ui_wrap_row(const wchar_t *s, size_t n, size_t pos, int width, size_t *row_len)
{
    size_t i = pos, last_space = (size_t)-1;
    int col = 0;
    if (width < 1)
        width = 1;
    while (i < n) {
        wchar_t c = s[i];
        if (c == L'\n') {
            *row_len = i - pos;
            return i + 1;
        }
        int w = ui_char_width(c);
        if (col + w > width)
            break;
        if (c == L' ')
            last_space = i;
        col += w;
        i++;
    }
    if (i == n) {
        *row_len = n - pos;
        return n;
    }
    if (s[i] == L' ') {                     /* full row ends right at a space */
        *row_len = i - pos;
        return skip_spaces(s, n, i);
    }
    if (last_space != (size_t)-1 && last_space > pos) {
        *row_len = last_space - pos;
        return skip_spaces(s, n, last_space);
    }
    *row_len = i > pos ? i - pos : 1;       /* a word longer than the row */
    return pos + *row_len;
}

int ui_wrap_count(const wchar_t *s, size_t n, int first_width, int width)
{
    size_t pos = 0, len;
    int rows = 0;
    do {
        pos = ui_wrap_row(s, n, pos, rows ? width : first_width, &len);
        rows++;
    } while (pos < n);
    return rows;
}
