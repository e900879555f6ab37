/* commands.c — see commands.h. */
#include "commands.h"
#include "money.h"

#include <stdio.h>
#include <string.h>

const char *const cmd_help_lines[] = {
    "text                 send text to the room",
    "/transfer USER AMT   send money, e.g. /transfer bob 25.00",
    "/balance             show your balance",
    "/transport NAME      switch to short-poll, long-poll, websocket or auto",
    "/help                this list",
    "/quit                leave (queued messages are sent first)",
    NULL,
};

/* Splits the next space-separated word of *p into buf; 0 or -1 if none/too long. */
static int next_word(const char **p, char *buf, size_t len)
{
    const char *s = *p;
    while (*s == ' ')
        s++;
    size_t n = strcspn(s, " ");
    if (n == 0 || n >= len)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    *p = s + n;
    return 0;
}

static int rest_is_empty(const char *p)
{
    return p[strspn(p, " ")] == '\0';
}

static void cmd_invalid(struct cmd *out, const char *why)
{
    out->kind = CMD_INVALID;
    out->error = why;
}

static void cmd_parse_transfer(const char *p, struct cmd *out)
{
    char amount[32];
    if (next_word(&p, out->to, sizeof out->to) < 0 || !proto_name_valid(out->to))
    {
        cmd_invalid(out, "usage: /transfer USER AMOUNT (e.g. /transfer bob 25.00)");
        return;
    }
    if (next_word(&p, amount, sizeof amount) < 0 || !rest_is_empty(p))
    {
        cmd_invalid(out, "usage: /transfer USER AMOUNT (e.g. /transfer bob 25.00)");
        return;
    }
    if (money_parse(amount, &out->amount_cents) < 0)
        { cmd_invalid(out, "amount must be like 25 or 25.00, more than 0 and at most 1,000,000.00"); return; }
    out->kind = CMD_TRANSFER;
}

static void cmd_parse_transport(const char *p, struct cmd *out)
{
    if (next_word(&p, out->transport, sizeof out->transport) < 0 || !rest_is_empty(p) ||
        (strcmp(out->transport, "short-poll") && strcmp(out->transport, "long-poll") &&
         strcmp(out->transport, "websocket") && strcmp(out->transport, "auto")))
        { cmd_invalid(out, "usage: /transport short-poll|long-poll|websocket|auto"); return; }
    out->kind = CMD_TRANSPORT;
}

void cmd_parse(const char *line, struct cmd *out)
{
    char word[16];
    const char *p = line + 1;
    memset(out, 0, sizeof *out);
    if (line[0] != '/' || line[1] == '/') {
        out->kind = CMD_MESSAGE;
        out->text = line[0] == '/' ? line + 1 : line;
        return;
    }
    if (next_word(&p, word, sizeof word) < 0)
        { cmd_invalid(out, "unknown command; /help lists them"); return; }
    if (strcmp(word, "transfer") == 0)
        { cmd_parse_transfer(p, out); return; }
    if (strcmp(word, "transport") == 0)
        { cmd_parse_transport(p, out); return; }
    if (!rest_is_empty(p))
        { cmd_invalid(out, "this command takes no arguments"); return; }
    if (strcmp(word, "balance") == 0)
        out->kind = CMD_BALANCE;
    else if (strcmp(word, "help") == 0)
        out->kind = CMD_HELP;
    else if (strcmp(word, "quit") == 0)
        out->kind = CMD_QUIT;
    else
        cmd_invalid(out, "unknown command; /help lists them");
}
