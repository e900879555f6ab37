/* ui_model.c — see ui_model.h. */
#include "ui_model.h"
#include "money.h"
#include "ui_format.h"
#include "ui_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

void ui_model_init(struct ui_model *m)
{
    memset(m, 0, sizeof *m);
    m->chat.keep = UI_CHAT_KEEP;
    m->chat.day_lines = 1;
    m->alerts.keep = UI_ALERTS_KEEP;
}

static void line_free(struct ui_line *l)
{
    free(l->who);
    free(l->text);
}

static void list_free(struct ui_list *l)
{
    for (size_t i = 0; i < l->len; i++)
        line_free(&l->v[i]);
    free(l->v);
    l->v = NULL;
    l->len = l->cap = 0;
}

void ui_list_init_chat(struct ui_list *l)
{
    memset(l, 0, sizeof *l);
    l->keep = UI_CHAT_KEEP;
    l->day_lines = 1;
}

void ui_list_free(struct ui_list *l)
{
    list_free(l);
}

void ui_model_free(struct ui_model *m)
{
    list_free(&m->chat);
    list_free(&m->alerts);
}

/* Room for one more line: grows, or drops the oldest tenth once full. */
static struct ui_line *list_slot(struct ui_list *l)
{
    if (l->len >= l->keep) {
        size_t drop = l->keep / 10 ? l->keep / 10 : 1;
        for (size_t i = 0; i < drop; i++)
            line_free(&l->v[i]);
        memmove(&l->v[0], &l->v[drop], (l->len - drop) * sizeof l->v[0]);
        l->len -= drop;
    }
    if (l->len == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct ui_line *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return NULL;
        l->v = v;
        l->cap = cap;
    }
    return &l->v[l->len];
}

static struct ui_line *add_line(struct ui_list *l, enum ui_line_kind kind, int64_t ts,
                                const char *who, const char *text);

struct ui_line *ui_list_add(struct ui_list *l, enum ui_line_kind kind, int64_t ts,
                                  const char *who, const char *text)
{
    if (l->day_lines && ts > 0 && l->last_ts > 0 && !ui_same_day(l->last_ts, ts)) {
        char day[64];
        add_line(l, UI_LINE_DAY, ts, NULL, ui_fmt_day(ts, day, sizeof day));
    }
    if (ts > 0)
        l->last_ts = ts;
    return add_line(l, kind, ts, who, text);
}

static struct ui_line *add_line(struct ui_list *l, enum ui_line_kind kind, int64_t ts,
                                const char *who, const char *text)
{
    struct ui_line *line = list_slot(l);
    if (!line)
        return NULL;
    memset(line, 0, sizeof *line);
    line->kind = kind;
    line->ts = ts;
    line->who = ui_text_from_utf8(who, who ? strlen(who) : 0, 0, &line->who_len);
    line->text = ui_text_from_utf8(text, text ? strlen(text) : 0, UI_TEXT_MULTILINE,
                                   &line->text_len);
    if (!line->who || !line->text) {
        line_free(line);
        return NULL;
    }
    l->len++;
    l->added++;
    return line;
}

static const char *str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static const struct { const char *kind; enum ui_alert_kind k; } alert_kinds[] = {
    { "transfer.pending", UI_ALERT_PENDING },
    { "transfer.processing", UI_ALERT_PROCESSING },
    { "transfer.completed", UI_ALERT_COMPLETED },
    { "transfer.failed", UI_ALERT_FAILED },
    { "transfer.received", UI_ALERT_RECEIVED },
};

const char *ui_alert_label(enum ui_alert_kind k)
{
    switch (k) {
    case UI_ALERT_PENDING: return "pending";
    case UI_ALERT_PROCESSING: return "processing";
    case UI_ALERT_COMPLETED: return "completed";
    case UI_ALERT_FAILED: return "failed";
    case UI_ALERT_RECEIVED: return "received";
    default: return "alert";
    }
}

static enum ui_alert_kind alert_kind(const char *kind)
{
    for (size_t i = 0; i < sizeof alert_kinds / sizeof alert_kinds[0]; i++)
        if (strcmp(kind, alert_kinds[i].kind) == 0)
            return alert_kinds[i].k;
    return UI_ALERT_OTHER;
}

/* The alert's sentence: its body, or one made from its fields; a failure's
 * reason is added when the body does not say it. */
static void alert_text(const json_t *ev, enum ui_alert_kind k, char *buf, size_t size)
{
    const char *body = str(ev, "body"), *reason = str(ev, "reason");
    const char *who = str(ev, "counterparty");
    char amount[32] = "";
    json_t *cents = json_object_get(ev, "amount_cents");
    if (json_is_integer(cents))
        money_format(json_integer_value(cents), amount, sizeof amount);
    if (*body)
        snprintf(buf, size, "%s", body);
    else if (k == UI_ALERT_RECEIVED)
        snprintf(buf, size, "received %s from %s", amount, who);
    else
        snprintf(buf, size, "transfer #%lld of %s to %s: %s",
                 (long long)json_integer_value(json_object_get(ev, "transfer_id")),
                 amount, who, ui_alert_label(k));
    if (k == UI_ALERT_FAILED && *reason) {
        char words[64];         /* insufficient_funds -> insufficient funds */
        size_t i;
        for (i = 0; reason[i] && i + 1 < sizeof words; i++)
            words[i] = reason[i] == '_' ? ' ' : reason[i];
        words[i] = '\0';
        size_t n = strlen(buf);
        if (!strstr(buf, words))
            snprintf(buf + n, size - n, " (%s)", words);
    }
}

/* Drops the earlier row of this transfer seen from the same side (a
 * receiver's row is not the sender's). */
static void alerts_drop_transfer(struct ui_list *l, int64_t tid, int received)
{
    for (size_t i = 0; tid && i < l->len; i++) {
        struct ui_line *r = &l->v[i];
        if (r->transfer_id != tid || (r->alert == UI_ALERT_RECEIVED) != received)
            continue;
        line_free(r);
        memmove(r, r + 1, (l->len - i - 1) * sizeof *r);
        l->len--;
        return;
    }
}

/* The chat line with this event id, or NULL. */
static struct ui_line *chat_line_with_id(struct ui_list *l, int64_t id)
{
    for (size_t i = l->len; id > 0 && i > 0; i--)
        if (l->v[i - 1].id == id)
            return &l->v[i - 1];
    return NULL;
}

const struct ui_line *ui_model_add_sending(struct ui_model *m, const char *client_msg_id,
                                           const char *self, const char *body, int64_t ts)
{
    size_t n = strlen(body);
    char *text = malloc(n + sizeof UI_SENDING_MARK);
    if (!text)
        return NULL;
    memcpy(text, body, n);
    memcpy(text + n, UI_SENDING_MARK, sizeof UI_SENDING_MARK);
    struct ui_line *l = ui_list_add(&m->chat, UI_LINE_OWN, ts, self, text);
    free(text);
    if (l)
        snprintf(l->sending, sizeof l->sending, "%s", client_msg_id);
    return l;
}

int ui_model_acked(struct ui_model *m, const char *client_msg_id, int64_t id)
{
    struct ui_list *c = &m->chat;
    static const wchar_t mark_w[] = L" (sending\u2026)";   /* UI_SENDING_MARK */
    size_t mark = wcslen(mark_w);
    for (size_t i = c->len; i > 0; i--) {
        struct ui_line *l = &c->v[i - 1];
        if (!*l->sending || strcmp(l->sending, client_msg_id) != 0)
            continue;
        if (chat_line_with_id(c, id)) {         /* the echo came first */
            line_free(l);
            memmove(l, l + 1, (c->len - i) * sizeof *l);
            c->len--;
            return 1;
        }
        l->sending[0] = '\0';
        l->id = id;
        if (l->text_len >= mark && wcscmp(l->text + l->text_len - mark, mark_w) == 0)
            l->text[l->text_len -= mark] = L'\0';
        return 1;
    }
    return 0;
}

int ui_model_refused(struct ui_model *m, const char *client_msg_id)
{
    static const wchar_t mark_w[] = L" (sending\u2026)";   /* UI_SENDING_MARK */
    static const wchar_t refused_w[] = L"" UI_REFUSED_MARK;
    struct ui_list *c = &m->chat;
    size_t mark = wcslen(mark_w), add = wcslen(refused_w);
    for (size_t i = c->len; i > 0; i--) {
        struct ui_line *l = &c->v[i - 1];
        if (!*l->sending || strcmp(l->sending, client_msg_id) != 0)
            continue;
        l->sending[0] = '\0';
        if (l->text_len < mark || wcscmp(l->text + l->text_len - mark, mark_w) != 0)
            return 1;
        wchar_t *t = realloc(l->text, (l->text_len - mark + add + 1) * sizeof *t);
        if (!t)
            return 1;
        l->text = t;
        l->text_len -= mark;
        wcscpy(l->text + l->text_len, refused_w);
        l->text_len += add;
        return 1;
    }
    return 0;
}

const struct ui_line *ui_model_add_event(struct ui_model *m, const json_t *ev,
                                         const char *self)
{
    const char *type = str(ev, "type");
    int64_t ts = json_integer_value(json_object_get(ev, "ts"));
    int64_t id = json_integer_value(json_object_get(ev, "id"));
    struct ui_line *l = NULL;
    if (strcmp(type, "chat") == 0) {
        const char *from = str(ev, "from");
        int own = self && strcmp(from, self) == 0;
        if (own && chat_line_with_id(&m->chat, id))
            return NULL;        /* shown already as typed, then acknowledged */
        l = ui_list_add(&m->chat, own ? UI_LINE_OWN : UI_LINE_CHAT, ts,
                                          from, str(ev, "body"));
    } else if (strcmp(type, "alert") == 0) {
        char text[1024];
        enum ui_alert_kind k = alert_kind(str(ev, "kind"));
        int64_t tid = json_integer_value(json_object_get(ev, "transfer_id"));
        alert_text(ev, k, text, sizeof text);
        if (k != UI_ALERT_OTHER)
            alerts_drop_transfer(&m->alerts, tid, k == UI_ALERT_RECEIVED);
        l = ui_list_add(&m->alerts, UI_LINE_ALERT, ts, ui_alert_label(k), text);
        if (l) {
            l->alert = k;
            l->transfer_id = k != UI_ALERT_OTHER ? tid : 0;
        }
    } else if (strcmp(type, "member") == 0 || strcmp(type, "topic") == 0) {
        char text[400];
        if (type[0] == 'm')
            snprintf(text, sizeof text, "%s %s %s", str(ev, "user"),
                     strcmp(str(ev, "action"), "leave") == 0 ? "left" : "joined", str(ev, "room"));
        else
            snprintf(text, sizeof text, "%s set the topic: %s", str(ev, "from"), str(ev, "topic"));
        l = ui_list_add(&m->chat, UI_LINE_INFO, ts, "·", text);
    } else {
        char text[160];
        snprintf(text, sizeof text, "event #%lld of type \"%.60s\"", (long long)id, type);
        l = ui_list_add(&m->chat, UI_LINE_INFO, ts, "·", text);
    }
    if (l)
        l->id = id;
    return l;
}

size_t ui_list_prepend_events(struct ui_list *l, const json_t *events, const char *self)
{
    struct ui_model tmp;
    size_t i, added;
    json_t *ev;
    ui_model_init(&tmp);
    tmp.chat.keep = (size_t)-1;             /* a page is never cut */
    json_array_foreach(events, i, ev) {
        json_int_t id = json_integer_value(json_object_get(ev, "id"));
        if (!chat_line_with_id(l, id))
            ui_model_add_event(&tmp, ev, self);
    }
    added = tmp.chat.len;
    struct ui_line *v = added ? realloc(tmp.chat.v, (added + l->len + 1) * sizeof *v) : NULL;
    if (!v) {
        ui_model_free(&tmp);
        return 0;
    }
    tmp.chat.v = v;
    if (l->len)
        memcpy(tmp.chat.v + added, l->v, l->len * sizeof *l->v);
    free(l->v);
    l->v = tmp.chat.v;
    l->len += added;
    l->cap = l->len + 1;
    l->added += added;
    if (!l->last_ts)
        l->last_ts = tmp.chat.last_ts;
    ui_model_free(&(struct ui_model){ .alerts = tmp.alerts });
    return added;
}
