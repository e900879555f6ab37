/* fuzz_cmd_parse.c — client/commands.c cmd_parse, every line a user types
 * (or a script pipes into the headless client): no crash, and the result is
 * consistent: a message borrows the line (without the escaping '/' of
 * "//"), a transfer names a valid user and an amount money_parse accepts,
 * a transport is one of the four or auto, an error comes with a reason, a line of
 * only blanks is CMD_EMPTY and never a message. Room commands (v1.1): a
 * room is empty (the one shown, /part and /who only), a valid room name
 * or "@user"; /msg names a valid user and a valid body inside the line; a
 * topic is absent or valid, inside the line. */
#include "fuzz.h"
#include "commands.h"
#include "money.h"
#include "proto_rooms.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_input(data, size);
    char *line = fuzz_cstr(data, size);
    size_t len = strlen(line);
    struct cmd c;
    cmd_parse(line, &c);
    switch (c.kind) {
    case CMD_EMPTY:
        FUZZ_CHECK(line[strspn(line, " \t")] == '\0', "\"%s\" taken for a blank line", line);
        break;
    case CMD_MESSAGE:
        FUZZ_CHECK(line[strspn(line, " \t")] != '\0', "a blank line sent as a message");
        FUZZ_CHECK(c.text >= line && c.text <= line + len, "message text outside the line");
        if (line[0] == '/')
            FUZZ_CHECK(line[1] == '/' && c.text == line + 1, "\"/...\" parsed as a message");
        else
            FUZZ_CHECK(c.text == line, "plain line not sent as is");
        break;
    case CMD_TRANSFER: {
        const char *verb = line + 1 + strspn(line + 1, " ");
        FUZZ_CHECK(line[0] == '/' && strncmp(verb, "transfer ", 9) == 0, "transfer from \"%s\"", line);
        FUZZ_CHECK(oracle_name(c.to, strlen(c.to)), "transfer to invalid user \"%s\"", c.to);
        FUZZ_CHECK(c.amount_cents > 0 && c.amount_cents <= MONEY_MAX_CENTS, "amount %lld",
                   (long long)c.amount_cents);
        /* the last word is the amount */
        const char *end = line + len;
        while (end > line && end[-1] == ' ')
            end--;
        const char *w = end;
        while (w > line && w[-1] != ' ')
            w--;
        char amount[64];
        snprintf(amount, sizeof amount, "%.*s", (int)(end - w), w);
        int64_t cents = 0;
        FUZZ_CHECK(money_parse(amount, &cents) == 0 && cents == c.amount_cents,
                   "amount word \"%s\" does not give %lld", amount, (long long)c.amount_cents);
        break;
    }
    case CMD_TRANSPORT:
        FUZZ_CHECK(!strcmp(c.transport, "short-poll") || !strcmp(c.transport, "long-poll") ||
                   !strcmp(c.transport, "websocket") || !strcmp(c.transport, "sse") ||
                   !strcmp(c.transport, "auto"),
                   "transport \"%s\"", c.transport);
        break;
    case CMD_BALANCE:
    case CMD_TRANSFERS:
    case CMD_HELP:
    case CMD_QUIT: {
        static const char *const names[] = { [CMD_BALANCE] = "balance", [CMD_HELP] = "help",
                                             [CMD_TRANSFERS] = "transfers", [CMD_QUIT] = "quit" };
        /* "/" + spaces + the name + spaces, nothing else */
        const char *p = line + 1 + strspn(line + 1, " ");
        size_t wl = strlen(names[c.kind]);
        FUZZ_CHECK(strncmp(p, names[c.kind], wl) == 0 && p[wl + strspn(p + wl, " ")] == '\0',
                   "\"%s\" parsed as /%s", line, names[c.kind]);
        break;
    }
    case CMD_JOIN:
    case CMD_PART:
    case CMD_WHO:
        FUZZ_CHECK(line[0] == '/' && line[1] != '/', "room command from \"%s\"", line);
        FUZZ_CHECK((c.kind != CMD_JOIN && !c.room[0]) || proto_room_ref_valid(c.room) ||
                   (c.room[0] == '@' && oracle_name(c.room + 1, strlen(c.room + 1))),
                   "room \"%s\" from \"%s\"", c.room, line);
        break;
    case CMD_ROOMS: {
        const char *p = line + 1 + strspn(line + 1, " ");
        FUZZ_CHECK(line[0] == '/' && (!strncmp(p, "rooms", 5) || !strncmp(p, "list", 4)),
                   "\"%s\" parsed as /rooms", line);
        break;
    }
    case CMD_MSG:
        FUZZ_CHECK(oracle_name(c.to, strlen(c.to)), "/msg to invalid user \"%s\"", c.to);
        FUZZ_CHECK(c.text > line && c.text <= line + len && proto_body_valid(c.text),
                   "/msg text bad in \"%s\"", line);
        break;
    case CMD_TOPIC:
        FUZZ_CHECK(!c.text || (c.text > line && c.text <= line + len &&
                               proto_topic_text_valid(c.text)), "topic bad in \"%s\"", line);
        break;
    case CMD_INVALID:
        FUZZ_CHECK(c.error && *c.error, "invalid without a reason");
        FUZZ_CHECK(line[0] == '/' && line[1] != '/', "a message refused as a command");
        break;
    default:
        FUZZ_CHECK(0, "unknown kind %d", (int)c.kind);
    }
    free(line);
    return 0;
}
