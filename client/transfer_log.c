/* transfer_log.c — see transfer_log.h. Rows sit oldest first in an array;
 * a new alert of a known transfer updates its row in place. */
#include "transfer_log.h"
#include "money.h"
#include "protocol.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct transfer_row {
    json_int_t id;
    int received;
    char counterparty[PROTO_USER_MAX + 1];
    json_int_t amount_cents;
    char state[16];
    char reason[48];
};

struct transfer_log {
    struct transfer_row rows[TRANSFER_LOG_KEEP];
    size_t len;
};

struct transfer_log *transfer_log_new(void)
{
    return calloc(1, sizeof(struct transfer_log));
}

void transfer_log_free(struct transfer_log *l)
{
    free(l);
}

static const char *str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* The row of this transfer seen from this side, or a new one. */
static struct transfer_row *row_for(struct transfer_log *l, json_int_t id, int received)
{
    for (size_t i = 0; i < l->len; i++)
        if (l->rows[i].id == id && l->rows[i].received == received)
            return &l->rows[i];
    if (l->len == TRANSFER_LOG_KEEP) {
        memmove(&l->rows[0], &l->rows[1], (l->len - 1) * sizeof l->rows[0]);
        l->len--;
    }
    struct transfer_row *r = &l->rows[l->len++];
    memset(r, 0, sizeof *r);
    r->id = id;
    r->received = received;
    return r;
}

void transfer_log_add(struct transfer_log *l, const json_t *event)
{
    const char *kind = str(event, "kind");
    json_int_t id = json_integer_value(json_object_get(event, "transfer_id"));
    if (strcmp(str(event, "type"), "alert") || strncmp(kind, "transfer.", 9) || id <= 0)
        return;
    struct transfer_row *r = row_for(l, id, strcmp(kind, "transfer.received") == 0);
    snprintf(r->counterparty, sizeof r->counterparty, "%s", str(event, "counterparty"));
    r->amount_cents = json_integer_value(json_object_get(event, "amount_cents"));
    snprintf(r->state, sizeof r->state, "%s", kind + 9);
    snprintf(r->reason, sizeof r->reason, "%s", str(event, "reason"));
    for (char *p = r->reason; *p; p++)
        if (*p == '_')
            *p = ' ';       /* in words: insufficient funds */
}

json_t *transfer_log_recent(const struct transfer_log *l, size_t n)
{
    json_t *a = json_array();
    for (size_t i = l->len; a && i > 0 && n > 0; i--, n--) {
        const struct transfer_row *r = &l->rows[i - 1];
        json_t *o = json_pack("{s:I,s:s,s:s,s:I,s:s}", "transfer_id", r->id,
                              "direction", r->received ? "received" : "sent",
                              "counterparty", r->counterparty, "amount_cents", r->amount_cents,
                              "state", r->state);
        if (o && *r->reason)
            json_object_set_new(o, "reason", json_string(r->reason));
        json_array_append_new(a, o);
    }
    return a;
}

void transfer_log_row_text(const json_t *row, char *buf, size_t size)
{
    char amount[32];
    int received = strcmp(str(row, "direction"), "received") == 0;
    const char *reason = str(row, "reason");
    money_format(json_integer_value(json_object_get(row, "amount_cents")), amount, sizeof amount);
    snprintf(buf, size, "#%lld %s %s %s %s: %s%s%s%s",
             (long long)json_integer_value(json_object_get(row, "transfer_id")),
             received ? "received" : "sent", amount, received ? "from" : "to",
             str(row, "counterparty"), received ? "completed" : str(row, "state"),
             *reason ? " (" : "", reason, *reason ? ")" : "");
}
