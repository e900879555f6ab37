/* tmux.c — see tmux.h. */
#include "tmux.h"
#include "../e2e/harness.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static char sock[64];
static int server_started, hooks_installed, quiet_errors;

static void on_signal(int sig)
{
    tmux_cleanup();
    harness_cleanup();
    signal(sig, SIG_DFL);
    raise(sig);
}

void tmux_init(void)
{
    static int serial;
    harness_init();             /* its handlers first; ours replace them */
    if (!hooks_installed) {
        hooks_installed = 1;
        atexit(tmux_cleanup);
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        signal(SIGHUP, on_signal);
        unsetenv("TMUX");       /* we may run inside someone's tmux */
        setenv("LANG", "C.UTF-8", 1);
    }
    snprintf(sock, sizeof sock, "chat-ui-test-%d-%d", (int)getpid(), ++serial);
    /* the socket goes in a temp dir that harness_cleanup removes, and so
     * does what the programs keep (the client's input history): a test
     * never writes to the user's home */
    const char *dir = h_tmpdir();
    char state[600];
    setenv("TMUX_TMPDIR", dir, 1);
    snprintf(state, sizeof state, "%s/state", dir);
    setenv("XDG_STATE_HOME", state, 1);
    server_started = 0;
}

int tmux_run(char **out, const char *const *args)
{
    const char *argv[32];
    int n = 0, fds[2] = { -1, -1 }, status = -1;
    argv[n++] = "tmux";
    argv[n++] = "-L";
    argv[n++] = sock;
    if (!server_started) {
        argv[n++] = "-f";
        argv[n++] = "/dev/null";
    }
    for (; *args && n < 31; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (out) {
        if (pipe(fds) < 0)
            fail_msg("pipe: %s", strerror(errno));
        posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
        posix_spawn_file_actions_addclose(&fa, fds[0]);
        posix_spawn_file_actions_addclose(&fa, fds[1]);
    }
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    if (quiet_errors)
        posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int rc = posix_spawnp(&pid, "tmux", &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        fail_msg("cannot run tmux: %s", strerror(rc));
    if (out) {
        size_t len = 0, cap = 4096;
        char *buf = malloc(cap);
        ssize_t r;
        close(fds[1]);
        while (buf && (r = read(fds[0], buf + len, cap - len - 1)) != 0) {
            if (r < 0) {
                if (errno == EINTR)
                    continue;
                break;
            }
            len += (size_t)r;
            if (cap - len < 2) {
                char *p = realloc(buf, cap *= 2);
                if (!p)
                    break;
                buf = p;
            }
        }
        close(fds[0]);
        if (buf)
            buf[len] = '\0';
        *out = buf;
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void tmux_cleanup(void)
{
    if (!*sock || !server_started)
        return;
    const char *args[] = { "kill-server", NULL };
    quiet_errors = 1;           /* it may have gone with its last session */
    tmux_run(NULL, args);
    quiet_errors = 0;
    server_started = 0;
}

static const char *target(const char *name)
{
    static char t[96];
    snprintf(t, sizeof t, "=%s:", name);
    return t;
}

void tmux_new_session(const char *name, int cols, int rows, const char *command)
{
    char x[16], y[16];
    snprintf(x, sizeof x, "%d", cols);
    snprintf(y, sizeof y, "%d", rows);
    const char *args[] = { "new-session", "-d", "-s", name, "-x", x, "-y", y, command, NULL };
    if (tmux_run(NULL, args) != 0)
        fail_msg("tmux new-session %s failed", name);
    server_started = 1;
}

void tmux_type(const char *name, const char *text, int enter)
{
    const char *args[] = { "send-keys", "-t", target(name), "-l", text, NULL };
    if (*text && tmux_run(NULL, args) != 0)
        fail_msg("tmux send-keys to %s failed", name);
    if (enter)
        tmux_key(name, "Enter");
}

void tmux_key(const char *name, const char *key)
{
    const char *args[] = { "send-keys", "-t", target(name), key, NULL };
    if (tmux_run(NULL, args) != 0)
        fail_msg("tmux send-keys %s to %s failed", key, name);
}

void tmux_resize(const char *name, int cols, int rows)
{
    char x[16], y[16];
    snprintf(x, sizeof x, "%d", cols);
    snprintf(y, sizeof y, "%d", rows);
    const char *args[] = { "resize-window", "-t", target(name), "-x", x, "-y", y, NULL };
    if (tmux_run(NULL, args) != 0)
        fail_msg("tmux resize-window %s failed", name);
}

char *tmux_capture(const char *name)
{
    char *out = NULL;
    const char *args[] = { "capture-pane", "-p", "-t", target(name), NULL };
    if (tmux_run(&out, args) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

char *tmux_capture_escapes(const char *name)
{
    char *out = NULL;
    const char *args[] = { "capture-pane", "-p", "-e", "-t", target(name), NULL };
    if (tmux_run(&out, args) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* Applies one SGR sequence's parameters ("1;32", "" = reset) to c. */
static void sgr_apply(const char *p, struct sgr_cell *c)
{
    int v[32], n = 0;
    while (n < 32) {
        char *end;
        v[n++] = (int)strtol(p, &end, 10);   /* "" reads as 0: reset */
        if (*end != ';')
            break;
        p = end + 1;
    }
    for (int i = 0; i < n; i++) {
        int x = v[i];
        if (x == 0)
            *c = (struct sgr_cell){ -1, -1, 0, 0 };
        else if (x == 1)
            c->bold = 1;
        else if (x == 22)
            c->bold = 0;
        else if (x == 7)
            c->reverse = 1;
        else if (x == 27)
            c->reverse = 0;
        else if ((x >= 30 && x <= 37) || (x >= 90 && x <= 97))
            c->fg = x;
        else if (x == 39)
            c->fg = -1;
        else if ((x >= 40 && x <= 47) || (x >= 100 && x <= 107))
            c->bg = x;
        else if (x == 49)
            c->bg = -1;
        else if ((x == 38 || x == 48) && i + 2 < n && v[i + 1] == 5) {
            *(x == 38 ? &c->fg : &c->bg) = x * 1000 + v[i + 2];
            i += 2;
        }
    }
}

int sgr_at(const char *escaped, const char *needle, size_t skip, struct sgr_cell *cell)
{
    size_t len = strlen(escaped);
    char *text = malloc(len + 1);
    struct sgr_cell *at = malloc((len + 1) * sizeof *at);
    struct sgr_cell cur = { -1, -1, 0, 0 };
    size_t n = 0;
    if (!text || !at)
        fail_msg("out of memory");
    for (const char *p = escaped; *p;) {
        if (p[0] == '\033' && p[1] == '[') {
            size_t k = strspn(p + 2, "0123456789;");
            if (p[2 + k] == 'm') {
                char params[128];
                snprintf(params, sizeof params, "%.*s", (int)k, p + 2);
                sgr_apply(params, &cur);
            }
            p += 2 + k + (p[2 + k] ? 1 : 0);
            continue;
        }
        at[n] = cur;
        text[n++] = *p++;
    }
    text[n] = '\0';
    const char *hit = strstr(text, needle);
    if (hit && skip < strlen(needle))
        *cell = at[hit - text + skip];
    else
        hit = NULL;
    free(text);
    free(at);
    return hit ? 0 : -1;
}

char *tmux_format(const char *name, const char *format)
{
    char *out = NULL;
    const char *args[] = { "display-message", "-p", "-t", target(name), format, NULL };
    if (tmux_run(&out, args) != 0) {
        free(out);
        return NULL;
    }
    size_t n = strlen(out);
    while (n && out[n - 1] == '\n')
        out[--n] = '\0';
    return out;
}

int tmux_session_alive(const char *name)
{
    const char *args[] = { "has-session", "-t", target(name), NULL };
    return tmux_run(NULL, args) == 0;
}

static int has_needle(const char *screen, void *arg)
{
    return strstr(screen, arg) != NULL;
}

char *tmux_wait_for(const char *name, const char *needle, int64_t deadline)
{
    char what[256];
    snprintf(what, sizeof what, "\"%s\" on the screen", needle);
    return tmux_wait_until(name, has_needle, (void *)needle, what, deadline);
}

char *tmux_wait_until(const char *name, int (*pred)(const char *screen, void *arg), void *arg,
                      const char *what, int64_t deadline)
{
    char *screen = NULL;
    int64_t start = h_now_ms();
    for (;;) {
        free(screen);
        screen = tmux_capture(name);
        if (screen && pred(screen, arg)) {
            if (getenv("UI_TEST_DEBUG"))
                fprintf(stderr, "%s: %s after %lld ms\n", name, what,
                        (long long)(h_now_ms() - start));
            return screen;
        }
        if (h_now_ms() >= deadline)
            break;
        h_pump(40);             /* drains the server's pipes while we wait */
    }
    fprintf(stderr, "---- screen of %s ----\n%s\n---- end of screen ----\n", name,
            screen ? screen : "(session gone)");
    free(screen);
    h_dump_logs();
    fail_msg("%s: timed out waiting for %s", name, what);
    return NULL;
}

int count_of(const char *hay, const char *needle)
{
    int n = 0;
    size_t len = strlen(needle);
    for (const char *p = hay; len && (p = strstr(p, needle)); p += len)
        n++;
    return n;
}

const char *screen_row(const char *screen, int i, char *buf, size_t size)
{
    const char *p = screen;
    for (int k = 0; k < i && p; k++) {
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    size_t n = p ? strcspn(p, "\n") : 0;
    if (n >= size)
        n = size - 1;
    if (p)
        memcpy(buf, p, n);
    buf[n] = '\0';
    return buf;
}

int screen_rows(const char *screen)
{
    int n = 0;
    for (const char *p = screen; *p; p++)
        n += *p == '\n';
    return n;
}
