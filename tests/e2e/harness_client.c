/* harness_client.c — the headless chat client under test (bin/chat
 * --headless): spawning it, typing lines on its stdin, waiting for the
 * events it prints and for lines on its stderr, and /quit. */
#include "harness.h"
#include "harness_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct h_proc *h_client_spawn(const struct h_server *s, const char *transport,
                              const char *user, const char *password,
                              const char *const *extra)
{
    char *argv[40];
    int n = 0, has_interval = 0;
    for (const char *const *e = extra; e && *e; e++)
        if (strcmp(*e, "--interval-ms") == 0)
            has_interval = 1;
    argv[n++] = (char *)h_bin("CHAT_BIN", "bin/chat");
    argv[n++] = "--headless";
    argv[n++] = "--server";
    argv[n++] = (char *)s->url;
    argv[n++] = "--user";
    argv[n++] = (char *)user;
    argv[n++] = "--transport";
    argv[n++] = (char *)transport;
    if (strcmp(transport, "short-poll") == 0 && !has_interval) {
        argv[n++] = "--interval-ms";
        argv[n++] = "100";
    }
    for (const char *const *e = extra; e && *e && n < 38; e++)
        argv[n++] = (char *)*e;
    argv[n] = NULL;
    static char envbuf[H_MAX_PROCS][200];
    static int envi;
    char *pw = envbuf[envi++ % H_MAX_PROCS];
    snprintf(pw, 200, "CHAT_PASSWORD=%s", password);
    const char *env[] = { pw, NULL };
    char name[48];
    snprintf(name, sizeof name, "chat %s/%s", user, transport);
    struct h_proc *p = h_spawn(name, argv, env, 1);
    p->events = json_array();
    return p;
}

void h_client_send_line(struct h_proc *c, const char *line)
{
    size_t n = strlen(line);
    char *b = malloc(n + 1);
    memcpy(b, line, n);
    b[n] = '\n';
    size_t off = 0;
    int64_t dl = h_deadline(5000);
    while (off < n + 1) {
        if (c->in_fd < 0) {
            free(b);
            h_dump_logs();
            fail_msg("%s: stdin closed", c->name);
        }
        ssize_t k = write(c->in_fd, b + off, n + 1 - off);
        if (k > 0) {
            off += (size_t)k;
        } else if (k < 0 && errno == EINTR) {
            continue;
        } else {
            free(b);
            h_dump_logs();
            fail_msg("%s: writing to stdin failed (%s)%s", c->name, strerror(errno),
                     c->exited ? " — it exited" : "");
        }
        if (off < n + 1) {
            if (h_now_ms() >= dl) {
                free(b);
                fail_msg("%s: stdin blocked for 5 s", c->name);
            }
            h_pump(10);
        }
    }
    free(b);
}

size_t h_client_nevents(const struct h_proc *c) { return json_array_size(c->events); }
json_t *h_client_event(const struct h_proc *c, size_t i) { return json_array_get(c->events, i); }

size_t h_client_wait_events(struct h_proc *c, size_t n, int64_t deadline)
{
    while (json_array_size(c->events) < n && h_now_ms() < deadline) {
        if (c->exited && c->out_fd < 0)
            break;
        h_pump(h_remaining(deadline));
    }
    return json_array_size(c->events);
}

int h_client_wait_stderr_match(struct h_proc *c, const char *needle, int64_t deadline)
{
    for (;;) {
        if (c->err.data && strstr(c->err.data, needle))
            return 1;
        if (h_now_ms() >= deadline || (c->exited && c->err_fd < 0))
            return 0;
        h_pump(h_remaining(deadline));
    }
}

void h_client_quit(struct h_proc *c, int64_t deadline)
{
    if (!c->exited)
        h_client_send_line(c, "/quit");
    int st = 0;
    if (!h_proc_wait_exit(c, deadline, &st)) {
        h_dump_logs();
        fail_msg("%s did not exit after /quit", c->name);
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        h_dump_logs();
        fail_msg("%s after /quit: exit code %d, signal %d (expected exit 0)", c->name,
                 WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    }
}
