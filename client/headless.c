/* headless.c — front end without a UI, for tests and scripts.
 *
 * Input (stdin, read through the lws loop as a raw file): one line each, as
 * commands.h reads it: text is a message to the current room ("general"
 * until a /join), "/transfer USER AMOUNT", "/balance", "/transport NAME",
 * "/help", and the room commands (protocol v1.1): "/join NAME" (joins, or
 * makes, the room and makes it current; "/join @bob" makes the DM with bob
 * current), "/part [NAME]", "/rooms", "/msg USER TEXT" (a direct message;
 * the current room stays), "/who [NAME]", "/topic [TEXT]". Room commands
 * read before the rooms are loaded (the start) are held and done, in
 * order, once they are; their answers come as the server gives them (a
 * /topic read right after a /join may still see the room shown before). A trailing CR is dropped,
 * empty lines and lines of only blanks are skipped, lines over 4096 bytes
 * or with invalid UTF-8 or NUL bytes are refused with an error line.
 * "/quit" or end of input asks the app to quit and nothing read after it
 * counts; the app then waits until
 * every message is acknowledged and every bank request answered (at most
 * 5 s from login, app.c), then exits 0 — or, with some still undelivered,
 * prints {"error":...,"undelivered":N} and exits 4. A /transfer or
 * /balance read before the login is done is held and sent after it (its
 * idempotency key drawn when read); a /transfer read while the connection
 * is lost is refused with an error line. Offline (the client gave up) ends
 * the client at once with the core's exit code.
 *
 * STDOUT: exactly one line per delivered event, the event object as sent by
 * the server, compact JSON, flushed — nothing else. Events arrive in id
 * order, each once, whatever the transport. Each names its room ("room":
 * a public room or a DM "@alice,bob"; alerts have none). At the start
 * (v1.1 server) the newest 100 events of each joined room come first,
 * merged by id, then the live feed after them (no gap, no overlap); a v1
 * server replays the feed from the beginning as before. Protocol v1.1
 * adds the event types "member" and "topic":
 *     {"id":17,"type":"chat","ts":1764300000123,"room":"general","from":"alice","body":"hi"}
 *     {"id":18,"type":"member","ts":...,"room":"rust","user":"bob","action":"join"}
 *     {"id":19,"type":"topic","ts":...,"room":"rust","from":"bob","topic":"Ownership"}
 *
 * STDERR: one compact JSON object per line, one of:
 *     {"state":"connecting","transport":"websocket","server":"http://127.0.0.1:8080"}
 *     {"state":"connected","transport":"websocket","server":"http://127.0.0.1:8080"}
 *     {"state":"reconnecting","transport":"websocket","server":"http://127.0.0.1:8081",
 *       "retry_ms":750}
 *     {"state":"offline","transport":"websocket","server":"http://127.0.0.1:8080"}
 *       "transport" is the transport in use; with --transport auto the line
 *       also has "auto":true (and "transport" says which one auto picked).
 *       "server" is the --server URL (normalised: scheme://host:port/prefix)
 *       in use; after a failure it is the one the next attempt goes to, so
 *       the "connected" line names the server that answered.
 *       The states before login are the login's own (connecting, then
 *       reconnecting between failed tries); after it, the transport's.
 *     {"notice":"logged in as alice","data":{"user":"alice"}}   once, at login
 *     {"sending":"<client_msg_id>"}          a message read is queued (at once,
 *                                             whether or not the server is there)
 *     {"ack":"<client_msg_id>","id":12}       the server stored a message
 *     {"error":"<human-readable text>"}
 *       including, when the client leaves with messages or transfers
 *       not delivered (exit status 4),
 *       {"error":"quitting with 2 message(s) or transfer(s) not delivered","undelivered":2}
 *     {"notice":"<text>","data":{...}}       a result asked for, e.g.
 *       data {"balance_cents":100000,"user":"alice"} or
 *       {"transfer":{"transfer_id":3,"status":"pending","to":"bob","amount_cents":2500}}
 *       or, for a transfer read before the login, {"held":{"to":"bob","amount_cents":2500}},
 *       or, after /transfers, {"transfers":[{"transfer_id":3,"direction":"sent",
 *       "counterparty":"bob","amount_cents":2500,"state":"completed"},...]}
 *       (newest first; "reason" on a failed one; one notice without data per
 *       row follows, in words)
 *       or, after /transport NAME or an automatic switch,
 *       {"transport":"long-poll","after":12,"auto":false} (the state lines
 *       that follow carry the new name; "data" is absent from notices that
 *       carry none, e.g. "already using long-poll"), or, when the server in
 *       use failed and the next --server URL is tried,
 *       {"server":"http://127.0.0.1:8081","previous":"http://127.0.0.1:8080"}
 *     {"log":"<text>"}                        an lws error message
 *   Protocol v1.1 additions:
 *     {"presence":{"type":"presence","user":"bob","online":true}}
 *     {"typing":{"type":"typing","room":"rust","user":"bob"}}
 *     {"read":{"type":"read","room":"rust","read_id":42}}
 *       ephemeral items as the server sent them (no id; never replayed);
 *       read: another of our clients has read the room up to read_id
 *     {"history":{"room":"rust","events":[...oldest first...],"more":true}}
 *       a room's events older than the live feed: the newest 100 of a
 *       room just joined ("start":true), or an older page
 *     {"room":{"current":"rust","rooms":[{"name":"general","unread":0,
 *       "online":3,"topic":""},...]}}        the current room or the list
 *       of joined rooms changed (/join, /part, a first DM, the start)
 *     notices: /rooms gives data {"rooms":[{"name","topic","members",
 *       "online","unread","last_id","joined"}]} then one notice per room;
 *       /who gives {"room":"rust","online":["alice","bob"]}; "joined rust",
 *       "left rust", "topic of rust: ..." are notices without data; /msg to a
 *       DM not current: {"notice":"to bob: TEXT","data":{"sending":"<id>",
 *       "room":"@alice,bob"}} instead of {"sending":...} (the ack follows)
 *     {"stats":{"transport":"websocket","requests":1,"bytes_in":900,
 *       "bytes_out":700,"events":3,"dropped":0,"latency_ms":2,
 *       "latency_median_ms":2}}             once, at exit (after login)
 */
#include "commands.h"
#include "core.h"
#include "frontend.h"
#include "protocol.h"
#include "roomlist.h"
#include "wsi_owner.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HEADLESS_PROTOCOL_NAME "chat-stdin"
#define READS_PER_WAKEUP       64

struct headless {
    struct frontend_env env;
    struct wsi_owner owner;      /* of the stdin wsi */
    struct lws *stdin_wsi;
    char line[PROTO_BODY_MAX + 2];  /* body + a possible CR */
    size_t len;
    int overlong;
    int quit_asked;              /* /quit or end of input: read no more */
    char last_rooms[4096];       /* the last {"room":...} line printed */
};

/* ---- output ---- */

static void print_json(FILE *f, json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (s) {
        fputs(s, f);
        fputc('\n', f);
        fflush(f);
    }
    free(s);
    json_decref(o);
}

static void print_error(const char *text)
{
    json_t *o = json_pack("{s:s}", "error", text);
    if (!o)   /* not UTF-8: still say something */
        o = json_pack("{s:s}", "error", "(unprintable error text)");
    print_json(stderr, o);
}

static void show_event(void *fe, const json_t *event)
{
    (void)fe;
    print_json(stdout, json_incref((json_t *)event));
}

static const char *const state_names[] = {
    [CORE_CONNECTING] = "connecting",
    [CORE_CONNECTED] = "connected",
    [CORE_RECONNECTING] = "reconnecting",
    [CORE_OFFLINE] = "offline",
};

static void show_state(void *fe, enum core_state s, unsigned retry_ms)
{
    struct headless *h = fe;
    json_t *o = json_pack("{s:s,s:s}", "state", state_names[s],
                          "transport", h->env.transport_name);
    if (o && h->env.server_url)
        json_object_set_new(o, "server", json_string(h->env.server_url));
    if (o && h->env.auto_transport)
        json_object_set_new(o, "auto", json_true());
    if (o && s == CORE_RECONNECTING)
        json_object_set_new(o, "retry_ms", json_integer(retry_ms));
    print_json(stderr, o);
}

static void show_ack(void *fe, const char *client_msg_id, int64_t id)
{
    (void)fe;
    print_json(stderr, json_pack("{s:s,s:I}", "ack", client_msg_id, "id", (json_int_t)id));
}

static void show_sending(void *fe, const char *client_msg_id, const char *body)
{
    (void)fe;
    (void)body;
    print_json(stderr, json_pack("{s:s}", "sending", client_msg_id));
}

static void show_error(void *fe, const char *text)
{
    (void)fe;
    print_error(text);
}

static void show_logged_in(void *fe)
{
    struct headless *h = fe;
    char text[64];
    snprintf(text, sizeof text, "logged in as %s", h->env.user);
    print_json(stderr, json_pack("{s:s,s:{s:s}}", "notice", text, "data", "user", h->env.user));
}

static void show_notice(void *fe, const char *text, const json_t *data)
{
    (void)fe;
    json_t *o = json_pack("{s:s}", "notice", text);
    if (o && data)
        json_object_set(o, "data", (json_t *)data);
    print_json(stderr, o);
}

static void show_transport(void *fe, const char *name, int is_auto)
{
    struct headless *h = fe;
    h->env.transport_name = name;
    h->env.auto_transport = is_auto;
}

static void show_server(void *fe, const char *url)
{
    struct headless *h = fe;
    h->env.server_url = url;
}

static void show_grace_over(void *fe, size_t unacked)
{
    char msg[96];
    (void)fe;
    snprintf(msg, sizeof msg, "quitting with %zu message(s) or transfer(s) not delivered", unacked);
    print_json(stderr, json_pack("{s:s,s:I}", "error", msg, "undelivered", (json_int_t)unacked));
}

static void show_ephemeral(void *fe, const json_t *item)
{
    (void)fe;
    const char *type = json_string_value(json_object_get(item, "type"));
    if (!type)
        type = json_string_value(json_object_get(item, "op"));
    const char *key = !type ? "presence" : !strcmp(type, "typing") ? "typing"
                    : !strcmp(type, "read") ? "read" : "presence";
    print_json(stderr, json_pack("{s:O}", key, (json_t *)item));
}

static void show_history(void *fe, const char *room, const json_t *events, int more, int start)
{
    (void)fe;
    json_t *o = json_pack("{s:{s:s,s:O,s:b}}", "history", "room", room, "events", (json_t *)events,
                          "more", more);
    if (o && start)
        json_object_set_new(json_object_get(o, "history"), "start", json_true());
    print_json(stderr, o);
}

/* The joined rooms and the current one, when they change. */
static void show_rooms(void *fe)
{
    struct headless *h = fe;
    const struct room *rm, *cur = roomlist_current(h->env.rooms);
    json_t *rows = json_array();
    for (size_t i = 0; (rm = roomlist_at(h->env.rooms, i)); i++)
        json_array_append_new(rows, json_pack("{s:s,s:I,s:I,s:s}", "name", rm->name,
                              "unread", (json_int_t)rm->unread, "online", (json_int_t)rm->online,
                              "topic", rm->topic));
    json_t *o = json_pack("{s:{s:s,s:o}}", "room", "current", cur ? cur->name : "", "rooms", rows);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    /* the same state again (a presence list, a read marker) says nothing */
    if (text && strlen(text) < sizeof h->last_rooms && strcmp(text, h->last_rooms) != 0) {
        snprintf(h->last_rooms, sizeof h->last_rooms, "%s", text);
        print_json(stderr, json_incref(o));
    }
    free(text);
    json_decref(o);
}

/* One {"stats":{...}} line: the cost counters at exit. */
static void print_stats(struct headless *h)
{
    struct core_stats st;
    core_get_stats(h->env.core, &st);
    print_json(stderr, json_pack("{s:{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I}}", "stats",
        "transport", h->env.transport_name,
        "requests", (json_int_t)st.requests,
        "bytes_in", (json_int_t)st.bytes_in,
        "bytes_out", (json_int_t)st.bytes_out,
        "events", (json_int_t)st.events,
        "dropped", (json_int_t)st.dropped,
        "latency_ms", (json_int_t)st.latency_ms,
        "latency_median_ms", (json_int_t)st.latency_median_ms));
}

/* ---- input ---- */

static void ask_quit(struct headless *h)
{
    if (h->quit_asked)
        return;
    h->quit_asked = 1;
    h->env.quit_asked(h->env.arg);
}

static void take_command(struct headless *h, const char *line)
{
    struct cmd c;
    cmd_parse(line, &c);
    if (c.kind == CMD_EMPTY)
        return;                 /* only blanks: nothing to send */
    if (c.kind == CMD_QUIT)
        ask_quit(h);
    else if (c.kind == CMD_INVALID)
        print_error(c.error);
    else if (c.kind == CMD_HELP)
        for (const char *const *l = cmd_help_lines; *l; l++)
            print_json(stderr, json_pack("{s:s}", "notice", *l));
    else
        h->env.command(h->env.arg, &c);
}

static void take_line(struct headless *h, char *s, size_t n)
{
    if (h->quit_asked)
        return;                 /* nothing after /quit counts */
    if (n && s[n - 1] == '\r')
        n--;
    s[n] = '\0';
    if (n == 0)
        return;
    if (n > PROTO_BODY_MAX)
        print_error("line longer than 4096 bytes; not sent");
    else if (memchr(s, '\0', n))
        print_error("line contains a NUL byte; not sent");
    else if (!proto_utf8_valid(s, n))
        print_error("line is not valid UTF-8; not sent");
    else
        take_command(h, s);
}

static void take_bytes(struct headless *h, const char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (buf[i] == '\n') {
            if (h->overlong)
                print_error("line longer than 4096 bytes; not sent");
            else
                take_line(h, h->line, h->len);
            h->len = 0;
            h->overlong = 0;
        } else if (!h->overlong) {
            if (h->len == sizeof h->line - 1)
                h->overlong = 1;
            else
                h->line[h->len++] = buf[i];
        }
    }
}

/* End of input: a last line without newline counts, then quit. */
static void stdin_eof(struct headless *h)
{
    if (h->overlong)
        print_error("line longer than 4096 bytes; not sent");
    else if (h->len)
        take_line(h, h->line, h->len);
    h->len = 0;
    h->overlong = 0;
    ask_quit(h);
}

/* Reads what is there now (a closed pipe may hold more than one read).
 * Returns -1 at end of input so lws closes the wsi. */
static int stdin_readable(struct headless *h, int fd)
{
    char buf[4096];
    for (int i = 0; i < READS_PER_WAKEUP; i++) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            return 0;
        if (n <= 0) {
            stdin_eof(h);
            return -1;
        }
        take_bytes(h, buf, (size_t)n);
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        if (poll(&pfd, 1, 0) <= 0)
            return 0;
    }
    return 0;
}

static void stdin_gone(struct wsi_owner *o, struct lws *wsi)
{
    struct headless *h = lws_container_of(o, struct headless, owner);
    (void)wsi;
    h->stdin_wsi = NULL;
    stdin_eof(h);
}

static int stdin_cb(struct lws *wsi, enum lws_callback_reasons reason,
                    void *user, void *in, size_t len)
{
    struct wsi_owner *o = wsi_owner_of(wsi);
    struct headless *h = o ? lws_container_of(o, struct headless, owner) : NULL;
    (void)user;
    (void)in;
    (void)len;
    if (!h)
        return reason == LWS_CALLBACK_RAW_RX_FILE ? -1 : 0;
    switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
        return stdin_readable(h, STDIN_FILENO);
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        wsi_owner_release(wsi);
        h->stdin_wsi = NULL;
        stdin_eof(h);
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols protocol = {
    .name = HEADLESS_PROTOCOL_NAME,
    .callback = stdin_cb,
};

/* ---- lifetime ---- */

static void *headless_create(const struct frontend_env *env)
{
    struct headless *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->env = *env;
    h->owner.gone = stdin_gone;
    lws_adopt_desc_t ad = {
        .vh = env->vhost,
        .type = LWS_ADOPT_RAW_FILE_DESC,
        .fd = { .filefd = STDIN_FILENO },
        .vh_prot_name = HEADLESS_PROTOCOL_NAME,
        .opaque = &h->owner,
    };
    h->stdin_wsi = lws_adopt_descriptor_vhost_via_info(&ad);
    if (!h->stdin_wsi) {
        free(h);
        return NULL;
    }
    return h;
}

static void headless_destroy(void *fe, const struct frontend_exit *how)
{
    struct headless *h = fe;
    if (!h)
        return;
    if (h->stdin_wsi)
        wsi_owner_detach(h->stdin_wsi);
    if (how->logged_in)
        print_stats(h);
    free(h);
}

const struct frontend_ops frontend_headless = {
    .name = "headless",
    .input = "stdin",
    .protocol = &protocol,
    .interactive = 0,
    .create = headless_create,
    .destroy = headless_destroy,
    .show_event = show_event,
    .show_state = show_state,
    .show_ack = show_ack,
    .show_sending = show_sending,
    .show_error = show_error,
    .show_notice = show_notice,
    .show_logged_in = show_logged_in,
    .show_transport = show_transport,
    .show_server = show_server,
    .show_ephemeral = show_ephemeral,
    .show_history = show_history,
    .show_rooms = show_rooms,
    .show_grace_over = show_grace_over,
    .print_error = print_error,
};
