/* ui.c — the full-screen ncurses front end (bin/chat without --headless,
 * frontend_ui in frontend.h): chat pane, alerts pane, pop-up alerts, input
 * line with history (kept between runs by ui_history.c), status bar with the connection state and the
 * transport's live cost. This file owns the lifecycle: taking and giving
 * back the terminal, keys from the lws loop (Esc then a key is that key
 * with Alt; xterm's modified keys are defined so they never reach the
 * line as text), Tab completion's words, what the app shows into the
 * model, pop-ups and the bell, timers, and the one command that is the
 * terminal's own (/stats, the cost line on or off). It renders and calls back into the
 * app for commands and to quit (/quit, Ctrl-C, Ctrl-D on an empty line);
 * a /transfer is handed on only after "y" to "send 25.00 to bob? y/n";
 * when to leave is the app's (app.c), no protocol here. Drawing is
 * ui_render.c; layout, editor and text are pure modules. Every change
 * schedules one frame on the next loop pass, so a page of 100 events is
 * drawn once.
 *
 * The terminal is read through the lws loop: fd 0 is adopted as a raw file
 * and keys are taken with get_wch() in no-delay mode when it is readable.
 * Resizes arrive as SIGWINCH through the app's signalfd (the resize op). */
#define NCURSES_WIDECHAR 1
#include "commands.h"
#include "core.h"
#include "frontend.h"
#include "money.h"
#include "protocol.h"
#include "roomlist.h"
#include "ui_complete.h"
#include "ui_editor.h"
#include "ui_format.h"
#include "ui_history.h"
#include "ui_layout.h"
#include "ui_model.h"
#include "ui_popup.h"
#include "ui_render.h"
#include "ui_text.h"
#include "wsi_owner.h"

#include <langinfo.h>
#include <locale.h>
#include <ncursesw/curses.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define UI_PROTOCOL_NAME  "chat-tty"
#define TICK_MS           500      /* countdown and cost line refresh */
#define POPUP_MS          6000     /* how long a pop-up stays */
#define POPUP_FRESH_MS    30000    /* older alerts (history on start) don't pop up */
#define BELL_GAP_MS       1000     /* one bell for a burst of alerts */
#define KEYS_PER_WAKEUP   4096
#define IDLE_WAKEUPS_MAX  256      /* readable but no key, again and again: gone */
#define NAMES_SCAN_MAX    2000     /* chat lines looked through for Tab's names */

/* Keys ncurses does not know for every TERM (xterm's modified keys, which
 * tmux sends too): defined at start so they arrive as one code, not as
 * characters typed into the line. */
enum {
    KEY_ALT_END = KEY_MAX + 1, KEY_CTRL_END, KEY_ALT_PPAGE, KEY_ALT_NPAGE,
    KEY_ALT_HOME,
};
static const struct { const char *seq; int code; } extra_keys[] = {
    { "\033[1;3F", KEY_ALT_END }, { "\033[1;5F", KEY_CTRL_END },
    { "\033[8;3~", KEY_ALT_END }, { "\033[8;5~", KEY_CTRL_END },
    { "\033[4;3~", KEY_ALT_END }, { "\033[4;5~", KEY_CTRL_END },
    { "\033[5;3~", KEY_ALT_PPAGE }, { "\033[6;3~", KEY_ALT_NPAGE },
    { "\033[1;3H", KEY_ALT_HOME },
};

struct ui {
    struct frontend_env env;
    struct wsi_owner owner;      /* of the terminal wsi */
    struct lws *tty_wsi;
    SCREEN *screen;
    struct ui_model model;
    struct ui_editor ed;
    struct ui_history *history;  /* kept between runs; NULL: not kept */
    struct ui_layout layout;
    int colors;
    char transport[32];          /* as shown: "long-poll", "auto: long-poll" */
    const char *server_url;      /* shown, or NULL with a single server */

    enum core_state state;
    int64_t retry_at;            /* monotonic ms of the next attempt */
    int started;                 /* logged in: the transport reports states */
    int quitting;                /* the app leaves once the outbox is empty */
    int line_full_said;          /* "the line is full" shown for this line */
    int confirming;              /* a transfer waits for y (anything else: no) */
    struct cmd transfer;         /* that transfer */

    int scroll;                  /* chat rows scrolled back */
    int alerts_scroll;           /* alerts rows scrolled back */
    int stats_hidden;            /* /stats: the cost line off */
    struct ui_complete comp;     /* Tab completion in progress */
    uint64_t added_at_scroll;
    struct ui_popup popup;       /* the pop-up's alert and its "+N more" */
    int64_t last_bell;
    unsigned idle_wakeups;

    /* v1.1: the chat list of the room shown is model.chat; every other
     * room's waits here until it is shown (roomlist_current says which). */
    char shown[PROTO_ROOM_REF_MAX + 1];
    struct parked { char name[PROTO_ROOM_REF_MAX + 1]; struct ui_list chat; } *parked;
    size_t n_parked;

    int frame_pending;
    lws_sorted_usec_list_t sul_frame, sul_tick, sul_popup;
    char last_error[512];
    char exit_note[128];         /* printed after the terminal is given back */
};

static struct ui *log_target;   /* lws log lines go to the chat pane */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- drawing ---- */

static void render_now(struct ui *u)
{
    struct core_stats st;
    core_get_stats(u->env.core, &st);
    const struct ui_list *al = &u->model.alerts;
    const struct ui_line *popup = NULL;
    uint64_t back = al->added - u->popup.seq;
    if (u->popup.on && back < al->len)
        popup = &al->v[al->len - 1 - back];
    int64_t left = u->retry_at - mono_ms();
    const struct room *rm = roomlist_current(u->env.rooms);
    char bar[512], typing[128];
    roomlist_bar_text(u->env.rooms, u->layout.chat_title.w > 4 ? (size_t)u->layout.chat_title.w - 4 : 0,
                   bar, sizeof bar);
    roomlist_typing_text(u->env.rooms, u->shown, wall_ms(), typing, sizeof typing);
    int wanted = u->scroll;
    struct ui_view v = {
        .layout = &u->layout, .model = &u->model, .editor = &u->ed,
        .user = u->env.user, .transport = u->transport, .server = u->server_url,
        .room = rm && rm->peer[0] ? rm->peer : u->shown, .direct = rm && rm->peer[0],
        .topic = rm ? rm->topic : "", .roomlist_bar = bar, .typing = typing,
        .online = rm && rm->online > 0 ? rm->online : -1,
        .logging_in = !u->started, .state = u->state, .retry_ms = left > 0 ? left : 0, .quitting = u->quitting,
        .outbox = core_outbox_len(u->env.core), .stats = &st,
        .scroll = u->scroll, .alerts_scroll = u->alerts_scroll, .new_below = u->scroll ? u->model.chat.added - u->added_at_scroll : 0,
        .popup = popup, .popup_more = u->popup.unseen, .colors = u->colors,
    };
    ui_render(&v);
    if (wanted > v.scroll)      /* PgUp past the oldest line: the page before */
        u->env.page_wanted(u->env.arg, u->shown);
    if (popup)
        ui_popup_drawn(&u->popup);
    u->alerts_scroll = v.alerts_scroll;
    if (v.scroll != u->scroll) {
        u->scroll = v.scroll;
        if (!u->scroll)
            u->added_at_scroll = u->model.chat.added;
    }
}

static void frame_cb(lws_sorted_usec_list_t *sul)
{
    struct ui *u = lws_container_of(sul, struct ui, sul_frame);
    u->frame_pending = 0;
    render_now(u);
}

static void schedule_frame(struct ui *u)
{
    if (u->frame_pending)
        return;
    u->frame_pending = 1;
    lws_sul_schedule(u->env.ctx, 0, &u->sul_frame, frame_cb, 1);
}

static void tick_cb(lws_sorted_usec_list_t *sul)
{
    struct ui *u = lws_container_of(sul, struct ui, sul_tick);
    render_now(u);
    lws_sul_schedule(u->env.ctx, 0, &u->sul_tick, tick_cb, (lws_usec_t)TICK_MS * 1000);
}

static void relayout(struct ui *u)
{
    int rows, cols;
    getmaxyx(stdscr, rows, cols);
    ui_layout_compute_with(rows, cols, !u->stats_hidden, &u->layout);
}

static void ui_resize(void *fe)
{
    struct ui *u = fe;
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0)
        resizeterm(ws.ws_row, ws.ws_col);
    relayout(u);
    clearok(curscr, TRUE);      /* repaint every cell: no leftovers */
    render_now(u);
}

/* ---- lines in the chat pane ---- */

/* While scrolled back, the view stays where it is: the chat lines added
 * since the list counted `before` (a date line may come with one) push the
 * scroll up by their rows. */
static void keep_view(struct ui *u, uint64_t before)
{
    const struct ui_list *chat = &u->model.chat;
    uint64_t n = chat->added - before;
    if (u->scroll <= 0)
        return;
    for (size_t i = chat->len; i > 0 && n > 0; i--, n--)
        u->scroll += ui_render_line_rows(&chat->v[i - 1], u->layout.chat.w);
}

static void add_line(struct ui *u, enum ui_line_kind kind, const char *who, const char *text)
{
    uint64_t before = u->model.chat.added;
    ui_list_add(&u->model.chat, kind, wall_ms(), who, text);
    keep_view(u, before);
    schedule_frame(u);
}

/* ---- one chat list per room ---- */

static struct ui_list *parked_list(struct ui *u, const char *room, int make)
{
    for (size_t i = 0; i < u->n_parked; i++)
        if (strcmp(u->parked[i].name, room) == 0)
            return &u->parked[i].chat;
    struct parked *p = make ? realloc(u->parked, (u->n_parked + 1) * sizeof *p) : NULL;
    if (!p)
        return NULL;
    u->parked = p;
    p = &u->parked[u->n_parked++];
    snprintf(p->name, sizeof p->name, "%s", room);
    ui_list_init_chat(&p->chat);
    return &p->chat;
}

/* The list of room (the shown one is the model's); NULL if out of memory. */
static struct ui_list *room_list(struct ui *u, const char *room)
{
    return strcmp(room, u->shown) == 0 ? &u->model.chat : parked_list(u, room, 1);
}

/* The room model shows another room: its list comes out, the shown one
 * waits, the view goes to the newest line, and the app hears of it (the
 * read marker). */
static void follow_room(struct ui *u)
{
    const struct room *rm = roomlist_current(u->env.rooms);
    struct ui_list *park, *take;
    if (!rm || strcmp(rm->name, u->shown) == 0)
        return;
    if (!(park = parked_list(u, u->shown, 1)))
        return;
    *park = u->model.chat;
    take = parked_list(u, rm->name, 1);
    if (!take) {
        ui_list_init_chat(&u->model.chat);
    } else {
        u->model.chat = *take;
        ui_list_init_chat(take);
    }
    snprintf(u->shown, sizeof u->shown, "%s", rm->name);
    u->scroll = 0;
    u->added_at_scroll = u->model.chat.added;
    u->env.room_shown(u->env.arg);
    schedule_frame(u);
}

/* Adds an event to a room not shown, through a model of that list. */
static void add_to_parked(struct ui *u, const char *room, const json_t *event)
{
    struct ui_list *l = parked_list(u, room, 1);
    if (!l)
        return;
    struct ui_model m = { .chat = *l, .alerts = u->model.alerts };
    ui_model_add_event(&m, event, u->env.user);
    *l = m.chat;
}

static void log_line(int level, const char *line)
{
    char buf[400];
    (void)level;
    if (!log_target)
        return;
    snprintf(buf, sizeof buf, "lws: %s", line);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    add_line(log_target, UI_LINE_INFO, NULL, buf);
}

/* ---- what the app shows ---- */

static void popup_over(lws_sorted_usec_list_t *sul)
{
    struct ui *u = lws_container_of(sul, struct ui, sul_popup);
    ui_popup_close(&u->popup);
    schedule_frame(u);
}

static void show_popup(struct ui *u, const struct ui_line *l)
{
    int64_t now = wall_ms();
    if (now - l->ts > POPUP_FRESH_MS)
        return;                 /* history being caught up on */
    ui_popup_alert(&u->popup, u->model.alerts.added);
    lws_sul_schedule(u->env.ctx, 0, &u->sul_popup, popup_over, (lws_usec_t)POPUP_MS * 1000);
    if (!u->env.quiet && now - u->last_bell >= BELL_GAP_MS) {
        u->last_bell = now;
        beep();
    }
}

static void show_event(void *fe, const json_t *event)
{
    struct ui *u = fe;
    const char *room = json_string_value(json_object_get(event, "room"));
    const char *type = json_string_value(json_object_get(event, "type"));
    follow_room(u);             /* our own join may have made it current */
    if (room && type && strcmp(type, "alert") != 0 && strcmp(room, u->shown) != 0) {
        add_to_parked(u, room, event);
        schedule_frame(u);      /* the bar's unread count */
        return;
    }
    uint64_t before = u->model.chat.added;
    const struct ui_line *l = ui_model_add_event(&u->model, event, u->env.user);
    if (!l)
        return;
    if (l->kind == UI_LINE_ALERT)
        show_popup(u, l);
    else
        keep_view(u, before);
    schedule_frame(u);
}

static void show_state(void *fe, enum core_state s, unsigned retry_ms)
{
    struct ui *u = fe;
    u->state = s;
    u->retry_at = mono_ms() + retry_ms;
    if (s == CORE_OFFLINE)
        add_line(u, UI_LINE_ERROR, NULL, "offline: the client has given up; /quit to leave");
    schedule_frame(u);
}

static void show_logged_in(void *fe)
{
    struct ui *u = fe;
    u->started = 1;
    schedule_frame(u);
}

/* The typed line may be in a room no longer shown. */
static void show_ack(void *fe, const char *client_msg_id, int64_t id)
{
    struct ui *u = fe;
    for (size_t i = 0; !ui_model_acked(&u->model, client_msg_id, id) && i < u->n_parked; i++) {
        struct ui_model m = { .chat = u->parked[i].chat };
        int done = ui_model_acked(&m, client_msg_id, id);
        u->parked[i].chat = m.chat;
        if (done)
            break;
    }
    schedule_frame(u);
}

/* Refused for good: "(not sent)" instead of "(sending…)". */
static void show_rejected(void *fe, const char *client_msg_id)
{
    struct ui *u = fe;
    for (size_t i = 0; !ui_model_refused(&u->model, client_msg_id) && i < u->n_parked; i++) {
        struct ui_model m = { .chat = u->parked[i].chat };
        int done = ui_model_refused(&m, client_msg_id);
        u->parked[i].chat = m.chat;
        if (done)
            break;
    }
    schedule_frame(u);
}

static void show_ephemeral(void *fe, const json_t *item)
{
    (void)item;
    schedule_frame(fe);         /* the bar's marks, "bob is typing" */
}

/* Older lines go above; the view, counted from the bottom, stays. */
static void show_history(void *fe, const char *room, const json_t *events, int more, int start)
{
    struct ui *u = fe;
    struct ui_list *l = room_list(u, room);
    size_t added = l ? ui_list_prepend_events(l, events, u->env.user) : 0;
    if (!start && !more && added == 0 && strcmp(room, u->shown) == 0)
        add_line(u, UI_LINE_INFO, NULL, "no older messages");
    schedule_frame(u);
}

static void show_rooms(void *fe)
{
    struct ui *u = fe;
    follow_room(u);
    schedule_frame(u);
}

/* Your line at once, marked "(sending…)" until the server has it. */
static void show_sending(void *fe, const char *client_msg_id, const char *body)
{
    struct ui *u = fe;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    const struct ui_line *l = ui_model_add_sending(&u->model, client_msg_id, u->env.user, body,
        (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    if (l && u->scroll > 0)
        u->scroll += ui_render_line_rows(l, u->layout.chat.w);
    schedule_frame(u);
}

static void show_error(void *fe, const char *text)
{
    struct ui *u = fe;
    snprintf(u->last_error, sizeof u->last_error, "%s", text);
    add_line(u, UI_LINE_ERROR, NULL, text);
}

static void show_notice(void *fe, const char *text, const json_t *data)
{
    struct ui *u = fe;
    (void)data;
    add_line(u, UI_LINE_NOTICE, NULL, text);
}

/* The status bar shows "websocket", or "auto: websocket" in auto mode. */
static void show_transport(void *fe, const char *name, int is_auto)
{
    struct ui *u = fe;
    snprintf(u->transport, sizeof u->transport, "%s%s", is_auto ? "auto: " : "", name);
    schedule_frame(u);
}

/* The server only matters to the user when there is a choice. */
static void show_server(void *fe, const char *url)
{
    struct ui *u = fe;
    if (!u->env.several_servers)
        return;
    u->server_url = url;
    schedule_frame(u);
}

static void show_quitting(void *fe)
{
    struct ui *u = fe;
    u->quitting = 1;
    add_line(u, UI_LINE_INFO, NULL, "leaving once queued messages are sent "
             "(/quit or Ctrl-C again: leave now)");
}

/* Not delivered after the grace: say so on screen and stay (the app waits
 * for a second /quit); the note is for after the screen is gone. */
static void show_grace_over(void *fe, size_t unacked)
{
    struct ui *u = fe;
    char line[160];
    if (!unacked)
        return;
    snprintf(u->exit_note, sizeof u->exit_note,
             "left with %zu message(s) or transfer(s) not delivered (exit status 4)", unacked);
    snprintf(line, sizeof line, "%zu message(s) or transfer(s) not delivered yet; still trying. "
             "/quit again to leave without them", unacked);
    add_line(u, UI_LINE_ERROR, NULL, line);
}

static void print_error(const char *text)
{
    fprintf(stderr, "chat: %s\n", text);
}

/* ---- input ---- */

/* Commands only this front end has (the terminal's own lines). */
static const char *const ui_help_lines[] = {
    "/stats               hide or show the transport's cost line",
    NULL,
};
static const char *const keys_help =
    "keys: PgUp/PgDn scroll · Alt-End (or End on an empty line) jumps to the newest · "
    "Alt-PgUp/Alt-PgDn scroll the alerts · Tab completes commands and names · "
    "Up/Down history · Alt-b/Alt-f word · Ctrl-U/Ctrl-W/Ctrl-K erase · "
    "Esc closes a pop-up · Ctrl-C leaves";

static void toggle_stats(struct ui *u)
{
    u->stats_hidden = !u->stats_hidden;
    relayout(u);
    add_line(u, UI_LINE_NOTICE, NULL, u->stats_hidden
             ? "cost line hidden (/stats shows it again)" : "cost line shown (/stats hides it)");
}

static void to_bottom(struct ui *u)
{
    u->scroll = 0;
    u->added_at_scroll = u->model.chat.added;
}

/* Money leaves only once confirmed: "send 25.00 to bob? y/n". While the
 * connection is lost the app refuses it at once, so there is nothing to ask. */
static void ask_transfer(struct ui *u, const struct cmd *c)
{
    char amount[32], line[160];
    if (u->started && (u->state == CORE_RECONNECTING || u->state == CORE_OFFLINE)) {
        u->env.command(u->env.arg, c);
        return;
    }
    u->transfer = *c;
    u->confirming = 1;
    snprintf(line, sizeof line, "send %s to %s? y/n",
             money_format(c->amount_cents, amount, sizeof amount), c->to);
    add_line(u, UI_LINE_NOTICE, NULL, line);
}

/* The key after the question: y sends, any other key cancels. */
static void confirm_key(struct ui *u, wint_t k)
{
    u->confirming = 0;
    if (k == 'y' || k == 'Y')
        u->env.command(u->env.arg, &u->transfer);
    else
        add_line(u, UI_LINE_INFO, NULL, "transfer cancelled; nothing sent");
}

/* The input history of earlier runs, read into the editor. Without a
 * place for it the client runs as before, and says so once: a user who
 * finds Up empty after a restart should know why. */
static void history_start(struct ui *u)
{
    char err[600];
    char *path = ui_history_path(u->env.user, err, sizeof err);
    u->history = path ? ui_history_open(path, UI_HISTORY_MAX, err, sizeof err) : NULL;
    free(path);
    if (!u->history) {
        char line[700];
        snprintf(line, sizeof line, "input history not kept: %s", err);
        add_line(u, UI_LINE_INFO, NULL, line);
        return;
    }
    for (size_t i = 0; i < ui_history_len(u->history); i++)
        ui_editor_history_push(&u->ed, ui_history_line(u->history, i));
}

/* Each line sent is written at once (a crash loses none); a failed write
 * is said once and the history is no longer kept. */
static void history_add(struct ui *u, const char *line)
{
    char err[600], msg[700];
    if (!u->history || ui_history_add(u->history, line, err, sizeof err) >= 0)
        return;
    ui_history_free(u->history);
    u->history = NULL;
    snprintf(msg, sizeof msg, "input history no longer kept: %s", err);
    add_line(u, UI_LINE_ERROR, NULL, msg);
}

static void take_line(struct ui *u)
{
    char *line = ui_editor_take(&u->ed);
    struct cmd c;
    if (!line)
        return;
    cmd_parse(line, &c);
    if (c.kind != CMD_QUIT)     /* Up and Enter in the next run must not leave */
        history_add(u, line);
    if (u->scroll)              /* back to the newest lines */
        to_bottom(u);
    if (strcmp(line, "/stats") == 0) {
        add_line(u, UI_LINE_INFO, NULL, line);
        toggle_stats(u);
        free(line);
        return;
    }
    switch (c.kind) {
    case CMD_QUIT:
        u->env.quit_asked(u->env.arg);
        break;
    case CMD_INVALID:
        add_line(u, UI_LINE_ERROR, NULL, c.error);
        break;
    case CMD_EMPTY:             /* only blanks: nothing to send, as irssi */
        break;
    case CMD_HELP:
        for (const char *const *l = cmd_help_lines; *l; l++)
            add_line(u, UI_LINE_NOTICE, NULL, *l);
        for (const char *const *l = ui_help_lines; *l; l++)
            add_line(u, UI_LINE_NOTICE, NULL, *l);
        add_line(u, UI_LINE_NOTICE, NULL, keys_help);
        break;
    case CMD_TRANSFER:
        add_line(u, UI_LINE_INFO, NULL, line);
        ask_transfer(u, &c);
        break;
    case CMD_MESSAGE:
        if (u->quitting)
            add_line(u, UI_LINE_ERROR, NULL, "leaving: not sent");
        else
            u->env.command(u->env.arg, &c);
        break;
    default:
        add_line(u, UI_LINE_INFO, NULL, line);
        u->env.command(u->env.arg, &c);
        break;
    }
    free(line);
}

/* Tab's words: the commands of /help, or the names seen in the chat, the
 * latest speaker first (ourselves last: rarely the one meant). */
static size_t completion_words(struct ui *u, int command, char **words, size_t max)
{
    size_t n = 0;
    if (command) {
        const char *const *lists[] = { cmd_help_lines, ui_help_lines };
        for (size_t k = 0; k < 2; k++)
            for (const char *const *l = lists[k]; *l && n < max; l++)
                if (**l == '/')
                    words[n++] = strndup(*l, strcspn(*l, " "));
        return n;
    }
    const struct ui_list *chat = &u->model.chat;
    for (size_t i = chat->len, seen = 0; i > 0 && seen < NAMES_SCAN_MAX && n < max - 1; i--, seen++) {
        const struct ui_line *l = &chat->v[i - 1];
        char *w = l->kind == UI_LINE_CHAT ? ui_text_to_utf8(l->who, l->who_len) : NULL;
        for (size_t k = 0; w && k < n; k++)
            if (words[k] && strcmp(words[k], w) == 0) {
                free(w);
                w = NULL;
            }
        if (w)
            words[n++] = w;
    }
    words[n++] = strdup(u->env.user);
    return n;
}

static void complete(struct ui *u)
{
    char *words[UI_COMPLETE_MAX * 4];
    size_t n = 0;
    int kind = ui_complete_word_kind(&u->ed);
    if (kind >= 0 && !(u->comp.active && u->ed.cur == u->comp.end))
        n = completion_words(u, kind, words, sizeof words / sizeof words[0]);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)          /* a failed strdup drops a word */
        if (words[i])
            words[k++] = words[i];
    if (ui_complete_tab(&u->comp, &u->ed, (const char *const *)words, k) < 0)
        beep();
    for (size_t i = 0; i < k; i++)
        free(words[i]);
}

static void scroll_by(struct ui *u, int rows)
{
    if (u->scroll == 0 && rows > 0)
        u->added_at_scroll = u->model.chat.added;
    u->scroll += rows;
    if (u->scroll < 0)
        u->scroll = 0;
}

static void scroll_alerts(struct ui *u, int rows)
{
    u->alerts_scroll += rows;
    if (u->alerts_scroll < 0)
        u->alerts_scroll = 0;
}

static void function_key(struct ui *u, wint_t k)
{
    int page = u->layout.chat.h > 2 ? u->layout.chat.h - 1 : 1;
    int apage = u->layout.alerts.h > 2 ? u->layout.alerts.h - 1 : 1;
    switch (k) {
    case KEY_LEFT: ui_editor_left(&u->ed); break;
    case KEY_RIGHT: ui_editor_right(&u->ed); break;
    case KEY_HOME: ui_editor_home(&u->ed); break;
    case KEY_END:
        if (u->ed.len == 0)
            to_bottom(u);
        ui_editor_end(&u->ed);
        break;
    case KEY_ALT_END:
    case KEY_CTRL_END: to_bottom(u); break;
    case KEY_BACKSPACE: ui_editor_backspace(&u->ed); break;
    case KEY_DC: ui_editor_delete(&u->ed); break;
    case KEY_UP: ui_editor_history_prev(&u->ed); break;
    case KEY_DOWN: ui_editor_history_next(&u->ed); break;
    case KEY_PPAGE: scroll_by(u, page); break;
    case KEY_NPAGE: scroll_by(u, -page); break;
    case KEY_ALT_PPAGE: scroll_alerts(u, apage); break;
    case KEY_ALT_NPAGE: scroll_alerts(u, -apage); break;
    case KEY_ALT_HOME: scroll_alerts(u, u->model.alerts.len * 8 + 1000); break;
    case KEY_ENTER: take_line(u); break;
    case KEY_RESIZE: relayout(u); clearok(curscr, TRUE); break;
    default: break;
    }
}

#define CTRL_KEY(c) ((c) & 0x1f)

static void close_popup(struct ui *u)
{
    lws_sul_cancel(&u->sul_popup);
    ui_popup_close(&u->popup);
}

/* Esc then a key: Alt and the key (readline's meta). */
static void alt_key(struct ui *u, int r, wint_t c)
{
    if (r == KEY_CODE_YES) {
        switch (c) {
        case KEY_END: to_bottom(u); break;
        case KEY_PPAGE: function_key(u, KEY_ALT_PPAGE); break;
        case KEY_NPAGE: function_key(u, KEY_ALT_NPAGE); break;
        case KEY_HOME: function_key(u, KEY_ALT_HOME); break;
        default: break;
        }
        return;
    }
    if (c >= '1' && c <= '9') {     /* Alt-1..9: room 1..9, as irssi and weechat */
        roomlist_switch(u->env.rooms, (size_t)(c - '1'));
        follow_room(u);
        return;
    }
    switch (c) {
    case 'b': ui_editor_word_left(&u->ed); break;
    case 'f': ui_editor_word_right(&u->ed); break;
    case '>': to_bottom(u); break;
    case '[':                   /* a sequence ncurses does not know: */
    case 'O': {                 /* swallowed, never typed into the line */
        wint_t k;
        int n = 0;
        while (n++ < 16 && get_wch(&k) == OK && !(k >= 0x40 && k <= 0x7e))
            ;
        break;
    }
    case 0x1b: close_popup(u); break;
    default: break;             /* an Alt key we do not use: nothing typed */
    }
}

/* A printable key; a full line says its limit once (a paste is not cut
 * without a word), then only beeps. */
static void insert_char(struct ui *u, wint_t c)
{
    if (ui_editor_insert(&u->ed, (wchar_t)c) == 0) {
        u->line_full_said = 0;
        if (u->ed.buf[0] != L'/')
            u->env.typing(u->env.arg);  /* a message being typed (the app rate-limits) */
        return;
    }
    if (c < 0x20)
        return;
    beep();
    if (u->line_full_said)
        return;
    u->line_full_said = 1;
    add_line(u, UI_LINE_ERROR, NULL, "the line is full: a message is at most 4,096 bytes; "
             "the rest was not typed");
}

static void char_key(struct ui *u, wint_t c)
{
    switch (c) {
    case '\r':
    case '\n': take_line(u); break;
    case 0x7f:
    case CTRL_KEY('h'): ui_editor_backspace(&u->ed); break;
    case CTRL_KEY('a'): ui_editor_home(&u->ed); break;
    case CTRL_KEY('e'): ui_editor_end(&u->ed); break;
    case CTRL_KEY('b'): ui_editor_left(&u->ed); break;
    case CTRL_KEY('f'): ui_editor_right(&u->ed); break;
    case CTRL_KEY('k'): ui_editor_kill_to_end(&u->ed); break;
    case CTRL_KEY('u'): ui_editor_kill_to_start(&u->ed); break;
    case CTRL_KEY('w'): ui_editor_kill_word(&u->ed); break;
    case CTRL_KEY('p'): roomlist_switch_step(u->env.rooms, -1); follow_room(u); break;
    case CTRL_KEY('n'): roomlist_switch_step(u->env.rooms, 1); follow_room(u); break;
    case CTRL_KEY('l'): clearok(curscr, TRUE); break;
    case CTRL_KEY('c'): u->env.quit_asked(u->env.arg); break;
    case CTRL_KEY('d'):
        if (u->ed.len == 0)
            u->env.quit_asked(u->env.arg);
        else
            ui_editor_delete(&u->ed);
        break;
    case 0x1b: close_popup(u); break;   /* Esc alone */
    case '\t': complete(u); break;
    default:
        insert_char(u, c);
        break;
    }
}

/* One key; Esc followed at once by another is that key with Alt. */
static void key(struct ui *u, int r, wint_t ch)
{
    if (!(r == OK && ch == '\t'))
        ui_complete_reset(&u->comp);
    if (r == OK && ch == 0x1b) {
        wint_t next;
        int r2 = get_wch(&next);
        if (r2 != ERR) {
            alt_key(u, r2, next);
            return;
        }
    }
    if (r == KEY_CODE_YES)
        function_key(u, ch);
    else
        char_key(u, ch);
}

/* Takes every key that is there; -1 when the terminal looks gone. */
static int tty_readable(struct ui *u)
{
    wint_t ch;
    int r, keys = 0;
    while (keys < KEYS_PER_WAKEUP && (r = get_wch(&ch)) != ERR) {
        keys++;
        if (u->confirming && (r != KEY_CODE_YES || ch == KEY_ENTER))
            confirm_key(u, ch);
        else
            key(u, r, ch);
    }
    if (keys)
        u->idle_wakeups = 0;
    else if (++u->idle_wakeups > IDLE_WAKEUPS_MAX)
        return -1;
    schedule_frame(u);
    return 0;
}

static void tty_gone(struct ui *u)
{
    u->tty_wsi = NULL;
    u->env.input_gone(u->env.arg);
}

static void tty_owner_gone(struct wsi_owner *o, struct lws *wsi)
{
    (void)wsi;
    tty_gone(lws_container_of(o, struct ui, owner));
}

static int tty_cb(struct lws *wsi, enum lws_callback_reasons reason,
                  void *user, void *in, size_t len)
{
    struct wsi_owner *o = wsi_owner_of(wsi);
    struct ui *u = o ? lws_container_of(o, struct ui, owner) : NULL;
    (void)user;
    (void)in;
    (void)len;
    if (!u)
        return reason == LWS_CALLBACK_RAW_RX_FILE ? -1 : 0;
    switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
        return tty_readable(u);
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        wsi_owner_release(wsi);
        tty_gone(u);
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols protocol = {
    .name = UI_PROTOCOL_NAME,
    .callback = tty_cb,
};

/* ---- lifetime ---- */

static void ui_free(struct ui *u, int exit_code);

/* The protocol is UTF-8; so must the terminal's locale be. */
static const char *setup_locale(void)
{
    setlocale(LC_ALL, "");
    if (strcmp(nl_langinfo(CODESET), "UTF-8") == 0)
        return NULL;
    if (setlocale(LC_CTYPE, "C.UTF-8") && strcmp(nl_langinfo(CODESET), "UTF-8") == 0)
        return "the terminal's locale is not UTF-8; using C.UTF-8 (set LANG to a UTF-8 locale)";
    return "no UTF-8 locale: text other than ASCII will not show correctly";
}

static int start_curses(struct ui *u)
{
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        fprintf(stderr, "chat: the UI needs a terminal; use --headless for pipes\n");
        return -1;
    }
    u->screen = newterm(NULL, stdout, stdin);
    if (!u->screen) {
        fprintf(stderr, "chat: cannot start the terminal UI (TERM=%s)\n",
                getenv("TERM") ? getenv("TERM") : "");
        return -1;
    }
    set_term(u->screen);
    raw();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    set_escdelay(25);
    for (size_t i = 0; i < sizeof extra_keys / sizeof extra_keys[0]; i++)
        define_key(extra_keys[i].seq, extra_keys[i].code);
    u->colors = ui_render_init_colors();
    relayout(u);
    return 0;
}

/* Takes over the terminal. NULL (terminal untouched, reason on stderr) if
 * stdin/stdout are not a terminal or curses cannot start. */
static void *ui_create(const struct frontend_env *env)
{
    struct ui *u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    u->env = *env;
    u->owner.gone = tty_owner_gone;
    snprintf(u->transport, sizeof u->transport, "%s%s",
             env->auto_transport ? "auto: " : "", env->transport_name);
    u->server_url = env->several_servers ? env->server_url : NULL;
    ui_model_init(&u->model);
    snprintf(u->shown, sizeof u->shown, "%s", PROTO_DEFAULT_ROOM);
    ui_editor_init(&u->ed, PROTO_BODY_MAX);
    const char *locale_note = setup_locale();
    if (start_curses(u) < 0) {
        free(u);
        return NULL;
    }
    lws_adopt_desc_t ad = {
        .vh = env->vhost,
        .type = LWS_ADOPT_RAW_FILE_DESC,
        .fd = { .filefd = STDIN_FILENO },
        .vh_prot_name = UI_PROTOCOL_NAME,
        .opaque = &u->owner,
    };
    u->tty_wsi = lws_adopt_descriptor_vhost_via_info(&ad);
    if (!u->tty_wsi) {
        ui_free(u, 0);
        return NULL;
    }
    log_target = u;
    lws_set_log_level(LLL_ERR, log_line);
    if (locale_note)
        add_line(u, UI_LINE_ERROR, NULL, locale_note);
    add_line(u, UI_LINE_INFO, NULL, "type a message and Enter to send it; /help lists the commands");
    history_start(u);
    lws_sul_schedule(env->ctx, 0, &u->sul_tick, tick_cb, (lws_usec_t)TICK_MS * 1000);
    render_now(u);
    return u;
}

/* A line on stderr once the terminal is ours no more, with any control
 * character from the server made harmless. */
static void print_safe(const char *text)
{
    size_t n;
    wchar_t *w = ui_text_from_utf8(text, strlen(text), 0, &n);
    char *s = w ? ui_text_to_utf8(w, n) : NULL;
    if (s)
        fprintf(stderr, "chat: %s\n", s);
    free(s);
    free(w);
}

/* Gives the terminal back; then, if logged in, prints the cost counters,
 * the exit note and, when exit_code is not 0, the last error, on stderr. */
static void ui_free(struct ui *u, int exit_code)
{
    if (!u)
        return;
    lws_sul_cancel(&u->sul_frame);
    lws_sul_cancel(&u->sul_tick);
    lws_sul_cancel(&u->sul_popup);
    if (u->tty_wsi)
        wsi_owner_detach(u->tty_wsi);
    if (log_target == u) {
        log_target = NULL;
        lws_set_log_level(LLL_ERR, lwsl_emit_stderr_notimestamp);
    }
    if (u->screen) {
        endwin();
        delscreen(u->screen);
    }
    if (u->started) {
        struct core_stats st;
        char line[256];
        core_get_stats(u->env.core, &st);
        fprintf(stderr, "chat: %s, %s: %s\n", u->env.user, u->transport,
                ui_fmt_stats(&st, 0, line, sizeof line));
    }
    if (*u->exit_note)
        print_safe(u->exit_note);
    if (exit_code && *u->last_error)
        print_safe(u->last_error);
    ui_model_free(&u->model);
    for (size_t i = 0; i < u->n_parked; i++)
        ui_list_free(&u->parked[i].chat);
    free(u->parked);
    ui_editor_free(&u->ed);
    ui_history_free(u->history);
    ui_complete_reset(&u->comp);
    free(u);
}

static void ui_destroy(void *fe, const struct frontend_exit *how)
{
    ui_free(fe, how->code);
}

const struct frontend_ops frontend_ui = {
    .name = "ui",
    .input = "terminal",
    .protocol = &protocol,
    .interactive = 1,
    .create = ui_create,
    .destroy = ui_destroy,
    .show_event = show_event,
    .show_state = show_state,
    .show_logged_in = show_logged_in,
    .show_ack = show_ack,
    .show_sending = show_sending,
    .show_ephemeral = show_ephemeral,
    .show_history = show_history,
    .show_rooms = show_rooms,
    .show_rejected = show_rejected,
    .show_error = show_error,
    .show_notice = show_notice,
    .show_transport = show_transport,
    .show_server = show_server,
    .show_quitting = show_quitting,
    .show_grace_over = show_grace_over,
    .resize = ui_resize,
    .print_error = print_error,
};
