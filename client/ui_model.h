/* ui_model.h — what the UI shows, kept as display-ready lines: the chat
 * pane's history (messages, notices, errors) and the alerts, each converted
 * once from the core's events into safe wide-character text (ui_text.h),
 * with a date line in the chat where the local day changes between two
 * lines.
 * Reading an event's fields for display is all it knows of the protocol.
 * No curses; bounded (the oldest lines go first). */
#ifndef CHAT_UI_MODEL_H
#define CHAT_UI_MODEL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <wchar.h>

#define UI_CHAT_KEEP   5000
#define UI_ALERTS_KEEP 500

enum ui_line_kind {
    UI_LINE_CHAT,       /* someone else's message */
    UI_LINE_OWN,        /* our own message, as the server stored it */
    UI_LINE_NOTICE,     /* a result we asked for, help, a switch */
    UI_LINE_ERROR,
    UI_LINE_INFO,       /* our own echo of a command, lws logs */
    UI_LINE_ALERT,
    UI_LINE_DAY,        /* "── Wed 2 Dec 2026 ──": the day changed */
};

enum ui_alert_kind {
    UI_ALERT_OTHER = 0,
    UI_ALERT_PENDING,
    UI_ALERT_PROCESSING,
    UI_ALERT_COMPLETED,
    UI_ALERT_FAILED,
    UI_ALERT_RECEIVED,
};

struct ui_line {
    enum ui_line_kind kind;
    enum ui_alert_kind alert;    /* UI_LINE_ALERT */
    int64_t ts;                  /* epoch ms */
    int64_t id;                  /* event id, 0 for local lines */
    int64_t transfer_id;         /* UI_LINE_ALERT of a transfer, else 0 */
    char sending[33];            /* UI_LINE_OWN typed, not yet stored: its
                                    client_msg_id; "" once stored */
    wchar_t *who;                /* sender or alert label, safe text */
    size_t who_len;
    wchar_t *text;               /* safe text, may hold '\n' */
    size_t text_len;
};

struct ui_list {
    struct ui_line *v;
    size_t len, cap, keep;
    uint64_t added;              /* lines ever added (for "new below") */
    int day_lines;               /* a date line where the day changes */
    int64_t last_ts;             /* of the newest line with a time */
};

struct ui_model {
    struct ui_list chat, alerts;
};

void ui_model_init(struct ui_model *m);
void ui_model_free(struct ui_model *m);

/* Adds a line of UTF-8 text (who may be NULL), after a date line if the
 * list has them and ts falls on another local day than the line before
 * (ts 0: no time, no date line); the last line of the list or NULL when out
 * of memory. */
struct ui_line *ui_list_add(struct ui_list *l, enum ui_line_kind kind, int64_t ts,
                                  const char *who, const char *text);

/* An event from the core: a chat event goes to the chat list (UI_LINE_OWN if
 * from self), an alert to the alerts list; other types become an info line.
 * A transfer has one row in the alerts list, its latest state: a new alert
 * of a transfer replaces its earlier row (the row moves to the end, where
 * the newest alert is). A failure's reason is in words (insufficient funds).
 * A member event is "bob joined" / "bob left", a topic event "bob set the
 * topic: ..." (info lines).
 * Returns the line added (NULL if none). */
const struct ui_line *ui_model_add_event(struct ui_model *m, const json_t *event,
                                         const char *self);

/* Your own line, shown as typed before the server has it: body followed by
 * UI_SENDING_MARK, until ui_model_acked. */
#define UI_SENDING_MARK " (sending\u2026)"
const struct ui_line *ui_model_add_sending(struct ui_model *m, const char *client_msg_id,
                                           const char *self, const char *body, int64_t ts);
/* The server stored it as event id: the mark goes. When that event was
 * shown first, the typed line goes instead (one line per message). Returns
 * 1 if a line changed. A chat event from self whose id a typed line
 * already has is not added again (ui_model_add_event returns NULL). */
int ui_model_acked(struct ui_model *m, const char *client_msg_id, int64_t id);
/* The server refused it for good: the mark becomes UI_REFUSED_MARK. */
#define UI_REFUSED_MARK " (not sent)"
int ui_model_refused(struct ui_model *m, const char *client_msg_id);

/* Protocol v1.1: each room has its own chat list; the one shown is
 * m->chat, the others wait in a struct ui_list each (ui.c swaps them). */
void ui_list_init_chat(struct ui_list *l);
void ui_list_free(struct ui_list *l);
/* A page of older events (oldest first) goes above the list's lines:
 * events whose id the list has already are skipped. Returns the lines
 * added. */
size_t ui_list_prepend_events(struct ui_list *l, const json_t *events, const char *self);

/* "pending", "completed", ... for an alert kind. */
const char *ui_alert_label(enum ui_alert_kind k);

#endif
