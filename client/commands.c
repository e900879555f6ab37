/* commands.c — see commands.h. */
#include "commands.h"
#include "money.h"
#include "proto_rooms.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define AMOUNT_HELP "amount must be like 25 or 25.00 (no commas), more than 0 and at most 1000000.00"

const char *const cmd_help_lines[] = {
    "text                 send text to the room (a line of only blanks is not sent)",
    "/transfer USER AMT   send money, e.g. /transfer bob 25 or 25.00 (no commas)",
    "/balance             show your balance",
    "/transfers           your recent transfers and their states",
    "/transport NAME      switch to short-poll, long-poll, websocket, sse or auto",
    "/join NAME           join room NAME (made if new) and show it",
    "/part [NAME]         leave room NAME (default: the one shown)",
    "/rooms               every public room and your direct conversations",
    "/msg USER TEXT       a direct message to USER (shown as @USER)",
    "/who [NAME]          who is online in room NAME (default: the one shown)",
    "/topic [TEXT]        show the room's topic, or set it to TEXT",
    "Alt-1..9 Ctrl-N/P    switch rooms (UI); PgUp past the top loads older messages",
    "/help                this list",
    "/quit                leave (queued messages are sent first; /quit again: now)",
    NULL,
};

/* Names lowercased fit: say so with the command to type. */
static int name_upper_case(const char *name, struct cmd *out, const char *amount)
{
    char lower[PROTO_USER_MAX + 1];
    size_t i;
    for (i = 0; name[i] && i < PROTO_USER_MAX; i++)
        lower[i] = (char)tolower((unsigned char)name[i]);
    lower[i] = '\0';
    if (strcmp(lower, name) == 0 || !proto_name_valid(lower))
        return 0;
    snprintf(out->errbuf, sizeof out->errbuf, "user names are lowercase: /transfer %s %s",
             lower, amount);
    out->kind = CMD_INVALID;
    out->error = out->errbuf;
    return 1;
}

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
    if (next_word(&p, out->to, sizeof out->to) < 0 ||
        next_word(&p, amount, sizeof amount) < 0 || !rest_is_empty(p))
    {
        cmd_invalid(out, "usage: /transfer USER AMOUNT (e.g. /transfer bob 25.00)");
        return;
    }
    if (name_upper_case(out->to, out, amount))
        return;
    if (!proto_name_valid(out->to))
        { cmd_invalid(out, "user names are 1-32 characters of a-z 0-9 _ -"); return; }
    if (strchr(amount, ',') || money_parse(amount, &out->amount_cents) < 0)
        { cmd_invalid(out, AMOUNT_HELP); return; }
    out->kind = CMD_TRANSFER;
}

static void cmd_parse_transport(const char *p, struct cmd *out)
{
    if (next_word(&p, out->transport, sizeof out->transport) < 0 || !rest_is_empty(p) ||
        (strcmp(out->transport, "short-poll") && strcmp(out->transport, "long-poll") &&
         strcmp(out->transport, "websocket") && strcmp(out->transport, "sse") &&
         strcmp(out->transport, "auto")))
        { cmd_invalid(out, "usage: /transport short-poll|long-poll|websocket|sse|auto"); return; }
    out->kind = CMD_TRANSPORT;
}

/* A room word: "#rust" is "rust"; "@bob" stays for the front end to
 * complete; else a public or DM name. -1 if none fits. */
static int room_word(const char **p, struct cmd *out)
{
    char word[sizeof out->room + 1];
    if (next_word(p, word, sizeof word) < 0)
        return -1;
    const char *w = word[0] == '#' ? word + 1 : word;
    if (!(proto_room_ref_valid(w) || (w[0] == '@' && proto_name_valid(w + 1))) ||
        strlen(w) >= sizeof out->room)
        return -1;
    memcpy(out->room, w, strlen(w) + 1);
    return 0;
}

#define ROOM_RULE "room names are 1-32 characters of a-z 0-9 _ - (or @user for a DM)"

static void cmd_parse_room(const char *p, struct cmd *out, enum cmd_kind kind, int optional)
{
    static const char *const usage[] = {
        [CMD_JOIN] = "usage: /join NAME (" ROOM_RULE ")",
        [CMD_PART] = "usage: /part [NAME] (" ROOM_RULE ")",
        [CMD_WHO] = "usage: /who [NAME] (" ROOM_RULE ")",
    };
    if ((optional && rest_is_empty(p)) || (room_word(&p, out) == 0 && rest_is_empty(p)))
        out->kind = kind;
    else
        cmd_invalid(out, usage[kind]);
}

static void cmd_parse_msg(const char *p, struct cmd *out)
{
    if (next_word(&p, out->to, sizeof out->to) < 0 || rest_is_empty(p)) {
        cmd_invalid(out, "usage: /msg USER TEXT");
        return;
    }
    if (!proto_name_valid(out->to)) {
        cmd_invalid(out, "user names are 1-32 characters of a-z 0-9 _ - (lowercase)");
        return;
    }
    out->text = p + 1;          /* after the one space that ends the name */
    if (!proto_body_valid(out->text)) {
        cmd_invalid(out, "a message is 1-4096 bytes of UTF-8");
        return;
    }
    out->kind = CMD_MSG;
}

static void cmd_parse_topic(const char *p, struct cmd *out)
{
    p += strspn(p, " ");
    if (*p && !proto_topic_text_valid(p)) {
        cmd_invalid(out, "a topic is at most 256 bytes, without control characters");
        return;
    }
    out->text = *p ? p : NULL;
    out->kind = CMD_TOPIC;
}

/* What a command word is; CMD_INVALID if none (the caller names it). */
static enum cmd_kind command_of(const char *word)
{
    static const struct { const char *name; enum cmd_kind kind; } table[] = {
        { "transfer", CMD_TRANSFER }, { "balance", CMD_BALANCE }, { "transfers", CMD_TRANSFERS },
        { "transport", CMD_TRANSPORT }, { "join", CMD_JOIN }, { "j", CMD_JOIN },
        { "part", CMD_PART }, { "leave", CMD_PART }, { "rooms", CMD_ROOMS }, { "list", CMD_ROOMS },
        { "msg", CMD_MSG }, { "query", CMD_MSG }, { "who", CMD_WHO }, { "names", CMD_WHO },
        { "topic", CMD_TOPIC },
        { "help", CMD_HELP }, { "quit", CMD_QUIT },
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(word, table[i].name) == 0)
            return table[i].kind;
    return CMD_INVALID;
}

/* An irssi habit that means nothing here, or a word we do not know. */
static void cmd_unknown(const char *line, struct cmd *out)
{
    size_t n = strcspn(line + 1, " \t");
    int len = n > 40 ? 40 : (int)n;
    if ((n == 2 && strncmp(line + 1, "me", 2) == 0))
        cmd_invalid(out, "/me is not supported here: type the text as it is");
    else if (n == 4 && strncmp(line + 1, "nick", 4) == 0)
        cmd_invalid(out, "/nick is not supported: your name is the user you logged in as");
    else {
        snprintf(out->errbuf, sizeof out->errbuf, "unknown command /%.*s (try /help)", len, line + 1);
        cmd_invalid(out, out->errbuf);
    }
}

void cmd_parse(const char *line, struct cmd *out)
{
    char word[16];
    const char *p = line + 1;
    memset(out, 0, sizeof *out);
    if (line[strspn(line, " \t")] == '\0') {
        out->kind = CMD_EMPTY;
        return;
    }
    if (line[0] != '/' || line[1] == '/') {
        out->kind = CMD_MESSAGE;
        out->text = line[0] == '/' ? line + 1 : line;
        return;
    }
    enum cmd_kind kind = next_word(&p, word, sizeof word) < 0 ? CMD_INVALID : command_of(word);
    if (kind == CMD_INVALID)
        cmd_unknown(line, out);
    else if (kind == CMD_TRANSFER)
        cmd_parse_transfer(p, out);
    else if (kind == CMD_TRANSPORT)
        cmd_parse_transport(p, out);
    else if (kind == CMD_JOIN || kind == CMD_PART || kind == CMD_WHO)
        cmd_parse_room(p, out, kind, kind != CMD_JOIN);
    else if (kind == CMD_MSG)
        cmd_parse_msg(p, out);
    else if (kind == CMD_TOPIC)
        cmd_parse_topic(p, out);
    else if (!rest_is_empty(p)) {
        snprintf(out->errbuf, sizeof out->errbuf, "/%s takes no arguments", word);
        cmd_invalid(out, out->errbuf);
    } else
        out->kind = kind;
}
