/* ui_history.c — see ui_history.h. The lines are a ring of `keep`, so a
 * huge file is read in one pass and bounded memory. */
#include "ui_history.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct ui_history {
    char *path;
    char **ring;                 /* keep slots; line i is ring[(first + i) % keep] */
    size_t keep, first, len;
    size_t in_file;              /* lines in the file: rewritten past 2 * keep */
};

/* ---- which lines are kept ---- */

/* Length of the UTF-8 character at s (0 if invalid); *cp gets it. */
static size_t utf8_char(const unsigned char *s, unsigned *cp)
{
    size_t n = s[0] < 0x80 ? 1 : s[0] >= 0xc2 && s[0] <= 0xdf ? 2
             : s[0] >= 0xe0 && s[0] <= 0xef ? 3 : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : 0;
    static const unsigned min[] = { 0, 0, 0x80, 0x800, 0x10000 };
    unsigned c = n == 1 ? s[0] : s[0] & (0x7f >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (s[i] & 0x3f);
    }
    if (n == 0 || c < min[n] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return n;
}

int ui_history_line_ok(const char *line)
{
    const unsigned char *s = (const unsigned char *)line;
    size_t len = strlen(line);
    int blank = 1;
    if (len == 0 || len > UI_HISTORY_LINE_MAX)
        return 0;
    while (*s) {
        unsigned c;
        size_t n = utf8_char(s, &c);
        if (n == 0 || c < 0x20 || (c >= 0x7f && c <= 0x9f))
            return 0;
        if (c != ' ')
            blank = 0;
        s += n;
    }
    return !blank;
}

/* ---- where ---- */

/* mkdir -p, each directory made 0700 (the XDG base directory rule). */
static int make_dirs(char *path)
{
    for (char *p = path + 1; ; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        int r = mkdir(path, 0700);
        *p = c;
        if (r < 0 && errno != EEXIST)
            return -1;
        if (c == '\0')
            return 0;
    }
}

char *ui_history_path(const char *user, char *err, size_t err_size)
{
    const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    char dir[4096], *path = NULL;
    if (!*user || strchr(user, '/') || *user == '.') {
        snprintf(err, err_size, "the user name \"%s\" is not a file name", user);
        return NULL;
    }
    if (xdg && *xdg == '/')      /* a relative one is ignored, as the spec says */
        snprintf(dir, sizeof dir, "%s/chat", xdg);
    else if (home && *home == '/')
        snprintf(dir, sizeof dir, "%s/.local/state/chat", home);
    else {
        snprintf(err, err_size, "neither XDG_STATE_HOME nor HOME is set");
        return NULL;
    }
    if (make_dirs(dir) < 0) {
        snprintf(err, err_size, "cannot create %s: %s", dir, strerror(errno));
        return NULL;
    }
    if (asprintf(&path, "%s/history-%s", dir, user) < 0) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    return path;
}

/* ---- the lines ---- */

size_t ui_history_len(const struct ui_history *h)
{
    return h->len;
}

const char *ui_history_line(const struct ui_history *h, size_t i)
{
    return i < h->len ? h->ring[(h->first + i) % h->keep] : NULL;
}

/* Takes line (malloc'd) as the newest, dropping the oldest when full. */
static void push(struct ui_history *h, char *line)
{
    if (h->len == h->keep) {
        free(h->ring[h->first]);
        h->ring[h->first] = line;
        h->first = (h->first + 1) % h->keep;
    } else {
        h->ring[(h->first + h->len++) % h->keep] = line;
    }
}

/* Reads the good lines; an over-long line or one with a NUL byte is
 * skipped whole. Returns the lines in the file, good or not; *cut is set
 * if the last has no newline (an append would join it). */
static size_t read_lines(struct ui_history *h, FILE *f, int *cut)
{
    static char buf[UI_HISTORY_LINE_MAX + 2];
    size_t lines = 0, n = 0;
    int bad = 0, c;
    do {
        c = getc(f);
        if (c != '\n' && c != EOF) {
            if (c == '\0' || n > UI_HISTORY_LINE_MAX)
                bad = 1;
            else
                buf[n++] = (char)c;
            continue;
        }
        if (c == EOF && n == 0 && !bad)
            break;               /* no unfinished last line */
        buf[n] = '\0';
        lines++;
        *cut = c == EOF;
        char *copy;
        if (!bad && ui_history_line_ok(buf) && (copy = strdup(buf)))
            push(h, copy);
        n = 0;
        bad = 0;
    } while (c != EOF);
    return lines;
}

/* The newest lines only, in a new file renamed over the old one. */
static int rewrite(struct ui_history *h)
{
    char *tmp = NULL;
    if (asprintf(&tmp, "%s.tmp", h->path) < 0)
        return -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    int ok = f != NULL;
    for (size_t i = 0; ok && i < h->len; i++)
        ok = fprintf(f, "%s\n", ui_history_line(h, i)) >= 0;
    if (f)
        ok = fclose(f) == 0 && ok;
    else if (fd >= 0)
        close(fd);
    ok = ok && rename(tmp, h->path) == 0;
    if (!ok)
        unlink(tmp);
    else
        h->in_file = h->len;
    free(tmp);
    return ok ? 0 : -1;
}

struct ui_history *ui_history_open(const char *path, size_t keep, char *err, size_t err_size)
{
    struct ui_history *h = calloc(1, sizeof *h);
    if (!h || !keep || !(h->path = strdup(path)) || !(h->ring = calloc(keep, sizeof *h->ring))) {
        snprintf(err, err_size, "out of memory");
        ui_history_free(h);
        return NULL;
    }
    h->keep = keep;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
    if (!f) {
        snprintf(err, err_size, "cannot open %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        ui_history_free(h);
        return NULL;
    }
    (void)!fchmod(fd, 0600);     /* ours: never readable by others */
    int cut = 0;
    size_t lines = read_lines(h, f, &cut);
    fclose(f);
    h->in_file = lines;
    if (lines != h->len || cut)  /* too many, bad ones or a torn end: rewritten */
        rewrite(h);
    return h;
}

int ui_history_add(struct ui_history *h, const char *line, char *err, size_t err_size)
{
    if (!ui_history_line_ok(line) || (h->len && strcmp(line, ui_history_line(h, h->len - 1)) == 0))
        return 1;
    char *copy = strdup(line);
    if (!copy) {
        snprintf(err, err_size, "out of memory");
        return -1;
    }
    push(h, copy);
    if (h->in_file + 1 > 2 * h->keep)
        return rewrite(h) == 0 ? 0 : (snprintf(err, err_size, "cannot rewrite %s: %s",
                                               h->path, strerror(errno)), -1);
    /* one write of the whole line: appends of two clients never interleave */
    size_t n = strlen(line);
    char *rec = malloc(n + 1);
    int fd = open(h->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    ssize_t w = -1;
    if (rec && fd >= 0) {
        memcpy(rec, line, n);
        rec[n] = '\n';
        w = write(fd, rec, n + 1);
    }
    int saved = errno;
    if (fd >= 0)
        close(fd);
    free(rec);
    if (w != (ssize_t)(n + 1)) {
        snprintf(err, err_size, "cannot write %s: %s", h->path,
                 w >= 0 ? "short write" : strerror(saved));
        return -1;
    }
    h->in_file++;
    return 0;
}

void ui_history_free(struct ui_history *h)
{
    if (!h)
        return;
    for (size_t i = 0; h->ring && i < h->len; i++)
        free(h->ring[(h->first + i) % h->keep]);
    free(h->ring);
    free(h->path);
    free(h);
}
