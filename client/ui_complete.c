/* ui_complete.c — see ui_complete.h. */
#include "ui_complete.h"
#include "ui_text.h"

#include <stdlib.h>
#include <string.h>
#include <wctype.h>

void ui_complete_reset(struct ui_complete *c)
{
    for (size_t i = 0; i < c->count; i++)
        free(c->cand[i]);
    memset(c, 0, sizeof *c);
}

static size_t word_start(const struct ui_editor *e)
{
    size_t i = e->cur;
    while (i > 0 && e->buf[i - 1] != L' ')
        i--;
    return i;
}

int ui_complete_word_kind(const struct ui_editor *e)
{
    size_t i = word_start(e);
    if (i == e->cur)
        return -1;
    return i == 0 && e->buf[0] == L'/';
}

static int prefix_of(const wchar_t *p, size_t n, const wchar_t *w)
{
    for (size_t i = 0; i < n; i++)
        if (!w[i] || towlower((wint_t)p[i]) != towlower((wint_t)w[i]))
            return 0;
    return 1;
}

/* Candidates from words that start with the n characters at p, each once. */
static void collect(struct ui_complete *c, const wchar_t *p, size_t n,
                    const char *const *words, size_t count)
{
    for (size_t i = 0; i < count && c->count < UI_COMPLETE_MAX; i++) {
        size_t len;
        wchar_t *w = ui_text_from_utf8(words[i], strlen(words[i]), 0, &len);
        int dup = 0;
        for (size_t k = 0; w && k < c->count; k++)
            dup |= wcscmp(c->cand[k], w) == 0;
        if (w && !dup && len > 0 && prefix_of(p, n, w))
            c->cand[c->count++] = w;
        else
            free(w);
    }
}

/* Puts candidate i and its suffix in place of [start, end). */
static void put(struct ui_complete *c, struct ui_editor *e, size_t i)
{
    int command = c->start == 0 && c->cand[i][0] == L'/';
    const wchar_t *suffix = !command && c->start == 0 ? L": " : L" ";
    e->cur = c->end;
    for (size_t k = c->start; k < c->end; k++)
        ui_editor_backspace(e);
    for (const wchar_t *w = c->cand[i]; *w; w++)
        ui_editor_insert(e, *w);
    for (const wchar_t *w = suffix; *w; w++)
        ui_editor_insert(e, *w);
    c->end = e->cur;
}

int ui_complete_tab(struct ui_complete *c, struct ui_editor *e,
                    const char *const *words, size_t n)
{
    if (c->active && c->count > 0 && e->cur == c->end) {
        c->index = (c->index + 1) % c->count;
        put(c, e, c->index);
        return 0;
    }
    ui_complete_reset(c);
    c->start = word_start(e);
    c->end = e->cur;
    if (c->start == c->end)
        return -1;
    collect(c, &e->buf[c->start], c->end - c->start, words, n);
    if (c->count == 0)
        return -1;
    put(c, e, 0);
    c->active = 1;
    return 0;
}
