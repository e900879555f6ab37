/* commands.h — what a typed line means, for every front end: a plain line is
 * a chat message, a line starting with '/' is a command. Parsing only; the
 * front end carries the command out (through the core and bank.c). */
#ifndef CHAT_COMMANDS_H
#define CHAT_COMMANDS_H

#include <stdint.h>

#include "protocol.h"

enum cmd_kind {
    CMD_MESSAGE,      /* text: the line, to the current room */
    CMD_TRANSFER,     /* /transfer USER AMOUNT */
    CMD_BALANCE,      /* /balance */
    CMD_TRANSFERS,    /* /transfers: your recent transfers and their states */
    CMD_TRANSPORT,    /* /transport short-poll|long-poll|websocket|auto */
    CMD_JOIN,         /* /join NAME: room (made if new), then shown */
    CMD_PART,         /* /part [NAME]: room ("" = the current one) */
    CMD_ROOMS,        /* /rooms: every public room and your DMs */
    CMD_MSG,          /* /msg USER TEXT: to, text */
    CMD_WHO,          /* /who [NAME]: who is online in room ("" = current) */
    CMD_TOPIC,        /* /topic [TEXT]: text NULL shows it, else sets it */
    CMD_HELP,         /* /help */
    CMD_QUIT,         /* /quit */
    CMD_INVALID,      /* error: a human-readable reason */
    CMD_EMPTY,        /* only blanks: ignored, never sent (as irssi does) */
};

struct cmd {
    enum cmd_kind kind;
    const char *text;                 /* CMD_MESSAGE, CMD_MSG, CMD_TOPIC: borrows the line */
    char to[PROTO_USER_MAX + 1];      /* CMD_TRANSFER, CMD_MSG */
    char room[PROTO_USER_MAX * 2 + 3];  /* CMD_JOIN, CMD_PART, CMD_WHO */
    int64_t amount_cents;             /* CMD_TRANSFER */
    char transport[16];               /* CMD_TRANSPORT */
    const char *error;                /* CMD_INVALID: static text or errbuf */
    char errbuf[160];                 /* an error naming what was typed */
};

/* Parses one line (no newline). "//text" sends "/text" as a message; a line
 * of only blanks is CMD_EMPTY. An unknown command is named in the error,
 * /me and /nick say they are not supported, an upper-case user name says
 * names are lowercase, an amount takes no thousands commas (as /help says).
 * Room names may be written "#rust" (irssi habit) and are kept as "rust";
 * a DM is "@alice,bob" or, for /part and /who, "@bob" (the front end knows
 * who "you" are and completes it).
 * out->error may point into *out: use it there, do not copy the struct. */
void cmd_parse(const char *line, struct cmd *out);
/* One line per command, for /help. */
extern const char *const cmd_help_lines[];

#endif
