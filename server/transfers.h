/* transfers.h — the mock bank's rules. A transfer is accepted at once (pending,
 * idempotent per sender and key), then moved pending -> processing ->
 * completed | failed on timers, each step one store transaction together
 * with the alert events it emits. Unfinished transfers are picked up again
 * when the server starts, so none is lost or done twice. */
#ifndef CHAT_TRANSFERS_H
#define CHAT_TRANSFERS_H

#include <stdint.h>

#include "store.h"

struct server;
struct transfers;

enum transfers_rc {
    TRANSFERS_CREATED = 0,     /* a new transfer */
    TRANSFERS_REPEATED,        /* same key, same parameters: the first transfer */
    TRANSFERS_KEY_MISMATCH,    /* same key, other parameters */
    TRANSFERS_NO_RECIPIENT,
    TRANSFERS_TO_SELF,
    TRANSFERS_ERROR,
};

struct transfers *transfers_new(struct server *srv, int delay_ms);
/* Schedules every pending or processing transfer found in the store. */
int transfers_resume(struct transfers *tr);
void transfers_free(struct transfers *tr);

/* Accepts a transfer from user from_id; *t is filled for CREATED/REPEATED. */
enum transfers_rc transfers_submit(struct transfers *tr, int64_t from_id, const char *to,
                                   int64_t amount_cents, const char *key, struct store_transfer *t);

#endif
